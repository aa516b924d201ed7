// The plain policies of the Tier-0 transfer: backoff, bandwidth limiter, retention, remote layout.
#include <gtest/gtest.h>

#include "shoredaq/storage/bandwidth_limiter.hpp"
#include "shoredaq/storage/retry_backoff.hpp"
#include "shoredaq/storage/spool_retention.hpp"
#include "shoredaq/storage/tier0_transfer.hpp"

using namespace shoredaq::storage;
using namespace std::chrono_literals;

TEST(RetryBackoff, DoublesFromTheInitialWaitUpToTheCap) {
  const RetryBackoff b{500ms, 5000ms};
  EXPECT_EQ(b.delay_after(0), 0ms);
  EXPECT_EQ(b.delay_after(1), 500ms);
  EXPECT_EQ(b.delay_after(2), 1000ms);
  EXPECT_EQ(b.delay_after(3), 2000ms);
  EXPECT_EQ(b.delay_after(4), 4000ms);
  EXPECT_EQ(b.delay_after(5), 5000ms);
  EXPECT_EQ(b.delay_after(4'000'000'000u), 5000ms);  // a very long outage: no overflow
}

TEST(BandwidthLimiter, UnlimitedNeverWaits) {
  BandwidthLimiter limiter;
  const auto t = std::chrono::steady_clock::time_point{} + 5s;
  EXPECT_EQ(limiter.reserve(std::uint64_t{1} << 40, t), t);
  EXPECT_FALSE(limiter.limited());
}

TEST(BandwidthLimiter, PacesToTheRateAfterTheBurst) {
  BandwidthLimiter limiter(1000, 100);  // 1000 B/s, one 100-byte chunk may go ahead
  const auto t0 = std::chrono::steady_clock::time_point{} + 100s;
  EXPECT_EQ(limiter.reserve(100, t0), t0);          // idle link: at once
  EXPECT_EQ(limiter.reserve(100, t0), t0 + 100ms);  // then one chunk per 100 ms
  EXPECT_EQ(limiter.reserve(100, t0), t0 + 200ms);
  // Idle time is not saved up: after a pause the first chunk goes at once, and no more.
  const auto t1 = t0 + 10s;
  EXPECT_EQ(limiter.reserve(100, t1), t1);
  EXPECT_EQ(limiter.reserve(100, t1), t1 + 100ms);
}

TEST(BandwidthLimiter, SharedBySendersItBoundsTheirSum) {
  BandwidthLimiter limiter(10'000, 1000);
  auto now = std::chrono::steady_clock::time_point{} + 1s;
  const auto start = now;
  std::uint64_t sent = 0;
  // Two senders alternating, each sending as soon as it is allowed.
  for (int i = 0; i < 200; ++i) {
    now = std::max(now, limiter.reserve(1000, now));
    sent += 1000;
    const double elapsed = std::chrono::duration<double>(now - start).count();
    EXPECT_LE(static_cast<double>(sent), 10'000 * elapsed + 1000 + 1) << "after " << sent << " bytes";
  }
  EXPECT_NEAR(std::chrono::duration<double>(now - start).count(), 19.9, 0.01);
}

TEST(SpoolRetention, ByAgeThenBySizeOldestFirst) {
  const auto now = std::chrono::system_clock::time_point{} + std::chrono::hours{24 * 1000};
  const std::vector<DoneFile> files{{"c", 300, now - std::chrono::hours{1}},
                                    {"a", 100, now - std::chrono::hours{24 * 40}},
                                    {"b", 200, now - std::chrono::hours{24 * 10}}};
  EXPECT_TRUE(plan_retention(files, RetentionPolicy{}, now).empty()) << "no policy prunes nothing";
  EXPECT_EQ(plan_retention(files, RetentionPolicy{std::chrono::hours{24 * 30}, 0}, now), std::vector<std::string>{"a"});
  EXPECT_EQ(plan_retention(files, RetentionPolicy{std::chrono::seconds{0}, 350}, now),
            (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(plan_retention(files, RetentionPolicy{std::chrono::seconds{0}, 600}, now), std::vector<std::string>{});
  EXPECT_EQ(plan_retention(files, RetentionPolicy{std::chrono::hours{24 * 30}, 400}, now),
            (std::vector<std::string>{"a", "b"}));
}

TEST(RemotePathTemplate, TheDefaultIsTheCollaborationsRawDataLayout) {
  Tier0TransferManifest m;
  m.name = "KM3NeT_00000133_00014728_0002.daq";
  m.detector_id = 133;
  m.run = 14728;
  m.scope = "km3net";
  m.data_type = "events";
  EXPECT_EQ(expand_remote_path(kDefaultRemotePathTemplate, m),
            "/km3net/raw/sea/KM3NeT_00000133/14/KM3NeT_00000133_00014728_0002.daq");
  EXPECT_EQ(expand_remote_path("/{scope}/{data_type}/{run}/{file}", m),
            "/km3net/events/00014728/KM3NeT_00000133_00014728_0002.daq");
  m.run = 999;
  EXPECT_EQ(expand_remote_path(kDefaultRemotePathTemplate, m),
            "/km3net/raw/sea/KM3NeT_00000133/0/KM3NeT_00000133_00014728_0002.daq");
}

TEST(RemotePathTemplate, BrokenTemplatesAreRefusedWithTheReason) {
  EXPECT_FALSE(check_remote_path_template(kDefaultRemotePathTemplate));
  EXPECT_TRUE(check_remote_path_template("km3net/{file}"));            // relative
  EXPECT_TRUE(check_remote_path_template("/km3net/{run}"));            // no {file}
  EXPECT_TRUE(check_remote_path_template("/km3net/{runnumber}/{file}"));
  EXPECT_TRUE(check_remote_path_template("/km3net/{run/{file}"));
  EXPECT_TRUE(check_remote_path_template("/km3net/run}/{file}"));
  EXPECT_TRUE(check_remote_path_template("/km3net/../{file}"));
  EXPECT_THROW(expand_remote_path("/x/{nope}/{file}", Tier0TransferManifest{}), std::invalid_argument);
}
