#include "shoredaq/firmware/loss_monitor.hpp"

#include <algorithm>
#include <cstdio>
#include <vector>

namespace shoredaq::firmware {
namespace {

std::uint64_t delta(std::uint64_t now, std::uint64_t then) { return now >= then ? now - then : 0; }

// Per cause growth between two maps of totals, largest first.
std::vector<std::pair<std::string, std::uint64_t>> growth(const std::map<std::string, std::uint64_t>& now,
                                                          const std::map<std::string, std::uint64_t>& then) {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  for (const auto& [cause, value] : now) {
    const auto it = then.find(cause);
    const std::uint64_t d = delta(value, it == then.end() ? 0 : it->second);
    if (d > 0) out.emplace_back(cause, d);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  return out;
}

std::uint64_t sum(const std::vector<std::pair<std::string, std::uint64_t>>& v) {
  std::uint64_t n = 0;
  for (const auto& [cause, d] : v) n += d;
  return n;
}

std::string causes_text(const std::vector<std::pair<std::string, std::uint64_t>>& v) {
  std::string text;
  for (std::size_t i = 0; i < v.size() && i < 3; ++i) {
    text += (i ? ", " : "") + v[i].first + " " + std::to_string(v[i].second);
  }
  return text;
}

std::string percent(double f) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g%%", f * 100.0);
  return buf;
}

}  // namespace

LossMonitor::LossMonitor(double alarm_fraction, std::chrono::seconds window, std::uint64_t bad_time_datagrams)
    : alarm_fraction_(alarm_fraction),
      window_ns_(static_cast<std::uint64_t>(window.count()) * 1'000'000'000ull),
      bad_time_datagrams_(bad_time_datagrams == 0 ? 1 : bad_time_datagrams) {}

void LossMonitor::observe(std::uint64_t now_unix_ns, const LossTotals& totals) {
  if (!samples_.empty() && now_unix_ns < samples_.back().unix_ns) samples_.clear();  // the clock stepped back
  // Readers may sample often (every /healthz probe): the newest sample is refreshed rather than
  // another kept while the one before it is younger than a quarter second.
  if (samples_.size() >= 2 && now_unix_ns - samples_[samples_.size() - 2].unix_ns < 250'000'000ull) {
    samples_.back() = Sample{now_unix_ns, totals};
  } else {
    samples_.push_back(Sample{now_unix_ns, totals});
  }
  // Keep one sample at or beyond the window's start, so the window is always covered whole.
  while (samples_.size() > 2 && now_unix_ns - samples_[1].unix_ns >= window_ns_) samples_.pop_front();
}

LossVerdict LossMonitor::verdict() const {
  LossVerdict v;
  if (samples_.size() < 2) return v;
  const LossTotals& then = samples_.front().totals;
  const LossTotals& now = samples_.back().totals;
  const double seconds = static_cast<double>(samples_.back().unix_ns - samples_.front().unix_ns) * 1e-9;
  char window[32];
  std::snprintf(window, sizeof window, "%.0f s", seconds);

  const auto datagrams = growth(now.datagrams_lost, then.datagrams_lost);
  const auto slices = growth(now.slices_lost, then.slices_lost);
  const auto refusals = growth(now.sink_refusals, then.sink_refusals);
  const std::uint64_t offered = delta(now.datagrams_offered, then.datagrams_offered);
  const std::uint64_t built = delta(now.slices_built, then.slices_built);
  const std::uint64_t datagrams_lost = sum(datagrams);
  const std::uint64_t slices_lost = sum(slices) + sum(refusals);
  // Lost datagrams may not have been counted as offered (e.g. dropped in a queue before parsing).
  v.datagram_loss_fraction = datagrams_lost == 0 ? 0.0 : static_cast<double>(datagrams_lost) / static_cast<double>(std::max(offered, datagrams_lost));
  v.slice_loss_fraction = slices_lost == 0 ? 0.0 : static_cast<double>(slices_lost) / static_cast<double>(std::max(built, slices_lost));

  if (!refusals.empty()) {
    v.losing = true;
    v.reason = "sink refusing data: " + std::to_string(sum(refusals)) + " slices in the last " + window + " (" +
               causes_text(refusals) + ")";
  } else if (slices_lost > 0 && v.slice_loss_fraction > alarm_fraction_) {
    v.losing = true;
    v.reason = "data loss: " + percent(v.slice_loss_fraction) + " of slices in the last " + window + " (" +
               causes_text(slices) + ")";
  } else if (datagrams_lost > 0 && v.datagram_loss_fraction > alarm_fraction_) {
    v.losing = true;
    v.reason = "data loss: " + percent(v.datagram_loss_fraction) + " of datagrams in the last " + window + " (" +
               causes_text(datagrams) + ")";
  } else {
    for (const auto& [dom, count] : now.implausible_time_by_dom) {
      const auto it = then.implausible_time_by_dom.find(dom);
      const std::uint64_t d = delta(count, it == then.implausible_time_by_dom.end() ? 0 : it->second);
      if (d >= bad_time_datagrams_) {
        v.losing = true;
        v.reason = "DOM " + std::to_string(dom) + " keeps sending implausible slice times: " + std::to_string(d) +
                   " datagrams dropped in the last " + window + " (bad clock?)";
        break;
      }
    }
  }
  return v;
}

}  // namespace shoredaq::firmware
