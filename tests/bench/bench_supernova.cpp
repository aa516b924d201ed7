// Cost of the supernova search per slice, next to L1 building on the same slices (DESIGN.md
// section 7 workload: DU simulator slices, 7 kHz singles per PMT, 40K 700/70/7 Hz per DOM, muons),
// for 1, 10 and 115 DUs on one core. Figures, never pass/fail.
//
//   build/tests/bench/bench_supernova [--benchmark_filter=...]
// Printed after the benchmarks: per slice, L1 building alone, SN counting alone (on the same
// calibrated hits), their ratio; the DataFilter with and without the SN figure (what it really
// adds); the standalone SupernovaCoincidences (its own checks + L0); SupernovaMonitor::observe.
#include <time.h>

#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "shoredaq/filters/data_filter.hpp"
#include "shoredaq/filters/frame_check.hpp"
#include "shoredaq/filters/l1.hpp"
#include "shoredaq/filters/supernova.hpp"
#include "shoredaq/filters/supernova_monitor.hpp"
#include "reference_feed.hpp"

using namespace shoredaq;
using namespace shoredaq::filters;

namespace {


struct Workload {
  std::shared_ptr<const dataflow::Detector> detector;
  std::vector<dataflow::Timeslice> slices;
  std::vector<L0Slice> l0;                           // per slice: calibrated, sorted, as DataFilter builds it
  std::vector<std::vector<dataflow::Event>> events;  // per slice, from the DataFilter
  std::vector<SupernovaSliceFigure> figures;
};

Workload& workload(int dus) {
  static std::map<int, Workload> cache;
  auto it = cache.find(dus);
  if (it != cache.end()) return it->second;
  Workload w;
  auto feed = bench::make_reference_feed(dus);
  w.detector = std::move(feed.detector);
  const DataFilter filter(*w.detector, TriggerParameters{});
  std::vector<DomCalibration> calibrations;
  for (const auto& m : w.detector->modules()) calibrations.push_back(DomCalibration::of(m));
  L0Scratch scratch;
  for (auto& slice : feed.slices) {
    w.slices.push_back(std::move(slice));
    const auto& s = w.slices.back();
    auto r = filter.process(s);
    w.events.push_back(std::move(r.events));
    w.figures.push_back(std::move(*r.supernova));
    L0Slice l0;
    for (const auto& f : s.frames) {
      const auto index = w.detector->index_of(f.dom_id);
      if (!index || w.detector->modules()[*index].is_base() || check_frame(f, 1'000'000) != 0) continue;
      L0Dom dom{f.dom_id, static_cast<std::uint32_t>(*index), static_cast<std::uint32_t>(l0.hits.size()), 0, L0Dom::kNoTimeIndex};
      dom.end = dom.begin + static_cast<std::uint32_t>(build_l0_dom(f, calibrations[*index], 0, l0.hits, scratch));
      l0.doms.push_back(dom);
    }
    w.l0.push_back(std::move(l0));
  }
  return cache.emplace(dus, std::move(w)).first->second;
}

// The two per-DOM passes over the same calibrated hits.
std::size_t build_l1(const Workload& w, std::size_t k, std::vector<L1Hit>& out) {
  out.clear();
  const L0Slice& l0 = w.l0[k];
  for (std::size_t slot = 0; slot < l0.doms.size(); ++slot) {
    const L0Dom& d = l0.doms[slot];
    build_l1_dom(l0.hits_of(d), d.begin, static_cast<std::uint32_t>(slot), w.detector->modules()[d.module_index].position_m,
                 L1Settings{}, out);
  }
  return out.size();
}

std::uint64_t count_sn(const Workload& w, std::size_t k, const SupernovaSettings& settings) {
  const L0Slice& l0 = w.l0[k];
  const SupernovaVeto veto(w.events[k]);
  SupernovaSliceFigure figure;
  std::uint64_t kept = 0;
  for (const L0Dom& d : l0.doms) {
    SupernovaDomFigure dom{d.dom_id, SupernovaDomState::Included, 0, 0, 0};
    count_supernova_coincidences(l0.hits_of(d), settings, veto, dom, figure.multiplicity_counts);
    kept += dom.coincidences;
  }
  return kept;
}

void BM_L1Build(benchmark::State& state) {
  auto& w = workload(static_cast<int>(state.range(0)));
  std::vector<L1Hit> out;
  std::size_t k = 0;
  for (auto _ : state) benchmark::DoNotOptimize(build_l1(w, k++ % w.slices.size(), out));
}

void BM_SupernovaCount(benchmark::State& state) {
  auto& w = workload(static_cast<int>(state.range(0)));
  const SupernovaSettings settings;
  std::size_t k = 0;
  for (auto _ : state) benchmark::DoNotOptimize(count_sn(w, k++ % w.slices.size(), settings));
}

void BM_SupernovaMonitor(benchmark::State& state) {
  auto& w = workload(static_cast<int>(state.range(0)));
  SupernovaMonitor monitor(SupernovaSettings{});
  std::uint32_t frame = 0;
  for (auto _ : state) {
    SupernovaSliceFigure f = w.figures[frame % w.figures.size()];
    f.header.frame_index = frame;
    f.header.utc_seconds = 1'700'000'000u + frame / 10;
    f.header.ticks_16ns = (frame % 10) * (dataflow::kSliceDurationNs / dataflow::kTickNs);
    ++frame;
    benchmark::DoNotOptimize(monitor.observe(f));
  }
}

BENCHMARK(BM_L1Build)->Arg(1)->Arg(10)->Arg(115)->Unit(benchmark::kMicrosecond)->MinTime(1.0);
BENCHMARK(BM_SupernovaCount)->Arg(1)->Arg(10)->Arg(115)->Unit(benchmark::kMicrosecond)->MinTime(1.0);
BENCHMARK(BM_SupernovaMonitor)->Arg(115)->Unit(benchmark::kMicrosecond)->MinTime(1.0);

// This thread's CPU time: the machine may be shared, and per-core cost is what we want.
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// CPU microseconds per slice of fn(k) over the workload's slices, repeated to at least `seconds`.
template <class Fn>
double us_per_slice(const Workload& w, Fn&& fn, double seconds = 1.0) {
  const double start = thread_cpu_seconds();
  std::size_t slices = 0;
  do {
    for (std::size_t k = 0; k < w.slices.size(); ++k, ++slices) fn(k);
  } while (thread_cpu_seconds() - start < seconds);
  return 1e6 * (thread_cpu_seconds() - start) / static_cast<double>(slices);
}

void print_figures() {
  std::printf("\n== supernova search: CPU us per 100 ms slice, one core ==\n");
  std::printf("%5s %10s %9s %9s %7s %11s %11s %8s %11s %9s %9s\n", "DUs", "hits/slice", "L1 build", "SN count",
              "SN/L1", "filter", "filter+SN", "SN adds", "standalone", "monitor", "kept/s");
  for (int dus : {1, 10, 115}) {
    auto& w = workload(dus);
    std::size_t hits = 0;
    for (const auto& s : w.slices) hits += s.hit_count();
    std::vector<L1Hit> l1;
    const SupernovaSettings settings;
    const double l1_us = us_per_slice(w, [&](std::size_t k) { benchmark::DoNotOptimize(build_l1(w, k, l1)); });
    std::uint64_t kept = 0;
    const double sn_us = us_per_slice(w, [&](std::size_t k) { benchmark::DoNotOptimize(count_sn(w, k, settings)); });
    for (std::size_t k = 0; k < w.slices.size(); ++k) kept += count_sn(w, k, settings);
    TriggerParameters without;
    without.supernova.enabled = false;
    const DataFilter filter_without(*w.detector, without), filter_with(*w.detector, TriggerParameters{});
    const double without_us = us_per_slice(w, [&](std::size_t k) {
      auto r = filter_without.process(w.slices[k]);
      benchmark::DoNotOptimize(r);
    });
    const double with_us = us_per_slice(w, [&](std::size_t k) {
      auto r = filter_with.process(w.slices[k]);
      benchmark::DoNotOptimize(r);
    });
    const SupernovaCoincidences standalone(*w.detector, settings);
    const double standalone_us = us_per_slice(w, [&](std::size_t k) {
      auto f = standalone.process(w.slices[k], w.events[k]);
      benchmark::DoNotOptimize(f);
    });
    SupernovaMonitor monitor(settings);
    std::uint32_t frame = 0;
    const double monitor_us = us_per_slice(w, [&](std::size_t k) {
      SupernovaSliceFigure f = w.figures[k];
      f.header.frame_index = frame;
      f.header.utc_seconds = 1'700'000'000u + frame / 10;
      f.header.ticks_16ns = (frame % 10) * (dataflow::kSliceDurationNs / dataflow::kTickNs);
      ++frame;
      benchmark::DoNotOptimize(monitor.observe(f));
    });
    std::printf("%5d %10.3g %9.1f %9.1f %7.2f %11.1f %11.1f %7.1f%% %11.1f %9.1f %9.2f\n", dus,
                static_cast<double>(hits) / static_cast<double>(w.slices.size()), l1_us, sn_us, sn_us / l1_us,
                without_us, with_us, 100.0 * (with_us - without_us) / without_us, standalone_us, monitor_us,
                static_cast<double>(kept) / (0.1 * static_cast<double>(w.slices.size())));
  }
  std::printf("'SN count' and 'L1 build' run on the same calibrated hits; 'SN adds' = DataFilter time with the\n"
              "SN figure over without; 'standalone' = SupernovaCoincidences (its own checks + L0); 'monitor' =\n"
              "SupernovaMonitor::observe (includes the copy of the figure); 'kept/s' = coincidences in the\n"
              "default 7-11 band per second over the whole detector (the simulator makes 40K up to 4-fold).\n");
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  print_figures();
  return 0;
}
