#pragma once
// The step the L1 scan (l1.cpp) and the supernova cluster scan (supernova.cpp) take at a hit that
// is not alone, shared with their one-pass form (l1_supernova.cpp). `hits` are one DOM's L0 hits
// by time, n of them; each returns one past the last hit of what it took.

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "shoredaq/filters/l1.hpp"
#include "shoredaq/filters/supernova.hpp"

namespace shoredaq::filters::detail {

// An L1 hit from hits[i] and hits[i + 1] (within the window) and those the settings chain or keep.
inline std::size_t take_l1_coincidence(const L0Hit* hits, std::size_t n, std::size_t i, std::uint32_t first_index,
                                       std::uint32_t dom_slot, const dataflow::Vec3& dom_position_m,
                                       const L1Settings& settings, std::vector<L1Hit>& out) {
  const double window = settings.window_ns;
  std::size_t j = i + 2;  // one past the last hit of the coincidence
  if (settings.combine) {
    while (j < n && hits[j].time_ns - hits[j - 1].time_ns <= window) ++j;
  } else {
    while (j < n && hits[j].time_ns - hits[i].time_ns <= window) ++j;
  }
  const std::size_t multiplicity = std::min<std::size_t>(j - i, std::numeric_limits<std::uint16_t>::max());
  out.push_back(L1Hit{hits[i].time_ns, dom_position_m, dom_slot, first_index + static_cast<std::uint32_t>(i),
                      static_cast<std::uint16_t>(multiplicity), false});
  return j;
}

// Every hit within the window of hits[i] (inclusive); kept as a cluster when on >= 2 PMTs.
inline std::size_t take_supernova_cluster(const L0Hit* hits, std::size_t n, std::size_t i, double coincidence_window_ns,
                                          std::vector<SupernovaCluster>& out) {
  const double window_end_ns = hits[i].time_ns + coincidence_window_ns;
  std::uint32_t pmts = 0;
  std::size_t j = i;
  for (; j < n && hits[j].time_ns <= window_end_ns; ++j) pmts |= 1u << (hits[j].channel & 31u);
  const auto multiplicity = static_cast<std::uint32_t>(std::popcount(pmts));
  if (multiplicity >= 2) out.push_back({static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(j), multiplicity});
  return j;
}

}  // namespace shoredaq::filters::detail
