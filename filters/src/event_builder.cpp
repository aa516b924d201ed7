#include "shoredaq/filters/event_builder.hpp"

#include <algorithm>
#include <climits>
#include <limits>
#include <utility>

namespace shoredaq::filters {

std::size_t build_events(const std::vector<TriggerCandidate>& candidates, const L0Slice& l0,
                         const dataflow::SliceHeader& header, double snapshot_window_ns,
                         std::vector<dataflow::Event>& out, const SnapshotScope& scope) {
  const bool local = scope.max_distance_m > 0 && !scope.module_positions.empty();
  const double max_distance_squared = scope.max_distance_m * scope.max_distance_m;
  std::vector<dataflow::Vec3> triggered_positions;
  struct Span {
    double first, last;
    std::size_t index;
  };
  std::vector<Span> spans;
  spans.reserve(candidates.size());
  for (std::size_t c = 0; c < candidates.size(); ++c) {
    if (candidates[c].l0_hits.empty()) continue;
    double first = std::numeric_limits<double>::max(), last = std::numeric_limits<double>::lowest();
    for (auto h : candidates[c].l0_hits) {
      first = std::min(first, l0.hits[h].time_ns);
      last = std::max(last, l0.hits[h].time_ns);
    }
    spans.push_back({first, last, c});
  }
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return a.first < b.first || (a.first == b.first && a.index < b.index);
  });

  const std::size_t first_event = out.size();
  std::vector<std::pair<std::uint32_t, std::uint64_t>> marked;  // (L0 index, mask)
  std::size_t s = 0;
  while (s < spans.size()) {
    // Grow the group while the next candidate's window overlaps the group's.
    double first = spans[s].first, last = spans[s].last;
    std::size_t e = s + 1;
    while (e < spans.size() && spans[e].first - snapshot_window_ns <= last + snapshot_window_ns) {
      last = std::max(last, spans[e].last);
      ++e;
    }
    dataflow::Event event;
    event.header = header;
    event.event_number = static_cast<std::uint32_t>(out.size() - first_event);
    event.overlays = static_cast<std::uint32_t>(e - s - 1);
    marked.clear();
    for (std::size_t k = s; k < e; ++k) {
      const TriggerCandidate& c = candidates[spans[k].index];
      event.trigger_mask |= c.trigger_mask;
      for (auto h : c.l0_hits) marked.emplace_back(h, c.trigger_mask);
    }
    std::sort(marked.begin(), marked.end());
    for (std::size_t k = 0; k < marked.size();) {
      const std::uint32_t h = marked[k].first;
      std::uint64_t mask = 0;
      for (; k < marked.size() && marked[k].first == h; ++k) mask |= marked[k].second;
      const L0Hit& hit = l0.hits[h];
      event.triggered.push_back({l0.doms[l0.dom_slot_of(h)].dom_id, {hit.channel, hit.raw_time_ns, hit.tot_ns}, mask});
    }
    triggered_positions.clear();
    if (local) {
      std::uint32_t previous_slot = UINT32_MAX;
      for (const auto& [h, mask] : marked) {
        const auto slot = static_cast<std::uint32_t>(l0.dom_slot_of(h));
        if (slot != previous_slot) triggered_positions.push_back(scope.module_positions[l0.doms[slot].module_index]);
        previous_slot = slot;
      }
    }
    const double lo = first - snapshot_window_ns, hi = last + snapshot_window_ns;
    for (const L0Dom& dom : l0.doms) {
      if (local) {
        const dataflow::Vec3& here = scope.module_positions[dom.module_index];
        bool near = false;
        for (const auto& t : triggered_positions) {
          const dataflow::Vec3 d = here - t;
          if (d.dot(d) <= max_distance_squared) {
            near = true;
            break;
          }
        }
        if (!near) continue;
      }
      const auto hits = l0.hits_of(dom);
      auto it = std::lower_bound(hits.begin(), hits.end(), lo,
                                 [](const L0Hit& h, double t) { return h.time_ns < t; });
      for (; it != hits.end() && it->time_ns <= hi; ++it)
        event.snapshot.push_back({dom.dom_id, {it->channel, it->raw_time_ns, it->tot_ns}});
    }
    out.push_back(std::move(event));
    s = e;
  }
  return out.size() - first_event;
}

void assign_trigger_counters(std::vector<dataflow::Event>& events, std::uint64_t& run_counter) {
  for (auto& e : events) e.trigger_counter = run_counter++;
}

}  // namespace shoredaq::filters
