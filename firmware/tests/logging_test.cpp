#include "shoredaq/firmware/logging.hpp"
#include "shoredaq/dataflow/rate_limited_log.hpp"

#include <gtest/gtest.h>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <sstream>
#include <string>

using namespace std::chrono_literals;
using shoredaq::dataflow::RateLimitedLog;

namespace {

struct CapturedLogger {
  std::ostringstream out;
  std::shared_ptr<spdlog::logger> logger;
  CapturedLogger() {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
    sink->set_pattern("%l|%v");
    logger = std::make_shared<spdlog::logger>("test", sink);
    logger->set_level(spdlog::level::trace);
  }
  std::vector<std::string> lines() const {
    std::vector<std::string> result;
    std::istringstream in(out.str());
    for (std::string line; std::getline(in, line);) result.push_back(line);
    return result;
  }
};

}  // namespace

// The daemon uses the data path's limiter (no copy of its own); what firmware relies on:
TEST(RateLimitedLog, AppendsSuppressedCountWhenMessagesGetThroughAgain) {
  CapturedLogger captured;
  RateLimitedLog log(captured.logger, 5s, 2);
  for (int i = 0; i < 10; ++i) {
    log.log_at(1, spdlog::level::warn, "bad-datagram", "dropped datagram {} from DOM {}: {}", i, 808447031, "truncated");
  }
  const std::uint64_t later = 1 + 5'000'000'000ull;
  log.log_at(later, spdlog::level::err, "bad-datagram", "dropped datagram {}", 10);
  log.log_at(later, spdlog::level::warn, "other", "single {}", 1);
  const auto lines = captured.lines();
  ASSERT_EQ(lines.size(), 4u) << captured.out.str();
  EXPECT_EQ(lines[0], "warning|dropped datagram 0 from DOM 808447031: truncated");
  EXPECT_EQ(lines[1], "warning|dropped datagram 1 from DOM 808447031: truncated");
  EXPECT_EQ(lines[2], "error|dropped datagram 10 (suppressed 8 similar messages)");
  EXPECT_EQ(lines[3], "warning|single 1");
  EXPECT_EQ(log.suppressed_total(), 8u);
}

TEST(RateLimitedLog, BoundsTheNumberOfCauses) {
  RateLimitedLog log(nullptr, 1s, 1);
  constexpr std::size_t kCauses = 1024;
  for (std::size_t i = 0; i < kCauses; ++i) EXPECT_TRUE(log.allow("cause-" + std::to_string(i), 10).emit);
  // Table full, nothing quiet yet: new causes share one budget.
  EXPECT_TRUE(log.allow("new-a", 10).emit);
  EXPECT_FALSE(log.allow("new-b", 10).emit);
  // After the window, quiet causes are forgotten and new ones get their own budget again.
  const std::uint64_t later = 10 + 2'000'000'000ull;
  EXPECT_TRUE(log.allow("new-c", later).emit);
  EXPECT_TRUE(log.allow("new-d", later).emit);
}

TEST(DescribeFailure, NamesActionObjectAndCause) {
  using shoredaq::firmware::describe_errno;
  using shoredaq::firmware::describe_failure;
  EXPECT_EQ(describe_errno("open store", "/var/lib/shoredaq", ENOSPC),
            "cannot open store /var/lib/shoredaq: No space left on device");
  EXPECT_EQ(describe_failure("bind control socket", "ipc:///run/shoredaq/control",
                             std::error_code(EADDRINUSE, std::generic_category())),
            "cannot bind control socket ipc:///run/shoredaq/control: Address already in use");
  EXPECT_EQ(describe_failure("start run", "", "state is Running"), "cannot start run: state is Running");
  EXPECT_EQ(describe_failure("seal run file", "x.daq", ""), "cannot seal run file x.daq: unknown error");
}

TEST(Logging, PriorityMappingAndLevelNames) {
  using shoredaq::firmware::journal_priority;
  using shoredaq::firmware::parse_log_level;
  EXPECT_EQ(journal_priority(spdlog::level::trace), LOG_DEBUG);
  EXPECT_EQ(journal_priority(spdlog::level::debug), LOG_DEBUG);
  EXPECT_EQ(journal_priority(spdlog::level::info), LOG_INFO);
  EXPECT_EQ(journal_priority(spdlog::level::warn), LOG_WARNING);
  EXPECT_EQ(journal_priority(spdlog::level::err), LOG_ERR);
  EXPECT_EQ(journal_priority(spdlog::level::critical), LOG_CRIT);
  EXPECT_EQ(parse_log_level("WARNING"), spdlog::level::warn);
  EXPECT_EQ(parse_log_level("error"), spdlog::level::err);
  EXPECT_FALSE(parse_log_level("loud").has_value());
}

TEST(Logging, DetectsJournalStreamOnStderr) {
  using shoredaq::firmware::running_under_systemd;
  using shoredaq::firmware::stderr_is_journal;
  ::unsetenv("JOURNAL_STREAM");
  ::unsetenv("INVOCATION_ID");
  EXPECT_FALSE(stderr_is_journal());
  EXPECT_FALSE(running_under_systemd());

  struct stat st {};
  ASSERT_EQ(::fstat(STDERR_FILENO, &st), 0);
  const std::string matching = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  ::setenv("JOURNAL_STREAM", matching.c_str(), 1);
  EXPECT_TRUE(stderr_is_journal());
  EXPECT_TRUE(running_under_systemd());

  const std::string other = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1);
  ::setenv("JOURNAL_STREAM", other.c_str(), 1);  // stderr was redirected elsewhere
  EXPECT_FALSE(stderr_is_journal());
  ::setenv("JOURNAL_STREAM", "garbage", 1);
  EXPECT_FALSE(stderr_is_journal());
  ::unsetenv("JOURNAL_STREAM");

  ::setenv("INVOCATION_ID", "0123456789abcdef0123456789abcdef", 1);
  EXPECT_TRUE(running_under_systemd());
  ::unsetenv("INVOCATION_ID");
}

TEST(Logging, SetupPicksConsoleOrJournalAndNeverThrows) {
  using shoredaq::firmware::LoggingOptions;
  using shoredaq::firmware::LogTarget;
  LoggingOptions options;
  options.identifier = "shoredaq-test";
  options.target = LogTarget::console;
  options.level = spdlog::level::debug;
  auto console = shoredaq::firmware::setup_logging(options);
  EXPECT_EQ(spdlog::default_logger().get(), console.get());
  EXPECT_EQ(console->level(), spdlog::level::debug);
  EXPECT_EQ(console->name(), "shoredaq-test");
  ASSERT_EQ(console->sinks().size(), 3u);  // the output, the last-error memory, the MSG forwarder
  EXPECT_EQ(dynamic_cast<shoredaq::firmware::JournalSink*>(console->sinks()[0].get()), nullptr);

  options.target = LogTarget::journal;
  auto journal = shoredaq::firmware::setup_logging(options);
  auto* sink = dynamic_cast<shoredaq::firmware::JournalSink*>(journal->sinks()[0].get());
  ASSERT_NE(sink, nullptr);
  // Whether or not a journald listens in this environment, logging must not throw.
  EXPECT_NO_THROW(journal->error("test entry from logging_test"));
  EXPECT_NO_THROW(SPDLOG_LOGGER_WARN(journal, "with source location"));
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("restored"));
}

TEST(Logging, RemembersTheLatestErrorForStatus) {
  shoredaq::firmware::LoggingOptions options;
  options.identifier = "shoredaq-test";
  options.target = shoredaq::firmware::LogTarget::console;
  auto logger = shoredaq::firmware::setup_logging(options);
  const auto before = shoredaq::firmware::last_logged_error();
  const std::uint64_t errors_before = before ? before->errors_total : 0;
  logger->warn("only a warning");
  logger->error("cannot open store {}: {}", "/x", "No space left on device");
  logger->info("later info");
  auto last = shoredaq::firmware::last_logged_error();
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->message, "cannot open store /x: No space left on device");
  EXPECT_EQ(last->level, "error");
  EXPECT_EQ(last->errors_total, errors_before + 1);
  EXPECT_GT(last->unix_ns, 1'600'000'000'000'000'000ull);
  logger->critical("worse");
  last = shoredaq::firmware::last_logged_error();
  EXPECT_EQ(last->message, "worse");
  EXPECT_EQ(last->level, "critical");
  EXPECT_EQ(last->errors_total, errors_before + 2);
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("restored"));
}

// The node's warning-and-worse lines reach the ControlHost dispatcher's MSG stream.
TEST(Logging, WarningsAndWorseAreForwardedUntilTheForwarderIsCleared) {
  shoredaq::firmware::LoggingOptions options;
  options.identifier = "shoredaq-test";
  options.target = shoredaq::firmware::LogTarget::console;
  auto logger = shoredaq::firmware::setup_logging(options);
  std::vector<std::string> lines;
  shoredaq::firmware::forward_log_lines([&lines](std::string_view line) { lines.emplace_back(line); });
  logger->info("not forwarded");
  logger->warn("DOM {} silent", 808447066);
  logger->error("cannot write");
  shoredaq::firmware::forward_log_lines({});
  logger->error("after clearing");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "shoredaq-test warning: DOM 808447066 silent");
  EXPECT_EQ(lines[1], "shoredaq-test error: cannot write");
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("restored"));
}
