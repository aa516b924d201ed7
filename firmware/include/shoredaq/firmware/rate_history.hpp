#pragma once
// Rates of a few counters over the last minutes, for the live page's trigger-rate chart: the node
// samples the counters' totals every interval and keeps one rate point per interval for a window
// (10 minutes of 5 s points by default). Opening the page shows the last minutes at once, not only
// what happened while it was open. Thread-safe (sampled by the main loop, read by HTTP requests).

#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace shoredaq::firmware {

class RateHistory {
 public:
  // series: the names of the counters, in the order sample() gets their totals.
  RateHistory(std::vector<std::string> series, std::chrono::seconds window);

  // The counters' totals at unix_ns (totals.size() == series count). The first sample only sets
  // the baseline; every later one adds a point with the rates since the previous sample. A total
  // that went down (counters reset) gives a rate of 0 for that interval.
  void sample(std::uint64_t unix_ns, std::span<const std::uint64_t> totals);

  // {"window_s": 600, "series": ["3d_muon", ...], "points": [[unix_s, rate_hz, rate_hz, ...], ...]},
  // oldest point first; a point's time is the end of its interval.
  nlohmann::json to_json() const;

 private:
  struct Point {
    std::uint64_t unix_ns = 0;
    std::vector<double> rates_hz;
  };
  const std::vector<std::string> series_;
  const std::chrono::seconds window_;
  mutable std::mutex mutex_;
  std::deque<Point> points_;
  std::uint64_t previous_unix_ns_ = 0;
  std::vector<std::uint64_t> previous_totals_;  // empty before the first sample
};

}  // namespace shoredaq::firmware
