#include <cmath>

#include <gtest/gtest.h>

#include "shoredaq/filters/cluster.hpp"
#include "shoredaq/filters/match.hpp"
#include "shoredaq/filters/trigger_3d_muon.hpp"

using namespace shoredaq;
using namespace shoredaq::filters;

TEST(Match3D, CausalAndAcausalPairs) {
  const Match3D m{52.0, 25.0};
  const double d = 30.0;
  const double limit = d * kIndexOfRefraction / kSpeedOfLightMPerNs + 25.0;  // 163.1 ns
  EXPECT_TRUE(m(d, limit - 0.01));
  EXPECT_TRUE(m(d, -(limit - 0.01)));
  EXPECT_FALSE(m(d, limit + 0.01));
  EXPECT_FALSE(m(d, -(limit + 0.01)));
  EXPECT_FALSE(m(52.01, 0.0));  // beyond DMax
  EXPECT_TRUE(m(0.0, 25.0));     // same DOM: only the slack
  EXPECT_FALSE(m(0.0, 25.5));
  EXPECT_NEAR(m.max_time_difference_ns(), 52.0 * 1.3800851282 / 0.299792458 + 25.0, 1e-9);
  EXPECT_TRUE(m({0, 0, 0}, 10.0, {0, 0, 30.0}, 10.0 + limit - 0.1));
}

TEST(MatchRoad3D, BoundsFromTheRoadWidth) {
  const double R = 40.0;
  const MatchRoad3D m(R, 0.0);
  const double c = kSpeedOfLightMPerNs;
  // d < R: upper bound d*n.
  EXPECT_TRUE(m(20.0, 20.0 * kIndexOfRefraction / c - 0.01));
  EXPECT_FALSE(m(20.0, 20.0 * kIndexOfRefraction / c + 0.01));
  // d > R: upper bound sqrt(d^2 - (R sin)^2) + R sin tan.
  const double d = 150.0;
  const double rs = R * kSinCherenkov;
  const double upper = (std::sqrt(d * d - rs * rs) + rs * kTanCherenkov) / c;
  EXPECT_TRUE(m(d, upper - 0.01));
  EXPECT_FALSE(m(d, upper + 0.01));
  // d > D2: lower bound sqrt(d^2 - R^2) - R tan.
  EXPECT_GT(d, m.d2_m);
  const double lower = (std::sqrt(d * d - R * R) - R * kTanCherenkov) / c;
  EXPECT_TRUE(m(d, lower + 0.01));
  EXPECT_FALSE(m(d, lower - 0.01));
  EXPECT_FALSE(m(d, -(lower - 0.01)));
  // D1 < d <= D2: lower bound sqrt(d^2 - D1^2).
  const double d_mid = 0.5 * (m.d1_m + m.d2_m);
  const double lower_mid = std::sqrt(d_mid * d_mid - m.d1_m * m.d1_m) / c;
  EXPECT_TRUE(m(d_mid, lower_mid + 0.01));
  EXPECT_FALSE(m(d_mid, lower_mid - 0.01));
  // d <= D1: no lower bound.
  EXPECT_TRUE(m(m.d1_m - 1.0, 0.0));
  // Slack widens both bounds.
  const MatchRoad3D slack(R, 10.0);
  EXPECT_TRUE(slack(d, upper + 9.9));
  EXPECT_TRUE(slack(d, lower - 9.9));
}

TEST(Match1D, AlongTheTrialDirection) {
  const Match1D m{40.0, 0.0};
  const double c = kSpeedOfLightMPerNs;
  const double tol = 40.0 * kTanCherenkov / c;
  EXPECT_TRUE(m({0, 0, 0}, 0, {10, 10, 90}, 90 / c + tol - 0.01));
  EXPECT_FALSE(m({0, 0, 0}, 0, {10, 10, 90}, 90 / c + tol + 0.01));
  EXPECT_TRUE(m({0, 0, 0}, 0, {10, 10, 90}, 90 / c - tol + 0.01));
  EXPECT_FALSE(m({0, 0, 0}, 0, {10, 10, 90}, 90 / c - tol - 0.01));
  EXPECT_FALSE(m({0, 0, 0}, 0, {80.1, 0, 90}, 90 / c));  // transverse > 2R
  EXPECT_TRUE(m({0, 0, 0}, 0, {79.9, 0, 90}, 90 / c));
}

TEST(Clique, DropsTheLeastConnectedUntilAllMatch) {
  // 0-1-2-3 all connected, 4 matches only 0 and 1, 5 matches nobody.
  const bool adj[6][6] = {{0, 1, 1, 1, 1, 0}, {1, 0, 1, 1, 1, 0}, {1, 1, 0, 1, 0, 0},
                          {1, 1, 1, 0, 0, 0}, {1, 1, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0}};
  std::vector<std::uint32_t> survivors;
  CliqueScratch scratch;
  clique_cluster(6, [&](std::size_t a, std::size_t b) { return adj[a][b]; }, survivors, scratch);
  EXPECT_EQ(survivors, (std::vector<std::uint32_t>{0, 1, 2, 3}));
  clique_cluster(3, [](std::size_t, std::size_t) { return true; }, survivors, scratch);
  EXPECT_EQ(survivors.size(), 3u);
  clique_cluster(3, [](std::size_t, std::size_t) { return false; }, survivors, scratch);
  EXPECT_EQ(survivors, (std::vector<std::uint32_t>{0}));  // ties drop the later hit
  clique_cluster(0, [](std::size_t, std::size_t) { return false; }, survivors, scratch);
  EXPECT_TRUE(survivors.empty());
}

TEST(DirectionGrid, CoversTheSphereEvenly) {
  const auto grid = make_direction_grid(10.0);
  EXPECT_GT(grid.size(), 380u);
  EXPECT_LT(grid.size(), 460u);
  // Every direction on the sphere is within ~the grid angle of a grid direction.
  double worst = 0;
  for (int i = 0; i < 2000; ++i) {
    const double z = -1.0 + 2.0 * (i + 0.5) / 2000;
    const double phi = i * 2.399963;
    const dataflow::Vec3 u{std::sqrt(1 - z * z) * std::cos(phi), std::sqrt(1 - z * z) * std::sin(phi), z};
    double best = -1;
    for (const auto& g : grid) best = std::max(best, g.dot(u));
    worst = std::max(worst, std::acos(std::min(1.0, best)));
  }
  EXPECT_LT(worst * 180 / 3.14159265, 8.0);
  for (const auto& g : grid) EXPECT_NEAR(g.norm(), 1.0, 1e-12);
}
