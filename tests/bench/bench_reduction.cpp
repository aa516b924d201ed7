// Reduction at scale with physical inputs (issue 13 item 5): du-sim with the atmospheric-muon rate
// of the detector's depth (muon_flux.hpp: the depth-intensity relation through each size's own
// can), 1, 10, 21 and 115 DUs, through the DataFilter with default trigger parameters and each of
// the two snapshot policies: the whole detector (DOMAIN.md's default) and only the DOMs within
// `--radius-m` of a triggered hit. Prints per size and policy: the muon rate, the event rate, the
// reduction (6 B per raw hit / online event bytes), the muon trigger efficiency (all muons crossing
// the can, and those with L1 on >= 4 DOMs) and the share of a triggered muon's own hits that the
// event keeps.
//
//   build/tests/bench/bench_reduction [--depth-m 3100] [--radius-m 250] [--min-muons 300]
//                                     [--max-slices 1500] [--sizes 1,10,21,115] [--seed 2026]
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "shoredaq/drivers/du_simulator.hpp"
#include "shoredaq/filters/data_filter.hpp"
#include "reference_feed.hpp"

using namespace shoredaq;

namespace {

struct Options {
  double depth_m = 3100;  // ARCA: sea floor ~3450 m, the can's centre some 350 m above it
  double radius_m = 250;
  unsigned min_muons = 300;
  unsigned max_slices = 1500;
  std::vector<int> sizes{1, 10, 21, 115};
  std::uint64_t seed = 2026;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--depth-m") o.depth_m = std::stod(value);
    else if (key == "--radius-m") o.radius_m = std::stod(value);
    else if (key == "--min-muons") o.min_muons = static_cast<unsigned>(std::stoul(value));
    else if (key == "--max-slices") o.max_slices = static_cast<unsigned>(std::stoul(value));
    else if (key == "--seed") o.seed = std::stoull(value);
    else if (key == "--sizes") {
      o.sizes.clear();
      std::stringstream ss(value);
      for (std::string item; std::getline(ss, item, ',');) o.sizes.push_back(std::stoi(item));
    } else {
      std::fprintf(stderr, "unknown option %s\n", key.c_str());
      std::exit(2);
    }
  }
  return o;
}

using HitKey = std::tuple<std::uint32_t, std::uint8_t, std::uint32_t>;  // DOM, channel, raw time

struct PolicyFigures {
  filters::FilterCounters counters;
  std::uint64_t muon_hits_of_triggered = 0, muon_hits_kept = 0;
};

struct SizeFigures {
  double muon_rate_hz = 0;
  unsigned slices = 0;
  std::uint64_t muons = 0, muons_triggered = 0, bright = 0, bright_triggered = 0;
  PolicyFigures policy[2];
  double seconds_sim = 0, seconds_filter = 0;
};

SizeFigures run_size(int dus, const Options& o) {
  drivers::DuSimConfig c;
  c.detector = bench::reference_detector(dus);
  const auto all = c.detector->du_ids();
  c.dus.assign(all.begin(), all.begin() + std::min<std::size_t>(all.size(), static_cast<std::size_t>(dus)));
  c.start_unix_ns = 1'700'000'000'000'000'000ull;
  c.seed = o.seed;
  c.muon.depth_m = o.depth_m;
  c.threads = 2;
  drivers::DuSimulator sim(c);
  SizeFigures f;
  f.muon_rate_hz = sim.config().muon.rate_hz;
  filters::TriggerParameters whole, near;
  near.snapshot_max_distance_m = o.radius_m;
  const filters::DataFilter whole_filter(*c.detector, whole), near_filter(*c.detector, near);
  const filters::DataFilter* const filters[2] = {&whole_filter, &near_filter};
  // Enough slices for min_muons expected muons (at least 10), within max_slices.
  const double expected_per_slice = std::max(1e-3, f.muon_rate_hz * 0.1);
  const unsigned slices = std::clamp(static_cast<unsigned>(o.min_muons / expected_per_slice) + 1, 10u, o.max_slices);
  using clock = std::chrono::steady_clock;
  for (unsigned k = 0; k < slices; ++k) {
    const auto t0 = clock::now();
    const auto s = sim.next_slice();
    const auto t1 = clock::now();
    f.seconds_sim += std::chrono::duration<double>(t1 - t0).count();
    ++f.slices;
    for (int p = 0; p < 2; ++p) {
      const auto t2 = clock::now();
      const auto r = filters[p]->process(s.truth);
      f.seconds_filter += std::chrono::duration<double>(clock::now() - t2).count();
      PolicyFigures& pf = f.policy[p];
      pf.counters += r.counters;
      // Which muon hits fired a trigger, and which are in some event's snapshot.
      std::set<HitKey> triggered, kept;
      for (const auto& e : r.events) {
        for (const auto& h : e.triggered) triggered.insert({h.dom_id, h.hit.channel, h.hit.time_ns});
        for (const auto& h : e.snapshot) kept.insert({h.dom_id, h.hit.channel, h.hit.time_ns});
      }
      for (const auto& particle : s.particles) {
        if (particle.type != drivers::ParticleType::Muon) continue;
        bool fired = false;
        std::uint64_t in_snapshot = 0;
        for (const auto& h : particle.hits) {
          fired |= triggered.count({h.dom_id, h.channel, h.time_ns}) > 0;
          in_snapshot += kept.count({h.dom_id, h.channel, h.time_ns});
        }
        if (p == 0) {  // the triggers do not depend on the snapshot policy: count muons once
          ++f.muons;
          f.muons_triggered += fired;
          if (particle.l1_doms >= 4) {
            ++f.bright;
            f.bright_triggered += fired;
          }
        }
        if (fired) {
          pf.muon_hits_of_triggered += particle.hits.size();
          pf.muon_hits_kept += in_snapshot;
        }
      }
    }
  }
  return f;
}

double ratio(std::uint64_t a, std::uint64_t b) { return b ? static_cast<double>(a) / static_cast<double>(b) : 0.0; }

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  std::printf("bench_reduction: du-sim at %.0f m (can centre), default triggers; snapshot: whole detector vs DOMs within "
              "%.0f m of a triggered hit\n",
              o.depth_m, o.radius_m);
  std::printf("%5s %9s %7s %8s | %-9s %10s %10s %11s %10s | %8s %8s %9s\n", "DUs", "muons/s", "slices", "muons",
              "snapshot", "events/s", "B/event", "reduction", "hits kept", "eff all", "eff L1>=4", "sim+filt s");
  for (int dus : o.sizes) {
    const SizeFigures f = run_size(dus, o);
    const double seconds = 0.1 * f.slices;
    for (int p = 0; p < 2; ++p) {
      const PolicyFigures& pf = f.policy[p];
      const double reduction = pf.counters.event_bytes ? 6.0 * pf.counters.hits_in / static_cast<double>(pf.counters.event_bytes) : 0.0;
      char label[32];
      std::snprintf(label, sizeof label, p == 0 ? "whole" : "<=%.0f m", o.radius_m);
      std::printf("%5d %9.3g %7u %8llu | %-9s %10.3g %10.3g %11.3g %9.1f%% | %7.1f%% %8.1f%% %9.1f\n", dus,
                  f.muon_rate_hz, f.slices, static_cast<unsigned long long>(f.muons), label,
                  pf.counters.events / seconds, ratio(pf.counters.event_bytes, pf.counters.events), reduction,
                  100.0 * ratio(pf.muon_hits_kept, pf.muon_hits_of_triggered), 100.0 * ratio(f.muons_triggered, f.muons),
                  100.0 * ratio(f.bright_triggered, f.bright), f.seconds_sim + f.seconds_filter);
    }
    std::fflush(stdout);
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("'hits kept': of the triggered muons' own hits, the share in an event's snapshot; 'eff': muons crossing the "
              "can with a hit among an event's triggered hits (all, and those with L1 on >= 4 DOMs in the truth).\n");
  std::printf("peak RSS %.0f MB\n", ru.ru_maxrss / 1024.0);
  return 0;
}
