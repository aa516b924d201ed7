#include "shoredaq/firmware/logging.hpp"

#ifndef SD_JOURNAL_SUPPRESS_LOCATION
#define SD_JOURNAL_SUPPRESS_LOCATION  // we pass the caller's location, not this file's
#endif
#include <systemd/sd-journal.h>
#include <syslog.h>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>

namespace shoredaq::firmware {

bool stderr_is_journal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (stream == nullptr) {
    return false;
  }
  unsigned long long device = 0;
  unsigned long long inode = 0;
  if (std::sscanf(stream, "%llu:%llu", &device, &inode) != 2) {
    return false;
  }
  struct stat st {};
  if (::fstat(STDERR_FILENO, &st) != 0) {
    return false;
  }
  // If stderr was redirected (e.g. `shoredaq 2>file` from a unit's shell), it no longer matches.
  return static_cast<unsigned long long>(st.st_dev) == device && static_cast<unsigned long long>(st.st_ino) == inode;
}

bool running_under_systemd() {
  const char* invocation = std::getenv("INVOCATION_ID");
  return (invocation != nullptr && invocation[0] != '\0') || stderr_is_journal();
}

int journal_priority(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug: return LOG_DEBUG;
    case spdlog::level::info: return LOG_INFO;
    case spdlog::level::warn: return LOG_WARNING;
    case spdlog::level::err: return LOG_ERR;
    case spdlog::level::critical: return LOG_CRIT;
    default: return LOG_INFO;
  }
}

std::optional<spdlog::level::level_enum> parse_log_level(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (lower == "trace") return spdlog::level::trace;
  if (lower == "debug") return spdlog::level::debug;
  if (lower == "info") return spdlog::level::info;
  if (lower == "warn" || lower == "warning") return spdlog::level::warn;
  if (lower == "error" || lower == "err") return spdlog::level::err;
  if (lower == "critical") return spdlog::level::critical;
  if (lower == "off") return spdlog::level::off;
  return std::nullopt;
}

void JournalSink::sink_it_(const spdlog::details::log_msg& msg) {
  // The journal timestamps and tags entries itself; send the bare message.
  const auto& payload = msg.payload;
  const int length = static_cast<int>(std::min<std::size_t>(payload.size(), 1u << 20));
  const int logger_length = static_cast<int>(msg.logger_name.size());
  int result = 0;
  if (msg.source.empty()) {
    result = sd_journal_send("MESSAGE=%.*s", length, payload.data(), "PRIORITY=%d", journal_priority(msg.level),
                             "SYSLOG_IDENTIFIER=%s", identifier_.c_str(), "SHOREDAQ_LOGGER=%.*s", logger_length,
                             msg.logger_name.data(), nullptr);
  } else {
    result = sd_journal_send("MESSAGE=%.*s", length, payload.data(), "PRIORITY=%d", journal_priority(msg.level),
                             "SYSLOG_IDENTIFIER=%s", identifier_.c_str(), "SHOREDAQ_LOGGER=%.*s", logger_length,
                             msg.logger_name.data(), "CODE_FILE=%s", msg.source.filename, "CODE_LINE=%d",
                             msg.source.line, "CODE_FUNC=%s", msg.source.funcname, nullptr);
  }
  if (result < 0) {
    failed_writes_.fetch_add(1);
  }
}

std::shared_ptr<spdlog::logger> setup_logging(const LoggingOptions& options) {
  bool journal = options.target == LogTarget::journal;
  if (options.target == LogTarget::automatic) {
    journal = running_under_systemd();
  }
  std::shared_ptr<spdlog::sinks::sink> sink;
  if (journal) {
    sink = std::make_shared<JournalSink>(options.identifier);
  } else {
    auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    console->set_pattern("%Y-%m-%d %H:%M:%S.%e %n[%P] %^%l%$: %v");
    sink = console;
  }
  auto logger = std::make_shared<spdlog::logger>(options.identifier, std::move(sink));
  logger->set_level(options.level);
  // Errors must reach the journal/console before a crash or kill; info can be buffered.
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
  return logger;
}

LogRateLimiter::LogRateLimiter(std::size_t burst, std::chrono::steady_clock::duration window, Clock clock)
    : burst_(burst), window_(window), clock_(clock ? std::move(clock) : Clock([] {
        return std::chrono::steady_clock::now();
      })) {}

LogRateLimiter::Decision LogRateLimiter::admit(std::string_view cause) {
  const auto now = clock_();
  std::lock_guard lock(mutex_);
  auto it = causes_.find(cause);
  if (it == causes_.end()) {
    if (causes_.size() >= max_causes) {
      // Forget quiet causes; if still full, the caller invents causes per message (a bug) and
      // those share one budget instead of growing memory without bound.
      std::erase_if(causes_, [&](const auto& entry) {
        return entry.second.suppressed == 0 && now - entry.second.window_start >= window_;
      });
    }
    if (causes_.size() >= max_causes) {
      cause = "(other causes)";
      it = causes_.find(cause);
    }
    if (it == causes_.end()) {
      it = causes_.emplace(std::string(cause), CauseState{now, 0, 0}).first;
    }
  }
  CauseState& state = it->second;
  if (now - state.window_start >= window_) {
    state.window_start = now;
    state.logged_in_window = 0;
  }
  if (state.logged_in_window < burst_) {
    ++state.logged_in_window;
    Decision decision{true, state.suppressed};
    state.suppressed = 0;
    return decision;
  }
  ++state.suppressed;
  return Decision{false, 0};
}

std::vector<std::pair<std::string, std::uint64_t>> LogRateLimiter::take_suppressed() {
  std::lock_guard lock(mutex_);
  std::vector<std::pair<std::string, std::uint64_t>> pending;
  for (auto& [cause, state] : causes_) {
    if (state.suppressed > 0) {
      pending.emplace_back(cause, state.suppressed);
      state.suppressed = 0;
    }
  }
  return pending;
}

RateLimitedLog::RateLimitedLog(std::shared_ptr<spdlog::logger> logger, std::size_t burst,
                               std::chrono::steady_clock::duration window, LogRateLimiter::Clock clock)
    : logger_(std::move(logger)), limiter_(burst, window, std::move(clock)) {}

spdlog::logger* RateLimitedLog::target() const {
  return logger_ ? logger_.get() : spdlog::default_logger_raw();
}

void RateLimitedLog::emit(spdlog::level::level_enum level, std::string message, std::uint64_t suppressed) {
  if (suppressed > 0) {
    target()->log(level, "{} (suppressed {} similar message{})", message, suppressed, suppressed == 1 ? "" : "s");
  } else {
    target()->log(level, "{}", message);
  }
}

void RateLimitedLog::flush_suppressed(spdlog::level::level_enum level) {
  for (const auto& [cause, count] : limiter_.take_suppressed()) {
    target()->log(level, "{}: suppressed {} similar message{}", cause, count, count == 1 ? "" : "s");
  }
}

std::string describe_failure(std::string_view action, std::string_view object, std::string_view cause) {
  std::string text = "cannot ";
  text += action;
  if (!object.empty()) {
    text += ' ';
    text += object;
  }
  text += ": ";
  text += cause.empty() ? std::string_view("unknown error") : cause;
  return text;
}

std::string describe_failure(std::string_view action, std::string_view object, const std::error_code& cause) {
  return describe_failure(action, object, cause.message());
}

std::string describe_errno(std::string_view action, std::string_view object, int errno_value) {
  return describe_failure(action, object, std::error_code(errno_value, std::generic_category()));
}

}  // namespace shoredaq::firmware
