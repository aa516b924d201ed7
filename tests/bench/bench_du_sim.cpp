// du-sim generation speed: hits/s on one core for the DUs of detector 133, against a same-run
// baseline that only draws the same number of exponential random numbers (std::mt19937_64 +
// -log(u)), plus the cost of framing pre-generated datagrams into ZeroMQ-sized record batches
// (what a replay of pre-generated data costs per hit).
// A DU-equivalent is 18 DOMs x 31 PMTs x 7 kHz = 3.9 M hits/s.
//
//   ./build/tests/bench/bench_du_sim --benchmark_counters_tabular=true

#include <benchmark/benchmark.h>

#include <time.h>

#include <chrono>
#include <cmath>
#include <memory>
#include <random>

#include "shoredaq/formats/record_stream.hpp"
#include "shoredaq/drivers/du_simulator.hpp"

namespace {

using namespace shoredaq;
constexpr double kDuEquivalentHitsPerS = 18 * 31 * 7000.0;

std::shared_ptr<const dataflow::Detector> detector() {
  static auto det = std::make_shared<const dataflow::Detector>(
      dataflow::Detector::load(SHOREDAQ_TESTDATA_DIR "/detx/KM3NeT_00000133_20221025.detx"));
  return det;
}

drivers::DuSimConfig config(int n_dus, unsigned threads) {
  drivers::DuSimConfig c;
  c.detector = detector();
  const auto all = detector()->du_ids();
  c.dus.assign(all.begin(), all.begin() + n_dus);
  c.start_unix_ns = 1'700'000'000'000'000'000ull;
  c.muon.rate_hz = 20;
  c.threads = threads;
  return c;
}

// Process CPU time: on a shared 2-core machine wall time mostly measures the other processes.
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// The baseline: n exponential variates, the irreducible core of generating n Poisson hits.
double exponential_baseline_per_s(std::size_t n) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  double sink = 0;
  const double t0 = process_cpu_seconds();
  for (std::size_t i = 0; i < n; ++i) sink += -std::log1p(-u(rng));
  const double s = process_cpu_seconds() - t0;
  benchmark::DoNotOptimize(sink);
  return n / s;
}

void BM_DuSimGenerate(benchmark::State& state) {
  drivers::DuSimulator sim(config(static_cast<int>(state.range(0)), static_cast<unsigned>(state.range(1))));
  std::size_t hits = 0, slices = 0;
  const double start = process_cpu_seconds();
  for (auto _ : state) {
    auto slice = sim.next_slice();
    hits += slice.truth.hit_count();
    ++slices;
    benchmark::DoNotOptimize(slice);
  }
  const double elapsed_s = process_cpu_seconds() - start;
  const double hits_per_slice = static_cast<double>(hits) / static_cast<double>(slices);
  const double baseline = exponential_baseline_per_s(static_cast<std::size_t>(hits_per_slice));
  state.counters["hits_per_s"] = benchmark::Counter(static_cast<double>(hits), benchmark::Counter::kIsRate);
  state.counters["DU_equiv"] = benchmark::Counter(static_cast<double>(hits) / kDuEquivalentHitsPerS, benchmark::Counter::kIsRate);
  state.counters["baseline_exp_per_s"] = baseline;
  state.counters["ratio_to_baseline"] = static_cast<double>(hits) / elapsed_s / baseline;
  state.SetItemsProcessed(static_cast<std::int64_t>(hits));
}
// Rates per CPU second of the process (ratio_to_baseline: hits per CPU second / exponentials per CPU second).
BENCHMARK(BM_DuSimGenerate)->ArgNames({"dus", "threads"})->Args({1, 1})->Args({2, 1})->Args({4, 1})->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
// With 2 worker threads the wall clock is what counts (rates per wall second).
BENCHMARK(BM_DuSimGenerate)->ArgNames({"dus", "threads"})->Args({4, 2})->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime()->UseRealTime();

// The same-run baseline as its own row: items = exponential numbers drawn.
void BM_ExponentialBaseline(benchmark::State& state) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const std::size_t n = static_cast<std::size_t>(kDuEquivalentHitsPerS / 10);  // one DU-slice worth
  for (auto _ : state) {
    double sink = 0;
    for (std::size_t i = 0; i < n; ++i) sink += -std::log1p(-u(rng));
    benchmark::DoNotOptimize(sink);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
  state.counters["DU_equiv"] = benchmark::Counter(static_cast<double>(state.iterations() * n) / kDuEquivalentHitsPerS,
                                                  benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ExponentialBaseline)->Unit(benchmark::kMillisecond);

// Replaying pre-generated data: frame a slice's datagrams into 256 KiB record messages.
void BM_FramePregenerated(benchmark::State& state) {
  drivers::DuSimulator sim(config(static_cast<int>(state.range(0)), 1));
  const auto slice = sim.next_slice();
  const std::size_t hits = slice.truth.hit_count();
  dataflow::RecordWriter writer(300 * 1024);
  std::size_t messages = 0;
  for (auto _ : state) {
    for (const auto& dg : slice.datagrams) {
      if (writer.size() + dg.bytes.size() + 4 > 256 * 1024) {
        benchmark::DoNotOptimize(writer.bytes().data());
        writer.clear();
        ++messages;
      }
      writer.append(dg.bytes);
    }
    writer.clear();
    ++messages;
  }
  state.counters["hits_per_s"] = benchmark::Counter(static_cast<double>(state.iterations() * hits), benchmark::Counter::kIsRate);
  state.counters["DU_equiv"] = benchmark::Counter(static_cast<double>(state.iterations() * hits) / kDuEquivalentHitsPerS,
                                                  benchmark::Counter::kIsRate);
  state.counters["messages"] = static_cast<double>(messages);
}
BENCHMARK(BM_FramePregenerated)->ArgName("dus")->Arg(4)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
