#include "shoredaq/firmware/notify.hpp"

#include <systemd/sd-daemon.h>

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <string>

namespace shoredaq::firmware {

bool SystemdNotifier::enabled() const {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  return socket != nullptr && socket[0] != '\0';
}

bool SystemdNotifier::notify(std::string_view assignments) {
  if (!enabled()) {
    return false;
  }
  const std::string message(assignments);
  // unset_environment = 0: child processes and later calls must still see NOTIFY_SOCKET.
  return sd_notify(0, message.c_str()) > 0;
}

bool SystemdNotifier::ready(std::string_view status_text) {
  if (status_text.empty()) {
    return notify("READY=1");
  }
  return notify("READY=1\nSTATUS=" + std::string(status_text));
}

bool SystemdNotifier::status(std::string_view text) {
  // A newline would start a new assignment; STATUS= is one line by protocol.
  std::string line(text);
  for (char& c : line) {
    if (c == '\n') {
      c = ' ';
    }
  }
  return notify("STATUS=" + line);
}

bool SystemdNotifier::stopping(std::string_view status_text) {
  if (status_text.empty()) {
    return notify("STOPPING=1");
  }
  return notify("STOPPING=1\nSTATUS=" + std::string(status_text));
}

bool SystemdNotifier::extend_timeout(std::chrono::microseconds extra) {
  return notify("EXTEND_TIMEOUT_USEC=" + std::to_string(extra.count()));
}

bool SystemdNotifier::watchdog_ping() { return notify("WATCHDOG=1"); }

std::optional<std::chrono::microseconds> SystemdNotifier::watchdog_interval() const {
  std::uint64_t usec = 0;
  // Checks WATCHDOG_USEC and that WATCHDOG_PID (if set) is us.
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    return std::chrono::microseconds(usec);
  }
  return std::nullopt;
}

std::function<bool()> progress_since_last_call(std::function<std::uint64_t()> read_counter) {
  auto last = std::make_shared<std::optional<std::uint64_t>>();
  return [read_counter = std::move(read_counter), last]() {
    const std::uint64_t now = read_counter();
    // The first call has nothing to compare with: count it as progress so start-up pings.
    const bool moved = !last->has_value() || now != **last;
    *last = now;
    return moved;
  };
}

Watchdog::Watchdog(SystemdNotifier& notifier, std::chrono::microseconds ping_period,
                   ProgressPredicate made_progress)
    : notifier_(notifier),
      period_(ping_period.count() > 0 ? ping_period : std::chrono::microseconds(1)),
      made_progress_(std::move(made_progress)) {}

std::optional<std::chrono::microseconds> Watchdog::ping_period_for(const SystemdNotifier& notifier) {
  auto interval = notifier.watchdog_interval();
  if (!interval) {
    return std::nullopt;
  }
  return *interval / 2;
}

Watchdog::~Watchdog() { stop(); }

std::string StallDetector::check(const std::vector<StageSample>& stages) {
  std::string stuck;
  for (const auto& now : stages) {
    for (const auto& before : previous_) {
      if (before.name == now.name && before.pending > 0 && now.pending > 0 && before.progress == now.progress) {
        stuck = now.name;
        break;
      }
    }
    if (!stuck.empty()) break;
  }
  previous_ = stages;
  return stuck;
}

void Watchdog::start() {
  std::lock_guard lock(mutex_);
  if (thread_.joinable()) {
    return;
  }
  stop_requested_ = false;
  thread_ = std::thread([this] { run(); });
}

void Watchdog::stop() {
  {
    std::lock_guard lock(mutex_);
    stop_requested_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) {
    thread_.join();
  }
}

void Watchdog::simulate_stalled_stage(bool stalled) { fault_stalled_.store(stalled); }

void Watchdog::run() {
  std::unique_lock lock(mutex_);
  auto next = std::chrono::steady_clock::now();
  while (!stop_requested_) {
    lock.unlock();
    // Always evaluate the predicate so its "since last call" state stays current, even while
    // the fault hook forces a stall.
    const bool progressed = made_progress_ ? made_progress_() : true;
    const bool healthy = progressed && !fault_stalled_.load();
    if (healthy) {
      if (withholding_.exchange(false)) {
        spdlog::info("watchdog: pipeline progresses again, resuming watchdog pings");
      }
      notifier_.watchdog_ping();
      pings_.fetch_add(1);
    } else if (!withholding_.exchange(true)) {
      // Logged once per stall, not once per check.
      spdlog::warn("watchdog: no pipeline progress in the last {} ms, withholding watchdog pings",
                   std::chrono::duration_cast<std::chrono::milliseconds>(period_).count());
    }
    checks_.fetch_add(1);
    lock.lock();
    next += period_;
    const auto now = std::chrono::steady_clock::now();
    if (next < now) {
      next = now;  // we fell behind (suspended?): do not burst pings to catch up
    }
    wake_.wait_until(lock, next, [this] { return stop_requested_; });
  }
}

}  // namespace shoredaq::firmware
