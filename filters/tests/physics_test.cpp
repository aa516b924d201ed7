// Physics acceptance on simulated data (drivers/du_simulator): the DU simulator's truth timeslices
// (fixed seeds) through the DataFilter with default parameters.
//  - efficiency of the 3D muon trigger for bright muons (>= 6 L1 hits on >= 4 DOMs in the truth),
//  - the trigger rate on pure background, per trigger, in Hz per DU,
//  - the reduction factor (input hit bytes / online event bytes) on the reference workload.
#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <tuple>

#include <gtest/gtest.h>

#include "shoredaq/drivers/du_simulator.hpp"
#include "shoredaq/filters/data_filter.hpp"
#include "toy_detector.hpp"

using namespace shoredaq;
using namespace shoredaq::filters;
using shoredaq::filters::test_support::detector133;

namespace {

// The particle's own L1 coincidences (calibrated, 10 ns, chained like combine_l1): (L1 hits, DOMs).
std::pair<unsigned, unsigned> truth_l1(const drivers::TruthParticle& p, const dataflow::Detector& det) {
  std::map<std::uint32_t, std::vector<double>> times;
  for (const auto& h : p.hits) {
    const auto* pmt = det.pmt(h.dom_id, h.channel);
    if (pmt) times[h.dom_id].push_back(h.time_ns + pmt->t0_ns);
  }
  unsigned l1 = 0, doms = 0;
  for (auto& [dom, t] : times) {
    std::sort(t.begin(), t.end());
    unsigned here = 0;
    for (std::size_t i = 0; i + 1 < t.size();) {
      if (t[i + 1] - t[i] > 10.0) {
        ++i;
        continue;
      }
      std::size_t j = i + 2;
      while (j < t.size() && t[j] - t[j - 1] <= 10.0) ++j;
      ++here;
      i = j;
    }
    l1 += here;
    doms += here > 0;
  }
  return {l1, doms};
}

struct RunFigures {
  double seconds = 0;
  unsigned dus = 0;
  FilterCounters counters;
  std::uint64_t events_with[32] = {};
  unsigned bright_muons = 0, bright_triggered = 0;
  unsigned very_bright_muons = 0, very_bright_triggered = 0;
  unsigned muons = 0, muons_triggered = 0;
  double rate_hz_per_du(unsigned bit) const { return events_with[bit] / seconds / dus; }
  double reduction() const {
    return counters.event_bytes ? 6.0 * counters.hits_in / static_cast<double>(counters.event_bytes) : 0.0;
  }
};

RunFigures run(double muon_rate_hz, unsigned slices, std::uint64_t seed, double yield = 18.0) {
  drivers::DuSimConfig c;
  c.detector = detector133();
  c.dus = {5, 9};
  c.run_number = 1;
  c.start_unix_ns = 1'700'000'000'000'000'000ull;
  c.seed = seed;
  c.muon.rate_hz = muon_rate_hz;
  c.muon.light_yield_pe_m = yield;
  drivers::DuSimulator sim(c);
  const DataFilter filter(*c.detector, TriggerParameters{});
  RunFigures f;
  f.dus = static_cast<unsigned>(c.dus.size());
  f.seconds = slices * 0.1;
  for (unsigned k = 0; k < slices; ++k) {
    const auto s = sim.next_slice();
    const auto r = filter.process(s.truth);
    f.counters += r.counters;
    std::set<std::tuple<std::uint32_t, std::uint8_t, std::uint32_t>> muon_triggered;
    for (const auto& e : r.events) {
      for (unsigned bit = 0; bit < 32; ++bit) f.events_with[bit] += (e.trigger_mask >> bit) & 1u;
      if (e.trigger_mask & dataflow::trigger_bit(dataflow::kTriggerBit3DMuon))
        for (const auto& h : e.triggered) muon_triggered.insert({h.dom_id, h.hit.channel, h.hit.time_ns});
    }
    for (const auto& p : s.particles) {
      if (p.type != drivers::ParticleType::Muon) continue;
      const auto [l1, doms] = truth_l1(p, *c.detector);
      bool triggered = false;
      for (const auto& h : p.hits) triggered |= muon_triggered.count({h.dom_id, h.channel, h.time_ns}) > 0;
      ++f.muons;
      f.muons_triggered += triggered;
      if (l1 >= 6 && doms >= 4) {
        if (!triggered)
          std::printf("missed bright muon: frame %u, %u L1 on %u DOMs, %zu hits, direction (%.2f %.2f %.2f)\n", k, l1,
                      doms, p.hits.size(), p.direction.x, p.direction.y, p.direction.z);
        ++f.bright_muons;
        f.bright_triggered += triggered;
      }
      if (l1 >= 12 && doms >= 8) {
        ++f.very_bright_muons;
        f.very_bright_triggered += triggered;
      }
    }
  }
  return f;
}

void print(const char* name, const RunFigures& f) {
  std::printf("[%s] %u DUs, %.1f s: hits %llu, L1 %llu, events %llu (3D shower %.3g Hz/DU, MX shower %.3g Hz/DU, "
              "3D muon %.3g Hz/DU, factory limit %.3g Hz/DU), event bytes %llu, reduction %.3g\n",
              name, f.dus, f.seconds, static_cast<unsigned long long>(f.counters.hits_in),
              static_cast<unsigned long long>(f.counters.l1_hits), static_cast<unsigned long long>(f.counters.events),
              f.rate_hz_per_du(dataflow::kTriggerBit3DShower), f.rate_hz_per_du(dataflow::kTriggerBitMXShower),
              f.rate_hz_per_du(dataflow::kTriggerBit3DMuon), f.rate_hz_per_du(dataflow::kTriggerBitFactoryLimit),
              static_cast<unsigned long long>(f.counters.event_bytes), f.reduction());
  std::printf("[%s] muons %u (triggered %u), bright (>= 6 L1 on >= 4 DOMs) %u triggered %u, "
              "very bright (>= 12 L1 on >= 8 DOMs) %u triggered %u\n",
              name, f.muons, f.muons_triggered, f.bright_muons, f.bright_triggered, f.very_bright_muons,
              f.very_bright_triggered);
}

}  // namespace

// Muons brighter than the simulator's default (light yield 300 pe*m instead of 18) so that enough
// of them reach the bright class; 100 muons/s cross the can around the two DUs.
TEST(Physics, BrightMuonsTriggerTheMuonTrigger) {
  const auto f = run(100.0, 40, 12, 300.0);
  print("bright muons", f);
  ASSERT_GE(f.bright_muons, 30u);  // enough statistics for a 90 % statement
  const double efficiency = static_cast<double>(f.bright_triggered) / f.bright_muons;
  std::printf("[bright muons] 3D muon trigger efficiency for >= 6 L1 on >= 4 DOMs: %.3f\n", efficiency);
  EXPECT_GE(efficiency, 0.90);
  ASSERT_GE(f.very_bright_muons, 3u);
  EXPECT_EQ(f.very_bright_triggered, f.very_bright_muons);
}

// Pure background (7 kHz per PMT, 40K coincidences): 5 s of two DUs. Stated bound: each trigger
// below 0.5 Hz per DU (at most 5 events of a kind in 10 DU-seconds).
TEST(Physics, BackgroundOnlyTriggerRate) {
  const auto f = run(0.0, 50, 11);
  print("background", f);
  EXPECT_GT(f.counters.l1_hits, 0u);
  for (unsigned bit : {dataflow::kTriggerBit3DShower, dataflow::kTriggerBitMXShower, dataflow::kTriggerBit3DMuon})
    EXPECT_LE(f.rate_hz_per_du(bit), 0.5) << "trigger bit " << bit;
}

// The reference workload (simulator defaults: 7 kHz singles, 40K 700/70/7 Hz, muons with the
// default light yield) with 50 muons/s crossing the can around the two DUs, default parameters.
TEST(Physics, ReductionFactorOnTheReferenceWorkload) {
  const auto f = run(50.0, 30, 13);
  print("reference", f);
  ASSERT_GT(f.counters.events, 0u);
  EXPECT_GE(f.reduction(), 1e4);
}
