#include "shoredaq/filters/supernova_monitor.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <boost/math/special_functions/beta.hpp>

namespace shoredaq::filters {
namespace {

constexpr double kMaxSigma = 37.0;  // erfc underflows beyond; a larger excess is "certain" anyway
// A DOM's median is refreshed every this many new samples: a burst lasts many slices, and a
// per-slice nth_element over every DOM would cost more than the coincidences themselves.
constexpr std::uint64_t kMedianRefreshSamples = 10;
constexpr std::uint64_t kMinMedianSamples = 10;

std::size_t slices_of(double seconds) {
  const double n = std::round(seconds * 1e9 / dataflow::kSliceDurationNs);
  return n < 1 ? 1 : static_cast<std::size_t>(n);
}

}  // namespace

double binomial_upper_tail(std::uint64_t k, std::uint64_t n, double p) noexcept {
  if (k == 0) return 1.0;
  if (k > n || !(p > 0)) return 0.0;
  if (p >= 1) return 1.0;
  // P(X >= k) = I_p(k, n - k + 1), the regularized incomplete beta: accurate far into the tail
  // (no 1 - x). Errors come back as NaN, never as exceptions.
  using Policy = boost::math::policies::policy<boost::math::policies::domain_error<boost::math::policies::ignore_error>,
                                               boost::math::policies::overflow_error<boost::math::policies::ignore_error>,
                                               boost::math::policies::evaluation_error<boost::math::policies::ignore_error>,
                                               boost::math::policies::rounding_error<boost::math::policies::ignore_error>>;
  const double tail = boost::math::ibeta(static_cast<double>(k), static_cast<double>(n - k + 1), p, Policy());
  return std::isnan(tail) ? 0.0 : std::clamp(tail, 0.0, 1.0);
}

double p_value_of_sigma(double sigma) noexcept { return 0.5 * std::erfc(sigma / std::sqrt(2.0)); }

double sigma_of_p_value(double p_value) noexcept {
  if (!(p_value > 0)) return kMaxSigma;
  if (p_value >= 1) return -kMaxSigma;
  // Bisection on log tail: monotonic, always converges, and runs once per 100 ms step.
  const double target = std::log(p_value);
  double lo = -kMaxSigma, hi = kMaxSigma;
  for (int i = 0; i < 80; ++i) {
    const double mid = 0.5 * (lo + hi);
    const double tail = p_value_of_sigma(mid);
    if (tail > 0 && std::log(tail) > target) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

SupernovaMonitor::SupernovaMonitor(SupernovaSettings settings)
    : settings_(settings),
      window_slices_(slices_of(settings.window_ms * 1e-3)),
      baseline_slices_(slices_of(settings.baseline_s)),
      min_baseline_slices_(std::min(slices_of(settings.min_baseline_s), baseline_slices_)),
      burst_median_slices_(slices_of(settings.burst_median_s)),
      hold_off_ns_(static_cast<std::uint64_t>(std::max(0.0, settings.hold_off_s) * 1e9)),
      ring_(window_slices_ + baseline_slices_) {}

std::uint64_t SupernovaMonitor::alert_count_threshold(std::uint64_t total, double window_share) const noexcept {
  const double p_threshold = p_value_of_sigma(settings_.alert_threshold_sigma);
  // The tail falls with k: bisect for the smallest k in [0, total + 1] (total + 1: no count alerts).
  std::uint64_t lo = 0, hi = total + 1;  // tail(lo) > threshold unless lo is the answer; tail(hi) = 0
  if (binomial_upper_tail(0, total, window_share) <= p_threshold) return 0;
  while (hi - lo > 1) {
    const std::uint64_t mid = lo + (hi - lo) / 2;
    if (binomial_upper_tail(mid, total, window_share) <= p_threshold) hi = mid;
    else lo = mid;
  }
  return hi;
}

void SupernovaMonitor::WindowSums::add(const SliceCount& s, int sign) noexcept {
  if (s.window_doms == 0) return;
  const double c = static_cast<double>(s.window_count);
  if (sign > 0) {
    ++windows;
    count += s.window_count;
    doms += s.window_doms;
    count_sq_per_dom += c * c / static_cast<double>(s.window_doms);
  } else {
    --windows;
    count -= s.window_count;
    doms -= s.window_doms;
    count_sq_per_dom -= c * c / static_cast<double>(s.window_doms);
  }
  if (windows == 0) count_sq_per_dom = 0;  // no rounding residue survives an empty baseline
}

double SupernovaMonitor::WindowSums::dispersion() const noexcept {
  if (windows < 2 || count == 0) return 1.0;
  // Pearson: mean over windows of (C - r D)^2 / (r D) with r = sum C / sum D, which sums to
  // sum(C^2 / D) / r - sum C. A running double sum: its rounding (~1e-16 per add) stays far below
  // the statistical spread.
  const double r = static_cast<double>(count) / static_cast<double>(doms);
  const double pearson = count_sq_per_dom / r - static_cast<double>(count);
  return std::max(0.0, pearson / static_cast<double>(windows));
}

void SupernovaMonitor::push_slice(const SliceCount& slice) {
  const std::size_t capacity = ring_.size();
  auto at = [&](std::size_t i) -> SliceCount& { return ring_[(ring_head_ + i) % capacity]; };
  if (ring_size_ == capacity) {  // the oldest baseline slice leaves
    baseline_count_ -= at(0).count;
    baseline_doms_ -= at(0).doms;
    baseline_windows_.add(at(0), -1);
    ring_head_ = (ring_head_ + 1) % capacity;
    --ring_size_;
  }
  if (ring_size_ >= window_slices_) {  // the oldest window slice joins the baseline
    const SliceCount& moving = at(ring_size_ - window_slices_);
    window_count_ -= moving.count;
    window_doms_ -= moving.doms;
    baseline_count_ += moving.count;
    baseline_doms_ += moving.doms;
    baseline_windows_.add(moving, +1);
  }
  SliceCount& added = at(ring_size_);
  added = slice;
  ++ring_size_;
  window_count_ += slice.count;
  window_doms_ += slice.doms;
  added.window_count = ring_size_ >= window_slices_ ? window_count_ : 0;
  added.window_doms = ring_size_ >= window_slices_ ? window_doms_ : 0;
}

bool SupernovaMonitor::burst(std::uint32_t dom_id, std::uint32_t hits) {
  if (!(settings_.burst_rate_factor > 0)) return false;
  DomHistory& h = doms_[dom_id];
  if (h.hits.empty()) h.hits.resize(burst_median_slices_);
  const bool known = h.seen >= kMinMedianSamples;
  const bool is_burst = known && static_cast<double>(hits) > settings_.burst_rate_factor * h.median;
  // Burst slices enter the history too: a rate that stays high for over half the median's span is
  // the DOM's new normal, not a burst.
  h.hits[h.next] = hits;
  h.next = (h.next + 1) % h.hits.size();
  ++h.seen;
  if (h.seen <= kMinMedianSamples || h.seen % kMedianRefreshSamples == 0) {
    const std::size_t n = std::min<std::size_t>(h.seen, h.hits.size());
    median_scratch_.assign(h.hits.begin(), h.hits.begin() + static_cast<std::ptrdiff_t>(n));
    auto middle = median_scratch_.begin() + static_cast<std::ptrdiff_t>(n / 2);
    std::nth_element(median_scratch_.begin(), middle, median_scratch_.end());
    h.median = *middle;
  }
  return is_burst;
}

SupernovaStep SupernovaMonitor::observe(const SupernovaSliceFigure& figure) {
  SupernovaStep step;
  step.run = figure.header.run;
  step.frame_index = figure.header.frame_index;
  step.slice_start_ns = figure.header.slice_start_ns();
  ++counters_.slices;
  if (last_slice_ns_ && step.slice_start_ns <= *last_slice_ns_) {
    ++counters_.slices_out_of_order;
    step.out_of_order = true;
    return step;
  }
  // Slices that never came count as slices without DOMs: the window keeps its length in time.
  if (last_slice_ns_) {
    const std::uint64_t missing = (step.slice_start_ns - *last_slice_ns_ - 1) / dataflow::kSliceDurationNs;
    counters_.slices_missing += missing;
    const std::uint64_t pushed = std::min<std::uint64_t>(missing, ring_.size());
    for (std::uint64_t k = pushed; k > 0; --k)
      push_slice({step.slice_start_ns - k * dataflow::kSliceDurationNs, 0, 0});
  }
  last_slice_ns_ = step.slice_start_ns;

  SliceCount slice{step.slice_start_ns, 0, 0};
  for (const auto& dom : figure.doms) {
    switch (dom.state) {
      case SupernovaDomState::Missing: ++step.doms_missing; continue;
      case SupernovaDomState::Incomplete: ++step.doms_incomplete; continue;
      case SupernovaDomState::HighRate: ++step.doms_high_rate; continue;
      case SupernovaDomState::Burst: ++step.doms_burst; continue;
      case SupernovaDomState::Included: break;
    }
    if (burst(dom.dom_id, dom.hits)) {
      ++step.doms_burst;
      step.burst_dom_ids.push_back(dom.dom_id);
      continue;
    }
    ++slice.doms;
    slice.count += dom.coincidences;
    step.slice_vetoed_triggered += dom.vetoed;
    step.slice_vetoed_correlated += dom.correlated;
  }
  counters_.coincidences_kept += slice.count;
  counters_.coincidences_vetoed_triggered += step.slice_vetoed_triggered;
  counters_.coincidences_vetoed_correlated += step.slice_vetoed_correlated;
  counters_.dom_slices_burst += step.doms_burst;
  step.effective_doms = slice.doms;
  step.slice_count = slice.count;
  push_slice(slice);

  step.window_count = window_count_;
  step.window_dom_slices = window_doms_;
  step.baseline_dom_slices = baseline_doms_;
  const std::size_t baseline_filled = ring_size_ > window_slices_ ? ring_size_ - window_slices_ : 0;
  step.ready = baseline_filled >= min_baseline_slices_ && baseline_doms_ > 0 && window_doms_ > 0;
  if (!step.ready) return step;
  ++counters_.steps_ready;

  const double window_doms = static_cast<double>(window_doms_);
  const double baseline_doms = static_cast<double>(baseline_doms_);
  // On/off test: under background only, each of the N + N_off coincidences of window and baseline
  // fell into the window with the window's share of the DOM-slices, so N given the sum is binomial.
  // Exact for any baseline length: the baseline's own statistical error is part of the test (a
  // short baseline holds only tens of coincidences on a small detector).
  step.baseline_coincidences = baseline_count_;
  step.window_share = window_doms / (window_doms + baseline_doms);
  const std::uint64_t total = window_count_ + baseline_count_;
  step.baseline_rate_per_dom_slice = static_cast<double>(baseline_count_) / baseline_doms;
  step.baseline_count = step.baseline_rate_per_dom_slice * window_doms;
  const double alpha = window_doms / baseline_doms;
  step.excess_sigma = total == 0 ? 0.0
                                 : (static_cast<double>(window_count_) - step.baseline_count) /
                                       std::sqrt(alpha * static_cast<double>(total));
  step.dispersion = baseline_windows_.dispersion();
  step.p_value = binomial_upper_tail(window_count_, total, step.window_share);
  step.significance_sigma = sigma_of_p_value(step.p_value);
  step.false_alarm_rate_per_day =
      binomial_upper_tail(alert_count_threshold(total, step.window_share), total, step.window_share) * kSupernovaStepsPerDay;

  if (step.significance_sigma < settings_.alert_threshold_sigma) return step;
  if (last_alert_ns_ && step.slice_start_ns < *last_alert_ns_ + hold_off_ns_) {
    ++counters_.alerts_suppressed;
    step.suppressed_by_hold_off = true;
    return step;
  }
  last_alert_ns_ = step.slice_start_ns;
  ++counters_.alerts;
  SupernovaAlert alert;
  alert.run = step.run;
  alert.frame_index = step.frame_index;
  alert.step_time_ns = step.slice_start_ns;
  alert.window_count = step.window_count;
  alert.baseline_count = step.baseline_count;
  alert.p_value = step.p_value;
  alert.significance_sigma = step.significance_sigma;
  alert.false_alarm_rate_per_day = step.false_alarm_rate_per_day;
  alert.effective_doms = step.effective_doms;
  // Start of the excess: the window suffix [k, end] whose own excess is the most significant.
  const std::size_t first_window = ring_size_ - std::min(ring_size_, window_slices_);
  double best_z = -std::numeric_limits<double>::infinity();
  double suffix_count = 0, suffix_doms = 0;
  // An empty baseline counts as one coincidence here, so the suffixes still compare.
  const double rate = static_cast<double>(std::max<std::uint64_t>(baseline_count_, 1)) / static_cast<double>(baseline_doms_);
  for (std::size_t i = ring_size_; i-- > first_window;) {
    const SliceCount& s = ring_[(ring_head_ + i) % ring_.size()];
    suffix_count += static_cast<double>(s.count);
    suffix_doms += s.doms;
    const double expected = rate * suffix_doms;
    if (!(expected > 0)) continue;
    const double z = (suffix_count - expected) / std::sqrt(expected);
    if (z >= best_z) {  // ties go to the earlier start
      best_z = z;
      alert.neutrino_time_ns = s.start_ns;
    }
  }
  if (alert.neutrino_time_ns == 0) alert.neutrino_time_ns = ring_[(ring_head_ + first_window) % ring_.size()].start_ns;
  step.alert = alert;
  return step;
}

}  // namespace shoredaq::filters
