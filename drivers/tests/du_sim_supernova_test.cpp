// The supernova-like burst of the DU simulator (SupernovaBurstConfig): coincidences only in the
// burst's window, the documented multiplicity spectrum, calibrated-time coincidences the SN filter
// counts, the burst in the ground truth, and a default feed unchanged by the feature.

#include "shoredaq/drivers/du_simulator.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <vector>

#include "shoredaq/filters/supernova.hpp"
#include "reference_detector.hpp"

namespace shoredaq::drivers {
namespace {

using test_support::detector133;

DuSimConfig base_config() {
  DuSimConfig c;
  c.detector = detector133();
  c.dus = {5};
  c.run_number = 77;
  c.start_unix_ns = 1'700'000'000'000'000'000ull;
  c.seed = 42;
  c.muon.rate_hz = 50;
  c.shower.rate_hz = 10;
  return c;
}

std::uint64_t fnv1a(std::uint64_t h, const std::vector<std::uint8_t>& bytes) {
  for (std::uint8_t b : bytes) h = (h ^ b) * 0x100000001b3ull;
  return h;
}

std::uint64_t feed_hash(const DuSimConfig& c, std::uint32_t slices) {
  DuSimulator sim(c);
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (std::uint32_t k = 0; k < slices; ++k)
    for (const auto& dg : sim.next_slice().datagrams) h = fnv1a(h, dg.bytes);
  return h;
}

// The hash of the default feed (no burst) as generated before the burst existed: the feature
// must not change a single byte of a feed that does not ask for it. Re-taken once since, when the
// simulator's seed mixing was fixed (sim_random.hpp: every stream changed, on purpose). The
// readout order's default became 500 ns blocks (the order of clb.dqd) later: with the old 200 us
// blocks the feed is still byte for byte what it was.
TEST(DuSimSupernova, DefaultFeedIsByteIdenticalToBefore) {
  DuSimConfig old_readout = base_config();
  old_readout.readout_block_ns = 200'000;
  EXPECT_EQ(feed_hash(old_readout, 3), 1026738781527119646ull);
  EXPECT_EQ(feed_hash(base_config(), 3), 3096661602018146762ull);
}

DuSimConfig burst_config(double at_s, double duration_s, double scale) {
  DuSimConfig c = base_config();
  c.supernova.at_s = at_s;
  c.supernova.duration_s = duration_s;
  c.supernova.scale = scale;
  return c;
}

// The SN filter's kept coincidences (band 7-11, 10 ns, no veto) of a slice, over all DOMs.
std::uint64_t filter_band_count(const filters::SupernovaCoincidences& sn, const dataflow::Timeslice& slice) {
  return sn.process(slice, {}).coincidences();
}

std::uint64_t injected_in_band(const SupernovaSliceTruth& t, unsigned lo = 7, unsigned hi = 11) {
  std::uint64_t n = 0;
  for (unsigned m = lo; m <= hi; ++m) n += t.by_multiplicity[m];
  return n;
}

TEST(DuSimSupernova, BurstLaterInTheRunLeavesTheEarlierSlicesUntouched) {
  EXPECT_EQ(feed_hash(burst_config(0.3, 1.0, 5.0), 3), feed_hash(base_config(), 3));
  EXPECT_NE(feed_hash(burst_config(0.1, 1.0, 5.0), 3), feed_hash(base_config(), 3));
}

TEST(DuSimSupernova, AddsCoincidencesOnlyInItsWindow) {
  // Burst from 0.35 s for 0.5 s: slices 3 (partly) to 8 (partly); nothing before or after.
  const DuSimulator plain(base_config()), burst(burst_config(0.35, 0.5, 3.0));
  EXPECT_FALSE(plain.supernova_burst());
  ASSERT_TRUE(burst.supernova_burst());
  EXPECT_EQ(burst.supernova_burst()->start_unix_ns, *base_config().start_unix_ns + 350'000'000ull);
  const filters::SupernovaCoincidences sn(*detector133(), filters::SupernovaSettings{});
  std::uint64_t excess = 0, injected = 0;
  for (std::uint32_t k = 0; k < 11; ++k) {
    const auto a = plain.make_slice(k), b = burst.make_slice(k);
    EXPECT_FALSE(a.supernova);
    const bool inside = k >= 3 && k <= 8;
    ASSERT_EQ(b.supernova.has_value(), inside) << k;
    ASSERT_EQ(a.truth.frames.size(), b.truth.frames.size());
    if (!inside) {
      for (std::size_t i = 0; i < a.truth.frames.size(); ++i) EXPECT_EQ(a.truth.frames[i].hits, b.truth.frames[i].hits) << k;
      EXPECT_EQ(b.counters.supernova_coincidences, 0u);
      continue;
    }
    EXPECT_GT(b.supernova->coincidences, 0u) << k;
    EXPECT_EQ(b.counters.supernova_coincidences, b.supernova->coincidences);
    std::uint64_t multiplicity_hits = 0;
    for (unsigned m = 2; m <= kSupernovaMaxMultiplicity; ++m) multiplicity_hits += m * b.supernova->by_multiplicity[m];
    EXPECT_EQ(b.counters.hits, a.counters.hits + multiplicity_hits) << k;  // every photon sent, nothing else changed
    const std::uint64_t with = filter_band_count(sn, b.truth), without = filter_band_count(sn, a.truth);
    ASSERT_GE(with, without) << k;
    excess += with - without;
    injected += injected_in_band(*b.supernova);
  }
  // The filter (calibrated times, 10 ns) sees the injected 7-11-fold coincidences as such: a random
  // single joining one or a 6-fold gaining a PMT moves a few across the band edges, nothing more.
  ASSERT_GT(injected, 50u);
  EXPECT_NEAR(static_cast<double>(excess), static_cast<double>(injected), 0.1 * static_cast<double>(injected));
}

TEST(DuSimSupernova, PhotonsCoincideInCalibratedTimeWithTheInjectedMultiplicities) {
  // Without jitter, the burst's hits (those a burst-less run of the same seed does not have) of a
  // coincidence share one calibrated time to the rounding of the raw ns; their raw times differ by
  // the PMTs' t0 (up to ~6 ns on a DOM here). Clusters of calibrated time give back the truth's
  // multiplicities.
  DuSimConfig c = burst_config(0.0, 1.0, 10.0);
  c.supernova.jitter_ns = 0;
  const DuSimulator plain(base_config()), burst(c);
  const auto a = plain.make_slice(2), b = burst.make_slice(2);
  ASSERT_TRUE(b.supernova);
  std::array<std::uint64_t, kSupernovaMaxMultiplicity + 1> clusters_by_size{};
  double widest_raw_spread_ns = 0;
  for (std::size_t f = 0; f < b.truth.frames.size(); ++f) {
    const auto& frame = b.truth.frames[f];
    const auto* module = detector133()->find(frame.dom_id);
    ASSERT_NE(module, nullptr);
    auto hits_of = [](const dataflow::DomFrame& fr) {
      std::vector<std::pair<std::uint32_t, std::uint8_t>> out;  // (raw time, channel)
      for (std::size_t i = 0; i < fr.hit_count(); ++i) {
        const auto h = dataflow::decode_hit(fr.hits.data() + i * dataflow::kHitBytes);
        out.emplace_back(h.time_ns, h.channel);
      }
      std::sort(out.begin(), out.end());
      return out;
    };
    const auto with = hits_of(frame), without = hits_of(a.truth.frames[f]);
    std::vector<std::pair<std::uint32_t, std::uint8_t>> extra;
    std::set_difference(with.begin(), with.end(), without.begin(), without.end(), std::back_inserter(extra));
    std::vector<std::pair<double, std::uint32_t>> calibrated;  // (calibrated, raw)
    for (const auto& [raw, channel] : extra) calibrated.emplace_back(raw + module->pmts[channel].t0_ns, raw);
    std::sort(calibrated.begin(), calibrated.end());
    for (std::size_t i = 0; i < calibrated.size();) {
      std::size_t j = i + 1;
      std::uint32_t raw_lo = calibrated[i].second, raw_hi = raw_lo;
      while (j < calibrated.size() && calibrated[j].first - calibrated[j - 1].first < 5.0) {
        raw_lo = std::min(raw_lo, calibrated[j].second), raw_hi = std::max(raw_hi, calibrated[j].second);
        ++j;
      }
      EXPECT_LE(calibrated[j - 1].first - calibrated[i].first, 1.0);  // rounding of the raw ns only
      widest_raw_spread_ns = std::max(widest_raw_spread_ns, static_cast<double>(raw_hi - raw_lo));
      ASSERT_LE(j - i, kSupernovaMaxMultiplicity);
      ++clusters_by_size[j - i];
      i = j;
    }
  }
  EXPECT_EQ(clusters_by_size, b.supernova->by_multiplicity);
  EXPECT_GE(widest_raw_spread_ns, 3.0);  // so the check above tells calibrated from raw time
}

TEST(DuSimSupernova, MultiplicitySpectrumIsAsDocumented) {
  DuSimConfig c = burst_config(0.0, 1.0, 20.0);
  c.muon.rate_hz = 0;
  c.shower.rate_hz = 0;
  DuSimulator sim(c);
  std::array<std::uint64_t, kSupernovaMaxMultiplicity + 1> counts{};
  std::uint64_t total = 0;
  for (std::uint32_t k = 0; k < 10; ++k) {
    const auto s = sim.next_slice();
    ASSERT_TRUE(s.supernova);
    for (unsigned m = 0; m <= kSupernovaMaxMultiplicity; ++m) counts[m] += s.supernova->by_multiplicity[m];
    total += s.supernova->coincidences;
  }
  EXPECT_EQ(counts[0] + counts[1], 0u);
  ASSERT_GT(total, 5000u);
  // P(m) ~ 0.7^(m - 2), m = 2..12 (du_simulator.hpp): each bin within 5 sigma of its binomial mean.
  double norm = 0;
  for (unsigned m = 2; m <= kSupernovaMaxMultiplicity; ++m) norm += std::pow(0.7, m - 2);
  double band = 0;
  for (unsigned m = 2; m <= kSupernovaMaxMultiplicity; ++m) {
    const double p = std::pow(0.7, m - 2) / norm;
    if (m >= 7 && m <= 11) band += p;
    const double mean = p * static_cast<double>(total), sigma = std::sqrt(mean * (1 - p));
    EXPECT_NEAR(static_cast<double>(counts[m]), mean, 5 * sigma + 1) << m << "-fold";
  }
  // The numbers the header quotes.
  EXPECT_NEAR(1 / norm, 0.306, 0.0005);
  EXPECT_NEAR(band, 0.143, 0.0005);
}

TEST(DuSimSupernova, FastRiseThenExponentialLikeDecay) {
  // 1 DU, scale 1, a 10 s burst from 1 s: the profile's expectation per slice and what is injected.
  DuSimConfig c = burst_config(1.0, 10.0, 1.0);
  DuSimulator sim(c);
  const auto doms = static_cast<double>(sim.modules().size());
  std::vector<double> expected;
  std::vector<std::uint64_t> injected;
  for (std::uint32_t k = 10; k < 110; ++k) {
    const auto s = sim.make_slice(k);
    ASSERT_TRUE(s.supernova) << k;
    expected.push_back(s.supernova->expected_per_dom);
    injected.push_back(s.supernova->coincidences);
  }
  EXPECT_FALSE(sim.make_slice(9).supernova);
  EXPECT_FALSE(sim.make_slice(110).supernova);
  // The peak of 50 Hz per DOM is reached within ~50 ms: the first slice has ~4.2 per DOM (the rise
  // costs ~17 ms of it), the second the most, ~4.9; then falling every slice, to ~5 % at the end.
  EXPECT_EQ(std::max_element(expected.begin(), expected.end()) - expected.begin(), 1);
  EXPECT_NEAR(expected[0], 4.2, 0.1);
  EXPECT_NEAR(expected[1], 4.9, 0.1);
  for (std::size_t i = 2; i < expected.size(); ++i) EXPECT_LT(expected[i], expected[i - 1]) << i;
  EXPECT_NEAR(expected.back() / 5.0, std::exp(-3.0), 0.01);
  EXPECT_NEAR(expected[30] / expected[1], std::exp(-29 * 0.1 / (10.0 / 3)), 0.01);
  // Injected counts follow the expectation (Poisson, summed per second of the burst).
  for (std::size_t second = 0; second < 10; ++second) {
    double mean = 0, count = 0;
    for (std::size_t i = second * 10; i < second * 10 + 10; ++i) mean += expected[i] * doms, count += static_cast<double>(injected[i]);
    EXPECT_NEAR(count, mean, 5 * std::sqrt(mean) + 1) << "second " << second;
  }
}

TEST(DuSimSupernova, ScaleOneIsClearlyDetectableOnOneDu) {
  // The SN filter's 7-11-fold count over the burst's first 500 ms on one DU (18 DOMs), minus the
  // same slices without the burst: several tens at scale 1 (the header quotes ~64 at the peak).
  const DuSimulator plain(base_config()), burst(burst_config(1.0, 10.0, 1.0));
  const filters::SupernovaCoincidences sn(*detector133(), filters::SupernovaSettings{});
  std::uint64_t with = 0, without = 0;
  for (std::uint32_t k = 10; k < 15; ++k) {
    with += filter_band_count(sn, burst.make_slice(k).truth);
    without += filter_band_count(sn, plain.make_slice(k).truth);
  }
  EXPECT_GE(with, without + 30);
}

TEST(DuSimSupernova, DeterministicAcrossThreadsAndRuns) {
  DuSimConfig c = burst_config(0.0, 0.3, 2.0);
  const auto one = feed_hash(c, 3);
  c.threads = 2;
  EXPECT_EQ(feed_hash(c, 3), one);
  c.seed = 43;
  EXPECT_NE(feed_hash(c, 3), one);
}

TEST(DuSimSupernova, ZeroScaleInjectsNothingButStillReportsTheWindow) {
  DuSimulator sim(burst_config(0.0, 0.2, 0.0));
  const auto s = sim.make_slice(0);
  ASSERT_TRUE(s.supernova);
  EXPECT_EQ(s.supernova->coincidences, 0u);
  EXPECT_EQ(s.supernova->expected_per_dom, 0.0);
  std::uint64_t h = 0xcbf29ce484222325ull, plain = h;
  for (const auto& dg : s.datagrams) h = fnv1a(h, dg.bytes);
  for (const auto& dg : DuSimulator(base_config()).make_slice(0).datagrams) plain = fnv1a(plain, dg.bytes);
  EXPECT_EQ(h, plain);
}

TEST(DuSimSupernova, RejectsBadConfiguration) {
  EXPECT_THROW(DuSimulator{burst_config(-1.0, 1.0, 1.0)}, std::invalid_argument);
  EXPECT_THROW(DuSimulator{burst_config(0.0, 0.0, 1.0)}, std::invalid_argument);
  EXPECT_THROW(DuSimulator{burst_config(0.0, 1.0, -1.0)}, std::invalid_argument);
  EXPECT_THROW(DuSimulator{burst_config(0.0, 1.0, std::nan(""))}, std::invalid_argument);
  DuSimConfig c = burst_config(0.0, 1.0, 1.0);
  c.supernova.rise_ms = 0;
  EXPECT_THROW(DuSimulator{c}, std::invalid_argument);
}

TEST(DuSimSupernova, TruthJsonLines) {
  const DuSimulator sim(burst_config(0.25, 2.0, 1.5));
  const auto burst = nlohmann::json::parse(truth_json_line(*sim.supernova_burst()));
  EXPECT_EQ(burst["type"], "sn_burst");
  EXPECT_EQ(burst["start_unix_ns"].get<std::uint64_t>(), *base_config().start_unix_ns + 250'000'000ull);
  EXPECT_DOUBLE_EQ(burst["duration_s"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(burst["scale"].get<double>(), 1.5);
  EXPECT_DOUBLE_EQ(burst["peak_rate_hz_per_dom"].get<double>(), 75.0);
  EXPECT_EQ(burst["doms"].get<unsigned>(), sim.modules().size());

  const auto s = sim.make_slice(3);
  ASSERT_TRUE(s.supernova);
  const auto line = nlohmann::json::parse(truth_json_line(*s.supernova));
  EXPECT_EQ(line["type"], "sn_slice");
  EXPECT_EQ(line["frame_index"].get<unsigned>(), 3u);
  EXPECT_EQ(line["slice_start_unix_ns"].get<std::uint64_t>(), sim.slice_start_unix_ns(3));
  EXPECT_EQ(line["coincidences"].get<std::uint64_t>(), s.supernova->coincidences);
  ASSERT_EQ(line["by_multiplicity"].size(), kSupernovaMaxMultiplicity - 1);  // 2..12-fold
  std::uint64_t sum = 0;
  for (unsigned m = 2; m <= kSupernovaMaxMultiplicity; ++m) {
    EXPECT_EQ(line["by_multiplicity"][m - 2].get<std::uint64_t>(), s.supernova->by_multiplicity[m]);
    sum += s.supernova->by_multiplicity[m];
  }
  EXPECT_EQ(sum, s.supernova->coincidences);
}

}  // namespace
}  // namespace shoredaq::drivers
