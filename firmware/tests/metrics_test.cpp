#include "shoredaq/firmware/metrics.hpp"

#include "metrics_text_parser.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

using shoredaq::firmware::MetricsRegistry;
using shoredaq::test::parse_prometheus_text;

namespace {
std::string joined(const std::vector<std::string>& errors) {
  std::string out;
  for (const auto& e : errors) out += e + "\n";
  return out;
}
}  // namespace

TEST(MetricsRegistry, RendersCountersOneSeriesPerCause) {
  MetricsRegistry registry;
  auto& late = registry.counter("shoredaq_frames_lost_total", "Frames lost, by cause", {{"cause", "late"}});
  auto& dup = registry.counter("shoredaq_frames_lost_total", "Frames lost, by cause", {{"cause", "duplicate"}});
  late.inc();
  late.inc(4);
  dup.inc(2);
  // Get-or-create returns the same series.
  EXPECT_EQ(&registry.counter("shoredaq_frames_lost_total", "", {{"cause", "late"}}), &late);

  const std::string text = registry.render_prometheus();
  const auto parsed = parse_prometheus_text(text);
  ASSERT_TRUE(parsed.errors.empty()) << joined(parsed.errors) << text;
  ASSERT_EQ(parsed.families.count("shoredaq_frames_lost_total"), 1u);
  const auto& family = parsed.families.at("shoredaq_frames_lost_total");
  EXPECT_EQ(family.type, "counter");
  EXPECT_EQ(family.help, "Frames lost, by cause");
  EXPECT_EQ(family.samples.size(), 2u);
  EXPECT_EQ(parsed.value("shoredaq_frames_lost_total", {{"cause", "late"}}), 5.0);
  EXPECT_EQ(parsed.value("shoredaq_frames_lost_total", {{"cause", "duplicate"}}), 2.0);
}

TEST(MetricsRegistry, GaugesAndMultipleLabelsPerDu) {
  MetricsRegistry registry;
  registry.gauge("shoredaq_queue_depth_slices", "Slices waiting", {{"queue", "filter"}}).set(7);
  auto& rate = registry.gauge("shoredaq_du_hit_rate_hz", "Hit rate per DU", {{"du", "2"}, {"detector", "49"}});
  rate.set(1.5e6);
  rate.add(0.25);
  const auto parsed = parse_prometheus_text(registry.render_prometheus());
  ASSERT_TRUE(parsed.errors.empty()) << joined(parsed.errors);
  EXPECT_EQ(parsed.families.at("shoredaq_queue_depth_slices").type, "gauge");
  EXPECT_EQ(parsed.value("shoredaq_queue_depth_slices", {{"queue", "filter"}}), 7.0);
  EXPECT_EQ(parsed.value("shoredaq_du_hit_rate_hz", {{"du", "2"}, {"detector", "49"}}), 1.5e6 + 0.25);
}

TEST(MetricsRegistry, CallbackSeriesAreReadAtRenderTime) {
  MetricsRegistry registry;
  std::uint64_t datagrams = 10;
  double store_bytes = 4096;
  registry.counter_callback("shoredaq_datagrams_received_total", "Datagrams", {}, [&] { return datagrams; });
  registry.gauge_callback("shoredaq_store_size_bytes", "Store size", {}, [&] { return store_bytes; });
  registry.gauge_callback("shoredaq_broken_bytes", "Source throws", {}, []() -> double {
    throw std::runtime_error("store closed");
  });
  auto parsed = parse_prometheus_text(registry.render_prometheus());
  ASSERT_TRUE(parsed.errors.empty()) << joined(parsed.errors);
  EXPECT_EQ(parsed.value("shoredaq_datagrams_received_total"), 10.0);
  EXPECT_EQ(parsed.value("shoredaq_store_size_bytes"), 4096.0);
  EXPECT_FALSE(parsed.value("shoredaq_broken_bytes").has_value());

  datagrams = 11;
  store_bytes = 8192;
  parsed = parse_prometheus_text(registry.render_prometheus());
  EXPECT_EQ(parsed.value("shoredaq_datagrams_received_total"), 11.0);
  EXPECT_EQ(parsed.value("shoredaq_store_size_bytes"), 8192.0);
}

TEST(MetricsRegistry, RejectsBadNamesAndTypeConflicts) {
  MetricsRegistry registry;
  EXPECT_THROW(registry.counter("shoredaq_events", "no _total"), std::invalid_argument);
  EXPECT_THROW(registry.gauge("shoredaq_events_total", "gauge with _total"), std::invalid_argument);
  EXPECT_THROW(registry.counter("events_total", "no prefix"), std::invalid_argument);
  EXPECT_THROW(registry.counter("shoredaq_bad-name_total", "dash"), std::invalid_argument);
  EXPECT_THROW(registry.counter("shoredaq_x_total", "bad label", {{"1du", "x"}}), std::invalid_argument);
  EXPECT_THROW(registry.counter("shoredaq_x_total", "reserved label", {{"__name", "x"}}), std::invalid_argument);
  EXPECT_THROW(registry.counter("shoredaq_x_total", "twice", {{"du", "1"}, {"du", "2"}}), std::invalid_argument);
  EXPECT_THROW(registry.histogram("shoredaq_h_seconds", "le is reserved", {1.0}, {{"le", "1"}}),
               std::invalid_argument);

  registry.gauge("shoredaq_thing_bytes", "a gauge");
  EXPECT_THROW(registry.histogram("shoredaq_thing_bytes", "now a histogram", {1.0}), std::invalid_argument);
  registry.histogram("shoredaq_lat_seconds", "h", {0.1, 1.0});
  EXPECT_THROW(registry.histogram("shoredaq_lat_seconds", "h", {0.2, 1.0}), std::invalid_argument);
  EXPECT_THROW(shoredaq::firmware::Histogram({1.0, 1.0}), std::invalid_argument);
}

TEST(MetricsRegistry, EscapesLabelValuesAndHelp) {
  MetricsRegistry registry;
  const std::string nasty = "a \"quoted\" back\\slash\nnewline";
  registry.counter("shoredaq_errors_total", "Errors\\with \"help\"\nsecond line", {{"message", nasty}}).inc();
  const std::string text = registry.render_prometheus();
  const auto parsed = parse_prometheus_text(text);
  ASSERT_TRUE(parsed.errors.empty()) << joined(parsed.errors) << text;
  EXPECT_EQ(parsed.value("shoredaq_errors_total", {{"message", nasty}}), 1.0);
  EXPECT_EQ(parsed.families.at("shoredaq_errors_total").help, "Errors\\with \"help\"\nsecond line");
}

TEST(MetricsRegistry, HistogramRendersCumulativeBucketsAndEstimatesPercentiles) {
  MetricsRegistry registry;
  auto& latency = registry.histogram("shoredaq_commit_latency_seconds", "Slice complete to committed",
                                     {0.001, 0.01, 0.1, 1.0}, {{"du", "1"}});
  // 1000 observations 0.1 ms … 100 ms, uniform.
  for (int i = 1; i <= 1000; ++i) latency.observe(i * 1e-4);
  latency.observe(5.0);  // one outlier in the +Inf bucket

  const std::string text = registry.render_prometheus();
  const auto parsed = parse_prometheus_text(text);
  ASSERT_TRUE(parsed.errors.empty()) << joined(parsed.errors) << text;
  EXPECT_EQ(parsed.families.at("shoredaq_commit_latency_seconds").type, "histogram");
  EXPECT_EQ(parsed.value("shoredaq_commit_latency_seconds_bucket", {{"du", "1"}, {"le", "0.001"}}), 10.0);
  EXPECT_EQ(parsed.value("shoredaq_commit_latency_seconds_bucket", {{"du", "1"}, {"le", "0.01"}}), 100.0);
  EXPECT_EQ(parsed.value("shoredaq_commit_latency_seconds_bucket", {{"du", "1"}, {"le", "0.1"}}), 1000.0);
  EXPECT_EQ(parsed.value("shoredaq_commit_latency_seconds_bucket", {{"du", "1"}, {"le", "+Inf"}}), 1001.0);
  EXPECT_EQ(parsed.value("shoredaq_commit_latency_seconds_count", {{"du", "1"}}), 1001.0);
  EXPECT_NEAR(*parsed.value("shoredaq_commit_latency_seconds_sum", {{"du", "1"}}), 50.05 + 5.0, 1e-9);

  // Percentiles from buckets: p50 lies in (0.01, 0.1], interpolated near 0.05.
  EXPECT_NEAR(latency.quantile(0.5), 0.05, 0.0015);
  EXPECT_GT(latency.quantile(0.99), 0.09);
  EXPECT_LE(latency.quantile(0.99), 0.1);
  EXPECT_EQ(latency.quantile(1.0), 5.0);  // +Inf bucket → largest observation
  EXPECT_EQ(latency.snapshot().max, 5.0);

  shoredaq::firmware::Histogram empty({1.0});
  EXPECT_EQ(empty.quantile(0.5), 0.0);
}

TEST(MetricsRegistry, BucketBoundIsInclusive) {
  shoredaq::firmware::Histogram h({1.0, 2.0});
  h.observe(1.0);
  h.observe(2.0);
  h.observe(2.5);
  const auto s = h.snapshot();
  EXPECT_EQ(s.bucket_counts, (std::vector<std::uint64_t>{1, 1, 1}));
}

TEST(MetricsRegistry, ConcurrentIncrementsAreNotLost) {
  MetricsRegistry registry;
  auto& counter = registry.counter("shoredaq_hits_total", "Hits");
  auto& hist = registry.histogram("shoredaq_x_seconds", "x", shoredaq::firmware::latency_buckets_seconds());
  constexpr int threads = 4;
  constexpr int per_thread = 100000;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      for (int i = 0; i < per_thread; ++i) {
        counter.inc();
        hist.observe(0.001);
      }
    });
  }
  // Scrapes during the increments stay valid text.
  for (int i = 0; i < 20; ++i) {
    const auto parsed = parse_prometheus_text(registry.render_prometheus());
    ASSERT_TRUE(parsed.errors.empty()) << joined(parsed.errors);
  }
  for (auto& w : workers) w.join();
  EXPECT_EQ(counter.value(), static_cast<std::uint64_t>(threads) * per_thread);
  EXPECT_EQ(hist.snapshot().count, static_cast<std::uint64_t>(threads) * per_thread);
}

TEST(MetricsRegistry, ExponentialBuckets) {
  const auto b = shoredaq::firmware::exponential_buckets(1.0, 2.0, 4);
  EXPECT_EQ(b, (std::vector<double>{1.0, 2.0, 4.0, 8.0}));
  EXPECT_THROW(shoredaq::firmware::exponential_buckets(0.0, 2.0, 3), std::invalid_argument);
  const auto latency = shoredaq::firmware::latency_buckets_seconds();
  EXPECT_DOUBLE_EQ(latency.front(), 1e-4);
  EXPECT_GT(latency.back(), 100.0);
}

// The parser must catch broken text, otherwise the tests above prove nothing.
TEST(PrometheusTextParser, FindsViolations) {
  EXPECT_TRUE(parse_prometheus_text("# TYPE shoredaq_a_total counter\nshoredaq_a_total 1\n").errors.empty());
  EXPECT_FALSE(parse_prometheus_text("shoredaq_a_total 1\n").errors.empty());  // no TYPE
  EXPECT_FALSE(parse_prometheus_text("# TYPE shoredaq_a counter\nshoredaq_a 1\n").errors.empty());  // no _total
  EXPECT_FALSE(parse_prometheus_text("# TYPE shoredaq_a gauge\nshoredaq_a{x=\"1} 1\n").errors.empty());
  EXPECT_FALSE(parse_prometheus_text("# TYPE shoredaq_a gauge\nshoredaq_a one\n").errors.empty());
  EXPECT_FALSE(parse_prometheus_text("# TYPE shoredaq_a gauge\nshoredaq_a 1\nshoredaq_a 2\n").errors.empty());
  EXPECT_FALSE(parse_prometheus_text("# TYPE shoredaq_a gauge\nshoredaq_a 1").errors.empty());  // no final \n
  EXPECT_FALSE(parse_prometheus_text("# TYPE shoredaq_h histogram\n"
                                     "shoredaq_h_bucket{le=\"1\"} 5\nshoredaq_h_bucket{le=\"+Inf\"} 3\n"
                                     "shoredaq_h_sum 1\nshoredaq_h_count 3\n")
                   .errors.empty());  // not cumulative
  EXPECT_FALSE(parse_prometheus_text("# TYPE shoredaq_h histogram\n"
                                     "shoredaq_h_bucket{le=\"+Inf\"} 3\nshoredaq_h_sum 1\nshoredaq_h_count 4\n")
                   .errors.empty());  // +Inf != count
  EXPECT_FALSE(parse_prometheus_text("# TYPE shoredaq_a gauge\nshoredaq_a 1\n# TYPE shoredaq_b gauge\n"
                                     "shoredaq_b 1\nshoredaq_a{x=\"y\"} 1\n")
                   .errors.empty());  // family not contiguous
}

// A callback may take a lock that another thread holds while it registers a series: rendering
// must not hold the registry lock while running callbacks, or the two threads deadlock.
TEST(MetricsRegistry, CallbacksRunWithoutTheRegistryLock) {
  MetricsRegistry registry;
  std::mutex daemon_mutex;
  registry.gauge_callback("shoredaq_guarded", "Reads daemon state under its lock", {}, [&] {
    std::lock_guard lock(daemon_mutex);
    // Registering from inside a callback would self-deadlock if render held the lock.
    registry.counter("shoredaq_from_callback_total", "registered during a scrape").inc();
    return 1.0;
  });
  const auto parsed = parse_prometheus_text(registry.render_prometheus());
  ASSERT_TRUE(parsed.errors.empty()) << joined(parsed.errors);
  EXPECT_EQ(parsed.value("shoredaq_guarded"), 1.0);
  EXPECT_EQ(registry.counter("shoredaq_from_callback_total", "").value(), 1u);
}
