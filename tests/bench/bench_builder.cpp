// Ingest parsing + TimesliceBuilder throughput on one core (issue 4 item 1-2, DESIGN.md section 7).
// Workload: DU simulator datagrams of one DU-equivalent (18 DOMs, 7 kHz singles per PMT, 40K
// coincidences, MTU 1472) for 2 s of detector time, batched into ZeroMQ-sized record-stream
// messages of up to 64 KiB, as a bridge would send them. The 20-DU variant replicates that DU 20 times
// with distinct DOM ids (the builder's cost depends on datagrams and DOMs, not on hit content).
// Same-run baseline: memcpy of the same message bytes.
//
//   build/tests/bench/bench_builder [--benchmark_filter=...]
// After the benchmarks, main prints datagrams/s and hits/s per core, the DU-equivalents one core
// sustains, the ratio to the memcpy baseline, slice-complete -> emitted latency p50/p99/max (the
// builder's own assembly cost once the last datagram is in), and peak RSS.
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include "shoredaq/formats/record_stream.hpp"
#include "shoredaq/dataflow/timeslice_builder.hpp"
#include "shoredaq/dataflow/zmq_ingest.hpp"
#include "shoredaq/drivers/du_simulator.hpp"

using namespace shoredaq;
using namespace shoredaq::dataflow;

namespace {

constexpr std::size_t kMessageBytes = 64 * 1024;
constexpr std::uint32_t kSlices = 20;  // 2 s of detector time
constexpr std::uint64_t kSliceNs = 100'000'000;

struct Workload {
  std::vector<std::vector<std::uint8_t>> messages;
  std::vector<std::uint32_t> doms;
  std::size_t datagrams = 0;
  std::size_t hits = 0;
  std::size_t bytes = 0;
  std::uint32_t run = 1;
};

std::uint64_t steady_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

void set_dom_id(std::vector<std::uint8_t>& datagram, std::uint32_t dom) {
  datagram[20] = static_cast<std::uint8_t>(dom >> 24);
  datagram[21] = static_cast<std::uint8_t>(dom >> 16);
  datagram[22] = static_cast<std::uint8_t>(dom >> 8);
  datagram[23] = static_cast<std::uint8_t>(dom);
}

// `copies` DU-equivalents: the simulated DU, and copies of its datagrams with DOM ids shifted.
Workload& workload(int copies) {
  static std::map<int, Workload> cache;
  if (auto it = cache.find(copies); it != cache.end()) return it->second;
  static std::vector<drivers::SimulatedSlice> sim_slices;
  static std::vector<std::uint32_t> sim_doms;
  if (sim_slices.empty()) {
    drivers::DuSimConfig c;
    c.detector = std::make_shared<const Detector>(
        Detector::load(std::string(SHOREDAQ_TESTDATA_DIR) + "/detx/KM3NeT_00000133_20221025.detx"));
    c.dus = {c.detector->du_ids().front()};
    c.start_unix_ns = 1'700'000'000'000'000'000ull;
    c.seed = 7;
    c.threads = 2;
    drivers::DuSimulator sim(c);
    for (const Module* m : sim.modules()) sim_doms.push_back(m->id);
    for (std::uint32_t s = 0; s < kSlices; ++s) sim_slices.push_back(sim.next_slice());
  }
  Workload w;
  w.run = 1;
  for (int k = 0; k < copies; ++k) {
    for (std::uint32_t d : sim_doms) w.doms.push_back(d + static_cast<std::uint32_t>(k) * 100'000'000u);
  }
  std::vector<std::uint8_t> msg;
  for (const auto& slice : sim_slices) {
    for (int k = 0; k < copies; ++k) {
      for (const auto& d : slice.datagrams) {
        std::vector<std::uint8_t> bytes = d.bytes;
        if (k > 0) set_dom_id(bytes, d.dom_id + static_cast<std::uint32_t>(k) * 100'000'000u);
        if (msg.size() + 4 + bytes.size() > kMessageBytes) {
          w.messages.push_back(std::move(msg));
          msg.clear();
        }
        append_record(msg, bytes);
        ++w.datagrams;
        w.hits += (bytes.size() - kClbHeaderBytes) / kHitBytes;
      }
    }
  }
  if (!msg.empty()) w.messages.push_back(std::move(msg));
  for (const auto& m : w.messages) w.bytes += m.size();
  return cache.emplace(copies, std::move(w)).first->second;
}

TimesliceBuilderConfig builder_config(const Workload& w) {
  TimesliceBuilderConfig c;
  c.run_number = w.run;
  c.expected_doms = w.doms;
  c.expiry_wall_ns = 0;
  return c;
}

// CPU time of this thread: the machine is shared, so wall time also counts other processes.
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct RunResult {
  double seconds = 0;
  double cpu_seconds = 0;
  std::size_t slices = 0;
  std::vector<std::uint64_t> emit_latency_ns;  // completed stamp -> handed to the sink
};

// One pass over the workload: parse every message, add every datagram, flush.
RunResult parse_and_build(const Workload& w) {
  RunResult r;
  IngestParser parser(HeaderLayoutMode::Standard40);
  TimesliceBuilder builder(builder_config(w), [&](Timeslice&& t) {
    ++r.slices;
    const std::uint64_t now = steady_ns();
    r.emit_latency_ns.push_back(now - t.stamps.completed_unix_ns);
    benchmark::DoNotOptimize(t.frames.data());
  });
  std::vector<ParsedRecord> records;
  const double c0 = thread_cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& m : w.messages) {
    records.clear();
    parser.parse(m, records);
    const std::uint64_t now = steady_ns();
    for (const ParsedRecord& rec : records) {
      ClbDatagram d;
      d.header = rec.header;
      d.layout = rec.layout;
      d.payload = std::span<const std::uint8_t>(m).subspan(rec.payload_offset, rec.payload_size);
      builder.add(d, now);
    }
  }
  builder.flush(steady_ns());
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.cpu_seconds = thread_cpu_seconds() - c0;
  return r;
}

// Returns {wall, cpu} seconds.
std::pair<double, double> memcpy_baseline(const Workload& w) {
  std::vector<std::uint8_t> sink(kMessageBytes);
  const double c0 = thread_cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& m : w.messages) {
    std::memcpy(sink.data(), m.data(), m.size());
    benchmark::DoNotOptimize(sink.data());
    benchmark::ClobberMemory();
  }
  return {std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), thread_cpu_seconds() - c0};
}

void BM_ParseAndBuild(benchmark::State& state) {
  const Workload& w = workload(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    const RunResult r = parse_and_build(w);
    benchmark::DoNotOptimize(r.slices);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * w.datagrams));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * w.bytes));
  state.counters["hits/s"] = benchmark::Counter(static_cast<double>(state.iterations() * w.hits),
                                                benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ParseAndBuild)->ArgName("du_equivalents")->Arg(1)->Arg(20)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_MemcpyBaseline(benchmark::State& state) {
  const Workload& w = workload(static_cast<int>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(memcpy_baseline(w));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * w.bytes));
}
BENCHMARK(BM_MemcpyBaseline)->ArgName("du_equivalents")->Arg(1)->Arg(20)->Unit(benchmark::kMillisecond)->UseRealTime();

std::uint64_t percentile(std::vector<std::uint64_t> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

void summary(int copies) {
  const Workload& w = workload(copies);
  // Best of 5 passes for throughput (wall and thread CPU time); latencies from all passes.
  double best = 1e30, best_cpu = 1e30, best_base = 1e30, best_base_cpu = 1e30;
  std::vector<std::uint64_t> lat;
  std::size_t slices = 0;
  for (int i = 0; i < 5; ++i) {
    RunResult r = parse_and_build(w);
    best = std::min(best, r.seconds);
    best_cpu = std::min(best_cpu, r.cpu_seconds);
    slices = r.slices;
    lat.insert(lat.end(), r.emit_latency_ns.begin(), r.emit_latency_ns.end());
    const auto [base, base_cpu] = memcpy_baseline(w);
    best_base = std::min(best_base, base);
    best_base_cpu = std::min(best_base_cpu, base_cpu);
  }
  const double detector_s = kSlices * (kSliceNs / 1e9);
  std::printf("\n== parse + TimesliceBuilder, %d DU-equivalent(s) (%zu DOMs), %u slices, one core ==\n", copies,
              w.doms.size(), kSlices);
  std::printf("  input: %zu messages, %zu datagrams, %zu hits, %.1f MB (%.1f MB/s of detector time)\n",
              w.messages.size(), w.datagrams, w.hits, w.bytes / 1e6, w.bytes / 1e6 / detector_s);
  for (const auto& [label, t, tb] : {std::tuple{"wall", best, best_base}, std::tuple{"cpu ", best_cpu, best_base_cpu}}) {
    std::printf("  [%s] %.3g datagrams/s, %.3g hits/s, %.0f MB/s; real-time factor %.1fx => ~%.0f DU-eq per core; "
                "memcpy %.0f MB/s, ratio %.1f\n",
                label, w.datagrams / t, w.hits / t, w.bytes / 1e6 / t, detector_s / t, copies * detector_s / t,
                w.bytes / 1e6 / tb, t / tb);
  }
  std::printf("  (%zu slices per pass) slice complete -> emitted latency: p50 %.3f ms, p99 %.3f ms, max %.3f ms "
              "(%zu slices)\n",
              slices, percentile(lat, 0.5) / 1e6, percentile(lat, 0.99) / 1e6, percentile(lat, 1.0) / 1e6, lat.size());
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  summary(1);
  summary(20);
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("\npeak RSS: %.1f MiB (includes the pre-generated workloads)\n", ru.ru_maxrss / 1024.0);
  return 0;
}
