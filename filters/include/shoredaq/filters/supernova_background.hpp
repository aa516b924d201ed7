#pragma once
// The supernova search's false-alarm-rate estimate against a background-only feed (issue 12): per
// ready step and per significance threshold k, whether the step reached k (observed), and the
// probability the monitor's own on/off model gives for it (expected: P(X >= n_k), X ~ Binomial(N +
// N_off, window share), n_k the smallest count whose significance reaches k; at the alert threshold
// this is exactly the per-step probability behind SupernovaStep::false_alarm_rate_per_day). Over a
// Poisson background the two agree; a biased baseline, p-value or FAR formula, or a background
// wider than Poisson, shows as a difference. Plain data.

#include <cstdint>
#include <vector>

#include "shoredaq/filters/supernova_monitor.hpp"

namespace shoredaq::filters {

struct SupernovaTallyRow {
  double threshold_sigma = 0;
  std::uint64_t observed = 0;  // ready steps with significance >= threshold
  double expected = 0;         // sum over ready steps of P(X >= n_k | B)
  double observed_per_day() const noexcept;  // implied rate, steps above threshold per day of data
  double expected_per_day() const noexcept;
  std::uint64_t steps = 0;
  // (observed - expected) / sqrt(expected * cluster): neighbouring steps share window slices, so
  // exceedances come in clusters of up to `window_slices` steps, which widens the spread.
  double deviation_sigma(std::size_t window_slices) const noexcept;
};

class SupernovaBackgroundTally {
 public:
  SupernovaBackgroundTally(const SupernovaSettings& settings, std::vector<double> thresholds_sigma);
  void add(const SupernovaStep& step);

  const std::vector<SupernovaTallyRow>& rows() const noexcept { return rows_; }
  std::uint64_t steps() const noexcept { return steps_; }
  std::uint64_t alerts() const noexcept { return alerts_; }
  double max_significance_sigma() const noexcept { return max_sigma_; }
  // Mean over ready steps of the published false-alarm rate (at the settings' alert threshold).
  double mean_published_far_per_day() const noexcept;
  double mean_baseline_count() const noexcept;

 private:
  std::vector<SupernovaMonitor> models_;  // one per threshold: its alert_count_threshold()
  std::vector<SupernovaTallyRow> rows_;
  std::uint64_t steps_ = 0, alerts_ = 0;
  double max_sigma_ = -37, far_sum_ = 0, baseline_sum_ = 0;
};

}  // namespace shoredaq::filters
