#pragma once
// Metrics for the node: counters, gauges and histograms with labels, rendered in the Prometheus
// text exposition format (version 0.0.4) for /metrics.
//
// Registration (cold, under a mutex) returns a reference that stays valid for the registry's
// lifetime; hot threads keep that reference and update it with relaxed atomics, so an increment
// costs one atomic add and never takes a lock.
//
// Naming rules (checked at registration, std::invalid_argument otherwise): names start with
// "shoredaq_", counters end in "_total", units go into the name ("_seconds", "_bytes").

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shoredaq::firmware {

// Label name → value, e.g. {{"cause", "late"}, {"du", "3"}}. Order does not matter.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// Monotonic count of events since process start.
class Counter {
public:
  void inc(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

private:
  std::atomic<std::uint64_t> value_{0};
};

// A value that goes up and down (queue depth, store size, rate).
class Gauge {
public:
  void set(double v) noexcept { value_.store(v, std::memory_order_relaxed); }
  void add(double delta) noexcept { value_.fetch_add(delta, std::memory_order_relaxed); }
  [[nodiscard]] double value() const noexcept { return value_.load(std::memory_order_relaxed); }

private:
  std::atomic<double> value_{0.0};
};

// Distribution of observations in fixed buckets (Prometheus histogram); latency percentiles are
// estimated from the buckets, so memory and cost per observation are constant.
class Histogram {
public:
  // `upper_bounds` must be strictly increasing and finite; a +Inf bucket is implicit.
  explicit Histogram(std::vector<double> upper_bounds);

  void observe(double value) noexcept;

  struct Snapshot {
    std::vector<double> upper_bounds;         // finite bounds
    std::vector<std::uint64_t> bucket_counts;  // per bucket, NOT cumulative; size = bounds + 1 (+Inf)
    std::uint64_t count = 0;
    double sum = 0.0;
    double max = 0.0;  // largest observation (0 if none)
  };
  [[nodiscard]] Snapshot snapshot() const;

  // Estimated q-quantile (0 ≤ q ≤ 1) by linear interpolation inside the bucket holding the rank,
  // never above the largest observation; 0 when empty.
  [[nodiscard]] double quantile(double q) const;
  [[nodiscard]] const std::vector<double>& upper_bounds() const { return upper_bounds_; }

private:
  std::vector<double> upper_bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;
  std::atomic<std::uint64_t> count_{0};
  std::atomic<double> sum_{0.0};
  std::atomic<double> max_{0.0};
};

// `count` bounds start, start·factor, start·factor², …
std::vector<double> exponential_buckets(double start, double factor, std::size_t count);
// 100 µs … ~105 s in ×2 steps: slice-complete → committed latency and similar.
std::vector<double> latency_buckets_seconds();

class MetricsRegistry {
public:
  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Get-or-create. The same name and labels return the same object; a name already used with
  // another type (or a histogram with other buckets) throws std::invalid_argument.
  Counter& counter(std::string_view name, std::string_view help, MetricLabels labels = {});
  Gauge& gauge(std::string_view name, std::string_view help, MetricLabels labels = {});
  Histogram& histogram(std::string_view name, std::string_view help, std::vector<double> upper_bounds,
                       MetricLabels labels = {});

  // Series whose value lives elsewhere (a component's own atomic counter, the store size),
  // read at render time. The callback must be thread-safe and cheap; exceptions skip the series.
  void counter_callback(std::string_view name, std::string_view help, MetricLabels labels,
                        std::function<std::uint64_t()> read);
  void gauge_callback(std::string_view name, std::string_view help, MetricLabels labels,
                      std::function<double()> read);

  // Prometheus text exposition format 0.0.4: families sorted by name, series by labels.
  [[nodiscard]] std::string render_prometheus() const;

  // Content-Type for the HTTP reply carrying render_prometheus().
  static constexpr std::string_view content_type = "text/plain; version=0.0.4; charset=utf-8";

private:
  enum class Type { counter, gauge, histogram };
  struct Series {
    MetricLabels labels;  // sorted by name
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
    std::function<std::uint64_t()> read_counter;
    std::function<double()> read_gauge;
  };
  struct Family {
    Type type;
    std::string help;
    std::vector<double> upper_bounds;  // histograms only
    std::map<std::string, Series> series;  // key: rendered label set
  };

  Series& series_for(std::string_view name, std::string_view help, Type type, MetricLabels& labels,
                     const std::vector<double>* upper_bounds);

  mutable std::mutex mutex_;
  std::map<std::string, Family, std::less<>> families_;
};

}  // namespace shoredaq::firmware
