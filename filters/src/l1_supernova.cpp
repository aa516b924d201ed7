// One pass for a DOM's L1 hits (l1.cpp) and supernova clusters (supernova.cpp). Each of the two
// scans steps through the hits by time and, at a hit it looks at, either finds it alone (the next
// hit is outside its window) and moves one on, or takes a coincidence and moves past it. Here one
// index walks both: each scan keeps the first hit it looks at next, so it looks at exactly the hits
// it would on its own, with its own comparisons (the two windows may be equal, and the two tests
// round differently), and the outputs are the same.
#include "shoredaq/filters/supernova.hpp"

#include "coincidence_steps.hpp"

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
        l1_next = detail::take_l1_coincidence(hits, n, i, first_index, dom_slot, dom_position_m, l1_settings, l1_out);
      }
    }
    if (i >= sn_next) {
      if (sn_alone(i)) {
        sn_next = i + 1;
      } else {
        sn_next = detail::take_supernova_cluster(hits, n, i, sn_window, sn_out);
      }
    }
    i = std::min(l1_next, sn_next);  // both are past i now; the hits before the nearer are skipped by both
  }
}

}  // namespace shoredaq::filters
