#include "shoredaq/firmware/dom_health.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

#include <spdlog/fmt/fmt.h>

namespace shoredaq::firmware {

namespace {

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  const auto mid = values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2);
  std::nth_element(values.begin(), mid, values.end());
  if (values.size() % 2 == 1) return *mid;
  const double upper = *mid;
  const double lower = *std::max_element(values.begin(), mid);
  return 0.5 * (lower + upper);
}

double percent(std::uint64_t part, std::uint64_t whole) {
  return whole == 0 ? 0.0 : 100.0 * static_cast<double>(part) / static_cast<double>(whole);
}

}  // namespace

DomHealthMonitor::DomHealthMonitor(std::shared_ptr<const dataflow::Detector> detector) : detector_(std::move(detector)) {
  if (!detector_) return;
  for (const auto& m : detector_->modules()) {
    if (!m.is_base()) du_ids_.push_back(m.du);
  }
  std::sort(du_ids_.begin(), du_ids_.end());
  du_ids_.erase(std::unique(du_ids_.begin(), du_ids_.end()), du_ids_.end());
  for (const auto& m : detector_->modules()) {
    if (m.is_base()) continue;
    DomState d;
    d.dom_id = m.id;
    d.du = m.du;
    d.du_index = static_cast<std::size_t>(std::lower_bound(du_ids_.begin(), du_ids_.end(), m.du) - du_ids_.begin());
    d.floor = m.floor;
    index_.emplace(m.id, doms_.size());
    doms_.push_back(d);
  }
}

void DomHealthMonitor::observe(const dataflow::SummarySlice& summary) {
  std::lock_guard lock(mutex_);
  ++slices_;
  latest_frame_index_ = summary.header.frame_index;
  // A copy per 100 ms slice (a few tens of bytes per DOM) that readers share without the lock.
  latest_summary_ = std::make_shared<const dataflow::SummarySlice>(summary);
  for (auto& d : doms_) d.in_latest = false;
  for (const auto& frame : summary.frames) {
    const auto it = index_.find(frame.dom_id);
    if (it == index_.end()) {
      ++unknown_frames_;
      continue;
    }
    DomState& d = doms_[it->second];
    if (d.in_latest) continue;  // a duplicate frame in one slice counts once
    // The builder puts an empty frame (no datagram) in the slice for a DOM that sent nothing.
    if (frame.status.datagrams_received() == 0) continue;
    d.in_latest = true;
    ++d.present;
    d.latest_incomplete = !frame.status.complete();
    if (d.latest_incomplete) ++d.incomplete;
    const std::uint32_t hrv = frame.status.hrv_mask();
    d.latest_hrv_pmts = static_cast<unsigned>(std::popcount(hrv));
    if (hrv != 0) ++d.hrv;
    if (!frame.status.white_rabbit_ok()) ++d.wr_not_ok;
    d.latest_rate_hz = 0;
    d.latest_dead_pmts = 0;
    for (unsigned ch = 0; ch < dataflow::kPmtsPerDom; ++ch) {
      d.latest_rate_hz += frame.rate_hz(ch);
      // Below the lowest rate code (2 kHz) while not vetoed: a PMT at 7 kHz of singles is off.
      if (frame.rate_codes[ch] == 0 && (hrv & (1u << ch)) == 0) ++d.latest_dead_pmts;
    }
  }
}

// One pass over the DOMs: /metrics asks for every DU's figures at each scrape.
std::vector<DuRates> DomHealthMonitor::du_rates() const {
  std::lock_guard lock(mutex_);
  std::vector<DuRates> out(du_ids_.size());
  for (std::size_t i = 0; i < du_ids_.size(); ++i) out[i].du = du_ids_[i];
  for (const auto& d : doms_) {
    DuRates& r = out[d.du_index];
    ++r.doms_expected;
    if (!d.in_latest) continue;
    ++r.doms_reporting;
    if (d.latest_incomplete) ++r.doms_incomplete;
    r.pmts_hrv += d.latest_hrv_pmts;
    r.rate_hz += d.latest_rate_hz;
  }
  for (const auto& d : doms_) {
    if (d.monitoring_packets == 0) continue;
    DuRates& r = out[d.du_index];
    ++r.doms_monitoring;
    r.temperature_c_mean += d.monitoring.temperature_c;
    r.temperature_c_max = r.doms_monitoring == 1 ? d.monitoring.temperature_c : std::max(r.temperature_c_max, d.monitoring.temperature_c);
    r.humidity_pct_max = r.doms_monitoring == 1 ? d.monitoring.humidity_pct : std::max(r.humidity_pct_max, d.monitoring.humidity_pct);
  }
  for (auto& r : out) {
    if (r.doms_reporting > 0) r.mean_pmt_rate_hz = r.rate_hz / (r.doms_reporting * double{dataflow::kPmtsPerDom});
    if (r.doms_monitoring > 0) r.temperature_c_mean /= r.doms_monitoring;
  }
  return out;
}

std::vector<DomHealth> DomHealthMonitor::worst_doms(std::size_t max_count) const {
  std::lock_guard lock(mutex_);
  std::vector<std::vector<double>> du_rates_hz(du_ids_.size());
  for (const auto& d : doms_) {
    if (d.in_latest) du_rates_hz[d.du_index].push_back(d.latest_rate_hz);
  }
  std::vector<double> du_median(du_ids_.size());
  for (std::size_t i = 0; i < du_ids_.size(); ++i) du_median[i] = median(std::move(du_rates_hz[i]));
  std::vector<DomHealth> out;
  for (const auto& d : doms_) {
    DomHealth h;
    h.dom_id = d.dom_id;
    h.du = d.du;
    h.floor = d.floor;
    h.slices = slices_;
    h.slices_missing = slices_ - d.present;
    h.slices_incomplete = d.incomplete;
    h.slices_hrv = d.hrv;
    h.slices_wr_not_ok = d.wr_not_ok;
    h.implausible_time_datagrams = d.implausible_time;
    h.dead_pmts = d.in_latest ? d.latest_dead_pmts : 0;
    h.rate_hz = d.in_latest ? d.latest_rate_hz : 0;
    const double med = du_median[d.du_index];
    h.rate_vs_du_median = d.in_latest && med > 0 ? d.latest_rate_hz / med : 0;
    // The ranking weighs what costs physics most: a missing DOM loses all its hits, lost
    // datagrams lose some, a veto or a dead PMT loses one channel, an odd rate is a warning.
    const auto fraction_problem = [&h](std::uint64_t count, std::uint64_t of, const char* what, const char* of_what,
                                       double weight) {
      if (count == 0) return;
      const double p = percent(count, of);
      h.problems.push_back(fmt::format("{} {:.3g}% of {}", what, p, of_what));
      h.badness += weight * p;
    };
    fraction_problem(h.slices_missing, slices_, "missing from", "slices", 1000);
    fraction_problem(h.slices_incomplete, d.present, "datagrams lost in", "its frames", 100);
    fraction_problem(h.slices_wr_not_ok, d.present, "White Rabbit not locked in", "its frames", 50);
    fraction_problem(h.slices_hrv, d.present, "high-rate veto in", "its frames", 10);
    if (h.implausible_time_datagrams > 0) {
      // A bad clock can only cost data (the builder never lets one DOM move the window), but it
      // is a hardware fault the shifter must report.
      h.problems.push_back(fmt::format("{} datagrams with an implausible slice time (clock?)", h.implausible_time_datagrams));
      h.badness += 500 + 10.0 * std::log2(1.0 + static_cast<double>(h.implausible_time_datagrams));
    }
    if (h.dead_pmts > 0) {
      h.problems.push_back(fmt::format("{} PMT(s) below 2 kHz", h.dead_pmts));
      h.badness += 20.0 * h.dead_pmts;
    }
    if (d.in_latest && med > 0 &&
        (h.rate_vs_du_median > kRateOutlierFactor || h.rate_vs_du_median < 1.0 / kRateOutlierFactor)) {
      h.problems.push_back(fmt::format("rate {:.3g} kHz is {:.2g}x its DU's median", h.rate_hz / 1e3, h.rate_vs_du_median));
      h.badness += 10 * std::abs(std::log2(std::max(h.rate_vs_du_median, 1e-6)));
    }
    if (h.badness > 0) out.push_back(std::move(h));
  }
  std::stable_sort(out.begin(), out.end(), [](const DomHealth& a, const DomHealth& b) { return a.badness > b.badness; });
  if (out.size() > max_count) out.resize(max_count);
  return out;
}

void DomHealthMonitor::observe_monitoring(const std::vector<dataflow::RawMonitoring>& packets) {
  std::lock_guard lock(mutex_);
  for (const auto& raw : packets) {
    const auto it = index_.find(raw.dom_id);
    if (it == index_.end()) continue;
    const auto parsed = dataflow::parse_monitoring_packet(raw.datagram);
    if (!parsed) {
      ++bad_monitoring_;
      continue;
    }
    DomState& d = doms_[it->second];
    ++d.monitoring_packets;
    d.monitoring = parsed.packet;
  }
}

void DomHealthMonitor::note_implausible_times(const std::vector<dataflow::DomCount>& counts) {
  std::lock_guard lock(mutex_);
  for (const auto& c : counts) {
    const auto it = index_.find(c.dom_id);
    if (it != index_.end()) doms_[it->second].implausible_time = c.count;
  }
}

std::uint64_t DomHealthMonitor::slices_observed() const {
  std::lock_guard lock(mutex_);
  return slices_;
}

std::shared_ptr<const dataflow::SummarySlice> DomHealthMonitor::latest_summary() const {
  std::lock_guard lock(mutex_);
  return latest_summary_;
}

std::uint64_t DomHealthMonitor::unknown_dom_frames() const {
  std::lock_guard lock(mutex_);
  return unknown_frames_;
}

nlohmann::json DomHealthMonitor::to_json(std::size_t max_worst) const {
  nlohmann::json dus = nlohmann::json::array();
  for (const auto& r : du_rates()) {
    dus.push_back({{"du", r.du},
                   {"doms_expected", r.doms_expected},
                   {"doms_reporting", r.doms_reporting},
                   {"doms_incomplete", r.doms_incomplete},
                   {"pmts_hrv", r.pmts_hrv},
                   {"rate_khz", r.rate_hz / 1e3},
                   {"mean_pmt_rate_khz", r.mean_pmt_rate_hz / 1e3},
                   {"doms_monitoring", r.doms_monitoring},
                   {"temperature_c_mean", r.temperature_c_mean},
                   {"temperature_c_max", r.temperature_c_max},
                   {"humidity_pct_max", r.humidity_pct_max}});
  }
  nlohmann::json worst = nlohmann::json::array();
  for (const auto& h : worst_doms(max_worst)) {
    worst.push_back({{"dom_id", h.dom_id},
                     {"du", h.du},
                     {"floor", h.floor},
                     {"problems", h.problems},
                     {"slices_missing", h.slices_missing},
                     {"slices_incomplete", h.slices_incomplete},
                     {"slices_hrv", h.slices_hrv},
                     {"slices_wr_not_ok", h.slices_wr_not_ok},
                     {"implausible_time_datagrams", h.implausible_time_datagrams},
                     {"dead_pmts", h.dead_pmts},
                     {"rate_khz", h.rate_hz / 1e3}});
  }
  std::lock_guard lock(mutex_);
  // Per DOM, the latest TMCH packet's values (positioning needs the compass and tilt).
  nlohmann::json monitoring = nlohmann::json::array();
  for (const auto& d : doms_) {
    if (d.monitoring_packets == 0) continue;
    const auto& m = d.monitoring;
    monitoring.push_back({{"dom_id", d.dom_id}, {"du", d.du}, {"floor", d.floor},
                          {"temperature_c", m.temperature_c}, {"humidity_pct", m.humidity_pct},
                          {"ahrs_valid", (m.flags & 1u) != 0}, {"yaw_deg", m.yaw}, {"pitch_deg", m.pitch},
                          {"roll_deg", m.roll}, {"hrv_pmts", std::popcount(m.hrv_mask)},
                          {"white_rabbit_ok", m.header.white_rabbit_ok()}, {"packets", d.monitoring_packets}});
  }
  return {{"frame_index", latest_frame_index_},
          {"slices", slices_},
          {"unknown_dom_frames", unknown_frames_},
          {"bad_monitoring_packets", bad_monitoring_},
          {"dus", std::move(dus)},
          {"worst_doms", std::move(worst)},
          {"doms_monitoring", std::move(monitoring)}};
}

}  // namespace shoredaq::firmware
