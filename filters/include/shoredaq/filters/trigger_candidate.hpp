#pragma once
// What a trigger hands to the event builder (the L0 hits of one firing cluster and its mask), and
// helpers the triggers share.

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "shoredaq/filters/cluster.hpp"
#include "shoredaq/filters/l1.hpp"
#include "shoredaq/filters/match.hpp"

namespace shoredaq::filters {

struct TriggerCandidate {
  std::uint64_t trigger_mask = 0;      // the trigger's bit, plus bit 31 for the factory limit
  std::vector<std::uint32_t> l0_hits;  // global indices into L0Slice::hits
};

// Reusable buffers of the triggers (one per thread).
struct TriggerScratch {
  std::vector<std::uint32_t> candidates;
  std::vector<std::uint32_t> selected;
  std::vector<std::uint32_t> survivors;
  std::vector<std::uint32_t> doms;
  std::vector<std::uint8_t> used;
  std::vector<RotatedPoint> rotated;
  std::vector<dataflow::Vec3> positions;
  std::vector<double> times;
  std::vector<std::uint32_t> cursors;  // per L0 DOM slot (trigger_mx_shower)
  CliqueScratch clique;
};

// Number of distinct value_of(k) over the indices k (sorted in `buffer`).
template <class ValueOf>
std::size_t count_distinct_values(std::span<const std::uint32_t> indices, ValueOf value_of,
                                  std::vector<std::uint32_t>& buffer) {
  buffer.clear();
  for (auto k : indices) buffer.push_back(value_of(k));
  std::sort(buffer.begin(), buffer.end());
  return static_cast<std::size_t>(std::unique(buffer.begin(), buffer.end()) - buffer.begin());
}

// Number of distinct values in `slots`.
inline std::size_t count_distinct(std::span<const std::uint32_t> slots, std::vector<std::uint32_t>& buffer) {
  return count_distinct_values(slots, [](std::uint32_t v) { return v; }, buffer);
}

// Distinct DOMs among the L1 hits l1[indices[k]].
inline std::size_t count_l1_doms(std::span<const L1Hit> l1, std::span<const std::uint32_t> indices,
                                 std::vector<std::uint32_t>& buffer) {
  return count_distinct_values(indices, [&](std::uint32_t k) { return l1[k].dom_slot; }, buffer);
}

// A candidate from L1 hits: every L0 hit of each L1.
inline TriggerCandidate candidate_from_l1(std::span<const L1Hit> l1, std::span<const std::uint32_t> indices,
                                          std::uint64_t mask) {
  TriggerCandidate c;
  c.trigger_mask = mask;
  for (auto k : indices)
    for (std::uint32_t h = 0; h < l1[k].multiplicity; ++h) c.l0_hits.push_back(l1[k].first_l0 + h);
  return c;
}

}  // namespace shoredaq::filters
