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

namespace {

// Keeps the latest error; a sink of its own so it sees exactly what was logged (after the rate
// limiter and the level filter), whatever the main sink is.
class LastErrorSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::optional<LoggedError> last() {
    std::lock_guard lock(base_sink<std::mutex>::mutex_);
    return last_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    if (msg.level < spdlog::level::err) return;
    LoggedError e;
    e.message.assign(msg.payload.data(), msg.payload.size());
    const auto level = spdlog::level::to_string_view(msg.level);
    e.level.assign(level.data(), level.size());
    e.unix_ns = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(msg.time.time_since_epoch()).count());
    e.errors_total = (last_ ? last_->errors_total : 0) + 1;
    last_ = std::move(e);
  }
  void flush_() override {}

 private:
  std::optional<LoggedError> last_;
};

std::shared_ptr<LastErrorSink>& last_error_sink() {
  static auto sink = std::make_shared<LastErrorSink>();
  return sink;
}

// Hands warning-and-worse lines to whoever asked (forward_log_lines); the target is swapped under
// the sink's own mutex, so a line is never sent to a target being torn down.
class ForwardSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  void set_target(std::function<void(std::string_view)> target, spdlog::level::level_enum min_level) {
    std::lock_guard lock(base_sink<std::mutex>::mutex_);
    target_ = std::move(target);
    min_level_ = min_level;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    if (!target_ || msg.level < min_level_) return;
    const auto level = spdlog::level::to_string_view(msg.level);
    line_.assign(msg.logger_name.data(), msg.logger_name.size());
    line_ += ' ';
    line_.append(level.data(), level.size());
    line_ += ": ";
    line_.append(msg.payload.data(), msg.payload.size());
    target_(line_);
  }
  void flush_() override {}

 private:
  std::function<void(std::string_view)> target_;
  spdlog::level::level_enum min_level_ = spdlog::level::warn;
  std::string line_;
};

std::shared_ptr<ForwardSink>& forward_sink() {
  static auto sink = std::make_shared<ForwardSink>();
  return sink;
}

}  // namespace

void forward_log_lines(std::function<void(std::string_view line)> target, spdlog::level::level_enum min_level) {
  forward_sink()->set_target(std::move(target), min_level);
}

std::optional<LoggedError> last_logged_error() { return last_error_sink()->last(); }

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
  auto logger = std::make_shared<spdlog::logger>(
      options.identifier, spdlog::sinks_init_list{std::move(sink), last_error_sink(), forward_sink()});
  logger->set_level(options.level);
  // Errors must reach the journal/console before a crash or kill; info can be buffered.
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
  return logger;
}

}  // namespace shoredaq::firmware
