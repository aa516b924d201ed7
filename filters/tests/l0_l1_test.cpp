#include <algorithm>
#include <cmath>
#include <random>
#include <tuple>

#include <gtest/gtest.h>

#include "shoredaq/filters/l0.hpp"
#include "shoredaq/filters/l1.hpp"

using namespace shoredaq;
using namespace shoredaq::filters;

namespace {

dataflow::Module module_with_t0(std::vector<double> t0) {
  dataflow::Module m;
  m.id = 77;
  m.floor = 1;
  for (std::size_t ch = 0; ch < t0.size(); ++ch) {
    dataflow::Pmt p;
    p.t0_ns = t0[ch];
    p.direction = {0, 0, 1};
    m.pmts.push_back(p);
  }
  return m;
}

// A frame of n random hits, sorted per channel (channel-major order, like the CLB's blocks).
dataflow::DomFrame random_frame(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<std::uint32_t> time(0, 100'000'000);
  std::uniform_int_distribution<int> channel(0, 30);
  std::vector<dataflow::Hit> hits(n);
  for (auto& h : hits) h = {static_cast<std::uint8_t>(channel(rng)), time(rng), static_cast<std::uint8_t>(rng() & 0xff)};
  std::sort(hits.begin(), hits.end(), [](auto& a, auto& b) { return std::tie(a.channel, a.time_ns) < std::tie(b.channel, b.time_ns); });
  dataflow::DomFrame f;
  f.dom_id = 77;
  f.hits.resize(n * dataflow::kHitBytes);
  for (std::size_t i = 0; i < n; ++i) dataflow::encode_hit(hits[i], f.hits.data() + i * dataflow::kHitBytes);
  return f;
}

std::vector<L0Hit> reference_l0(const dataflow::DomFrame& f, const DomCalibration& c, std::uint32_t excluded) {
  std::vector<L0Hit> out;
  for (std::size_t i = 0; i < f.hit_count(); ++i) {
    const auto h = f.hit(i);
    if (excluded & (1u << h.channel) || !(c.present_channels & (1u << h.channel))) continue;
    out.push_back({h.time_ns + c.t0_ns[h.channel], h.time_ns, h.channel, h.tot_ns});
  }
  std::stable_sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.time_ns < b.time_ns; });
  return out;
}

std::vector<L0Hit> hits_at(std::initializer_list<double> times) {
  std::vector<L0Hit> v;
  std::uint8_t ch = 0;
  for (double t : times) v.push_back({t, static_cast<std::uint32_t>(t), ch++, 20});
  return v;
}

}  // namespace

TEST(L0, SortsByCalibratedTimeLikeAReferenceSort) {
  std::vector<double> t0;
  for (int ch = 0; ch < 31; ++ch) t0.push_back(-40.0 + 3.7 * ch + 0.013 * ch * ch);  // not whole ns
  const auto calibration = DomCalibration::of(module_with_t0(t0));
  for (std::size_t n : {0u, 1u, 5u, 63u, 64u, 1000u, 30000u}) {
    const auto frame = random_frame(n, static_cast<std::uint32_t>(n) + 3);
    std::vector<L0Hit> out{{1.0, 1, 0, 0}};  // appends after what is there
    L0Scratch scratch;
    ASSERT_EQ(build_l0_dom(frame, calibration, 0, out, scratch), n);
    const auto expected = reference_l0(frame, calibration, 0);
    ASSERT_EQ(out.size(), n + 1);
    for (std::size_t i = 0; i < n; ++i) {
      EXPECT_EQ(out[i + 1].time_ns, expected[i].time_ns) << "n=" << n << " i=" << i;
      EXPECT_EQ(out[i + 1].raw_time_ns, expected[i].raw_time_ns);
    }
    EXPECT_TRUE(std::is_sorted(out.begin() + 1, out.end(), [](auto& a, auto& b) { return a.time_ns < b.time_ns; }));
  }
}

// A frame of n random hits in the CLB's readout order: by (block of block_ns, channel, time). Small
// blocks give a nearly time-ordered frame (L0's one-pass insertion); 1e8 ns is channel-major.
dataflow::DomFrame frame_in_readout_order(std::size_t n, std::uint32_t seed, std::uint32_t block_ns, bool reversed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<std::uint32_t> time(0, 100'000'000 / 4096);  // coarse: many equal times
  std::uniform_int_distribution<int> channel(0, 30);
  std::vector<dataflow::Hit> hits(n);
  for (auto& h : hits) h = {static_cast<std::uint8_t>(channel(rng)), time(rng) * 4096, static_cast<std::uint8_t>(rng() & 0xff)};
  std::sort(hits.begin(), hits.end(), [&](auto& a, auto& b) {
    return std::make_tuple(a.time_ns / block_ns, a.channel, a.time_ns) < std::make_tuple(b.time_ns / block_ns, b.channel, b.time_ns);
  });
  if (reversed) std::reverse(hits.begin(), hits.end());
  dataflow::DomFrame f;
  f.dom_id = 77;
  f.hits.resize(n * dataflow::kHitBytes);
  for (std::size_t i = 0; i < n; ++i) dataflow::encode_hit(hits[i], f.hits.data() + i * dataflow::kHitBytes);
  return f;
}

// Whatever the order (nearly sorted, far from it, reversed), L0 is the stable sort by calibrated
// time: equal calibrated times (t0 with the same fraction, times on a 4096 ns grid) in frame order.
TEST(L0, StableSortOnEveryReadoutOrder) {
  std::vector<double> t0;
  for (int ch = 0; ch < 31; ++ch) t0.push_back(ch % 2 ? 0.25 : 4096.25);  // odd channels tie with even ones
  const auto calibration = DomCalibration::of(module_with_t0(t0));
  for (std::uint32_t block_ns : {1u, 500u, 200'000u, 100'000'000u}) {
    for (bool reversed : {false, true}) {
      const auto frame = frame_in_readout_order(20'000, block_ns + reversed, block_ns, reversed);
      std::vector<L0Hit> out;
      L0Scratch scratch;
      ASSERT_EQ(build_l0_dom(frame, calibration, 1u << 7, out, scratch), reference_l0(frame, calibration, 1u << 7).size());
      const auto expected = reference_l0(frame, calibration, 1u << 7);
      for (std::size_t i = 0; i < out.size(); ++i) {
        ASSERT_EQ(out[i].time_ns, expected[i].time_ns) << "block " << block_ns << " reversed " << reversed << " i=" << i;
        ASSERT_EQ(out[i].channel, expected[i].channel) << "block " << block_ns << " reversed " << reversed << " i=" << i;
        ASSERT_EQ(out[i].raw_time_ns, expected[i].raw_time_ns);
        ASSERT_EQ(out[i].tot_ns, expected[i].tot_ns);
      }
    }
  }
}

// The time index's bucket start is never after the first hit at or after the time, and at most
// 7 hits plus a bucket's hits before it; times before the first bucket or past the last still work.
// Equal calibrated times whose t0s are not whole ns apart (16.4 - 12.4 is 3.9999999999999982 as
// doubles): on a frame far from time order (the bucket sort), they too stay in frame order.
TEST(L0, EqualTimesStayInFrameOrderWhenFarFromTimeOrder) {
  std::vector<double> t0(31, 12.4);
  t0[0] = 16.4;
  const auto calibration = DomCalibration::of(module_with_t0(t0));
  ASSERT_EQ(4'095'996 + 16.4, 4'096'000 + 12.4);
  std::vector<dataflow::Hit> hits{{1, 4'096'000, 7}, {0, 4'095'996, 9}};  // equal calibrated times
  for (std::uint32_t k = 0; k < 3000; ++k) hits.push_back({static_cast<std::uint8_t>(2 + k % 29), 90'000'000 - 7 * k, 1});
  dataflow::DomFrame frame;
  frame.hits.resize(hits.size() * dataflow::kHitBytes);
  for (std::size_t i = 0; i < hits.size(); ++i) dataflow::encode_hit(hits[i], frame.hits.data() + i * dataflow::kHitBytes);
  std::vector<L0Hit> out;
  L0Scratch scratch;
  ASSERT_EQ(build_l0_dom(frame, calibration, 0, out, scratch), hits.size());
  const auto expected = reference_l0(frame, calibration, 0);
  for (std::size_t i = 0; i < out.size(); ++i) {
    ASSERT_EQ(out[i].time_ns, expected[i].time_ns) << i;
    ASSERT_EQ(out[i].channel, expected[i].channel) << i;
  }
  EXPECT_EQ(out[0].channel, 1);  // first in the frame, first in L0
}

TEST(L0, TimeIndexStartsASearchNearTheTime) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> time(-50'000.0, 101'000'000.0);
  for (std::size_t n : {0u, 3u, 8u, 9u, 20'000u}) {
    L0Slice l0;
    l0.hits.assign(5, L0Hit{});  // the DOM's hits start at 5 in the slice
    std::vector<double> times(n);
    for (auto& t : times) t = time(rng);
    std::sort(times.begin(), times.end());
    for (double t : times) l0.hits.push_back({t, 0, 0, 0});
    l0.doms.push_back({77, 0, 5, static_cast<std::uint32_t>(5 + n), 0});
    l0.time_index.resize(L0TimeIndex::kBuckets);
    L0TimeIndex::build(l0.hits_of(l0.doms[0]), 5, l0.time_index.data());
    for (int k = 0; k < 2000; ++k) {
      const double t = k < 1000 ? time(rng) : (k - 1000) * 101'000.0 - 40'000.0;
      const auto first = static_cast<std::uint32_t>(5 + (std::lower_bound(times.begin(), times.end(), t) - times.begin()));
      const std::uint32_t start = l0.search_start(l0.doms[0], t);
      ASSERT_LE(start, first) << "n=" << n << " t=" << t;
      ASSERT_GE(start, 5u);
      if (t >= L0TimeIndex::kBucketNs && t < L0TimeIndex::kBucketNs * (L0TimeIndex::kBuckets - 1)) {
        const double bucket_start = std::floor(t / L0TimeIndex::kBucketNs) * L0TimeIndex::kBucketNs;
        const auto bucket_first =
            static_cast<std::uint32_t>(5 + (std::lower_bound(times.begin(), times.end(), bucket_start) - times.begin()));
        ASSERT_GE(start + 7, bucket_first) << "n=" << n << " t=" << t;
      }
    }
  }
}

TEST(L0, LargeDomT0AndExcludedChannels) {
  std::vector<double> t0(31, 98'765.4);
  t0[5] = 98'700.0;
  const auto calibration = DomCalibration::of(module_with_t0(t0));
  const auto frame = random_frame(5000, 11);
  const std::uint32_t excluded = (1u << 5) | (1u << 30);
  std::vector<L0Hit> out;
  L0Scratch scratch;
  const std::size_t kept = build_l0_dom(frame, calibration, excluded, out, scratch);
  const auto expected = reference_l0(frame, calibration, excluded);
  ASSERT_EQ(kept, expected.size());
  EXPECT_LT(kept, 5000u);
  for (std::size_t i = 0; i < kept; ++i) {
    EXPECT_EQ(out[i].time_ns, expected[i].time_ns);
    EXPECT_NE(out[i].channel, 5);
    EXPECT_NE(out[i].channel, 30);
  }
}

TEST(L0, ChannelsWithoutPmtAreLeftOut) {
  const auto calibration = DomCalibration::of(module_with_t0({1.0, 2.0, 3.0}));
  const auto frame = random_frame(300, 5);
  std::vector<L0Hit> out;
  L0Scratch scratch;
  build_l0_dom(frame, calibration, 0, out, scratch);
  for (const auto& h : out) EXPECT_LT(h.channel, 3);
  EXPECT_EQ(out.size(), reference_l0(frame, calibration, 0).size());
}

TEST(L1, CoincidenceJustInsideAndOutsideTheWindow) {
  const L1Settings settings{10.0, true};
  std::vector<L1Hit> out;
  auto inside = hits_at({100.0, 110.0});
  build_l1_dom(inside, 0, 0, {}, settings, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].time_ns, 100.0);
  EXPECT_EQ(out[0].multiplicity, 2);
  out.clear();
  auto outside = hits_at({100.0, 110.01});
  build_l1_dom(outside, 0, 0, {}, settings, out);
  EXPECT_TRUE(out.empty());
}

TEST(L1, CombineChainsOverlappingCoincidences) {
  auto hits = hits_at({0.0, 8.0, 16.0, 24.0, 100.0, 200.0, 203.0, 206.0});
  std::vector<L1Hit> combined, separate;
  build_l1_dom(hits, 50, 3, {1, 2, 3}, {10.0, true}, combined);
  ASSERT_EQ(combined.size(), 2u);
  EXPECT_EQ(combined[0].multiplicity, 4);
  EXPECT_EQ(combined[0].first_l0, 50u);
  EXPECT_EQ(combined[0].dom_slot, 3u);
  EXPECT_EQ(combined[0].position_m, (dataflow::Vec3{1, 2, 3}));
  EXPECT_EQ(combined[1].multiplicity, 3);
  EXPECT_EQ(combined[1].first_l0, 55u);
  EXPECT_EQ(combined[1].time_ns, 200.0);

  // Without combine: windows of 10 ns from each L1's first hit.
  build_l1_dom(hits, 50, 3, {}, {10.0, false}, separate);
  ASSERT_EQ(separate.size(), 3u);
  EXPECT_EQ(separate[0].multiplicity, 2);  // 0, 8
  EXPECT_EQ(separate[1].multiplicity, 2);  // 16, 24
  EXPECT_EQ(separate[1].time_ns, 16.0);
  EXPECT_EQ(separate[2].multiplicity, 3);  // 200, 203, 206
}

TEST(L1, SortedByTimeWithTiesInStdSortsOrder) {
  // Many equal times (a few distinct values over thousands of hits), so that std::sort's order of
  // ties, which the triggers see, is what is compared; sizes across its insertion-sort threshold.
  std::mt19937 rng(7);
  L1SortBuffers buffers;
  std::size_t ties = 0;
  for (const std::size_t n : {0u, 1u, 15u, 16u, 17u, 100u, 5000u, 44'000u}) {
    std::uniform_int_distribution<int> time(0, static_cast<int>(n / 8 + 1));
    std::vector<L1Hit> hits(n);
    for (std::size_t k = 0; k < n; ++k) {
      hits[k].time_ns = time(rng) + 0.25;
      hits[k].dom_slot = static_cast<std::uint32_t>(k);  // tells equal times apart afterwards
    }
    auto expected = hits;
    std::sort(expected.begin(), expected.end(), [](const L1Hit& a, const L1Hit& b) { return a.time_ns < b.time_ns; });
    sort_l1_by_time(hits, buffers);
    ASSERT_EQ(hits.size(), n);
    for (std::size_t k = 0; k < n; ++k) {
      ASSERT_EQ(hits[k].dom_slot, expected[k].dom_slot) << "n " << n << ", position " << k;
      ties += k > 0 && hits[k].time_ns == hits[k - 1].time_ns;
    }
  }
  EXPECT_GT(ties, 40'000u);
}

TEST(L2, NeedsCloseAxesWithinItsWindow) {
  std::vector<dataflow::Vec3> dirs(31, dataflow::Vec3{0, 0, 1});
  dirs[1] = {0, 0, -1};                     // opposite of channel 0
  dirs[2] = {0, std::sin(0.5), std::cos(0.5)};  // 0.5 rad from channel 0
  const std::vector<L0Hit> opposite{{0, 0, 0, 20}, {3, 3, 1, 20}};
  const std::vector<L0Hit> close{{0, 0, 0, 20}, {3, 3, 2, 20}};
  const std::vector<L0Hit> late{{0, 0, 0, 20}, {12, 12, 2, 20}};
  const L2Settings s{0.5, 10.0, 2};  // cos 0.5 rad = 0.878 >= 0.5
  EXPECT_FALSE(is_l2(opposite, dirs, s));
  EXPECT_TRUE(is_l2(close, dirs, s));
  EXPECT_FALSE(is_l2(late, dirs, s));
  EXPECT_FALSE(is_l2(close, dirs, {0.9, 10.0, 2}));
  EXPECT_FALSE(is_l2(close, dirs, {0.5, 10.0, 3}));
}
