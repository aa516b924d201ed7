#include "shoredaq/firmware/rate_history.hpp"

#include <cmath>
#include <stdexcept>

namespace shoredaq::firmware {

RateHistory::RateHistory(std::vector<std::string> series, std::chrono::seconds window)
    : series_(std::move(series)), window_(window) {}

void RateHistory::sample(std::uint64_t unix_ns, std::span<const std::uint64_t> totals) {
  if (totals.size() != series_.size()) throw std::invalid_argument("RateHistory::sample: one total per series");
  std::lock_guard lock(mutex_);
  if (!previous_totals_.empty() && unix_ns > previous_unix_ns_) {
    const double seconds = static_cast<double>(unix_ns - previous_unix_ns_) * 1e-9;
    Point p{unix_ns, {}};
    for (std::size_t i = 0; i < totals.size(); ++i) {
      const std::uint64_t before = previous_totals_[i];
      p.rates_hz.push_back(totals[i] >= before ? static_cast<double>(totals[i] - before) / seconds : 0.0);
    }
    points_.push_back(std::move(p));
    const auto window_ns = static_cast<std::uint64_t>(std::chrono::nanoseconds(window_).count());
    while (!points_.empty() && points_.front().unix_ns + window_ns < unix_ns) points_.pop_front();
  }
  if (previous_totals_.empty() || unix_ns > previous_unix_ns_) {
    previous_unix_ns_ = unix_ns;
    previous_totals_.assign(totals.begin(), totals.end());
  }
}

nlohmann::json RateHistory::to_json() const {
  std::lock_guard lock(mutex_);
  nlohmann::json points = nlohmann::json::array();
  for (const auto& p : points_) {
    nlohmann::json row = nlohmann::json::array();
    row.push_back(std::round(static_cast<double>(p.unix_ns) * 1e-7) / 100.0);  // seconds, to 10 ms
    for (const double r : p.rates_hz) row.push_back(std::round(r * 1000.0) / 1000.0);
    points.push_back(std::move(row));
  }
  return {{"window_s", window_.count()}, {"series", series_}, {"points", std::move(points)}};
}

}  // namespace shoredaq::firmware
