// DataFilter's per-DOM work on one range of a slice's frames (data_filter_work.hpp): frame
// checks, summary, L0 straight into the slice's L0 buffer, then, while a DOM's hits are in cache,
// its time index (for the MX shower trigger), its L1 and L2 with its supernova coincidence clusters
// and its frames of the prescaled L1 / L2 / SN slices.
// Touches only its chunk and its own part of the L0 buffer, so ranges can run on other threads.
#include <bit>
#include <climits>

#include "shoredaq/filters/frame_check.hpp"
#include "shoredaq/filters/summary.hpp"
#include "data_filter_work.hpp"

namespace shoredaq::filters {

namespace {

void append_hits(dataflow::DomFrame& frame, const L0Hit* begin, const L0Hit* end) {
  std::size_t at = frame.hits.size();
  frame.hits.resize(at + static_cast<std::size_t>(end - begin) * dataflow::kHitBytes);
  for (const L0Hit* h = begin; h != end; ++h, at += dataflow::kHitBytes)
    dataflow::encode_hit({h->channel, h->raw_time_ns, h->tot_ns}, frame.hits.data() + at);
}

}  // namespace

void DataFilter::DomChunk::clear() {
  counters = FilterCounters{};
  summary.clear();
  error_frames.clear();
  error_defects.clear();
  for (auto& frames : prescaled_frames) frames.clear();
  sn_doms.clear();
  sn_slots.clear();
  sn_clusters.clear();
  sn_cluster_ranges.clear();
  doms.clear();
  l1.clear();
}

void DataFilter::process_doms(const dataflow::Timeslice& slice, DomChunk& chunk, L0Hit* l0_hits,
                              TimeIndexRows time_index, KeptSlices kept_slices, bool supernova) const {
  const TriggerParameters& p = parameters_;
  FilterCounters& counters = chunk.counters;
  const std::uint32_t high_rate_count =
      p.high_rate_veto_hz > 0 ? static_cast<std::uint32_t>(p.high_rate_veto_hz * dataflow::kSliceDurationNs * 1e-9)
                              : UINT32_MAX;
  auto sn_dom = [&](const dataflow::DomFrame& frame, SupernovaDomState state, std::int32_t slot) {
    if (!supernova) return;
    chunk.sn_doms.push_back({frame.dom_id, state, static_cast<std::uint32_t>(frame.hit_count()), 0, 0});
    chunk.sn_slots.push_back(slot);
  };
  const L1Settings l1_settings{p.l1_window_ns, p.combine_l1};
  const L2Settings l2_settings{p.ct_min, p.l2_window_ns, p.l2_min};
  std::size_t next_hit = chunk.hit_offset;  // where the next DOM's L0 hits go
  chunk.summary.reserve(chunk.last - chunk.first);
  for (std::size_t i = chunk.first; i < chunk.last; ++i) {
    const dataflow::DomFrame& frame = slice.frames[i];
    ++counters.frames;
    const std::size_t n = frame.hit_count();
    counters.hits_in += n;
    // Checks, per-channel counts and L0 in one read of the frame (for an optical DOM that sent
    // one): the L0 hits count only if the checks pass, and they are made again in the rare case of
    // a channel over the high-rate veto.
    const auto module_index = detector_.index_of(frame.dom_id);
    const bool optical = module_index && !detector_.modules()[*module_index].is_base();
    const auto max_hits = static_cast<std::size_t>(p.max_hits_per_frame);
    FrameScan scan;
    std::size_t kept = 0;
    std::uint32_t l0_excluded = 0;  // the channels left out of the L0 hits made so far
    if (optical && !frame_missing(frame)) {
      const ModuleInfo& info = modules_[*module_index];
      l0_excluded = (p.hrv_policy == HrvPolicy::Exclude ? frame.status.hrv_mask() : 0u) & info.calibration.present_channels;
      const CheckedL0 checked =
          build_l0_dom_checked(frame, info.calibration, l0_excluded, max_hits, l0_hits + next_hit, chunk.scratch);
      scan = checked.scan;
      kept = checked.hits;
    } else {
      scan = scan_frame(frame, max_hits);
    }
    const ChannelCounts& channel_counts = scan.channel_counts;
    chunk.summary.push_back(summarise_frame(frame, channel_counts));
    if (frame_missing(frame)) {
      ++counters.frames_missing;
      if (supernova && optical) sn_dom(frame, SupernovaDomState::Missing, -1);
      continue;
    }
    if (!optical) {
      ++counters.frames_unknown_dom;
      counters.hits_defective += n;
      continue;
    }
    const std::uint32_t defects = scan.defects;
    if (defects) {
      ++counters.frames_defective;
      counters.frames_epmt += (defects & kDefectEpmt) != 0;
      counters.frames_etdc += (defects & kDefectEtdc) != 0;
      counters.frames_time += (defects & kDefectTime) != 0;
      counters.frames_eudp += (defects & kDefectEudp) != 0;
      counters.frames_size += (defects & kDefectSize) != 0;
      counters.hits_defective += n;
      chunk.error_frames.push_back(frame);
      chunk.error_defects.push_back(defects);
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
    if (excluded != l0_excluded) kept = build_l0_dom_into(frame, info.calibration, excluded, l0_hits + next_hit, chunk.scratch);
    std::uint32_t index_offset = L0Dom::kNoTimeIndex;
    if (time_index.buckets && time_index.row_of_frame[i] != L0Dom::kNoTimeIndex)
      index_offset = time_index.row_of_frame[i] * static_cast<std::uint32_t>(L0TimeIndex::kBuckets);
    const L0Dom dom{frame.dom_id, static_cast<std::uint32_t>(*module_index), static_cast<std::uint32_t>(next_hit),
                    static_cast<std::uint32_t>(next_hit + kept), index_offset};
    if (index_offset != L0Dom::kNoTimeIndex)  // while the DOM's hits are still in cache
      L0TimeIndex::build({l0_hits + next_hit, kept}, dom.begin, time_index.buckets + index_offset);
    next_hit += kept;
    counters.l0_hits += kept;
    counters.hits_vetoed += n - kept;
    const SupernovaDomState sn_state = supernova_frame_state(frame, 0, channel_counts, p.high_rate_veto_hz);
    sn_dom(frame, sn_state, sn_state == SupernovaDomState::Included ? static_cast<std::int32_t>(chunk.doms.size()) : -1);
    const std::span<const L0Hit> hits{l0_hits + dom.begin, kept};
    // L1 / L2 of the DOM, while its hits are in cache (slots are the chunk's; the merge shifts them),
    // and its supernova coincidences in the same pass, counted once the slice's events (the veto)
    // are known.
    const auto slot = static_cast<std::uint32_t>(chunk.doms.size());
    const std::size_t first_l1 = chunk.l1.size();
    const auto first_cluster = static_cast<std::uint32_t>(chunk.sn_clusters.size());
    const dataflow::Vec3& position_m = detector_.modules()[dom.module_index].position_m;
    if (supernova && sn_state == SupernovaDomState::Included) {
      build_l1_dom_and_supernova_clusters(hits, dom.begin, slot, position_m, l1_settings, chunk.l1,
                                          p.supernova.coincidence_window_ns, chunk.sn_clusters);
    } else {
      build_l1_dom(hits, dom.begin, slot, position_m, l1_settings, chunk.l1);
    }
    if (supernova) chunk.sn_cluster_ranges.push_back({first_cluster, static_cast<std::uint32_t>(chunk.sn_clusters.size())});
    for (std::size_t k = first_l1; k < chunk.l1.size(); ++k) {
      L1Hit& h = chunk.l1[k];
      h.l2 = is_l2({l0_hits + h.first_l0, h.multiplicity}, info.pmt_directions, l2_settings);
      counters.l2_hits += h.l2;
    }
    // The DOM's frames of the prescaled L1 / L2 / SN slices, while its hits are in cache.
    using Kind = PrescaledSlice::Kind;
    for (const Kind kind : {Kind::L1, Kind::L2, Kind::SN}) {
      if (!kept_slices[kind_index(kind)]) continue;
      auto& frames = chunk.prescaled_frames[kind_index(kind)];
      for (std::size_t k = first_l1; k < chunk.l1.size(); ++k) {
        const L1Hit& h = chunk.l1[k];
        if (kind == Kind::L2 && !h.l2) continue;
        if (kind == Kind::SN && h.multiplicity < p.sn_min_multiplicity) continue;
        if (frames.empty() || frames.back().dom_id != dom.dom_id) {
          dataflow::DomFrame f;
          f.dom_id = dom.dom_id;
          frames.push_back(std::move(f));
        }
        append_hits(frames.back(), l0_hits + h.first_l0, l0_hits + h.first_l0 + h.multiplicity);
      }
    }
    chunk.doms.push_back(dom);
    const std::size_t l0 = kind_index(PrescaledSlice::Kind::L0);
    if (kept_slices[l0]) chunk.prescaled_frames[l0].push_back(frame);
  }
  counters.l1_hits = chunk.l1.size();
}

}  // namespace shoredaq::filters
