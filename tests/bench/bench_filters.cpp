// Filter throughput on the reference workload (DESIGN.md section 7): DU simulator slices (7 kHz
// singles per PMT, 40K coincidences 700/70/7 Hz per DOM, atmospheric muons) for 1, 10 and 115 DUs,
// hits in the CLB's nearly time-ordered readout order (and 10 DUs once more in 200 us blocks),
// through the whole DataFilter (checks -> L0 -> L1/L2 -> three triggers -> events + summary), on one
// core. Same-run baseline: copy + std::sort by time of the same hits per DOM.
//
//   build-rel/tests/bench/bench_filters [--benchmark_filter=...]
// After the benchmarks, main prints hits/s per core, DU-equivalents per core (3.9 M hits/s each),
// the ratio to the baseline, the stage split, reduction factors and peak RSS.
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include "shoredaq/dataflow/task_pool.hpp"
#include "shoredaq/filters/data_filter.hpp"
#include "shoredaq/filters/frame_check.hpp"
#include "shoredaq/filters/l0.hpp"
#include "reference_feed.hpp"

using namespace shoredaq;
using namespace shoredaq::filters;

namespace {

constexpr double kHitsPerDuEquivalent = 3.9e6;  // hits/s of one DU-equivalent (DESIGN.md section 7)

struct Workload {
  std::shared_ptr<const dataflow::Detector> detector;
  std::vector<dataflow::Timeslice> slices;
  std::unique_ptr<DataFilter> filter;
  std::size_t hits = 0;
};

// 1 and 10 DUs from the ARCA-21 file (detector 133), 115 DUs from the building-block file; hits in
// the CLB's nearly time-ordered readout order, or, with readout_block_ns, du-sim's coarser blocks.
Workload& workload(int dus, std::uint32_t readout_block_ns = 0) {
  static std::map<std::pair<int, std::uint32_t>, Workload> cache;
  auto it = cache.find({dus, readout_block_ns});
  if (it != cache.end()) return it->second;
  Workload w;
  auto feed = bench::make_reference_feed(dus, readout_block_ns);
  w.detector = std::move(feed.detector);
  w.slices = std::move(feed.slices);
  for (const auto& slice : w.slices) w.hits += slice.hit_count();
  w.filter = std::make_unique<DataFilter>(*w.detector, TriggerParameters{});
  return cache.emplace(std::make_pair(dus, readout_block_ns), std::move(w)).first->second;
}

void BM_DataFilter(benchmark::State& state) {
  auto& w = workload(static_cast<int>(state.range(0)));
  std::size_t k = 0, hits = 0;
  FilterCounters counters;
  for (auto _ : state) {
    const auto& slice = w.slices[k++ % w.slices.size()];
    auto r = w.filter->process(slice);
    hits += slice.hit_count();
    counters += r.counters;
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(hits));
  state.counters["hits/s"] = benchmark::Counter(static_cast<double>(hits), benchmark::Counter::kIsRate);
  state.counters["DU_eq"] =
      benchmark::Counter(static_cast<double>(hits) / kHitsPerDuEquivalent, benchmark::Counter::kIsRate);
  state.counters["events/slice"] = static_cast<double>(counters.events) / static_cast<double>(counters.slices);
  state.counters["L1/slice"] = static_cast<double>(counters.l1_hits) / static_cast<double>(counters.slices);
}

// Intra-slice parallelism: the same, with the per-DOM work shared by range(1) threads (the caller
// and a TaskPool, as the node's [node] slice_threads); wall time per slice, against BM_DataFilter.
void BM_DataFilterSplit(benchmark::State& state) {
  auto& w = workload(static_cast<int>(state.range(0)));
  const auto threads = static_cast<std::size_t>(state.range(1));
  dataflow::TaskPool pool(threads - 1);
  const TaskRunner runner = [&pool](std::size_t n, const std::function<void(std::size_t)>& task) { pool.run(n, task); };
  std::size_t k = 0, hits = 0;
  for (auto _ : state) {
    const auto& slice = w.slices[k++ % w.slices.size()];
    auto r = w.filter->process(slice, runner, threads);
    hits += slice.hit_count();
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(hits));
  state.counters["hits/s"] = benchmark::Counter(static_cast<double>(hits), benchmark::Counter::kIsRate);
}

// Baseline: copy the same hits per DOM into 16-byte records and std::sort them by time.
void BM_BaselineCopySort(benchmark::State& state) {
  auto& w = workload(static_cast<int>(state.range(0)));
  std::vector<L0Hit> buffer;
  std::size_t k = 0, hits = 0;
  for (auto _ : state) {
    const auto& slice = w.slices[k++ % w.slices.size()];
    for (const auto& f : slice.frames) {
      buffer.resize(f.hit_count());
      for (std::size_t i = 0; i < buffer.size(); ++i) {
        const auto h = f.hit(i);
        buffer[i] = L0Hit{static_cast<double>(h.time_ns), h.time_ns, h.channel, h.tot_ns};
      }
      std::sort(buffer.begin(), buffer.end(), [](const L0Hit& a, const L0Hit& b) { return a.time_ns < b.time_ns; });
      benchmark::DoNotOptimize(buffer.data());
    }
    hits += slice.hit_count();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(hits));
  state.counters["hits/s"] = benchmark::Counter(static_cast<double>(hits), benchmark::Counter::kIsRate);
}

// The first stages alone: frame checks + per-channel counts + calibrated, sorted L0.
void BM_ChecksAndL0(benchmark::State& state) {
  auto& w = workload(static_cast<int>(state.range(0)));
  std::vector<DomCalibration> calibrations;
  for (const auto& m : w.detector->modules()) calibrations.push_back(DomCalibration::of(m));
  std::vector<L0Hit> out(w.hits);  // touched once, so page faults are not timed (DataFilter's buffers persist too)
  L0Scratch scratch;
  std::size_t k = 0, hits = 0;
  for (auto _ : state) {
    const auto& slice = w.slices[k++ % w.slices.size()];
    out.clear();
    for (const auto& f : slice.frames) {
      const auto index = w.detector->index_of(f.dom_id);
      if (!index || check_frame(f, 1'000'000) != 0) continue;
      build_l0_dom(f, calibrations[*index], 0, out, scratch);
    }
    benchmark::DoNotOptimize(out.data());
    hits += slice.hit_count();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(hits));
  state.counters["hits/s"] = benchmark::Counter(static_cast<double>(hits), benchmark::Counter::kIsRate);
}

BENCHMARK(BM_DataFilter)->Arg(1)->Arg(10)->Arg(115)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_DataFilterSplit)->Args({10, 1})->Args({10, 2})->Args({20, 1})->Args({20, 2})->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_BaselineCopySort)->Arg(1)->Arg(10)->Arg(115)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_ChecksAndL0)->Arg(1)->Arg(10)->Arg(115)->Unit(benchmark::kMillisecond)->MinTime(2.0);

// This thread's CPU time: the machine may be shared, and per-core throughput is what we want.
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Hits per CPU second of `fn` over the workload's slices, repeated to at least `seconds`.
template <class Fn>
double hits_per_second(Workload& w, Fn&& fn, double seconds = 1.5) {
  const double start = thread_cpu_seconds();
  std::size_t hits = 0;
  do {
    for (const auto& s : w.slices) {
      fn(s);
      hits += s.hit_count();
    }
  } while (thread_cpu_seconds() - start < seconds);
  return static_cast<double>(hits) / (thread_cpu_seconds() - start);
}

void print_figures() {
  std::printf("\n== filters: reference workload, one core (muons %.0f Hz per DU crossing the can) ==\n", bench::kMuonRateHzPerDu);
  std::printf("%5s %10s %12s %9s %12s %9s %9s %9s %11s %10s\n", "DUs", "hits/slice", "filter h/s", "DU-eq",
              "baseline h/s", "ratio", "L0 share", "events/s", "ev bytes/s", "reduction");
  // The last row: 10 DUs with 200 us readout blocks (87 % of hits out of time order, which the CLB
  // never sends; du-sim's default until 2026-12): L0's general sort instead of its one-pass insertion.
  constexpr std::uint32_t kCoarseBlockNs = 200'000;
  const std::pair<int, std::uint32_t> rows[] = {{1, 0}, {10, 0}, {115, 0}, {10, kCoarseBlockNs}};
  for (const auto& [dus, readout_block_ns] : rows) {
    auto& w = workload(dus, readout_block_ns);
    if (readout_block_ns) std::printf("  10 DUs again, hits in %u us readout blocks (far from time order):\n", readout_block_ns / 1000);
    FilterCounters total;
    for (const auto& s : w.slices) total += w.filter->process(s).counters;
    const double filter_rate = hits_per_second(w, [&](const dataflow::Timeslice& s) {
      auto r = w.filter->process(s);
      benchmark::DoNotOptimize(r);
    });
    std::vector<L0Hit> buffer;
    const double baseline_rate = hits_per_second(w, [&](const dataflow::Timeslice& s) {
      for (const auto& f : s.frames) {
        buffer.resize(f.hit_count());
        for (std::size_t i = 0; i < buffer.size(); ++i) {
          const auto h = f.hit(i);
          buffer[i] = L0Hit{static_cast<double>(h.time_ns), h.time_ns, h.channel, h.tot_ns};
        }
        std::sort(buffer.begin(), buffer.end(), [](const L0Hit& a, const L0Hit& b) { return a.time_ns < b.time_ns; });
        benchmark::DoNotOptimize(buffer.data());
      }
    });
    std::vector<DomCalibration> calibrations;
    for (const auto& m : w.detector->modules()) calibrations.push_back(DomCalibration::of(m));
    std::vector<L0Hit> out(w.hits);  // pages touched before timing, as in the DataFilter's thread-local buffers
    L0Scratch scratch;
    const double l0_rate = hits_per_second(w, [&](const dataflow::Timeslice& s) {
      out.clear();
      for (const auto& f : s.frames) {
        const auto index = w.detector->index_of(f.dom_id);
        if (!index || scan_frame(f, 1'000'000).defects != 0) continue;
        build_l0_dom(f, calibrations[*index], 0, out, scratch);
      }
      benchmark::DoNotOptimize(out.data());
    });
    const double seconds = 0.1 * static_cast<double>(w.slices.size());
    const double reduction = total.event_bytes ? 6.0 * total.hits_in / static_cast<double>(total.event_bytes) : 0.0;
    std::printf("%5d %10.3g %12.3g %9.1f %12.3g %9.2f %8.0f%% %9.1f %11.3g %10.3g\n", dus,
                static_cast<double>(w.hits) / w.slices.size(), filter_rate, filter_rate / kHitsPerDuEquivalent,
                baseline_rate, filter_rate / baseline_rate, 100.0 * filter_rate / l0_rate,
                total.events / seconds, total.event_bytes / seconds, reduction);
    std::printf("      triggers per slice: 3D shower %.2f, MX shower %.2f, 3D muon %.2f; L1 %.3g/slice; "
                "summary %.3g B/s (%.0f B per DOM per slice)\n",
                total.triggers_3d_shower / static_cast<double>(w.slices.size()),
                total.triggers_mx_shower / static_cast<double>(w.slices.size()),
                total.triggers_3d_muon / static_cast<double>(w.slices.size()),
                total.l1_hits / static_cast<double>(w.slices.size()),
                55.0 * static_cast<double>(total.frames) / seconds, 55.0);
  }
  // The all-DOM snapshot grows with the detector; the reduction with a snapshot limited to DOMs
  // near the triggered ones (TriggerParameters::snapshot_max_distance_m).
  auto& w = workload(115);
  for (double radius : {0.0, 250.0, 150.0}) {
    TriggerParameters p;
    p.snapshot_max_distance_m = radius;
    const DataFilter filter(*w.detector, p);
    FilterCounters total;
    for (const auto& s : w.slices) total += filter.process(s).counters;
    std::printf("115 DUs, snapshot_max_distance_m %4.0f: %.3g snapshot hits/event, %.3g B/event, reduction %.3g\n",
                radius, total.snapshot_hits / static_cast<double>(total.events),
                total.event_bytes / static_cast<double>(total.events),
                6.0 * total.hits_in / static_cast<double>(total.event_bytes));
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("peak RSS %.0f MB (all workloads held in memory: 115 DUs is ~%.0f MB of raw hits per slice)\n",
              ru.ru_maxrss / 1024.0, 6.0 * workload(115).hits / workload(115).slices.size() / 1e6);
  std::printf("'L0 share' = filter rate / (checks + L0) rate: the fraction of the time spent in checks + L0.\n");
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
