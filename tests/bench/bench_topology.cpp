// Topology benchmark (issue 13): the filter stage spread over k processes, as on a farm. The
// parent plays the ingest side (a SliceRouter sends every window, FlatBuffers Timeslice, to filter
// `index % k`) and the writer side (a PULL socket receives every FilteredSlice); each child is a
// filter process (fork()ed before any thread or socket exists): PULL, decode, DataFilter::process on
// one thread, encode the FilteredSlice, PUSH. Measured for k = 1 and k = 2 on the same slices:
// aggregate hits/s, per-process hits/s, the ratio to k = 1 (the issue asks >= 0.8 k), send -> result
// latency p50/p99 and peak RSS. Same-run baseline: DataFilter::process in this process on one
// thread, no sockets (what the transport and the codec cost). Then the extrapolation: filter cores
// and 16-core servers for one 115-DU building block and for the whole telescope (ARCA 2 blocks +
// ORCA 1, DOMAIN.md). Measured, never asserted.
//   bench_topology [dus=10] [slices=24]
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "reference_feed.hpp"
#include "bench_support.hpp"
#include "shoredaq/dataflow/partial_slice_merger.hpp"
#include "shoredaq/dataflow/slice_router.hpp"
#include "shoredaq/dataflow/timeslice_transport.hpp"
#include "shoredaq/dataflow/zmq_ingest.hpp"
#include "shoredaq/filters/data_filter.hpp"
#include "shoredaq/firmware/filtered_slice_fb.hpp"
#include "shoredaq/formats/fb_codec.hpp"

using namespace shoredaq;
using Clock = std::chrono::steady_clock;

namespace {

std::string endpoint(const std::string& name) {
  return "ipc://" + (std::filesystem::temp_directory_path() / ("bench-topology-" + std::to_string(::getpid()) + "-" + name))
                        .string();
}

// The CPUs this process may run on (a container's cpuset need not start at 0), as found at start.
const std::vector<int>& allowed_cpus() {
  static const std::vector<int> cpus = [] {
    std::vector<int> out;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) == 0) {
      for (int c = 0; c < CPU_SETSIZE; ++c) {
        if (CPU_ISSET(c, &set)) out.push_back(c);
      }
    }
    return out;
  }();
  return cpus;
}

// Restricts the calling thread, and every thread it creates afterwards, to the i-th allowed CPU
// (-1: all the allowed ones again). False when the kernel refused (the run is then not pinned).
bool pin_to_cpu(int i) {
  const auto& cpus = allowed_cpus();
  if (cpus.empty()) return false;
  cpu_set_t set;
  CPU_ZERO(&set);
  for (std::size_t k = 0; k < cpus.size(); ++k) {
    if (i < 0 || k == static_cast<std::size_t>(i) % cpus.size()) CPU_SET(cpus[k], &set);
  }
  return ::sched_setaffinity(0, sizeof set, &set) == 0;
}

// A filter process: never returns (killed by the parent when the run is over). `cpu` >= 0 holds the
// whole process (its filter thread and ZeroMQ's I/O thread) to that one CPU.
[[noreturn]] void filter_process(int dus, const std::string& in, const std::string& out, int cpu) {
  if (cpu >= 0 && !pin_to_cpu(cpu)) std::fprintf(stderr, "bench_topology: could not pin a filter process to CPU %d\n", cpu);
  const auto detector = bench::reference_detector(dus);
  const filters::DataFilter filter(*detector, filters::TriggerParameters{});
  zmq::context_t context(1);
  zmq::socket_t results(context, zmq::socket_type::push);
  results.set(zmq::sockopt::linger, 0);
  results.connect(out);
  flatbuffers::FlatBufferBuilder fbb(1 << 20);
  std::uint64_t sequence = 0;
  dataflow::BufferReceiver receiver(
      context, dataflow::TimesliceReceiverConfig{{in}, true, 8, 0, std::chrono::milliseconds(20), {}},
      [&](std::span<const std::uint8_t> bytes, const std::function<void()>& accepted) {
        auto decoded = dataflow::decode_timeslice_fb(bytes);
        if (!decoded) return decoded.error;
        accepted();
        firmware::FilteredSlice p;
        p.info = dataflow::SliceInfo::of(decoded.value.timeslice, sequence++);
        p.result = filter.process(decoded.value.timeslice);
        p.processed_unix_ns = dataflow::unix_now_ns();
        firmware::encode_filtered_slice_fb(p, fbb);
        results.send(zmq::const_buffer(fbb.GetBufferPointer(), fbb.GetSize()), zmq::send_flags::none);
        return dataflow::FbError::None;
      });
  receiver.start();
  for (;;) ::pause();
}

struct Run {
  unsigned processes = 0;
  bool pinned = false;
  double seconds = 0;
  std::uint64_t hits = 0;
  std::vector<double> latency_ms;
  long parent_rss_mb = 0, child_rss_mb = 0;
  double parent_cpu_s = 0;   // the sender and receiver's CPU during the run (the ingest and writer side)
  double filters_cpu_s = 0;  // the filter processes' CPU during the run
  std::uint64_t result_bytes = 0;
  double hits_per_s() const { return static_cast<double>(hits) / seconds; }
};

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
}

// CPU seconds (user + system) a child has used so far, from /proc/<pid>/stat.
double process_cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) return 0;
  std::istringstream fields(text.substr(close + 2));
  std::string f;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(f);  // utime, stime
  }
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double cpu_seconds(int who) {
  rusage ru{};
  ::getrusage(who, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + 1e-6 * static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

// `pinned`: filter process i runs on CPU i alone, so k processes get exactly k cores; at k = 1 the
// parent (sender and collector, the ingest and writer side of a farm) gets the other CPU, as if on
// another server, and at k = 2 it shares the two with the filters. Unpinned, the OS places every
// thread, and a single filter process also uses the second core for its ZeroMQ I/O thread.
Run run_with(unsigned k, bool pinned, int dus, const std::vector<dataflow::Timeslice>& slices,
             const std::vector<std::shared_ptr<const std::vector<std::uint8_t>>>& encoded) {
  Run r;
  r.processes = k;
  r.pinned = pinned;
  const int cpus = static_cast<int>(std::max<std::size_t>(1, allowed_cpus().size()));
  std::vector<std::string> inputs;
  const std::string collector = endpoint("results-" + std::to_string(k));
  std::vector<pid_t> children;
  for (unsigned i = 0; i < k; ++i) {
    inputs.push_back(endpoint("filter-" + std::to_string(k) + "-" + std::to_string(i)));
    const pid_t pid = ::fork();
    if (pid == 0) filter_process(dus, inputs.back(), collector, pinned ? static_cast<int>(i) % cpus : -1);
    children.push_back(pid);
  }
  // The parent's threads (ZeroMQ's, the collector's) inherit this when they are created below.
  if (pinned && k == 1 && cpus > 1 && !pin_to_cpu(1)) std::fprintf(stderr, "bench_topology: could not pin the sender\n");
  {
    zmq::context_t context(1);
    std::mutex mutex;
    std::map<std::uint64_t, Clock::time_point> sent_at;
    std::size_t received = 0;
    Clock::time_point last_result;
    dataflow::BufferReceiver results(
        context, dataflow::TimesliceReceiverConfig{{collector}, true, 64, 0, std::chrono::milliseconds(5), {}},
        [&](std::span<const std::uint8_t> bytes, const std::function<void()>& accepted) {
          auto p = firmware::decode_filtered_slice_fb(bytes);
          if (!p) return p.error;
          accepted();
          const auto now = Clock::now();
          std::lock_guard lock(mutex);
          const auto it = sent_at.find(dataflow::slice_index_of(p.value.info.header));
          if (it != sent_at.end()) r.latency_ms.push_back(std::chrono::duration<double, std::milli>(now - it->second).count());
          r.hits += p.value.result.counters.hits_in;
          r.result_bytes += bytes.size();
          ++received;
          last_result = now;
          return dataflow::FbError::None;
        });
    results.start();
    dataflow::SliceRouterConfig rc;
    rc.endpoints = inputs;
    rc.send_hwm = 8;
    rc.send_timeout = std::chrono::seconds(60);
    dataflow::SliceRouter router(context, rc);
    // Every filter process up and connected before the clock starts (each loads its detector).
    for (int i = 0; i < 6000 && router.poll_links() < k; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const double cpu0 = cpu_seconds(RUSAGE_SELF);
    double filters_cpu0 = 0;
    for (pid_t pid : children) filters_cpu0 += process_cpu_seconds(pid);
    const auto t0 = Clock::now();
    for (std::size_t i = 0; i < slices.size(); ++i) {
      {
        std::lock_guard lock(mutex);
        sent_at[dataflow::slice_index_of(slices[i].header)] = Clock::now();
      }
      router.send_shared(slices[i].header, encoded[i]);
    }
    for (;;) {
      {
        std::lock_guard lock(mutex);
        if (received >= slices.size()) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    r.seconds = std::chrono::duration<double>(last_result - t0).count();
    r.parent_cpu_s = cpu_seconds(RUSAGE_SELF) - cpu0;
    for (pid_t pid : children) r.filters_cpu_s += process_cpu_seconds(pid);
    r.filters_cpu_s -= filters_cpu0;
    results.stop();
  }
  pin_to_cpu(-1);
  for (pid_t pid : children) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  rusage ru{};
  ::getrusage(RUSAGE_CHILDREN, &ru);
  r.child_rss_mb = ru.ru_maxrss / 1024;
  r.parent_rss_mb = bench::peak_rss_mb();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const int dus = argc > 1 ? std::atoi(argv[1]) : 10;
  const int wanted = argc > 2 ? std::atoi(argv[2]) : 24;
  std::printf("bench_topology: %d DUs, %d slices, filter processes of one thread each\n", dus, wanted);
  // The reference feed, repeated with shifted slice times so every window is its own.
  std::vector<dataflow::Timeslice> slices;
  {
    const bench::ReferenceFeed feed = bench::make_reference_feed(dus);
    for (int i = 0; slices.size() < static_cast<std::size_t>(wanted); ++i) {
      dataflow::Timeslice s = feed.slices[static_cast<std::size_t>(i) % feed.slices.size()];
      s.header.utc_seconds += static_cast<std::uint32_t>(i);  // 1 s apart: distinct windows
      s.header.frame_index = static_cast<std::uint32_t>(i + 1);
      slices.push_back(std::move(s));
    }
  }
  std::uint64_t hits = 0;
  for (const auto& s : slices) {
    for (const auto& f : s.frames) hits += f.hit_count();
  }
  // Encoded once, before any clock: on a farm the ingest processes encode, on other servers.
  std::vector<std::shared_ptr<const std::vector<std::uint8_t>>> encoded;
  for (const auto& s : slices) encoded.push_back(std::make_shared<const std::vector<std::uint8_t>>(dataflow::encode_timeslice_fb(s)));

  // Baseline: the same slices through DataFilter in this process, one thread, no sockets.
  double baseline_hits_per_s = 0;
  {
    const auto detector = bench::reference_detector(dus);
    const filters::DataFilter filter(*detector, filters::TriggerParameters{});
    const auto t0 = Clock::now();
    std::uint64_t events = 0;
    for (const auto& s : slices) events += filter.process(s).events.size();
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    baseline_hits_per_s = static_cast<double>(hits) / seconds;
    std::printf("baseline (in process, 1 thread, no sockets): %.1f M hits/s, %llu events\n", baseline_hits_per_s / 1e6,
                static_cast<unsigned long long>(events));
  }

  // Unpinned (the OS places every thread) and pinned (one CPU per filter process), k = 1 then 2.
  std::vector<Run> runs;
  for (bool pinned : {false, true}) {
    for (unsigned k : {1u, 2u}) runs.push_back(run_with(k, pinned, dus, slices, encoded));
  }
  std::printf("\n%-9s %-9s %8s %10s %12s %14s %9s %9s %9s %11s %12s %14s %9s %9s\n", "filters", "cpus", "slices",
              "wall s", "M hits/s", "per process", "ratio", "p50 ms", "p99 ms", "sender cpu", "filters cpu",
              "M hits/cpu-s", "rss MB", "child MB");
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const Run& r = runs[i];
    const Run& one = runs[i - i % 2];  // k = 1 of the same placement
    std::printf("%-9u %-9s %8zu %10.2f %12.1f %14.1f %9.2f %9.1f %9.1f %10.0f%% %11.0f%% %14.1f %9ld %9ld\n", r.processes,
                r.pinned ? "1 each" : "any", slices.size(), r.seconds, r.hits_per_s() / 1e6,
                r.hits_per_s() / 1e6 / r.processes, r.hits_per_s() / one.hits_per_s(), percentile(r.latency_ms, 0.5),
                percentile(r.latency_ms, 0.99), 100.0 * r.parent_cpu_s / r.seconds, 100.0 * r.filters_cpu_s / r.seconds,
                static_cast<double>(r.hits) / r.filters_cpu_s / 1e6, r.parent_rss_mb, r.child_rss_mb);
  }
  std::printf("slice in: %.0f kB (FlatBuffers Timeslice); result out: %.0f kB (FilteredSlice)\n",
              static_cast<double>(encoded[0]->size()) / 1e3,
              static_cast<double>(runs[0].result_bytes) / static_cast<double>(slices.size()) / 1e3);
  const auto hits_per_cpu_s = [](const Run& r) { return static_cast<double>(r.hits) / r.filters_cpu_s; };
  std::printf("\nratio k=2 / k=1 (target >= 1.6): %.2f unpinned, %.2f with one CPU per filter process\n",
              runs[1].hits_per_s() / runs[0].hits_per_s(), runs[3].hits_per_s() / runs[2].hits_per_s());
  std::printf("transport + codec cost of one pinned filter process: %.0f %% of the in-process rate\n",
              100.0 * (1.0 - runs[2].hits_per_s() / baseline_hits_per_s));
  std::printf("filter processes' own scaling (hits per filter CPU-second, k=2 / k=1): %.2f unpinned, %.2f pinned; "
              "CPU the machine gave them at k=2: %.0f %% / %.0f %% of %d cores\n",
              hits_per_cpu_s(runs[1]) / hits_per_cpu_s(runs[0]), hits_per_cpu_s(runs[3]) / hits_per_cpu_s(runs[2]),
              100.0 * runs[1].filters_cpu_s / runs[1].seconds / std::thread::hardware_concurrency(),
              100.0 * runs[3].filters_cpu_s / runs[3].seconds / std::thread::hardware_concurrency(),
              static_cast<int>(std::thread::hardware_concurrency()));
  // A pinned filter process is what one core of a filter server does; its scaling at k = 2 is
  // what sharing the memory bus (and here the sender) costs.
  const double per_core = runs[2].hits_per_s();
  const double efficiency = runs[3].hits_per_s() / (2 * runs[2].hits_per_s());

  // Extrapolation. Hits of this feed per DU per second, scaled to a 115-DU block.
  const double hits_per_du_s = static_cast<double>(hits) / static_cast<double>(slices.size()) * 10.0 / dus;
  const double block_hits_per_s = hits_per_du_s * 115;
  const double usable = per_core * std::min(1.0, efficiency);
  const double block_cores = block_hits_per_s / usable;
  // A 16-core server: 2 cores for its own ingest/builder share, the OS and the network; 14 filter.
  const auto servers = [](double cores) { return static_cast<int>(std::ceil(cores / 14.0)); };
  std::printf("extrapolation: %.1f M hits/s per DU -> %.0f M hits/s per 115-DU block\n", hits_per_du_s / 1e6,
              block_hits_per_s / 1e6);
  std::printf("  filter cores per block at %.1f M hits/s per core x %.2f efficiency: %.0f -> %d servers of 16 cores "
              "(14 filtering)\n",
              per_core / 1e6, std::min(1.0, efficiency), block_cores, servers(block_cores));
  std::printf("  whole telescope (ARCA 2 blocks + ORCA 1 block): %.0f filter cores -> %d servers\n", 3 * block_cores,
              servers(3 * block_cores));
  return 0;
}
