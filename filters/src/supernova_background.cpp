#include "shoredaq/filters/supernova_background.hpp"

#include <algorithm>
#include <cmath>

namespace shoredaq::filters {

double SupernovaTallyRow::observed_per_day() const noexcept {
  return steps == 0 ? 0 : static_cast<double>(observed) / static_cast<double>(steps) * kSupernovaStepsPerDay;
}

double SupernovaTallyRow::expected_per_day() const noexcept {
  return steps == 0 ? 0 : expected / static_cast<double>(steps) * kSupernovaStepsPerDay;
}

double SupernovaTallyRow::deviation_sigma(std::size_t window_slices) const noexcept {
  const double spread = std::sqrt(std::max(expected, 1e-12) * static_cast<double>(std::max<std::size_t>(window_slices, 1)));
  return (static_cast<double>(observed) - expected) / spread;
}

SupernovaBackgroundTally::SupernovaBackgroundTally(const SupernovaSettings& settings, std::vector<double> thresholds_sigma) {
  for (const double k : thresholds_sigma) {
    SupernovaSettings s = settings;
    s.alert_threshold_sigma = k;
    // Only alert_count_threshold() is used: the smallest ring will do.
    s.baseline_s = s.min_baseline_s = 0.1;
    s.burst_median_s = 0.1;
    models_.emplace_back(s);
    SupernovaTallyRow row;
    row.threshold_sigma = k;
    rows_.push_back(row);
  }
}

void SupernovaBackgroundTally::add(const SupernovaStep& step) {
  if (!step.ready) return;
  ++steps_;
  if (step.alert) ++alerts_;
  max_sigma_ = std::max(max_sigma_, step.significance_sigma);
  far_sum_ += step.false_alarm_rate_per_day;
  baseline_sum_ += step.baseline_count;
  for (std::size_t i = 0; i < rows_.size(); ++i) {
    SupernovaTallyRow& row = rows_[i];
    ++row.steps;
    if (step.significance_sigma >= row.threshold_sigma) ++row.observed;
    const std::uint64_t total = step.window_count + step.baseline_coincidences;
    row.expected += binomial_upper_tail(models_[i].alert_count_threshold(total, step.window_share), total, step.window_share);
  }
}

double SupernovaBackgroundTally::mean_published_far_per_day() const noexcept {
  return steps_ == 0 ? 0 : far_sum_ / static_cast<double>(steps_);
}

double SupernovaBackgroundTally::mean_baseline_count() const noexcept {
  return steps_ == 0 ? 0 : baseline_sum_ / static_cast<double>(steps_);
}

}  // namespace shoredaq::filters
