#include "shoredaq/dataflow/rate_limited_log.hpp"

#include <gtest/gtest.h>

#include <spdlog/sinks/ostream_sink.h>

#include <sstream>

using namespace shoredaq::dataflow;
using namespace std::chrono_literals;

TEST(RateLimitedLog, BurstThenSuppressThenReportSuppressedCount) {
  RateLimitedLog log(nullptr, 1s, 2);
  const std::uint64_t t0 = 5'000'000'000;
  EXPECT_TRUE(log.allow("bad_length", t0).emit);
  EXPECT_TRUE(log.allow("bad_length", t0 + 1).emit);
  EXPECT_FALSE(log.allow("bad_length", t0 + 2).emit);
  EXPECT_FALSE(log.allow("bad_length", t0 + 3).emit);
  // Another cause has its own budget.
  EXPECT_TRUE(log.allow("unknown_dom", t0 + 4).emit);
  const auto d = log.allow("bad_length", t0 + 1'000'000'000);
  EXPECT_TRUE(d.emit);
  EXPECT_EQ(d.suppressed, 2u);
  EXPECT_EQ(log.allow("bad_length", t0 + 1'000'000'001).suppressed, 0u);
  EXPECT_EQ(log.suppressed_total(), 2u);
}

TEST(RateLimitedLog, WritesSuppressedNoteThroughTheLogger) {
  std::ostringstream text;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(text);
  auto logger = std::make_shared<spdlog::logger>("rl_test", sink);
  logger->set_pattern("%v");
  RateLimitedLog log(logger, 1h, 1);
  EXPECT_TRUE(log.log(spdlog::level::warn, "cause", "first {}", 1));
  EXPECT_FALSE(log.log(spdlog::level::warn, "cause", "second {}", 2));
  EXPECT_EQ(text.str(), "first 1\n");
  RateLimitedLog timed(logger, 1s, 1);
  EXPECT_TRUE(timed.log_at(0, spdlog::level::warn, "c", "a"));
  EXPECT_FALSE(timed.log_at(10, spdlog::level::warn, "c", "b"));
  EXPECT_FALSE(timed.log_at(20, spdlog::level::warn, "c", "b"));
  EXPECT_TRUE(timed.log_at(1'000'000'000, spdlog::level::warn, "c", "d"));
  EXPECT_EQ(text.str(), "first 1\na\nd (suppressed 2 similar messages)\n");
}
