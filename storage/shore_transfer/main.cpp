// shore-transfer: the Tier-0 transfer agent. Watches the node's spool/ready/, copies each sealed
// part to the computing centre over XRootD, verifies the server's adler32 against the manifest
// and only then moves the part into spool/done/ (the logic: shoredaq/storage/tier0_transfer.hpp).
// Its state is in the spool itself (ready/<file>.transfer.json, spool/transfer.status.json).

#include <signal.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "shoredaq/storage/tier0_transfer.hpp"
#include "shoredaq/version.hpp"
#include "transfer_options.hpp"
#include "xrootd_remote.hpp"

namespace {

using namespace shoredaq;
using namespace std::chrono_literals;

// Stop requests and work notices shared by the main loop and the workers.
struct Coordination {
  std::mutex mutex;
  std::condition_variable wake;
  std::atomic<bool> stop{false};
};

// The agent's clock: real time; a wait (bandwidth pacing) ends early on a stop request.
class RealClock final : public storage::TransferClock {
 public:
  explicit RealClock(Coordination& c) : c_(c) {}
  std::chrono::steady_clock::time_point now() override { return std::chrono::steady_clock::now(); }
  std::chrono::system_clock::time_point utc_now() override { return std::chrono::system_clock::now(); }
  bool sleep_until(std::chrono::steady_clock::time_point when) override {
    std::unique_lock lock(c_.mutex);
    c_.wake.wait_until(lock, when, [this] { return c_.stop.load(); });
    return !c_.stop.load();
  }

 private:
  Coordination& c_;
};

void worker(storage::Tier0TransferAgent& agent, const transfer::TransferOptions& options,
            storage::BandwidthLimiter& limiter, Coordination& c, bool once) {
  const auto remote = transfer::make_xrootd_remote(options.endpoint, options.timeouts());
  while (!c.stop.load()) {
    const auto file = agent.claim_next();
    if (!file) {
      if (once) return;
      std::unique_lock lock(c.mutex);
      c.wake.wait_for(lock, std::chrono::milliseconds{options.poll_interval_ms}, [&c] { return c.stop.load(); });
      continue;
    }
    agent.transfer(*file, *remote, limiter, &c.stop);
    agent.write_status_file();
  }
}

int print_status_file(const std::filesystem::path& spool_dir) {
  std::ifstream in(spool_dir / "transfer.status.json");
  if (!in) {
    std::cerr << "shore-transfer: no status in " << (spool_dir / "transfer.status.json").string()
              << " (the agent has not run on this spool yet)\n";
    return 1;
  }
  std::cout << in.rdbuf();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using Options = transfer::TransferOptions;
  transfer::TransferOptions cli;
  std::string config_file;
  bool once = false;
  bool show_status = false;
  CLI::App app{
      "shore-transfer: the Tier-0 transfer agent of a shoredaq node. Copies every sealed run file in\n"
      "<spool>/ready/ to an XRootD endpoint (root://), verifies the server's adler32 and size against the\n"
      "file's manifest, and only then moves it (with its manifest) into <spool>/done/. Failures are retried\n"
      "with exponential backoff; state lives in the spool (ready/<file>.transfer.json, transfer.status.json),\n"
      "so a restart resumes. Retention prunes done/ by age and size; nothing else is ever deleted.\n"
      "Settings come from --config (TOML, see shore-transfer.example.toml); options given here win."};
  app.set_version_flag("--version", std::string(shoredaq::version()));
  // Every option also sets the TOML key of the same meaning; `apply` copies the given ones over
  // what the file said.
  std::vector<std::pair<CLI::Option*, std::function<void(transfer::TransferOptions&)>>> overrides;
  auto option = [&](const std::string& name, auto member, const std::string& help) {
    CLI::Option* opt = app.add_option(name, cli.*member, help);
    overrides.emplace_back(opt, [member, &cli](transfer::TransferOptions& o) { o.*member = cli.*member; });
    return opt;
  };
  app.add_option("--config", config_file, "TOML settings file ([transfer], [retention]); unknown keys are refused")
      ->check(CLI::ExistingFile);
  option("--spool", &Options::spool_dir, "the node's spool directory (holds ready/ and done/) [transfer.spool_dir]");
  option("--endpoint", &Options::endpoint, "XRootD endpoint, root://host[:port] (required) [transfer.endpoint]");
  option("--path-template", &Options::path_template,
         "remote path of a file; {detector} {run} (8 digits), {run_thousands} (run/1000), {file}, {scope}, "
         "{data_type} [transfer.path_template]");
  option("--parallel", &Options::parallel, "files sent at once, 1..64 [transfer.parallel]")->check(CLI::Range(1, 64));
  option("--bandwidth-limit-kib-s", &Options::bandwidth_limit_kib_s,
         "cap on all transfers together in KiB/s, 0 = none [transfer.bandwidth_limit_kib_s]");
  option("--retry-initial-ms", &Options::retry_initial_ms,
         "wait after a file's first failure; doubled after each further one [transfer.retry_initial_ms]");
  option("--retry-max-ms", &Options::retry_max_ms, "cap of the wait between attempts [transfer.retry_max_ms]");
  option("--alarm-after-failures", &Options::alarm_after_failures,
         "failed attempts in a row at one file that raise the alarm [transfer.alarm_after_failures]");
  option("--poll-interval-ms", &Options::poll_interval_ms,
         "how often ready/ is scanned and the status file written [transfer.poll_interval_ms]");
  option("--connect-timeout-s", &Options::connect_timeout_s, "a server silent this long counts as down [transfer.connect_timeout_s]");
  option("--request-timeout-s", &Options::request_timeout_s, "time allowed for one request [transfer.request_timeout_s]");
  option("--chunk-kib", &Options::chunk_kib, "bytes per write request, KiB [transfer.chunk_kib]");
  option("--retention-max-age-days", &Options::retention_max_age_days,
         "prune files from done/ this many days after verification, 0 = never [retention.max_age_days]");
  option("--retention-max-gib", &Options::retention_max_gib,
         "prune the oldest files of done/ beyond this many GiB, 0 = no limit [retention.max_gib]");
  option("--log-level", &Options::log_level, "trace, debug, info, warn, error [transfer.log_level]");
  app.add_flag("--once", once,
               "one attempt at every file waiting now, then exit: 0 when ready/ is empty, 1 when files remain");
  app.add_flag("--status", show_status, "print <spool>/transfer.status.json (what the running agent wrote) and exit");
  CLI11_PARSE(app, argc, argv);

  transfer::TransferOptions options;
  try {
    if (!config_file.empty()) transfer::load_options_file(config_file, options);
    for (const auto& [opt, apply] : overrides) {
      if (opt->count() > 0) apply(options);
    }
    if (show_status) return print_status_file(options.spool_dir);
    transfer::check_options(options);
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 2;
  }
  // Logs to stderr (the journal under systemd); stdout is for --status.
  spdlog::set_default_logger(spdlog::stderr_color_mt("shore-transfer"));
  spdlog::set_level(spdlog::level::from_str(options.log_level));

  // Signals are taken by the main loop only (sigtimedwait); every thread, XRootD's included,
  // inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  transfer::configure_xrootd_client(options.timeouts());
  Coordination coordination;
  RealClock clock(coordination);
  std::optional<storage::Tier0TransferAgent> agent;
  try {
    agent.emplace(options.agent_config(), clock);
  } catch (const std::exception& e) {
    spdlog::error("shore-transfer: {}", e.what());
    return 2;
  }
  const std::uint64_t limit_bytes_s = options.bandwidth_limit_kib_s << 10;
  storage::BandwidthLimiter limiter(limit_bytes_s, std::max<std::uint64_t>(limit_bytes_s / 10, 16 << 10));
  spdlog::info("shore-transfer {}: {} -> {}/{} ({} in parallel, bandwidth limit {})", shoredaq::version(),
               options.spool_dir.string(), options.endpoint, options.path_template, options.parallel,
               limit_bytes_s == 0 ? std::string("none") : std::to_string(options.bandwidth_limit_kib_s) + " KiB/s");

  agent->scan();
  agent->write_status_file();
  std::vector<std::thread> workers;
  for (unsigned i = 0; i < options.parallel; ++i) {
    workers.emplace_back(worker, std::ref(*agent), std::cref(options), std::ref(limiter), std::ref(coordination), once);
  }

  const auto retention_every = std::chrono::seconds{60};
  auto next_retention = std::chrono::steady_clock::now();
  int exit_code = 0;
  if (once) {
    for (auto& w : workers) w.join();
    workers.clear();
    agent->prune_done();
    exit_code = agent->status().files_waiting == 0 ? 0 : 1;
  } else {
    const auto poll = std::chrono::milliseconds{options.poll_interval_ms};
    const timespec wait{static_cast<time_t>(poll.count() / 1000), static_cast<long>((poll.count() % 1000) * 1'000'000)};
    for (;;) {
      const int sig = sigtimedwait(&signals, nullptr, &wait);
      if (sig == SIGINT || sig == SIGTERM) {
        spdlog::info("shore-transfer: signal {}, stopping (an upload in progress is abandoned and retried at the next start)",
                     sig);
        break;
      }
      agent->scan();
      if (std::chrono::steady_clock::now() >= next_retention) {
        agent->prune_done();
        next_retention = std::chrono::steady_clock::now() + retention_every;
      }
      agent->write_status_file();
      coordination.wake.notify_all();
    }
  }
  {
    const std::lock_guard lock(coordination.mutex);
    coordination.stop = true;
  }
  coordination.wake.notify_all();
  for (auto& w : workers) w.join();
  agent->write_status_file();
  const auto status = agent->status();
  spdlog::info("shore-transfer: stopped; {} file(s) transferred ({} bytes), {} waiting", status.counters.files_transferred,
               status.counters.bytes_transferred, status.files_waiting);
  return exit_code;
}
