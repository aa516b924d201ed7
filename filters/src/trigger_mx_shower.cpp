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

// Whether one seed fires, whatever fired before it: its search through the neighbours' L0 hits.
class MxShowerSearch {
 public:
  MxShowerSearch(const MxShowerInput& in, TriggerScratch& scratch)
      : in_(in),
        scratch_(scratch),
        match_{in.settings.d_max_m, in.settings.t_max_extra_ns},
        min_hits_(static_cast<std::size_t>(in.settings.number_of_hits)),
        min_doms_(static_cast<std::size_t>(in.settings.number_of_modules)),
        widest_half_window_ns_(in.settings.d_max_m * kIndexOfRefraction / kSpeedOfLightMPerNs +
                               in.settings.t_max_extra_ns) {
    // Per DOM slot, a hit index not after the first L0 hit at or after (the latest seed that
    // looked at this DOM's time - the widest window). Seeds come in time order, so a DOM's search
    // starts where its last one ended or at its time index's bucket, whichever is later: one cold
    // cache line, not a search over cold lines.
    auto& cursors = scratch.cursors;
    cursors.resize(in.l0.doms.size());
    for (std::size_t s = 0; s < in.l0.doms.size(); ++s) cursors[s] = in.l0.doms[s].begin;
  }

  // Asks the memory for what a later seed's search reads first, in two steps: the time index
  // entries of its neighbours (prefetch_index, further ahead), then the lines of L0 hits from
  // where those entries put its window (prefetch_hits; the window's hits follow within a bucket's
  // width). The slice's L0 hits are far larger than the caches and the seeds' windows far apart,
  // so each search would otherwise wait for its lines one after the other. Reads only: whether and
  // when the lines arrive changes nothing but the time. Inlined by force: GCC takes a function of
  // nothing but prefetches for one without effects and drops the call.
  [[gnu::always_inline]] void prefetch_index(const L1Hit& seed) const {
    const L0Slice& l0 = in_.l0;
    const double from_ns = seed.time_ns - widest_half_window_ns_;
    for (const auto& nb : in_.neighbours.of(l0.doms[seed.dom_slot].module_index)) {
      const std::int32_t slot = in_.slot_of_module[nb.module_index];
      if (slot < 0) continue;
      if (const std::uint32_t* entry = l0.search_start_entry(l0.doms[static_cast<std::size_t>(slot)], from_ns))
        __builtin_prefetch(entry);
    }
  }
  [[gnu::always_inline]] void prefetch_hits(const L1Hit& seed) const {
    const L0Slice& l0 = in_.l0;
    const L0Hit* const all_hits = l0.hits.data();
    const double from_ns = seed.time_ns - widest_half_window_ns_;
    for (const auto& nb : in_.neighbours.of(l0.doms[seed.dom_slot].module_index)) {
      const std::int32_t slot = in_.slot_of_module[nb.module_index];
      if (slot < 0) continue;
      const L0Dom& dom = l0.doms[static_cast<std::size_t>(slot)];
      const std::uint32_t start = std::max(scratch_.cursors[static_cast<std::size_t>(slot)], l0.search_start(dom, from_ns));
      constexpr std::uint32_t kLines = 4, kHitsPerLine = 64 / sizeof(L0Hit);
      for (std::uint32_t k = 0; k < kLines && start + k * kHitsPerLine < dom.end; ++k)
        __builtin_prefetch(all_hits + start + k * kHitsPerLine);
    }
  }

  // Seeds must come in time order (the cursors only move forward).
  bool fires(const L1Hit& seed, TriggerCandidate& c, double& end_ns) {
    const L0Slice& l0 = in_.l0;
    const ModuleNeighbours& neighbours = in_.neighbours;
    auto& cands = scratch_.candidates;  // global L0 indices
    auto& cand_doms = scratch_.selected;
    auto& positions = scratch_.positions;
    auto& times = scratch_.times;
    const L0Hit* const all_hits = l0.hits.data();
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
    for (const auto& nb : seed_neighbours) doms_to_look_at += in_.slot_of_module[nb.module_index] >= 0;
    std::size_t doms_with_hits = 0;
    bool cannot_fire = doms_to_look_at < min_doms_;
    for (const auto& nb : seed_neighbours) {
      if (cannot_fire) break;
      const std::int32_t slot = in_.slot_of_module[nb.module_index];
      if (slot < 0) continue;
      --doms_to_look_at;
      const std::size_t hits_before = cands.size();
      const L0Dom& dom = l0.doms[static_cast<std::size_t>(slot)];
      auto& cursor = scratch_.cursors[static_cast<std::size_t>(slot)];
      const double from_ns = seed.time_ns - widest_half_window_ns_;
      cursor = std::max(cursor, l0.search_start(dom, from_ns));
      std::size_t it = advance_to(all_hits, cursor, dom.end, from_ns);
      // From there, exactly the hits a lower bound at this neighbour's own window would give.
      const double half_window =
          nb.distance_m * kIndexOfRefraction / kSpeedOfLightMPerNs + in_.settings.t_max_extra_ns;
      while (it < dom.end && all_hits[it].time_ns < seed.time_ns - half_window) ++it;
      for (; it < dom.end && all_hits[it].time_ns <= seed.time_ns + half_window; ++it) {
        cands.push_back(static_cast<std::uint32_t>(it));
        cand_doms.push_back(static_cast<std::uint32_t>(slot));
        positions.push_back(neighbours.position(nb.module_index));
        times.push_back(all_hits[it].time_ns);
      }
      doms_with_hits += cands.size() > hits_before;
      cannot_fire = doms_with_hits + doms_to_look_at < min_doms_;
    }
    if (cannot_fire || cands.size() < min_hits_ || count_distinct(cand_doms, scratch_.doms) < min_doms_) return false;
    c.trigger_mask = dataflow::trigger_bit(dataflow::kTriggerBitMXShower);
    c.l0_hits.clear();
    if (cands.size() > static_cast<std::size_t>(in_.settings.factory_limit)) {
      c.trigger_mask |= dataflow::trigger_bit(dataflow::kTriggerBitFactoryLimit);
      c.l0_hits = cands;
    } else {
      clique_cluster(
          cands.size(),
          [&](std::size_t a, std::size_t b) { return match_(positions[a], times[a], positions[b], times[b]); },
          scratch_.survivors, scratch_.clique);
      if (scratch_.survivors.size() < min_hits_) return false;
      const auto dom_of = [&](std::uint32_t s) { return cand_doms[s]; };
      if (count_distinct_values(scratch_.survivors, dom_of, scratch_.doms) < min_doms_) return false;
      for (auto s : scratch_.survivors) c.l0_hits.push_back(cands[s]);
    }
    std::sort(c.l0_hits.begin(), c.l0_hits.end());
    end_ns = -1e300;
    for (auto h : c.l0_hits) end_ns = std::max(end_ns, l0.hits[h].time_ns);
    return true;
  }

 private:
  const MxShowerInput& in_;
  TriggerScratch& scratch_;
  const Match3D match_;
  const std::size_t min_hits_, min_doms_;
  const double widest_half_window_ns_;
};

// The trigger's latest candidate, candidates[index] (none while `candidates` is null): a seed it
// holds adds nothing the event builder keeps.
struct LatestCandidate {
  const std::vector<TriggerCandidate>* candidates = nullptr;
  std::size_t index = 0;
  double end_ns = 0;       // the time of its latest hit
  std::uint32_t seed = 0;  // the seed that fired it
  // Whether it can still hold a seed at or after this one (seeds come in time order).
  bool live(const L1Hit& seed_hit) const { return candidates != nullptr && seed_hit.time_ns <= end_ns; }
  bool holds(const L1Hit& seed_hit) const {
    if (!live(seed_hit)) return false;
    const auto& hits = (*candidates)[index].l0_hits;
    return std::binary_search(hits.begin(), hits.end(), seed_hit.first_l0);
  }
};

// Seeds l1[first, last), with no candidate before them; appends to `out`, and each candidate's
// seed and end to `seeds` and `ends` when given.
void run_seeds(const MxShowerInput& in, std::size_t first, std::size_t last, MxShowerSearch& search,
               std::vector<TriggerCandidate>& out, std::vector<std::uint32_t>* seeds, std::vector<double>* ends) {
  // How far ahead (in seeds) the search's time index entries and first lines are asked for.
  constexpr std::size_t kPrefetchIndexSeeds = 16, kPrefetchHitsSeeds = 8;
  LatestCandidate latest;
  for (std::size_t i = first; i < last; ++i) {
    if (i + kPrefetchIndexSeeds < last) search.prefetch_index(in.l1[i + kPrefetchIndexSeeds]);
    if (i + kPrefetchHitsSeeds < last) search.prefetch_hits(in.l1[i + kPrefetchHitsSeeds]);
    const L1Hit& seed = in.l1[i];
    if (latest.holds(seed)) continue;
    TriggerCandidate c;
    double end_ns = 0;
    if (!search.fires(seed, c, end_ns)) continue;
    out.push_back(std::move(c));
    latest = {&out, out.size() - 1, end_ns, static_cast<std::uint32_t>(i)};
    if (seeds != nullptr) seeds->push_back(static_cast<std::uint32_t>(i));
    if (ends != nullptr) ends->push_back(end_ns);
  }
}

}  // namespace

std::size_t trigger_mx_shower(std::span<const L1Hit> l1, const L0Slice& l0,
                              std::span<const std::int32_t> slot_of_module, const ModuleNeighbours& neighbours,
                              const TriggerSettings& settings, std::vector<TriggerCandidate>& out,
                              TriggerScratch& scratch) {
  if (!settings.enabled) return 0;
  const MxShowerInput in{l1, l0, slot_of_module, neighbours, settings};
  MxShowerSearch search(in, scratch);
  const std::size_t before = out.size();
  run_seeds(in, 0, l1.size(), search, out, nullptr, nullptr);
  return out.size() - before;
}

void trigger_mx_shower_part(const MxShowerInput& in, MxShowerPart& part) {
  part.candidates.clear();
  part.seeds.clear();
  part.end_ns.clear();
  if (!in.settings.enabled) return;
  MxShowerSearch search(in, part.scratch);
  run_seeds(in, part.first, part.last, search, part.candidates, &part.seeds, &part.end_ns);
}

std::size_t join_mx_shower_parts(const MxShowerInput& in, std::span<MxShowerPart> parts,
                                 std::vector<TriggerCandidate>& out, TriggerScratch& scratch) {
  if (!in.settings.enabled) return 0;
  MxShowerSearch search(in, scratch);  // for seeds a part passed over that the one run looks at
  const std::size_t before = out.size();
  LatestCandidate one_run;  // the one run's latest candidate (in `out`)
  const auto append = [&](TriggerCandidate&& c, double end_ns, std::size_t seed) {
    out.push_back(std::move(c));
    one_run = {&out, out.size() - 1, end_ns, static_cast<std::uint32_t>(seed)};
  };
  for (MxShowerPart& part : parts) {
    LatestCandidate part_run;  // the part's latest candidate before seed i
    std::size_t next = 0;      // the part's first candidate with a seed >= i
    std::size_t i = part.first;
    for (; i < part.last; ++i) {
      const L1Hit& seed = in.l1[i];
      // From seed i on both runs look at the same seeds, and so fire the same candidates, once
      // neither latest candidate can hold a seed any more, or once both are the same candidate.
      if (!one_run.live(seed) && !part_run.live(seed)) break;
      if (one_run.candidates != nullptr && part_run.candidates != nullptr && one_run.seed == part_run.seed) break;
      const bool part_fired = next < part.seeds.size() && part.seeds[next] == i;
      if (!one_run.holds(seed)) {
        if (part_fired) {
          append(TriggerCandidate(part.candidates[next]), part.end_ns[next], i);  // a copy: part_run may point at it
        } else if (part_run.holds(seed)) {
          // The part passed over this seed; the one run looks at it.
          TriggerCandidate c;
          double end_ns = 0;
          if (search.fires(seed, c, end_ns)) append(std::move(c), end_ns, i);
        }  // else the part looked at it, and it did not fire
      }
      if (part_fired) {
        part_run = {&part.candidates, next, part.end_ns[next], static_cast<std::uint32_t>(i)};
        ++next;
      }
    }
    for (; next < part.candidates.size(); ++next)
      append(std::move(part.candidates[next]), part.end_ns[next], part.seeds[next]);
  }
  return out.size() - before;
}

}  // namespace shoredaq::filters
