#pragma once
// Supernova (SN) search, detector-level part (DOMAIN.md section 5, issue 12): the accumulator fed
// with every slice's SupernovaSliceFigure, in frame order. It keeps a sliding window (default 500 ms
// = 5 slices, stepped per slice) and a running baseline (default 10 min, the slices just before the
// window, so a candidate never raises its own background), leaves out DOMs in a bioluminescence
// burst, and gives per step the count, the expected background, an on/off p-value, its
// Gaussian-equivalent significance, the false-alarm-rate estimate and, at most once per hold-off,
// an alert. Plain data: no threads or clocks; time is the slices' own start times.

#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "shoredaq/filters/supernova.hpp"

namespace shoredaq::filters {

// P(X >= k) for X ~ Binomial(n, p); 1 for k == 0, 0 for k > n. Accurate in the far upper tail.
double binomial_upper_tail(std::uint64_t k, std::uint64_t n, double p) noexcept;
// One-sided Gaussian tail: p = P(Z >= sigma), and its inverse (clamped to [-37, 37]; p <= 0 -> 37).
double p_value_of_sigma(double sigma) noexcept;
double sigma_of_p_value(double p_value) noexcept;

inline constexpr double kSupernovaStepsPerDay = 86400.0 * 1e9 / dataflow::kSliceDurationNs;

// Raised when a step's significance passes SupernovaSettings::alert_threshold_sigma outside the
// hold-off of the previous alert.
struct SupernovaAlert {
  std::uint32_t run = 0;
  std::uint32_t frame_index = 0;     // of the step's newest slice
  std::uint64_t step_time_ns = 0;    // UTC start of the step's newest slice
  // Estimated start of the excess (SNEWS neutrino_time): the start of the window's suffix whose own
  // excess over the background, (N - B) / sqrt(B), is largest.
  std::uint64_t neutrino_time_ns = 0;
  std::uint64_t window_count = 0;
  double baseline_count = 0;
  double p_value = 1;
  double significance_sigma = 0;
  double false_alarm_rate_per_day = 0;
  std::uint32_t effective_doms = 0;
};

// The figures of one step (one slice observed).
struct SupernovaStep {
  std::uint32_t run = 0;
  std::uint32_t frame_index = 0;
  std::uint64_t slice_start_ns = 0;
  bool out_of_order = false;  // not after the previous slice: ignored, nothing below is set
  bool ready = false;         // baseline at least min_baseline_s long: the statistic below is valid
  // This slice's DOMs: included (the effective number of DOMs) and excluded by cause.
  std::uint32_t effective_doms = 0;
  std::uint32_t doms_missing = 0, doms_incomplete = 0, doms_high_rate = 0, doms_burst = 0;
  std::vector<std::uint32_t> burst_dom_ids;  // the DOMs left out for a burst in this slice
  std::uint64_t slice_count = 0;             // kept coincidences of the included DOMs in this slice
  // In-band coincidences of the included DOMs left out: a triggered hit, or a correlated DOM near.
  std::uint64_t slice_vetoed_triggered = 0, slice_vetoed_correlated = 0;
  // The window: N = window_count over window_dom_slices (sum of included DOMs over its slices).
  std::uint64_t window_count = 0;
  std::uint64_t window_dom_slices = 0;
  // Background: the baseline's coincidences (N_off) over its DOM-slices, and that rate scaled to
  // the window's DOMs (B = alpha N_off, alpha = window / baseline DOM-slices).
  std::uint64_t baseline_coincidences = 0;
  double baseline_rate_per_dom_slice = 0;
  std::uint64_t baseline_dom_slices = 0;
  double baseline_count = 0;  // B
  // The window's share of window + baseline DOM-slices: a background coincidence's chance to be in
  // the window, so N given N + N_off is Binomial(N + N_off, window_share) under background only.
  double window_share = 0;
  double excess_sigma = 0;    // (N - B) / sqrt(alpha (N + N_off)), Gaussian approximation (Li & Ma eq. 9)
  // Dispersion of the background: variance / mean of the window count over the baseline's windows
  // (Pearson, each window's expectation from its DOMs), 1 for a Poisson background. Correlated
  // light (muons the vetoes missed, bioluminescence below the burst cut) or a drifting rate makes it
  // larger, and the p-value and false-alarm rate below (which assume Poisson) too optimistic: a
  // diagnostic for the shifter. Statistical spread ~ sqrt(2 x window / baseline slices), ~4 % at 10 min.
  double dispersion = 1;
  // On/off p-value P(X >= N), X ~ Binomial(N + N_off, window_share): exact for the small counts of
  // a narrow band and for a short baseline (its statistical error is in the test).
  double p_value = 1;
  double significance_sigma = 0;  // Gaussian-equivalent of p_value; the alert statistic
  // Expected false alerts per day with this background: the binomial tail at the smallest count
  // that passes the threshold, times 864000 steps per day (an upper bound: neighbouring steps
  // share slices, and the hold-off merges their alerts).
  double false_alarm_rate_per_day = 0;
  bool suppressed_by_hold_off = false;  // passed the threshold inside the hold-off
  std::optional<SupernovaAlert> alert;
};

struct SupernovaMonitorCounters {
  std::uint64_t slices = 0;
  std::uint64_t slices_out_of_order = 0;
  std::uint64_t slices_missing = 0;  // gaps in the slice times (counted as slices without DOMs)
  std::uint64_t steps_ready = 0;
  std::uint64_t alerts = 0;
  std::uint64_t alerts_suppressed = 0;  // steps above threshold inside a hold-off
  std::uint64_t dom_slices_burst = 0;
  std::uint64_t coincidences_kept = 0;  // of included DOMs, in the window's sums
  std::uint64_t coincidences_vetoed_triggered = 0;
  std::uint64_t coincidences_vetoed_correlated = 0;
};

class SupernovaMonitor {
 public:
  explicit SupernovaMonitor(SupernovaSettings settings);

  SupernovaStep observe(const SupernovaSliceFigure& figure);

  const SupernovaMonitorCounters& counters() const noexcept { return counters_; }
  const SupernovaSettings& settings() const noexcept { return settings_; }
  std::size_t window_slices() const noexcept { return window_slices_; }
  std::size_t baseline_slices() const noexcept { return baseline_slices_; }
  // The smallest window count that passes the alert threshold when window and baseline hold `total`
  // coincidences and the window has `window_share` of their DOM-slices (total + 1: none can); its
  // binomial tail is the per-step false-alarm probability behind false_alarm_rate_per_day.
  std::uint64_t alert_count_threshold(std::uint64_t total, double window_share) const noexcept;

 private:
  struct SliceCount {
    std::uint64_t start_ns = 0;
    std::uint64_t count = 0;
    std::uint32_t doms = 0;
    // The window that ended with this slice (window_doms 0: the ring held less than a window).
    std::uint64_t window_count = 0;
    std::uint64_t window_doms = 0;
  };
  // Running sums over the baseline's windows for SupernovaStep::dispersion.
  struct WindowSums {
    std::uint64_t windows = 0, count = 0, doms = 0;
    double count_sq_per_dom = 0;  // sum of C^2 / D
    void add(const SliceCount& s, int sign) noexcept;
    double dispersion() const noexcept;
  };
  // A DOM's recent summed hit counts (included and burst slices) and their median.
  struct DomHistory {
    std::vector<std::uint32_t> hits;  // ring
    std::size_t next = 0;
    std::uint64_t seen = 0;
    double median = 0;
  };
  void push_slice(const SliceCount& slice);
  bool burst(std::uint32_t dom_id, std::uint32_t hits);

  SupernovaSettings settings_;
  std::size_t window_slices_, baseline_slices_, min_baseline_slices_, burst_median_slices_;
  std::uint64_t hold_off_ns_;
  std::vector<SliceCount> ring_;  // the last window + baseline slices, oldest first from ring_head_
  std::size_t ring_head_ = 0, ring_size_ = 0;
  std::uint64_t window_count_ = 0, window_doms_ = 0, baseline_count_ = 0, baseline_doms_ = 0;
  WindowSums baseline_windows_;
  std::optional<std::uint64_t> last_slice_ns_;
  std::optional<std::uint64_t> last_alert_ns_;
  std::unordered_map<std::uint32_t, DomHistory> doms_;
  std::vector<std::uint32_t> median_scratch_;
  SupernovaMonitorCounters counters_;
};

}  // namespace shoredaq::filters
