#include "shoredaq/filters/trigger_mx_shower.hpp"

#include <algorithm>

#include "shoredaq/formats/event.hpp"

namespace shoredaq::filters {

ModuleNeighbours::ModuleNeighbours(const dataflow::Detector& detector, double d_max_m) {
  const auto modules = detector.modules();
  positions_.reserve(modules.size());
  for (const auto& m : modules) positions_.push_back(m.position_m);
  offsets_.reserve(modules.size() + 1);
  offsets_.push_back(0);
  for (std::size_t i = 0; i < modules.size(); ++i) {
    if (!modules[i].is_base()) {
      for (std::size_t j = 0; j < modules.size(); ++j) {
        if (modules[j].is_base()) continue;
        const double d = (positions_[i] - positions_[j]).norm();
        if (d <= d_max_m) neighbours_.push_back({static_cast<std::uint32_t>(j), d});
      }
    }
    offsets_.push_back(neighbours_.size());
  }
}

namespace {

// Moves `cursor` (a hit index in [cursor, end), hits sorted by time) to the first hit with time >=
// t: galloping from where it is, then a binary search in the last step. Returns the new cursor.
std::size_t advance_to(const L0Hit* hits, std::uint32_t& cursor, std::uint32_t end, double t) {
  std::size_t lo = cursor;
  if (lo >= end || hits[lo].time_ns >= t) return cursor;
  // hits[lo] < t: find hi with hits[hi] >= t (or end), doubling the step.
  std::size_t step = 1, hi = lo + 1;
  while (hi < end && hits[hi].time_ns < t) {
    lo = hi;
    step *= 2;
    hi = std::min<std::size_t>(end, lo + step);
  }
  const L0Hit* first = std::lower_bound(hits + lo + 1, hits + hi, t, [](const L0Hit& h, double v) { return h.time_ns < v; });
  cursor = static_cast<std::uint32_t>(first - hits);
  return cursor;
}

}  // namespace

std::size_t trigger_mx_shower(std::span<const L1Hit> l1, const L0Slice& l0,
                              std::span<const std::int32_t> slot_of_module, const ModuleNeighbours& neighbours,
                              const TriggerSettings& settings, std::vector<TriggerCandidate>& out,
                              TriggerScratch& scratch) {
  if (!settings.enabled) return 0;
  const Match3D match{settings.d_max_m, settings.t_max_extra_ns};
  const std::size_t min_hits = static_cast<std::size_t>(settings.number_of_hits);
  const std::size_t min_doms = static_cast<std::size_t>(settings.number_of_modules);
  const std::uint64_t bit = dataflow::trigger_bit(dataflow::kTriggerBitMXShower);
  auto& cands = scratch.candidates;  // global L0 indices
  auto& cand_doms = scratch.selected;
  auto& positions = scratch.positions;
  auto& times = scratch.times;
  // Per DOM slot, a hit index not after the first L0 hit at or after (the latest seed that looked
  // at this DOM's time - the widest window). Seeds come in time order, so a DOM's search starts
  // where its last one ended or at its time index's bucket, whichever is later: one cold cache
  // line, not a search over cold lines.
  const double widest_half_window_ns = settings.d_max_m * kIndexOfRefraction / kSpeedOfLightMPerNs + settings.t_max_extra_ns;
  auto& cursors = scratch.cursors;
  cursors.resize(l0.doms.size());
  for (std::size_t s = 0; s < l0.doms.size(); ++s) cursors[s] = l0.doms[s].begin;
  const L0Hit* const all_hits = l0.hits.data();
  std::size_t fired = 0;
  double last_fired_end_ns = -1e300;
  std::size_t last_fired = out.size();  // index in `out` of this trigger's latest candidate
  for (std::size_t i = 0; i < l1.size(); ++i) {
    const L1Hit& seed = l1[i];
    // A seed whose L1 already lies in a firing cluster adds nothing the event builder keeps.
    if (last_fired < out.size() && seed.time_ns <= last_fired_end_ns &&
        std::binary_search(out[last_fired].l0_hits.begin(), out[last_fired].l0_hits.end(), seed.first_l0))
      continue;
    cands.clear();
    cand_doms.clear();
    positions.clear();
    times.clear();
    const std::uint32_t seed_module = l0.doms[seed.dom_slot].module_index;
    const auto seed_neighbours = neighbours.of(seed_module);
    // Each neighbour is one DOM: once the DOMs with hits so far plus the neighbours still to look
    // at are too few, the seed cannot fire. Most neighbour windows are empty, so most seeds stop
    // after the first look, each look being a cache miss into the slice's L0 hits.
    std::size_t doms_to_look_at = 0;
    for (const auto& nb : seed_neighbours) doms_to_look_at += slot_of_module[nb.module_index] >= 0;
    std::size_t doms_with_hits = 0;
    bool cannot_fire = doms_to_look_at < min_doms;
    for (const auto& nb : seed_neighbours) {
      if (cannot_fire) break;
      const std::int32_t slot = slot_of_module[nb.module_index];
      if (slot < 0) continue;
      --doms_to_look_at;
      const std::size_t hits_before = cands.size();
      const L0Dom& dom = l0.doms[static_cast<std::size_t>(slot)];
      auto& cursor = cursors[static_cast<std::size_t>(slot)];
      const double from_ns = seed.time_ns - widest_half_window_ns;
      cursor = std::max(cursor, l0.search_start(dom, from_ns));
      std::size_t it = advance_to(all_hits, cursor, dom.end, from_ns);
      // From there, exactly the hits a lower bound at this neighbour's own window would give.
      const double half_window = nb.distance_m * kIndexOfRefraction / kSpeedOfLightMPerNs + settings.t_max_extra_ns;
      while (it < dom.end && all_hits[it].time_ns < seed.time_ns - half_window) ++it;
      for (; it < dom.end && all_hits[it].time_ns <= seed.time_ns + half_window; ++it) {
        cands.push_back(static_cast<std::uint32_t>(it));
        cand_doms.push_back(static_cast<std::uint32_t>(slot));
        positions.push_back(neighbours.position(nb.module_index));
        times.push_back(all_hits[it].time_ns);
      }
      doms_with_hits += cands.size() > hits_before;
      cannot_fire = doms_with_hits + doms_to_look_at < min_doms;
    }
    if (cannot_fire || cands.size() < min_hits || count_distinct(cand_doms, scratch.doms) < min_doms) continue;
    TriggerCandidate c;
    c.trigger_mask = bit;
    if (cands.size() > static_cast<std::size_t>(settings.factory_limit)) {
      c.trigger_mask |= dataflow::trigger_bit(dataflow::kTriggerBitFactoryLimit);
      c.l0_hits = cands;
    } else {
      clique_cluster(
          cands.size(),
          [&](std::size_t a, std::size_t b) { return match(positions[a], times[a], positions[b], times[b]); },
          scratch.survivors, scratch.clique);
      if (scratch.survivors.size() < min_hits) continue;
      std::vector<std::uint32_t> doms;
      for (auto s : scratch.survivors) doms.push_back(cand_doms[s]);
      if (count_distinct(doms, scratch.doms) < min_doms) continue;
      for (auto s : scratch.survivors) c.l0_hits.push_back(cands[s]);
    }
    std::sort(c.l0_hits.begin(), c.l0_hits.end());
    double end_ns = -1e300;
    for (auto h : c.l0_hits) end_ns = std::max(end_ns, l0.hits[h].time_ns);
    last_fired_end_ns = end_ns;
    last_fired = out.size();
    out.push_back(std::move(c));
    ++fired;
  }
  return fired;
}

}  // namespace shoredaq::filters
