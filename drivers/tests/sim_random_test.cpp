// White-box test of the simulator's random numbers (drivers/src/sim_random.hpp): the fast
// exponential must have the exponential distribution, streams must be reproducible and distinct.

#include "../src/sim_random.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <vector>

namespace shoredaq::drivers::detail {
namespace {

TEST(SimRng, SameKeySameStreamOtherKeyOtherStream) {
  SimRng a(1, Stream::Background, {3, 806472270}), b(1, Stream::Background, {3, 806472270});
  SimRng c(1, Stream::Background, {4, 806472270}), d(1, Stream::K40, {3, 806472270}), e(2, Stream::Background, {3, 806472270});
  const auto first = a.next();
  EXPECT_EQ(first, b.next());
  EXPECT_NE(first, c.next());
  EXPECT_NE(first, d.next());
  EXPECT_NE(first, e.next());
}

TEST(SimRng, NeighbouringSeedsAreNotTheSameStreamsForOtherSlices) {
  // Seeds are what make simulated runs independent: no stream of seed 3 may reappear under seed 1
  // for another slice number (a key XORed onto an unmixed seed did exactly that for seeds 1-3).
  std::set<std::uint64_t> seed_one;
  for (std::uint64_t frame = 0; frame < 4096; ++frame) seed_one.insert(SimRng(1, Stream::Particles, {frame}).next());
  for (const std::uint64_t seed : {2u, 3u, 5u, 9u, 17u}) {
    std::size_t shared = 0;
    for (std::uint64_t frame = 0; frame < 4096; ++frame) shared += seed_one.contains(SimRng(seed, Stream::Particles, {frame}).next());
    EXPECT_EQ(shared, 0u) << "seed " << seed;
  }
}

TEST(SimRng, FastExponentialHasTheExponentialDistribution) {
  SimRng rng(9, Stream::Background, {1});
  constexpr int n = 2'000'000;
  const std::vector<double> edges{0.01, 0.1, 0.5, 1.0, 2.0, 4.0, 8.0};
  std::vector<int> below(edges.size(), 0);
  double sum = 0, sum2 = 0;
  int tail = 0;
  for (int i = 0; i < n; ++i) {
    const double x = rng.exponential_fast(1.0);
    ASSERT_GE(x, 0.0);
    sum += x, sum2 += x * x;
    for (std::size_t k = 0; k < edges.size(); ++k) below[k] += x <= edges[k];
    tail += x > 12.0;
  }
  const double mean = sum / n;
  EXPECT_NEAR(mean, 1.0, 0.003);
  EXPECT_NEAR(sum2 / n - mean * mean, 1.0, 0.01);
  for (std::size_t k = 0; k < edges.size(); ++k)
    EXPECT_NEAR(static_cast<double>(below[k]) / n, 1 - std::exp(-edges[k]), 0.0015) << "x <= " << edges[k];
  // P(x > 12) = 6.1e-6: ~12 expected; the far tail comes from the leading-zero count.
  EXPECT_GT(tail, 2);
  EXPECT_LT(tail, 30);
  double scaled = 0;
  for (int i = 0; i < 100'000; ++i) scaled += rng.exponential_fast(250.0);
  EXPECT_NEAR(scaled / 100'000, 250.0, 2.5);  // the mean scales
}

TEST(SimRng, PoissonAndBelow) {
  SimRng rng(5, Stream::K40, {2});
  for (double mean : {0.7, 7.0, 70.0, 700.0}) {
    double sum = 0;
    constexpr int n = 20'000;
    for (int i = 0; i < n; ++i) sum += rng.poisson(mean);
    EXPECT_NEAR(sum / n, mean, 5 * std::sqrt(mean / n)) << mean;
  }
  for (int i = 0; i < 100'000; ++i) ASSERT_LT(rng.below(31), 31u);
}

}  // namespace
}  // namespace shoredaq::drivers::detail
