#pragma once
// systemd service notification (sd_notify) and a progress-gated watchdog.
//
// Under systemd (Type=notify) the daemon tells the manager when it is ready, what it is doing,
// when it stops, and proves it is alive with WATCHDOG=1 pings. Without NOTIFY_SOCKET in the
// environment every call is a cheap no-op, so the daemon calls these unconditionally.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace shoredaq::firmware {

// Thin, thread-safe wrapper over sd_notify(3). Every method returns true when a message was
// delivered to the service manager, false when systemd is not listening (or delivery failed).
class SystemdNotifier {
public:
  SystemdNotifier() = default;

  // True when NOTIFY_SOCKET is set, i.e. a service manager waits for our notifications.
  [[nodiscard]] bool enabled() const;

  // READY=1: send only after sockets are bound, the store is open and the config is valid.
  bool ready(std::string_view status_text = {});
  // STATUS=<text>: one line shown by `systemctl status` (state, run number, rates).
  bool status(std::string_view text);
  // STOPPING=1: the drain started.
  bool stopping(std::string_view status_text = {});
  // EXTEND_TIMEOUT_USEC=<n>: ask for n more microseconds (during start-up or a long drain).
  bool extend_timeout(std::chrono::microseconds extra);
  // WATCHDOG=1: one keep-alive ping. Normally sent by Watchdog, not directly.
  bool watchdog_ping();
  // Any raw newline-separated assignment list, e.g. "RELOADING=1".
  bool notify(std::string_view assignments);

  // The watchdog interval systemd expects pings within (WatchdogSec=), or nullopt when the
  // watchdog is not enabled for this process (sd_watchdog_enabled(3)).
  [[nodiscard]] std::optional<std::chrono::microseconds> watchdog_interval() const;
};

// Turns a monotonically increasing progress counter (e.g. slices committed + slices dropped)
// into the "progress since last call" predicate Watchdog wants.
std::function<bool()> progress_since_last_call(std::function<std::uint64_t()> read_counter);

// Decides whether a pipeline is stuck from periodic samples of its stages. A stage is stuck
// when it held work (pending > 0) at two consecutive checks and its progress count did not move
// in between. An idle stage (nothing pending) is never stuck, so a Running node without input
// keeps the watchdog fed as long as its threads stay responsive (checked separately, by the
// threads' wake-up times). Work queued in front of a stage counts as that stage's pending work,
// so a stage that stops taking input is caught even though upstream stages still advance.
struct StageSample {
  std::string name;
  std::uint64_t progress = 0;  // monotonic: items taken in + passed on + dropped
  std::uint64_t pending = 0;   // items waiting for or held by the stage
};

class StallDetector {
public:
  // Returns the name of a stuck stage, or "" when every stage is idle or advanced since the
  // previous call. The first call never reports a stall (there is nothing to compare with).
  std::string check(const std::vector<StageSample>& stages);
  void reset() { previous_.clear(); }

private:
  std::vector<StageSample> previous_;
};

// Pings the systemd watchdog at half the configured interval, but only while `made_progress`
// says the pipeline moved since the previous check: a stuck stage stops the pings and systemd
// restarts the service (Restart=on-failure) once WatchdogSec passes.
class Watchdog {
public:
  using ProgressPredicate = std::function<bool()>;

  // `ping_period` is how often to check and ping; use half of notifier.watchdog_interval().
  Watchdog(SystemdNotifier& notifier, std::chrono::microseconds ping_period,
           ProgressPredicate made_progress);
  // Convenience: period = half the systemd interval; nullopt if the watchdog is not enabled.
  static std::optional<std::chrono::microseconds> ping_period_for(const SystemdNotifier& notifier);

  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void start();
  void stop();  // returns within one check of the worker thread (it wakes on stop)

  // Fault hook for tests and drills: while set, every check counts as "no progress", exactly
  // as if a pipeline stage were stuck.
  void simulate_stalled_stage(bool stalled);

  [[nodiscard]] std::uint64_t checks() const { return checks_.load(); }
  [[nodiscard]] std::uint64_t pings_sent() const { return pings_.load(); }
  // True after a check found no progress (pings withheld) until progress resumes.
  [[nodiscard]] bool withholding_pings() const { return withholding_.load(); }

private:
  void run();

  SystemdNotifier& notifier_;
  std::chrono::microseconds period_;
  ProgressPredicate made_progress_;
  std::atomic<bool> fault_stalled_{false};
  std::atomic<bool> withholding_{false};
  std::atomic<std::uint64_t> checks_{0};
  std::atomic<std::uint64_t> pings_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_requested_ = false;
  std::thread thread_;
};

}  // namespace shoredaq::firmware
