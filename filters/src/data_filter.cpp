#include "shoredaq/filters/data_filter.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <climits>
#include <cstdint>
#include <iterator>

#include "shoredaq/filters/frame_check.hpp"
#include "shoredaq/filters/trigger_3d_shower.hpp"
#include "data_filter_work.hpp"

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

bool keep_prescaled(int prescale, std::uint32_t frame_index) {
  return prescale > 0 && frame_index % static_cast<std::uint32_t>(prescale) == 0;
}

}  // namespace

// Splits the frames into up to `tasks` contiguous ranges of about equal hit counts (returns how
// many); each range's L0 hits go to the buffer after the hits of the frames before it.
std::size_t DataFilterWorkspace::split_frames(const dataflow::Timeslice& slice, std::size_t tasks) {
  const std::size_t frames = slice.frames.size();
  tasks = std::clamp<std::size_t>(tasks, 1, std::max<std::size_t>(frames, 1));
  if (chunks.size() < tasks) chunks.resize(tasks);
  const std::size_t total = slice.hit_count();
  std::size_t frame = 0, hits_before = 0;
  for (std::size_t c = 0; c < tasks; ++c) {
    auto& chunk = chunks[c];
    chunk.clear();
    chunk.first = frame;
    chunk.hit_offset = hits_before;
    const bool last = c + 1 == tasks;
    const std::size_t target = total * (c + 1) / tasks;
    while (frame < frames && (last || hits_before < target)) hits_before += slice.frames[frame++].hit_count();
    chunk.last = frame;
  }
  return tasks;
}

FilterResult DataFilter::process(const dataflow::Timeslice& slice) const {
  return process(slice, nullptr, 1);
}

FilterResult DataFilter::process(const dataflow::Timeslice& slice, const TaskRunner& run, std::size_t threads) const {
  thread_local DataFilterWorkspace ws;
  FilterResult result;
  FilterCounters& counters = result.counters;
  const TriggerParameters& p = parameters_;
  counters.slices = 1;
  result.summary.header = slice.header;
  result.summary.frames.reserve(slice.frames.size());
  result.error_frames.header = slice.header;
  result.error_frames.stamps = slice.stamps;
  const std::uint32_t frame_index = slice.header.frame_index;
  const KeptSlices kept{keep_prescaled(p.prescale_l0, frame_index), keep_prescaled(p.prescale_l1, frame_index),
                        keep_prescaled(p.prescale_l2, frame_index), keep_prescaled(p.prescale_sn, frame_index)};
  SupernovaSliceFigure* sn = nullptr;
  if (p.supernova.enabled) {
    sn = &result.supernova.emplace();
    sn->header = slice.header;
    sn->doms.reserve(slice.frames.size());
  }

  // Frame checks, summary, L0, L1 and L2 per DOM, in frame ranges (on the runner's threads).
  if (ws.l0.hits.size() < slice.hit_count()) {
    // Nothing in it to keep: free the old buffer before the new one is allocated, and leave room
    // so that the next slices (Poisson fluctuations) do not grow it again.
    ws.l0.hits = {};
    ws.l0.hits.resize(slice.hit_count() + slice.hit_count() / 8);
  }
  // The MX shower trigger's way into the neighbours' hits (l0.hpp): a row of buckets for each frame
  // that can have L0 hits (an optical DOM's frame that arrived), so that unknown DOMs cost nothing.
  TimeIndexRows time_index;
  if (p.mxshower.enabled) {
    ws.time_index_row.clear();
    std::uint32_t rows = 0;
    for (const auto& frame : slice.frames) {
      const auto module = detector_.index_of(frame.dom_id);
      const bool has_l0 = module && !detector_.modules()[*module].is_base() && !frame_missing(frame);
      ws.time_index_row.push_back(has_l0 ? rows++ : L0Dom::kNoTimeIndex);
    }
    // Offsets are 32-bit; past that (millions of frames) the searches start at each DOM's first hit.
    if (std::uint64_t{rows} * L0TimeIndex::kBuckets < L0Dom::kNoTimeIndex) {
      ws.l0.time_index.resize(std::max<std::size_t>(ws.l0.time_index.size(), std::size_t{rows} * L0TimeIndex::kBuckets));
      time_index = {ws.l0.time_index.data(), ws.time_index_row.data()};
    }
  }
  const std::size_t used = ws.split_frames(slice, run && threads > 1 ? threads * kRangesPerThread : 1);
  // A lambda names a thread_local instead of capturing it: hand the runner's threads this one's.
  DataFilterWorkspace& mine = ws;
  const auto work = [&](std::size_t c) {
    process_doms(slice, mine.chunks[c], mine.l0.hits.data(), time_index, kept, sn != nullptr);
  };
  if (used == 1) work(0);
  else run(used, work);

  // Merge in frame order: the same as one pass over the frames.
  ws.l0.doms.clear();
  ws.l1.clear();
  ws.slot_of_module.assign(modules_.size(), -1);
  ws.sn_slot_of_dom.clear();
  ws.sn_clusters.clear();
  ws.sn_cluster_ranges.clear();
  // The prescaled slices, in Kind order: L0, L1, L2, SN (the chunks made their frames).
  std::array<PrescaledSlice*, kPrescaledKinds> kept_slices{};
  result.prescaled.reserve(kPrescaledKinds);
  for (std::size_t k = 0; k < kPrescaledKinds; ++k) {
    if (!kept[k]) continue;
    kept_slices[k] = &result.prescaled.emplace_back(
        PrescaledSlice{static_cast<PrescaledSlice::Kind>(k), {slice.header, {}, slice.stamps, {}}});
  }
  for (std::size_t c = 0; c < used; ++c) {
    DomChunk& chunk = ws.chunks[c];
    const auto slot_offset = static_cast<std::int32_t>(ws.l0.doms.size());
    counters += chunk.counters;
    std::move(chunk.summary.begin(), chunk.summary.end(), std::back_inserter(result.summary.frames));
    std::move(chunk.error_frames.begin(), chunk.error_frames.end(), std::back_inserter(result.error_frames.frames));
    result.error_defects.insert(result.error_defects.end(), chunk.error_defects.begin(), chunk.error_defects.end());
    for (std::size_t k = 0; k < kPrescaledKinds; ++k) {
      if (kept_slices[k] == nullptr) continue;
      auto& frames = kept_slices[k]->slice.frames;
      for (auto& f : chunk.prescaled_frames[k]) {
        // A DOM whose selected hits end one chunk and start the next (a slice with the same DOM
        // twice) is one frame, as one pass makes it; L0 keeps the frames as received.
        if (k != kind_index(PrescaledSlice::Kind::L0) && !frames.empty() && frames.back().dom_id == f.dom_id) {
          frames.back().hits.insert(frames.back().hits.end(), f.hits.begin(), f.hits.end());
        } else {
          frames.push_back(std::move(f));
        }
      }
    }
    if (sn) {
      sn->doms.insert(sn->doms.end(), chunk.sn_doms.begin(), chunk.sn_doms.end());
      for (const std::int32_t slot : chunk.sn_slots) ws.sn_slot_of_dom.push_back(slot < 0 ? -1 : slot + slot_offset);
      const auto cluster_offset = static_cast<std::uint32_t>(ws.sn_clusters.size());
      ws.sn_clusters.insert(ws.sn_clusters.end(), chunk.sn_clusters.begin(), chunk.sn_clusters.end());
      for (const auto& [begin, end] : chunk.sn_cluster_ranges)
        ws.sn_cluster_ranges.emplace_back(begin + cluster_offset, end + cluster_offset);
    }
    for (const L0Dom& dom : chunk.doms) {
      ws.slot_of_module[dom.module_index] = static_cast<std::int32_t>(ws.l0.doms.size());
      ws.l0.doms.push_back(dom);
    }
    for (L1Hit h : chunk.l1) {
      h.dom_slot += static_cast<std::uint32_t>(slot_offset);
      ws.l1.push_back(h);
    }
    chunk.clear();  // the moved-from frames go now, on this thread
  }

  sort_l1_by_time(ws.l1, ws.l1_sort);

  // Triggers; their candidates in this order: 3D shower, MX shower, 3D muon.
  ws.candidates.clear();
  const MxShowerInput mx{ws.l1, ws.l0, ws.slot_of_module, mx_neighbours_, p.mxshower};
  if (used > 1 && p.mxshower.enabled && !ws.l1.empty()) {
    // Shared like the per-DOM work: the 3D triggers side by side, the MX shower trigger (the
    // costliest) in parts of its seeds, joined into exactly the one run's candidates.
    const std::size_t parts = std::min(ws.l1.size(), threads * kRangesPerThread);
    ws.mx_parts.resize(parts);
    for (std::size_t k = 0; k < parts; ++k) {
      ws.mx_parts[k].first = ws.l1.size() * k / parts;
      ws.mx_parts[k].last = ws.l1.size() * (k + 1) / parts;
    }
    ws.shower_candidates.clear();
    ws.muon_candidates.clear();
    run(2 + parts, [&](std::size_t task) {
      if (task == 0) {
        counters.triggers_3d_shower = trigger_3d_shower(mine.l1, p.shower3d, mine.shower_candidates, mine.shower_scratch);
      } else if (task == 1) {
        counters.triggers_3d_muon = muon_.run(mine.l1, mine.muon_candidates, mine.muon_scratch);
      } else {
        trigger_mx_shower_part(mx, mine.mx_parts[task - 2]);
      }
    });
    ws.candidates.insert(ws.candidates.end(), std::make_move_iterator(ws.shower_candidates.begin()),
                         std::make_move_iterator(ws.shower_candidates.end()));
    counters.triggers_mx_shower =
        join_mx_shower_parts(mx, std::span<MxShowerPart>(ws.mx_parts.data(), parts), ws.candidates, ws.trigger_scratch);
    ws.candidates.insert(ws.candidates.end(), std::make_move_iterator(ws.muon_candidates.begin()),
                         std::make_move_iterator(ws.muon_candidates.end()));
  } else {
    counters.triggers_3d_shower = trigger_3d_shower(ws.l1, p.shower3d, ws.candidates, ws.trigger_scratch);
    counters.triggers_mx_shower =
        trigger_mx_shower(ws.l1, ws.l0, ws.slot_of_module, mx_neighbours_, p.mxshower, ws.candidates, ws.trigger_scratch);
    counters.triggers_3d_muon = muon_.run(ws.l1, ws.candidates, ws.trigger_scratch);
  }
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
      const auto [begin, end] = ws.sn_cluster_ranges[static_cast<std::size_t>(slot)];
      count_supernova_clusters(ws.l0.hits_of(ws.l0.doms[static_cast<std::size_t>(slot)]),
                               std::span<const SupernovaCluster>(ws.sn_clusters).subspan(begin, end - begin),
                               p.supernova, veto, sn->doms[k], sn->multiplicity_counts, &ws.sn_times,
                               static_cast<std::uint32_t>(k));
    }
    veto_correlated_supernova_coincidences(ws.sn_times, p.supernova, *sn);
  }
  return result;
}

}  // namespace shoredaq::filters
