#include "shoredaq/filters/supernova.hpp"

#include <algorithm>
#include <bit>

#include "shoredaq/filters/frame_check.hpp"
#include "shoredaq/filters/summary.hpp"
#include "coincidence_steps.hpp"

namespace shoredaq::filters {

std::uint64_t SupernovaSliceFigure::coincidences() const noexcept {
  std::uint64_t n = 0;
  for (const auto& d : doms)
    if (d.state == SupernovaDomState::Included) n += d.coincidences;
  return n;
}

std::uint32_t SupernovaSliceFigure::included_doms() const noexcept {
  return doms_in_state(SupernovaDomState::Included);
}

std::uint32_t SupernovaSliceFigure::doms_in_state(SupernovaDomState state) const noexcept {
  std::uint32_t n = 0;
  for (const auto& d : doms) n += d.state == state;
  return n;
}

SupernovaVeto::SupernovaVeto(std::span<const dataflow::Event> events) {
  for (const auto& e : events)
    for (const auto& t : e.triggered) keys_.push_back({t.dom_id, t.hit.time_ns, t.hit.channel});
  std::sort(keys_.begin(), keys_.end());
  keys_.erase(std::unique(keys_.begin(), keys_.end()), keys_.end());
}

bool SupernovaVeto::contains(std::uint32_t dom_id, std::uint8_t channel, std::uint32_t raw_time_ns) const noexcept {
  return std::binary_search(keys_.begin(), keys_.end(), Key{dom_id, raw_time_ns, channel});
}

void find_supernova_clusters(std::span<const L0Hit> hits_by_time, double coincidence_window_ns,
                             std::vector<SupernovaCluster>& out) {
  const std::size_t n = hits_by_time.size();
  std::size_t i = 0;
  while (i + 1 < n) {
    // The common case, lone hits: four at a time with one branch (the same tests, hit by hit).
    const auto alone = [&](std::size_t k) -> int {
      return hits_by_time[k + 1].time_ns > hits_by_time[k].time_ns + coincidence_window_ns;
    };
    if (i + 4 < n && alone(i) + alone(i + 1) + alone(i + 2) + alone(i + 3) == 4) {
      i += 4;
      continue;
    }
    const double window_end_ns = hits_by_time[i].time_ns + coincidence_window_ns;
    if (hits_by_time[i + 1].time_ns > window_end_ns) {  // a lone hit
      ++i;
      continue;
    }
    i = detail::take_supernova_cluster(hits_by_time.data(), n, i, coincidence_window_ns, out);
  }
}

void count_supernova_clusters(std::span<const L0Hit> hits_by_time, std::span<const SupernovaCluster> clusters,
                              const SupernovaSettings& settings, const SupernovaVeto& veto, SupernovaDomFigure& figure,
                              std::array<std::uint32_t, dataflow::kPmtsPerDom + 1>& multiplicity_counts,
                              std::vector<SupernovaCoincidenceTime>* times, std::uint32_t dom_index) {
  const auto min_multiplicity = static_cast<std::uint32_t>(settings.min_multiplicity);
  const auto max_multiplicity = static_cast<std::uint32_t>(settings.max_multiplicity);
  for (const SupernovaCluster& c : clusters) {
    ++multiplicity_counts[c.multiplicity];
    bool kept = false;
    if (c.multiplicity >= min_multiplicity && c.multiplicity <= max_multiplicity) {
      bool vetoed = false;
      if (!veto.empty())
        for (std::size_t k = c.first; k < c.end && !vetoed; ++k)
          vetoed = veto.contains(figure.dom_id, hits_by_time[k].channel, hits_by_time[k].raw_time_ns);
      ++(vetoed ? figure.vetoed : figure.coincidences);
      kept = !vetoed;
    }
    if (times && c.multiplicity >= min_multiplicity) times->push_back({hits_by_time[c.first].time_ns, dom_index, kept});
  }
}

void count_supernova_coincidences(std::span<const L0Hit> hits_by_time, const SupernovaSettings& settings,
                                  const SupernovaVeto& veto, SupernovaDomFigure& figure,
                                  std::array<std::uint32_t, dataflow::kPmtsPerDom + 1>& multiplicity_counts,
                                  std::vector<SupernovaCoincidenceTime>* times, std::uint32_t dom_index) {
  thread_local std::vector<SupernovaCluster> clusters;
  clusters.clear();
  find_supernova_clusters(hits_by_time, settings.coincidence_window_ns, clusters);
  count_supernova_clusters(hits_by_time, clusters, settings, veto, figure, multiplicity_counts, times, dom_index);
}

void veto_correlated_supernova_coincidences(std::vector<SupernovaCoincidenceTime>& times,
                                            const SupernovaSettings& settings, SupernovaSliceFigure& figure) {
  const double window_ns = settings.correlated_veto_window_ns;
  if (!(window_ns > 0) || times.size() < 2) return;
  std::sort(times.begin(), times.end(), [](const auto& a, const auto& b) { return a.time_ns < b.time_ns; });
  // Sorted by time, a coincidence has a partner within the window exactly when a neighbour is within it.
  for (std::size_t i = 0; i < times.size(); ++i) {
    if (!times[i].kept) continue;
    const bool near_before = i > 0 && times[i].time_ns - times[i - 1].time_ns <= window_ns;
    const bool near_after = i + 1 < times.size() && times[i + 1].time_ns - times[i].time_ns <= window_ns;
    if (!near_before && !near_after) continue;
    SupernovaDomFigure& dom = figure.doms[times[i].dom_index];
    --dom.coincidences;
    ++dom.correlated;
  }
}

SupernovaDomState supernova_frame_state(const dataflow::DomFrame& frame, std::uint32_t defects,
                                        std::span<const std::uint32_t> channel_hits, double high_rate_veto_hz) noexcept {
  if (frame_missing(frame)) return SupernovaDomState::Missing;
  if (defects != 0 || !frame.status.complete()) return SupernovaDomState::Incomplete;
  // A vetoed PMT's data are truncated: its DOM's coincidence rate is not comparable to the baseline.
  if (frame.status.hrv_mask() != 0) return SupernovaDomState::HighRate;
  if (high_rate_veto_hz > 0) {
    const double max_hits = high_rate_veto_hz * dataflow::kSliceDurationNs * 1e-9;
    for (const std::uint32_t h : channel_hits)
      if (static_cast<double>(h) > max_hits) return SupernovaDomState::HighRate;
  }
  return SupernovaDomState::Included;
}

SupernovaCoincidences::SupernovaCoincidences(const dataflow::Detector& detector, SupernovaSettings settings,
                                             double high_rate_veto_hz, int max_hits_per_frame)
    : detector_(detector),
      settings_(settings),
      high_rate_veto_hz_(high_rate_veto_hz),
      max_hits_per_frame_(max_hits_per_frame) {
  for (const auto& m : detector_.modules()) calibrations_.push_back(DomCalibration::of(m));
}

SupernovaSliceFigure SupernovaCoincidences::process(const dataflow::Timeslice& slice,
                                                    std::span<const dataflow::Event> events) const {
  thread_local std::vector<L0Hit> hits;
  thread_local L0Scratch scratch;
  SupernovaSliceFigure figure;
  figure.header = slice.header;
  figure.doms.reserve(slice.frames.size());
  thread_local std::vector<SupernovaCoincidenceTime> times;
  times.clear();
  const SupernovaVeto veto(events);
  for (const auto& frame : slice.frames) {
    const auto module_index = detector_.index_of(frame.dom_id);
    if (!module_index || detector_.modules()[*module_index].is_base()) continue;  // not an optical DOM
    SupernovaDomFigure dom;
    dom.dom_id = frame.dom_id;
    dom.hits = static_cast<std::uint32_t>(frame.hit_count());
    const std::uint32_t defects =
        frame_missing(frame) ? 0u : check_frame(frame, static_cast<std::size_t>(max_hits_per_frame_));
    const ChannelCounts channel_hits = count_hits_per_channel(frame);
    dom.state = supernova_frame_state(frame, defects, channel_hits, high_rate_veto_hz_);
    if (dom.state == SupernovaDomState::Included) {
      hits.clear();
      build_l0_dom(frame, calibrations_[*module_index], 0, hits, scratch);
      count_supernova_coincidences(hits, settings_, veto, dom, figure.multiplicity_counts, &times,
                                   static_cast<std::uint32_t>(figure.doms.size()));
    }
    figure.doms.push_back(dom);
  }
  veto_correlated_supernova_coincidences(times, settings_, figure);
  return figure;
}

}  // namespace shoredaq::filters
