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

#include "shoredaq/formats/failure_text.hpp"

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

// Builds the logger for `options`, installs it as spdlog's default and returns it. The logger
// also remembers its latest error (see last_logged_error).
std::shared_ptr<spdlog::logger> setup_logging(const LoggingOptions& options);

// The latest message at level error or above that the logger of setup_logging wrote, for
// /status: a shifter sees what went wrong last without searching the journal.
struct LoggedError {
  std::string message;
  std::string level;            // "error" or "critical"
  std::uint64_t unix_ns = 0;    // when it was logged
  std::uint64_t errors_total = 0;  // error-or-worse messages written since start-up
};
std::optional<LoggedError> last_logged_error();

// Log lines at `min_level` or worse also go to `target` (the ControlHost dispatcher's MSG stream),
// formatted "<logger> <level>: <message>", after the rate limiter and the level filter, from the
// thread that logged. An empty function stops it. `target` must not block and must not log itself.
// Only for the logger of setup_logging.
void forward_log_lines(std::function<void(std::string_view line)> target,
                       spdlog::level::level_enum min_level = spdlog::level::warn);

// Rate-limited logging per cause: use shoredaq::dataflow::RateLimitedLog
// (shoredaq/dataflow/rate_limited_log.hpp), shared by the data path and the daemon.

// "cannot <action>[ <object>]: <cause>" (shoredaq/formats/failure_text.hpp; shared with the
// data path).
using dataflow::describe_errno;
using dataflow::describe_failure;

}  // namespace shoredaq::firmware
