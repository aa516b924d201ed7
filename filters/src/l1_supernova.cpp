// One pass for a DOM's L1 hits (l1.cpp) and supernova clusters (supernova.cpp). Each of the two
// scans steps through the hits by time and, at a hit it looks at, either finds it alone (the next
// hit is outside its window) and moves one on, or takes a coincidence and moves past it. Here one
// index walks both: each scan keeps the first hit it looks at next, so it looks at exactly the hits
// it would on its own, with its own comparisons (the two windows may be equal, and the two tests
// round differently), and the outputs are the same.
#include <bit>
#include <limits>

#include "shoredaq/filters/supernova.hpp"

namespace shoredaq::filters {

void build_l1_dom_and_supernova_clusters(std::span<const L0Hit> dom_hits, std::uint32_t first_index,
                                         std::uint32_t dom_slot, const dataflow::Vec3& dom_position_m,
                                         const L1Settings& l1_settings, std::vector<L1Hit>& l1_out,
                                         double coincidence_window_ns, std::vector<SupernovaCluster>& sn_out) {
  const L0Hit* const hits = dom_hits.data();
  const std::size_t n = dom_hits.size();
  const double l1_window = l1_settings.window_ns, sn_window = coincidence_window_ns;
  // The test each scan makes at hit k (as build_l1_dom and find_supernova_clusters write them).
  const auto l1_alone = [&](std::size_t k) { return hits[k + 1].time_ns - hits[k].time_ns > l1_window; };
  const auto sn_alone = [&](std::size_t k) { return hits[k + 1].time_ns > hits[k].time_ns + sn_window; };
  std::size_t l1_next = 0, sn_next = 0;  // the hit each scan looks at next
  std::size_t i = 0;
  while (i + 1 < n) {
    // The common case: both scans at i and four hits alone under both windows.
    if (i >= l1_next && i >= sn_next && i + 4 < n) {
      int alone = 0;
      for (std::size_t k = i; k < i + 4; ++k) alone += static_cast<int>(l1_alone(k)) & static_cast<int>(sn_alone(k));
      if (alone == 4) {
        i += 4;
        continue;
      }
    }
    if (i >= l1_next) {
      if (l1_alone(i)) {
        l1_next = i + 1;
      } else {
        std::size_t j = i + 2;  // one past the last hit of the coincidence
        if (l1_settings.combine) {
          while (j < n && hits[j].time_ns - hits[j - 1].time_ns <= l1_window) ++j;
        } else {
          while (j < n && hits[j].time_ns - hits[i].time_ns <= l1_window) ++j;
        }
        const std::size_t multiplicity = std::min<std::size_t>(j - i, std::numeric_limits<std::uint16_t>::max());
        l1_out.push_back(L1Hit{hits[i].time_ns, dom_position_m, dom_slot, first_index + static_cast<std::uint32_t>(i),
                               static_cast<std::uint16_t>(multiplicity), false});
        l1_next = j;
      }
    }
    if (i >= sn_next) {
      if (sn_alone(i)) {
        sn_next = i + 1;
      } else {
        const double window_end_ns = hits[i].time_ns + sn_window;
        std::uint32_t pmts = 0;
        std::size_t j = i;
        for (; j < n && hits[j].time_ns <= window_end_ns; ++j) pmts |= 1u << (hits[j].channel & 31u);
        const auto multiplicity = static_cast<std::uint32_t>(std::popcount(pmts));
        if (multiplicity >= 2) sn_out.push_back({static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(j), multiplicity});
        sn_next = j;
      }
    }
    i = std::min(l1_next, sn_next);  // both are past i now; the hits before the nearer are skipped by both
  }
}

}  // namespace shoredaq::filters
