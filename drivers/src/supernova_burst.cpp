// The supernova-like burst of the DU simulator (see supernova_burst.hpp and SupernovaBurstConfig).

#include "supernova_burst.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace shoredaq::drivers {

namespace detail {

namespace {
constexpr double kSliceNs = static_cast<double>(dataflow::kSliceDurationNs);
constexpr double kJitterCutSigmas = 3.0;
// Drawing distinct neighbour-weighted PMTs by rejection: after this many misses (a degenerate
// neighbour preference with almost all weight on few PMTs) the rest are drawn uniformly.
constexpr unsigned kMaxNeighbourAttempts = 1000;
}  // namespace

SupernovaBurstModel::SupernovaBurstModel(const SupernovaBurstConfig& config, std::uint64_t run_start_unix_ns)
    : config_(config), enabled_(config.at_s.has_value()) {
  if (!enabled_) return;
  const double at_s = *config.at_s;
  auto finite_at_least = [](double v, double lo) { return std::isfinite(v) && v >= lo; };
  if (!finite_at_least(at_s, 0) || !finite_at_least(config.scale, 0) || !finite_at_least(config.peak_rate_hz_per_dom, 0) ||
      !finite_at_least(config.jitter_ns, 0) || !(std::isfinite(config.duration_s) && config.duration_s > 0) ||
      !(std::isfinite(config.rise_ms) && config.rise_ms > 0) ||
      !(std::isfinite(config.multiplicity_ratio) && config.multiplicity_ratio > 0))
    throw std::invalid_argument(
        "du-sim: supernova burst: start, scale, peak rate and jitter must be >= 0, length, rise and multiplicity "
        "ratio > 0");
  start_unix_ns_ = run_start_unix_ns + static_cast<std::uint64_t>(std::llround(at_s * 1e9));
  tau_rise_s_ = config.rise_ms * 1e-3 / 3.0;
  tau_decay_s_ = config.duration_s / 3.0;
  tau_both_s_ = 1.0 / (1.0 / tau_rise_s_ + 1.0 / tau_decay_s_);
  peak_tau_s_ = std::min(config.duration_s, tau_rise_s_ * std::log(1.0 + tau_decay_s_ / tau_rise_s_));
  const double peak = profile(peak_tau_s_);
  rate_per_profile_ = peak > 0 ? config.scale * config.peak_rate_hz_per_dom / peak : 0.0;

  double weight = 1.0, sum = 0.0;
  for (unsigned m = 2; m <= kSupernovaMaxMultiplicity; ++m, weight *= config.multiplicity_ratio) {
    sum += weight;
    multiplicity_cdf_[m] = sum;
  }
  for (auto& c : multiplicity_cdf_) c /= sum;
}

double SupernovaBurstModel::profile(double tau_s) const noexcept {
  if (tau_s < 0 || tau_s >= config_.duration_s) return 0.0;
  return (1.0 - std::exp(-tau_s / tau_rise_s_)) * std::exp(-tau_s / tau_decay_s_);
}

double SupernovaBurstModel::profile_integral(double a_s, double b_s) const noexcept {
  a_s = std::max(a_s, 0.0);
  b_s = std::min(b_s, config_.duration_s);
  if (b_s <= a_s) return 0.0;
  // g = exp(-t/decay) - exp(-t/both).
  auto part = [&](double tau) { return tau * (std::exp(-a_s / tau) - std::exp(-b_s / tau)); };
  return part(tau_decay_s_) - part(tau_both_s_);
}

bool SupernovaBurstModel::overlaps(std::uint64_t slice_start_unix_ns) const noexcept {
  if (!enabled_) return false;
  const double from = burst_time_s(slice_start_unix_ns, 0.0);
  return from < config_.duration_s && from + kSliceNs * 1e-9 > 0.0;
}

double SupernovaBurstModel::burst_time_s(std::uint64_t slice_start_unix_ns, double ns_in_slice) const noexcept {
  const auto offset_ns = static_cast<std::int64_t>(slice_start_unix_ns - start_unix_ns_);  // may be negative
  return (static_cast<double>(offset_ns) + ns_in_slice) * 1e-9;
}

double SupernovaBurstModel::expected_per_dom(double from_s, double to_s) const noexcept {
  return enabled_ ? rate_per_profile_ * profile_integral(from_s, to_s) : 0.0;
}

void SupernovaBurstModel::draw(SimRng& rng, std::uint64_t slice_start_unix_ns, double lo_ns, double hi_ns,
                               unsigned n_pmts, const NeighbourCdf& neighbours,
                               std::vector<SupernovaCoincidence>& out) const {
  if (!enabled_ || n_pmts < 2 || hi_ns <= lo_ns) return;
  const double a = burst_time_s(slice_start_unix_ns, lo_ns), b = burst_time_s(slice_start_unix_ns, hi_ns);
  const unsigned n = rng.poisson(expected_per_dom(a, b));
  if (n == 0) return;
  // Times by rejection under the profile's largest value in [a, b) (it rises, then falls).
  // The peak is before the burst's end (r ln(1 + d/r) < d = duration / 3); expected > 0 means the
  // interval overlaps the burst, so the bound is > 0.
  const double from = std::max(a, 0.0), to = std::min(b, config_.duration_s);
  const double bound = profile(peak_tau_s_ < from ? from : (peak_tau_s_ > to ? to : peak_tau_s_));
  for (unsigned i = 0; i < n; ++i) {
    SupernovaCoincidence c;
    for (;;) {
      c.time_ns = rng.uniform(lo_ns, hi_ns);
      if (rng.uniform() * bound < profile(burst_time_s(slice_start_unix_ns, c.time_ns))) break;
    }
    const double u = rng.uniform();
    unsigned m = 2;
    while (m < kSupernovaMaxMultiplicity && multiplicity_cdf_[m] <= u) ++m;
    c.multiplicity = std::min(m, n_pmts);
    c.channels[0] = static_cast<std::uint8_t>(rng.below(n_pmts));
    for (unsigned j = 1; j < c.multiplicity; ++j) {
      auto taken = [&](unsigned pmt) {
        return std::find(c.channels.begin(), c.channels.begin() + j, static_cast<std::uint8_t>(pmt)) != c.channels.begin() + j;
      };
      unsigned pick = n_pmts;
      const auto& cdf = neighbours[c.channels[0]];
      for (unsigned attempt = 0; attempt < kMaxNeighbourAttempts && pick == n_pmts; ++attempt) {
        const auto candidate = static_cast<unsigned>(
            std::upper_bound(cdf.begin(), cdf.begin() + n_pmts, static_cast<float>(rng.uniform())) - cdf.begin());
        if (candidate < n_pmts && !taken(candidate)) pick = candidate;
      }
      while (pick == n_pmts || taken(pick)) pick = rng.below(n_pmts);  // j < n_pmts: a free PMT exists
      c.channels[j] = static_cast<std::uint8_t>(pick);
    }
    for (unsigned j = 0; j < c.multiplicity; ++j) {
      double z = rng.normal();
      while (std::abs(z) > kJitterCutSigmas) z = rng.normal();
      c.jitter_ns[j] = config_.jitter_ns * z;
    }
    out.push_back(c);
  }
}

SupernovaBurstTruth SupernovaBurstModel::truth(std::uint32_t doms) const {
  SupernovaBurstTruth t;
  t.start_unix_ns = start_unix_ns_;
  t.duration_s = config_.duration_s;
  t.scale = config_.scale;
  t.peak_rate_hz_per_dom = config_.scale * config_.peak_rate_hz_per_dom;
  t.rise_ms = config_.rise_ms;
  t.multiplicity_ratio = config_.multiplicity_ratio;
  t.doms = doms;
  return t;
}

}  // namespace detail

std::string truth_json_line(const SupernovaBurstTruth& b) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "{\"type\":\"sn_burst\",\"start_unix_ns\":%llu,\"duration_s\":%.6f,\"scale\":%.6g,"
                "\"peak_rate_hz_per_dom\":%.6g,\"rise_ms\":%.6g,\"multiplicity_ratio\":%.6g,\"doms\":%u}",
                static_cast<unsigned long long>(b.start_unix_ns), b.duration_s, b.scale, b.peak_rate_hz_per_dom,
                b.rise_ms, b.multiplicity_ratio, b.doms);
  return buf;
}

std::string truth_json_line(const SupernovaSliceTruth& s) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "{\"type\":\"sn_slice\",\"frame_index\":%u,\"slice_start_unix_ns\":%llu,\"expected_per_dom\":%.6f,"
                "\"coincidences\":%llu,\"by_multiplicity\":[",
                s.frame_index, static_cast<unsigned long long>(s.slice_start_unix_ns), s.expected_per_dom,
                static_cast<unsigned long long>(s.coincidences));
  std::string line = buf;
  // Index = distinct PMTs, from 2: [2-fold, 3-fold, ..., 12-fold].
  for (unsigned m = 2; m <= kSupernovaMaxMultiplicity; ++m) {
    std::snprintf(buf, sizeof buf, "%s%llu", m == 2 ? "" : ",", static_cast<unsigned long long>(s.by_multiplicity[m]));
    line += buf;
  }
  line += "]}";
  return line;
}

}  // namespace shoredaq::drivers
