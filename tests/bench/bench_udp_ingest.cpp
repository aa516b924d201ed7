// UDP receive rate on loopback (issue 10 item 1), next to the ZeroMQ ingest of the same records in
// the same run (DESIGN.md section 7).
// Workload: DU simulator datagrams of one DU-equivalent (18 DOMs, 7 kHz singles per PMT, 40K
// coincidences, MTU 1472) for 2 s of detector time, sent as fast as the receiver takes them:
//  - UDP: one datagram per CLB datagram (sendmmsg) to a drivers::UdpReceiver (recvmmsg batches of
//    64 -> record stream -> IngestParser -> sink), in windows of kWindow datagrams so the kernel
//    buffer never overflows (kernel drops are printed and should be 0);
//  - ZeroMQ (baseline): the same datagrams as record-stream messages of up to 64 KiB, as du-sim or
//    a bridge sends them, PUSH -> tcp loopback -> dataflow::ZmqIngest (PULL -> IngestParser -> sink).
// Each datagram carries its send time in the spare status words 3-4, so the sink measures
// send -> parsed latency.
//
//   build/tests/bench/bench_udp_ingest [--benchmark_filter=...]
// After the benchmarks, main prints per path: datagrams/s and hits/s of wall time, the same per
// CPU second of the receiving threads (UDP: the receiver thread; ZeroMQ: the ingest thread + the
// ingest context's libzmq I/O thread) and the DU-equivalents that makes per core, send -> parsed
// latency p50/p99/max, the UDP/ZeroMQ ratio, and peak RSS. On loopback part of the kernel's receive
// work runs in the sender's thread (softirq), so "per core" is the receiving side's own share.
#include <dirent.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>
#include <zmq.hpp>

#include "shoredaq/formats/record_stream.hpp"
#include "shoredaq/dataflow/zmq_ingest.hpp"
#include "shoredaq/drivers/du_simulator.hpp"
#include "shoredaq/drivers/udp_receiver.hpp"

using namespace shoredaq;
using namespace shoredaq::dataflow;

namespace {

constexpr std::uint32_t kSlices = 20;  // 2 s of detector time
constexpr double kDetectorSeconds = kSlices * 0.1;
constexpr std::size_t kMessageBytes = 64 * 1024;  // ZeroMQ messages, as bench_builder
constexpr std::size_t kWindow = 512;              // UDP datagrams in flight at most
constexpr std::size_t kSendBatch = 64;            // datagrams per sendmmsg

std::uint64_t steady_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}
std::set<long> thread_ids() {
  std::set<long> ids;
  if (DIR* d = opendir("/proc/self/task")) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') ids.insert(std::atol(e->d_name));
    closedir(d);
  }
  return ids;
}
// Nanoseconds a thread of this process has run (first field of its schedstat).
double thread_run_seconds(long tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/schedstat");
  double ns = 0;
  in >> ns;
  return ns * 1e-9;
}

void put_be64(std::uint8_t* p, std::uint64_t v) {
  for (int i = 7; i >= 0; --i, v >>= 8) p[i] = static_cast<std::uint8_t>(v);
}
std::uint64_t get_be64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}
constexpr std::size_t kStampOffset = 32;  // status 3 and 4: spare, zero in the CLB header

struct Workload {
  std::vector<std::vector<std::uint8_t>> datagrams;
  std::size_t hits = 0;
  std::size_t bytes = 0;
};

const Workload& workload() {
  static Workload w = [] {
    Workload out;
    drivers::DuSimConfig c;
    c.detector = std::make_shared<const Detector>(
        Detector::load(std::string(SHOREDAQ_TESTDATA_DIR) + "/detx/KM3NeT_00000133_20221025.detx"));
    c.dus = {c.detector->du_ids().front()};
    c.start_unix_ns = 1'700'000'000'000'000'000ull;
    c.seed = 7;
    c.threads = 2;
    drivers::DuSimulator sim(c);
    for (std::uint32_t s = 0; s < kSlices; ++s) {
      for (auto& d : sim.next_slice().datagrams) {
        out.hits += (d.bytes.size() - kClbHeaderBytes) / kHitBytes;
        out.bytes += d.bytes.size();
        out.datagrams.push_back(std::move(d.bytes));
      }
    }
    return out;
  }();
  return w;
}

struct RunResult {
  double seconds = 0;          // first send -> last datagram parsed
  double receive_cpu_seconds = 0;
  std::uint64_t datagrams = 0;
  std::uint64_t kernel_drops = 0;
  std::vector<std::uint64_t> latency_ns;  // send -> parsed, per datagram
};

// The sink of both paths: counts, stamps CPU time and latency. Runs on the receiving thread.
struct Sink {
  std::atomic<std::uint64_t> datagrams{0};
  long tid = 0;  // of the receiving thread
  double cpu_first = -1, cpu_last = 0;
  std::vector<std::uint64_t> latency_ns;
  std::uint64_t last_ns = 0;
  void take(const ParsedMessage& m) {
    const double cpu = thread_cpu_seconds();
    if (cpu_first < 0) {
      cpu_first = cpu;
      tid = static_cast<long>(::gettid());
    }
    cpu_last = cpu;
    const std::uint64_t now = steady_ns();
    for (const ParsedRecord& r : m.records) {
      const std::uint8_t* header = m.bytes().data() + r.payload_offset - kClbHeaderBytes;
      latency_ns.push_back(now - get_be64(header + kStampOffset));
    }
    last_ns = now;
    datagrams.fetch_add(m.records.size(), std::memory_order_release);
  }
};

// Waits until `at_least` datagrams were parsed or dropped by the kernel (`receiver`, when given);
// gives up after a minute so that a broken set-up ends the benchmark instead of hanging it.
void wait_for(const Sink& sink, std::uint64_t at_least, const drivers::UdpReceiver* receiver = nullptr) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  for (unsigned i = 0; sink.datagrams.load(std::memory_order_acquire) < at_least; ++i) {
    if (receiver != nullptr && i % 64 == 63 &&
        sink.datagrams.load(std::memory_order_acquire) + receiver->counters().kernel_drops() >= at_least)
      return;
    if (std::chrono::steady_clock::now() > deadline) {
      std::fprintf(stderr, "bench_udp_ingest: gave up waiting for %llu datagrams (%llu arrived)\n",
                   static_cast<unsigned long long>(at_least), static_cast<unsigned long long>(sink.datagrams.load()));
      std::exit(1);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
}

RunResult run_udp() {
  const Workload& w = workload();
  Sink sink;
  drivers::UdpReceiverConfig config;
  drivers::UdpPortConfig port;
  port.bind = drivers::UdpEndpoint{"127.0.0.1", 0};
  config.ports = {port};
  config.kernel_stats_interval = std::chrono::milliseconds(100);  // /proc: drops show without a later datagram
  drivers::UdpReceiver receiver(config, [&](ParsedMessage&& m) { sink.take(m); });
  receiver.start();
  const auto bound = drivers::resolve_udp(receiver.sockets()[0].bound, false);
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ::connect(fd, bound.get(), bound.length);

  std::vector<std::vector<std::uint8_t>> stamped = w.datagrams;
  std::vector<mmsghdr> headers(kSendBatch);
  std::vector<iovec> iov(kSendBatch);
  const std::uint64_t t0 = steady_ns();
  for (std::size_t i = 0; i < stamped.size(); i += kSendBatch) {
    const std::size_t n = std::min(kSendBatch, stamped.size() - i);
    if (i + n > kWindow) wait_for(sink, i + n - kWindow, &receiver);
    const std::uint64_t now = steady_ns();
    for (std::size_t k = 0; k < n; ++k) {
      put_be64(stamped[i + k].data() + kStampOffset, now);
      iov[k] = iovec{stamped[i + k].data(), stamped[i + k].size()};
      headers[k] = mmsghdr{};
      headers[k].msg_hdr.msg_iov = &iov[k];
      headers[k].msg_hdr.msg_iovlen = 1;
    }
    for (std::size_t done = 0; done < n;) {
      const int sent = ::sendmmsg(fd, headers.data() + done, static_cast<unsigned>(n - done), 0);
      if (sent > 0) {
        done += static_cast<std::size_t>(sent);
      } else if (errno != EINTR && errno != EAGAIN && errno != ENOBUFS) {
        std::fprintf(stderr, "bench_udp_ingest: sendmmsg: %s\n", std::strerror(errno));
        std::exit(1);
      }
    }
  }
  wait_for(sink, stamped.size(), &receiver);
  RunResult r;
  r.seconds = static_cast<double>(sink.last_ns - t0) * 1e-9;
  receiver.stop();
  ::close(fd);
  r.receive_cpu_seconds = sink.cpu_last - sink.cpu_first;
  r.datagrams = sink.datagrams.load();
  r.kernel_drops = receiver.counters().kernel_drops();
  r.latency_ns = std::move(sink.latency_ns);
  return r;
}

RunResult run_zmq() {
  const Workload& w = workload();
  Sink sink;
  // The sender binds; the ingest connects (ZmqIngest does not report a wildcard port it bound).
  zmq::context_t sender_context(1);
  zmq::socket_t push(sender_context, zmq::socket_type::push);
  push.set(zmq::sockopt::linger, 0);
  push.set(zmq::sockopt::sndhwm, 100);
  push.bind("tcp://127.0.0.1:*");
  const auto before = thread_ids();
  zmq::context_t ingest_context(1);
  ZmqIngestConfig config;
  IngestEndpoint endpoint;
  endpoint.address = push.get(zmq::sockopt::last_endpoint);
  endpoint.bind = false;
  config.endpoints = {endpoint};
  ZmqIngest ingest(ingest_context, config, [&](ParsedMessage&& m) { sink.take(m); });
  ingest.start();

  std::vector<std::vector<std::uint8_t>> stamped = w.datagrams;
  std::vector<long> new_threads;  // the ingest thread and the ingest context's libzmq threads
  for (long tid : thread_ids())
    if (!before.count(tid)) new_threads.push_back(tid);
  std::vector<double> run_before;
  for (long tid : new_threads) run_before.push_back(thread_run_seconds(tid));

  std::vector<std::uint8_t> message;
  const std::uint64_t t0 = steady_ns();
  std::size_t first = 0;
  const auto send = [&](std::size_t end) {
    const std::uint64_t now = steady_ns();
    message.clear();
    for (std::size_t k = first; k < end; ++k) {
      put_be64(stamped[k].data() + kStampOffset, now);
      append_record(message, stamped[k]);
    }
    push.send(zmq::const_buffer(message.data(), message.size()), zmq::send_flags::none);
    first = end;
  };
  std::size_t bytes = 0;
  for (std::size_t i = 0; i < stamped.size(); ++i) {
    if (i > first && bytes + kRecordLengthBytes + stamped[i].size() > kMessageBytes) {
      send(i);
      bytes = 0;
    }
    bytes += kRecordLengthBytes + stamped[i].size();
  }
  send(stamped.size());
  wait_for(sink, stamped.size());
  RunResult r;
  r.seconds = static_cast<double>(sink.last_ns - t0) * 1e-9;
  r.receive_cpu_seconds = sink.cpu_last - sink.cpu_first;
  for (std::size_t i = 0; i < new_threads.size(); ++i) {
    if (new_threads[i] == sink.tid) continue;  // counted by its own CPU clock above
    r.receive_cpu_seconds += thread_run_seconds(new_threads[i]) - run_before[i];
  }
  ingest.stop();
  r.datagrams = sink.datagrams.load();
  r.latency_ns = std::move(sink.latency_ns);
  return r;
}

double du_equivalents_per_core(const RunResult& r) {
  const double datagrams_per_du_second = static_cast<double>(workload().datagrams.size()) / kDetectorSeconds;
  return r.receive_cpu_seconds > 0 ? static_cast<double>(r.datagrams) / r.receive_cpu_seconds / datagrams_per_du_second
                                   : 0.0;
}

void report(benchmark::State& state, const RunResult& r) {
  const Workload& w = workload();
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * w.datagrams.size()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * w.bytes));
  state.counters["DU-eq/core"] = du_equivalents_per_core(r);
  state.counters["kernel_drops"] = static_cast<double>(r.kernel_drops);
}

void BM_UdpReceive(benchmark::State& state) {
  RunResult r;
  for (auto _ : state) r = run_udp();
  report(state, r);
}
BENCHMARK(BM_UdpReceive)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);

void BM_ZmqIngest(benchmark::State& state) {
  RunResult r;
  for (auto _ : state) r = run_zmq();
  report(state, r);
}
BENCHMARK(BM_ZmqIngest)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);

std::uint64_t percentile(std::vector<std::uint64_t>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// Best of 5 passes for the rates; latencies from the best pass.
RunResult best_of(RunResult (*run)()) {
  RunResult best;
  for (int i = 0; i < 5; ++i) {
    RunResult r = run();
    if (best.datagrams == 0 || r.receive_cpu_seconds < best.receive_cpu_seconds) best = std::move(r);
  }
  return best;
}

void print(const char* label, RunResult& r) {
  const Workload& w = workload();
  const double hits_per_datagram = static_cast<double>(w.hits) / static_cast<double>(w.datagrams.size());
  const double wall_rate = static_cast<double>(r.datagrams) / r.seconds;
  const double cpu_rate = static_cast<double>(r.datagrams) / r.receive_cpu_seconds;
  std::printf("  %-7s wall %.3g datagrams/s (%.3g hits/s, %.0f MB/s) = %.1f DU-eq; per receiving core %.3g datagrams/s "
              "= %.1f DU-eq/core (%.3f CPU s); latency send->parsed p50 %.3f ms p99 %.3f ms max %.3f ms; kernel drops %llu\n",
              label, wall_rate, wall_rate * hits_per_datagram, wall_rate * static_cast<double>(w.bytes) / w.datagrams.size() / 1e6,
              wall_rate * kDetectorSeconds / static_cast<double>(w.datagrams.size()), cpu_rate, du_equivalents_per_core(r),
              r.receive_cpu_seconds, percentile(r.latency_ns, 0.5) / 1e6, percentile(r.latency_ns, 0.99) / 1e6,
              percentile(r.latency_ns, 1.0) / 1e6, static_cast<unsigned long long>(r.kernel_drops));
}

void summary() {
  const Workload& w = workload();
  std::printf("\n== UDP receive vs ZeroMQ ingest, 1 DU-equivalent x %.0f s: %zu datagrams, %zu hits, %.1f MB "
              "(one DU-equivalent = %.0f datagrams/s) ==\n",
              kDetectorSeconds, w.datagrams.size(), w.hits, w.bytes / 1e6, w.datagrams.size() / kDetectorSeconds);
  RunResult udp = best_of(run_udp);
  RunResult zmq = best_of(run_zmq);
  print("UDP", udp);
  print("ZeroMQ", zmq);
  std::printf("  ratio UDP / ZeroMQ: wall rate %.2f, per-core rate %.2f\n", zmq.seconds / udp.seconds,
              zmq.receive_cpu_seconds / udp.receive_cpu_seconds);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  summary();
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("\npeak RSS: %.1f MiB (includes the pre-generated workload and its copies)\n", ru.ru_maxrss / 1024.0);
  return 0;
}
