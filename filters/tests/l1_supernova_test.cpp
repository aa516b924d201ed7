// build_l1_dom_and_supernova_clusters (supernova.hpp) against its two halves run apart: the same L1
// hits and the same clusters, on hits made to sit on and around the windows' edges, where the two
// scans' tests round differently.
#include <algorithm>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "shoredaq/filters/l1.hpp"
#include "shoredaq/filters/supernova.hpp"

using namespace shoredaq;
using namespace shoredaq::filters;

namespace {

// One DOM's hits by calibrated time: raw times in bursts a few ns apart (and gaps of exactly a
// window), plus t0s with fractions, around 2^26 ns into the slice, where the spacing of doubles
// changes, so that a window that is not a whole number of that spacing (10.1 ns) makes the two
// scans' tests (t1 - t0 > w and t1 > t0 + w) round differently.
std::vector<L0Hit> hits_near_the_edges(std::mt19937& rng, std::size_t count, double window_ns) {
  const double t0_ns[] = {0.0, 0.1, 0.3, 10.0 / 3.0, 9.7, 12.45, 0.7, 1.0 / 7.0};
  std::uniform_int_distribution<int> pick(0, 9), channel(0, 30), t0(0, 7);
  std::vector<L0Hit> hits;
  std::uint32_t raw = (1u << 26) - static_cast<std::uint32_t>(count * 20);
  for (std::size_t k = 0; k < count; ++k) {
    const int step = pick(rng);
    raw += step < 4 ? static_cast<std::uint32_t>(step) : step < 7 ? static_cast<std::uint32_t>(window_ns + 0.5)
                                                                   : 20 + static_cast<std::uint32_t>(step * 50);
    const auto ch = static_cast<std::uint8_t>(channel(rng));
    hits.push_back({raw + t0_ns[t0(rng)], raw, ch, 20});
  }
  std::stable_sort(hits.begin(), hits.end(), [](const L0Hit& a, const L0Hit& b) { return a.time_ns < b.time_ns; });
  return hits;
}

void expect_same_as_apart(const std::vector<L0Hit>& hits, const L1Settings& l1, double sn_window_ns) {
  const dataflow::Vec3 position{1.0, 2.0, 3.0};
  std::vector<L1Hit> l1_apart, l1_together;
  std::vector<SupernovaCluster> sn_apart, sn_together;
  build_l1_dom(hits, 1000, 7, position, l1, l1_apart);
  find_supernova_clusters(hits, sn_window_ns, sn_apart);
  build_l1_dom_and_supernova_clusters(hits, 1000, 7, position, l1, l1_together, sn_window_ns, sn_together);
  ASSERT_EQ(l1_together.size(), l1_apart.size());
  for (std::size_t k = 0; k < l1_apart.size(); ++k) {
    EXPECT_EQ(l1_together[k].time_ns, l1_apart[k].time_ns) << k;
    EXPECT_EQ(l1_together[k].first_l0, l1_apart[k].first_l0) << k;
    EXPECT_EQ(l1_together[k].multiplicity, l1_apart[k].multiplicity) << k;
    EXPECT_EQ(l1_together[k].dom_slot, 7u);
  }
  ASSERT_EQ(sn_together.size(), sn_apart.size());
  for (std::size_t k = 0; k < sn_apart.size(); ++k) {
    EXPECT_EQ(sn_together[k].first, sn_apart[k].first) << k;
    EXPECT_EQ(sn_together[k].end, sn_apart[k].end) << k;
    EXPECT_EQ(sn_together[k].multiplicity, sn_apart[k].multiplicity) << k;
  }
}

}  // namespace

TEST(L1AndSupernovaInOnePass, GiveWhatTheTwoScansGiveApart) {
  std::mt19937 rng(20261207);
  // Equal windows (the defaults), either one wider, combined and plain L1.
  const std::pair<double, double> windows[] = {{10.0, 10.0}, {10.1, 10.1}, {10.0, 25.0}, {25.0, 10.0}, {3.3, 3.3}, {0.0, 3.0}};
  std::size_t l1_hits = 0, clusters = 0;
  for (const auto& [l1_window, sn_window] : windows) {
    for (const bool combine : {true, false}) {
      for (int round = 0; round < 40; ++round) {
        const auto hits = hits_near_the_edges(rng, 2000, std::max(l1_window, sn_window));
        expect_same_as_apart(hits, L1Settings{l1_window, combine}, sn_window);
        std::vector<L1Hit> l1;
        std::vector<SupernovaCluster> sn;
        build_l1_dom_and_supernova_clusters(hits, 0, 0, {}, L1Settings{l1_window, combine}, l1, sn_window, sn);
        l1_hits += l1.size();
        clusters += sn.size();
      }
    }
  }
  // The feed makes plenty of both, so the comparison above compared something.
  EXPECT_GT(l1_hits, 10'000u);
  EXPECT_GT(clusters, 10'000u);
}

TEST(L1AndSupernovaInOnePass, FewHitsAndNoHits) {
  const L1Settings l1{10.0, true};
  expect_same_as_apart({}, l1, 10.0);
  expect_same_as_apart({{5.0, 5, 1, 20}}, l1, 10.0);
  expect_same_as_apart({{5.0, 5, 1, 20}, {15.0, 15, 2, 20}}, l1, 10.0);  // exactly a window apart
  expect_same_as_apart({{5.0, 5, 1, 20}, {15.0, 15, 2, 20}, {15.5, 15, 3, 20}, {40.0, 40, 3, 20}, {41.0, 41, 3, 20}}, l1, 10.0);
}
