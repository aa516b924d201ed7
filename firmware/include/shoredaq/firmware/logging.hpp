#pragma once
// Logging for every shoredaq daemon: spdlog to journald under systemd (SYSLOG_IDENTIFIER set,
// spdlog levels mapped to syslog priorities), to the console otherwise; a per-cause rate
// limiter so a flood of bad datagrams cannot flood the log; and one way to word failures:
// "cannot <action> <object>: <cause>".

#include <spdlog/logger.h>
#include <spdlog/sinks/base_sink.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace shoredaq::firmware {

enum class LogTarget {
  automatic,  // journal when running under systemd, console otherwise
  journal,
  console,
};

struct LoggingOptions {
  std::string identifier = "shoredaq";  // SYSLOG_IDENTIFIER in the journal, logger name on the console
  spdlog::level::level_enum level = spdlog::level::info;
  LogTarget target = LogTarget::automatic;
};

// True when stderr is the journal stream systemd set up for us (JOURNAL_STREAM=<dev>:<inode>
// matches stderr), the documented way to know our output already lands in the journal.
bool stderr_is_journal();
// True when we run as a systemd unit (INVOCATION_ID set) or stderr is the journal.
bool running_under_systemd();

// syslog priority (LOG_DEBUG … LOG_CRIT) for an spdlog level.
int journal_priority(spdlog::level::level_enum level);
// "trace", "debug", "info", "warn"/"warning", "error", "critical", "off" → level.
std::optional<spdlog::level::level_enum> parse_log_level(std::string_view name);

// spdlog sink writing structured entries with sd_journal_send(3): MESSAGE, PRIORITY,
// SYSLOG_IDENTIFIER, SHOREDAQ_LOGGER (the spdlog logger name), CODE_* when known. A failed
// write is counted, never thrown (logging must not take the daemon down).
class JournalSink final : public spdlog::sinks::base_sink<std::mutex> {
public:
  explicit JournalSink(std::string identifier) : identifier_(std::move(identifier)) {}
  [[nodiscard]] std::uint64_t failed_writes() const { return failed_writes_.load(); }

protected:
  void sink_it_(const spdlog::details::log_msg& msg) override;
  void flush_() override {}

private:
  std::string identifier_;
  std::atomic<std::uint64_t> failed_writes_{0};
};

// Builds the logger for `options`, installs it as spdlog's default and returns it.
std::shared_ptr<spdlog::logger> setup_logging(const LoggingOptions& options);

// Per-cause rate limiter: at most `burst` messages per cause in each `window`; the rest are
// counted and reported with the next message of that cause that gets through. Thread-safe.
class LogRateLimiter {
public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  explicit LogRateLimiter(std::size_t burst = 5,
                          std::chrono::steady_clock::duration window = std::chrono::seconds(10),
                          Clock clock = {});

  struct Decision {
    bool log = false;
    std::uint64_t suppressed_before = 0;  // messages of this cause dropped since the last logged one
  };
  Decision admit(std::string_view cause);

  // Pending suppressed counts per cause (reset to zero), so a periodic task can log them even
  // when no further message of that cause arrives.
  std::vector<std::pair<std::string, std::uint64_t>> take_suppressed();

  // Causes tracked at most; beyond that, new causes share one "(other causes)" budget.
  static constexpr std::size_t max_causes = 1024;

private:
  struct CauseState {
    std::chrono::steady_clock::time_point window_start;
    std::size_t logged_in_window = 0;
    std::uint64_t suppressed = 0;
  };

  std::size_t burst_;
  std::chrono::steady_clock::duration window_;
  Clock clock_;
  std::mutex mutex_;
  std::map<std::string, CauseState, std::less<>> causes_;
};

// A logger front-end that applies a LogRateLimiter per cause:
//   RateLimitedLog log;  log.warn("bad-datagram", "dropped datagram from DOM {}: {}", dom, why);
// prints "... (suppressed 120 similar messages)" once messages get through again.
class RateLimitedLog {
public:
  // logger nullptr: spdlog's default logger at the time of each message.
  explicit RateLimitedLog(std::shared_ptr<spdlog::logger> logger = nullptr, std::size_t burst = 5,
                          std::chrono::steady_clock::duration window = std::chrono::seconds(10),
                          LogRateLimiter::Clock clock = {});

  template <typename... Args>
  void log(spdlog::level::level_enum level, std::string_view cause, fmt::format_string<Args...> format,
           Args&&... args) {
    if (!target()->should_log(level)) {
      return;
    }
    const auto decision = limiter_.admit(cause);
    if (decision.log) {
      emit(level, fmt::format(format, std::forward<Args>(args)...), decision.suppressed_before);
    }
  }
  template <typename... Args>
  void warn(std::string_view cause, fmt::format_string<Args...> format, Args&&... args) {
    log(spdlog::level::warn, cause, format, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void error(std::string_view cause, fmt::format_string<Args...> format, Args&&... args) {
    log(spdlog::level::err, cause, format, std::forward<Args>(args)...);
  }

  // Logs "<cause>: suppressed N similar messages" for every cause with pending suppressions.
  void flush_suppressed(spdlog::level::level_enum level = spdlog::level::warn);

private:
  spdlog::logger* target() const;
  void emit(spdlog::level::level_enum level, std::string message, std::uint64_t suppressed);

  std::shared_ptr<spdlog::logger> logger_;
  LogRateLimiter limiter_;
};

// "cannot <action>[ <object>]: <cause>", e.g.
//   describe_failure("open store", "/var/lib/shoredaq", std::error_code(ENOSPC, std::generic_category()))
//   → "cannot open store /var/lib/shoredaq: No space left on device"
std::string describe_failure(std::string_view action, std::string_view object, std::string_view cause);
std::string describe_failure(std::string_view action, std::string_view object, const std::error_code& cause);
// Same, with the cause taken from an errno value.
std::string describe_errno(std::string_view action, std::string_view object, int errno_value);

}  // namespace shoredaq::firmware
