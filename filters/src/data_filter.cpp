#include "shoredaq/filters/data_filter.hpp"

#include <algorithm>
#include <bit>
#include <climits>
#include <cstdint>

#include "shoredaq/filters/frame_check.hpp"
#include "shoredaq/filters/l1.hpp"
#include "shoredaq/filters/summary.hpp"
#include "shoredaq/filters/trigger_3d_shower.hpp"

namespace shoredaq::filters {

FilterCounters& FilterCounters::operator+=(const FilterCounters& o) {
  slices += o.slices;
  frames += o.frames;
  frames_good += o.frames_good;
  frames_missing += o.frames_missing;
  frames_defective += o.frames_defective;
  frames_epmt += o.frames_epmt;
  frames_etdc += o.frames_etdc;
  frames_time += o.frames_time;
  frames_eudp += o.frames_eudp;
  frames_size += o.frames_size;
  frames_unknown_dom += o.frames_unknown_dom;
  hits_in += o.hits_in;
  hits_defective += o.hits_defective;
  hits_vetoed += o.hits_vetoed;
  pmts_vetoed += o.pmts_vetoed;
  l0_hits += o.l0_hits;
  l1_hits += o.l1_hits;
  l2_hits += o.l2_hits;
  triggers_3d_shower += o.triggers_3d_shower;
  triggers_mx_shower += o.triggers_mx_shower;
  triggers_3d_muon += o.triggers_3d_muon;
  triggers_factory_limit += o.triggers_factory_limit;
  events += o.events;
  triggered_hits += o.triggered_hits;
  snapshot_hits += o.snapshot_hits;
  event_bytes += o.event_bytes;
  return *this;
}

DataFilter::DataFilter(const dataflow::Detector& detector, TriggerParameters parameters)
    : detector_(detector),
      parameters_(parameters),
      mx_neighbours_(detector_, parameters_.mxshower.d_max_m),
      muon_(parameters_.muon3d) {
  for (const auto& m : detector_.modules()) {
    ModuleInfo info;
    info.calibration = DomCalibration::of(m);
    for (std::size_t ch = 0; ch < std::min<std::size_t>(m.pmts.size(), dataflow::kPmtsPerDom); ++ch)
      info.pmt_directions[ch] = m.pmts[ch].direction;
    modules_.push_back(info);
    module_positions_.push_back(m.position_m);
  }
}

namespace {

// Per-thread buffers reused across slices: the steady state allocates only the outputs.
struct Workspace {
  L0Slice l0;
  L0Scratch l0_scratch;
  std::vector<L1Hit> l1;
  std::vector<std::int32_t> slot_of_module;
  std::vector<TriggerCandidate> candidates;
  TriggerScratch trigger_scratch;
  std::vector<std::int32_t> sn_slot_of_dom;  // per SupernovaSliceFigure::doms entry: L0 slot, -1 if excluded
  std::vector<SupernovaCoincidenceTime> sn_times;  // for the correlated-DOM veto
};

void append_hits(dataflow::DomFrame& frame, const L0Hit* begin, const L0Hit* end) {
  for (const L0Hit* h = begin; h != end; ++h) {
    const std::size_t at = frame.hits.size();
    frame.hits.resize(at + dataflow::kHitBytes);
    dataflow::encode_hit({h->channel, h->raw_time_ns, h->tot_ns}, frame.hits.data() + at);
  }
}

bool keep_prescaled(int prescale, std::uint32_t frame_index) {
  return prescale > 0 && frame_index % static_cast<std::uint32_t>(prescale) == 0;
}

}  // namespace

FilterResult DataFilter::process(const dataflow::Timeslice& slice) const {
  thread_local Workspace ws;
  FilterResult result;
  FilterCounters& counters = result.counters;
  const TriggerParameters& p = parameters_;
  counters.slices = 1;
  result.summary.header = slice.header;
  result.summary.frames.reserve(slice.frames.size());
  result.error_frames.header = slice.header;
  result.error_frames.stamps = slice.stamps;

  // Frame checks, summary and L0.
  ws.l0.clear();
  ws.l0.hits.reserve(slice.hit_count());
  ws.slot_of_module.assign(modules_.size(), -1);
  const std::uint32_t high_rate_count =
      p.high_rate_veto_hz > 0 ? static_cast<std::uint32_t>(p.high_rate_veto_hz * dataflow::kSliceDurationNs * 1e-9)
                              : UINT32_MAX;
  const PrescaledSlice::Kind kind_l0 = PrescaledSlice::Kind::L0;
  const bool keep_l0 = keep_prescaled(p.prescale_l0, slice.header.frame_index);
  if (keep_l0) result.prescaled.push_back({kind_l0, {slice.header, {}, slice.stamps, {}}});
  SupernovaSliceFigure* sn = nullptr;
  if (p.supernova.enabled) {
    sn = &result.supernova.emplace();
    sn->header = slice.header;
    sn->doms.reserve(slice.frames.size());
    ws.sn_slot_of_dom.clear();
  }
  auto sn_dom = [&](const dataflow::DomFrame& frame, SupernovaDomState state, std::int32_t slot) {
    if (!sn) return;
    sn->doms.push_back({frame.dom_id, state, static_cast<std::uint32_t>(frame.hit_count()), 0, 0});
    ws.sn_slot_of_dom.push_back(slot);
  };
  for (const auto& frame : slice.frames) {
    ++counters.frames;
    const std::size_t n = frame.hit_count();
    counters.hits_in += n;
    const ChannelCounts channel_counts = count_hits_per_channel(frame);
    result.summary.frames.push_back(summarise_frame(frame, channel_counts));
    if (frame_missing(frame)) {
      ++counters.frames_missing;
      if (sn) {
        const auto index = detector_.index_of(frame.dom_id);
        if (index && !detector_.modules()[*index].is_base()) sn_dom(frame, SupernovaDomState::Missing, -1);
      }
      continue;
    }
    const auto module_index = detector_.index_of(frame.dom_id);
    if (!module_index || detector_.modules()[*module_index].is_base()) {
      ++counters.frames_unknown_dom;
      counters.hits_defective += n;
      continue;
    }
    const std::uint32_t defects = check_frame(frame, static_cast<std::size_t>(p.max_hits_per_frame));
    if (defects) {
      ++counters.frames_defective;
      counters.frames_epmt += (defects & kDefectEpmt) != 0;
      counters.frames_etdc += (defects & kDefectEtdc) != 0;
      counters.frames_time += (defects & kDefectTime) != 0;
      counters.frames_eudp += (defects & kDefectEudp) != 0;
      counters.frames_size += (defects & kDefectSize) != 0;
      counters.hits_defective += n;
      result.error_frames.frames.push_back(frame);
      result.error_defects.push_back(defects);
      sn_dom(frame, SupernovaDomState::Incomplete, -1);
      continue;
    }
    ++counters.frames_good;
    std::uint32_t excluded = p.hrv_policy == HrvPolicy::Exclude ? frame.status.hrv_mask() : 0u;
    for (unsigned ch = 0; ch < dataflow::kPmtsPerDom; ++ch)
      if (channel_counts[ch] > high_rate_count) excluded |= 1u << ch;
    const ModuleInfo& info = modules_[*module_index];
    excluded &= info.calibration.present_channels;
    counters.pmts_vetoed += static_cast<unsigned>(std::popcount(excluded));
    L0Dom dom{frame.dom_id, static_cast<std::uint32_t>(*module_index), static_cast<std::uint32_t>(ws.l0.hits.size()), 0};
    const std::size_t kept = build_l0_dom(frame, info.calibration, excluded, ws.l0.hits, ws.l0_scratch);
    dom.end = dom.begin + static_cast<std::uint32_t>(kept);
    counters.hits_vetoed += n - kept;
    const SupernovaDomState sn_state = supernova_frame_state(frame, 0, channel_counts, p.high_rate_veto_hz);
    sn_dom(frame, sn_state, sn_state == SupernovaDomState::Included ? static_cast<std::int32_t>(ws.l0.doms.size()) : -1);
    ws.slot_of_module[*module_index] = static_cast<std::int32_t>(ws.l0.doms.size());
    ws.l0.doms.push_back(dom);
    if (keep_l0) result.prescaled.back().slice.frames.push_back(frame);
  }
  counters.l0_hits = ws.l0.hits.size();

  // L1 / L2 per DOM, then all L1 hits of the slice in time order.
  ws.l1.clear();
  const L1Settings l1_settings{p.l1_window_ns, p.combine_l1};
  const L2Settings l2_settings{p.ct_min, p.l2_window_ns, p.l2_min};
  for (std::size_t slot = 0; slot < ws.l0.doms.size(); ++slot) {
    const L0Dom& dom = ws.l0.doms[slot];
    const std::size_t first_l1 = ws.l1.size();
    build_l1_dom(ws.l0.hits_of(dom), dom.begin, static_cast<std::uint32_t>(slot),
                 detector_.modules()[dom.module_index].position_m, l1_settings, ws.l1);
    const auto& directions = modules_[dom.module_index].pmt_directions;
    for (std::size_t k = first_l1; k < ws.l1.size(); ++k) {
      L1Hit& h = ws.l1[k];
      h.l2 = is_l2({ws.l0.hits.data() + h.first_l0, h.multiplicity}, directions, l2_settings);
      counters.l2_hits += h.l2;
    }
  }
  counters.l1_hits = ws.l1.size();

  // Prescaled L1 / L2 / SN slices (before the time sort, while L1 hits are grouped per DOM).
  const std::pair<int, PrescaledSlice::Kind> hit_slices[] = {
      {p.prescale_l1, PrescaledSlice::Kind::L1}, {p.prescale_l2, PrescaledSlice::Kind::L2}, {p.prescale_sn, PrescaledSlice::Kind::SN}};
  for (const auto& [prescale, kind] : hit_slices) {
    if (!keep_prescaled(prescale, slice.header.frame_index)) continue;
    PrescaledSlice ps{kind, {slice.header, {}, slice.stamps, {}}};
    for (const L1Hit& h : ws.l1) {
      if (kind == PrescaledSlice::Kind::L2 && !h.l2) continue;
      if (kind == PrescaledSlice::Kind::SN && h.multiplicity < p.sn_min_multiplicity) continue;
      const std::uint32_t dom_id = ws.l0.doms[h.dom_slot].dom_id;
      if (ps.slice.frames.empty() || ps.slice.frames.back().dom_id != dom_id) {
        dataflow::DomFrame f;
        f.dom_id = dom_id;
        ps.slice.frames.push_back(std::move(f));
      }
      const L0Hit* first = ws.l0.hits.data() + h.first_l0;
      append_hits(ps.slice.frames.back(), first, first + h.multiplicity);
    }
    result.prescaled.push_back(std::move(ps));
  }

  std::sort(ws.l1.begin(), ws.l1.end(), [](const L1Hit& a, const L1Hit& b) { return a.time_ns < b.time_ns; });

  // Triggers.
  ws.candidates.clear();
  counters.triggers_3d_shower = trigger_3d_shower(ws.l1, p.shower3d, ws.candidates, ws.trigger_scratch);
  counters.triggers_mx_shower =
      trigger_mx_shower(ws.l1, ws.l0, ws.slot_of_module, mx_neighbours_, p.mxshower, ws.candidates, ws.trigger_scratch);
  counters.triggers_3d_muon = muon_.run(ws.l1, ws.candidates, ws.trigger_scratch);
  for (const auto& c : ws.candidates)
    counters.triggers_factory_limit += (c.trigger_mask & dataflow::trigger_bit(dataflow::kTriggerBitFactoryLimit)) != 0;

  // Events.
  build_events(ws.candidates, ws.l0, slice.header, p.snapshot_window_ns, result.events,
               SnapshotScope{p.snapshot_max_distance_m, module_positions_});
  for (auto& e : result.events) {
    e.stamps = slice.stamps;
    counters.triggered_hits += e.triggered.size();
    counters.snapshot_hits += e.snapshot.size();
    counters.event_bytes += online_event_bytes(e);
  }
  counters.events = result.events.size();

  // Supernova coincidences of the included DOMs, vetoed by this slice's triggered hits and by
  // each other (correlated DOMs).
  if (sn) {
    const SupernovaVeto veto(result.events);
    ws.sn_times.clear();
    for (std::size_t k = 0; k < sn->doms.size(); ++k) {
      const std::int32_t slot = ws.sn_slot_of_dom[k];
      if (slot < 0) continue;
      count_supernova_coincidences(ws.l0.hits_of(ws.l0.doms[static_cast<std::size_t>(slot)]), p.supernova, veto,
                                   sn->doms[k], sn->multiplicity_counts, &ws.sn_times, static_cast<std::uint32_t>(k));
    }
    veto_correlated_supernova_coincidences(ws.sn_times, p.supernova, *sn);
  }
  return result;
}

}  // namespace shoredaq::filters
