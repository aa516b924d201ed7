#pragma once
// DataFilter's working buffers (private to data_filter*.cpp): the per-DOM work of a slice is done
// in DomChunks (contiguous frame ranges, possibly on other threads), then merged in frame order.

#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include "shoredaq/filters/data_filter.hpp"
#include "shoredaq/filters/l1.hpp"
#include "shoredaq/filters/supernova.hpp"
#include "shoredaq/filters/trigger_mx_shower.hpp"

namespace shoredaq::filters {

// The per-DOM work of frames [first, last): checks, summary, L0 (written straight into the slice's
// L0 buffer at `hit_offset`, the hits of the frames before), the time index, L1, L2 and the
// supernova clusters. Slots are the chunk's own (0 = its first good DOM); the merge adds the good
// DOMs of the chunks before.
struct DataFilter::DomChunk {
  std::size_t first = 0, last = 0;
  std::size_t hit_offset = 0;
  FilterCounters counters;
  std::vector<dataflow::SummaryFrame> summary;
  std::vector<dataflow::DomFrame> error_frames;
  std::vector<std::uint32_t> error_defects;
  // The chunk's frames of the prescaled slices, by PrescaledSlice::Kind: for L0 the frames as
  // received; for L1, L2 and SN, per DOM with such hits, the L0 hits of its L1 hits (of its L2
  // hits, of its L1 hits of sn_min_multiplicity or more), in L1 order.
  std::array<std::vector<dataflow::DomFrame>, kPrescaledKinds> prescaled_frames;
  std::vector<SupernovaDomFigure> sn_doms;
  std::vector<std::int32_t> sn_slots;         // per sn_doms entry: the chunk's slot, -1 if excluded
  std::vector<SupernovaCluster> sn_clusters;  // of the included DOMs, hit indices within their DOM
  std::vector<std::pair<std::uint32_t, std::uint32_t>> sn_cluster_ranges;  // per L0 DOM: [begin, end) in sn_clusters
  std::vector<L0Dom> doms;                    // L0 hit ranges in the slice's buffer
  std::vector<L1Hit> l1;                      // dom_slot: the chunk's
  L0Scratch scratch;
  void clear();
};

// Per-thread buffers reused across slices: the steady state allocates only the outputs.
struct DataFilterWorkspace {
  // hits: grown to the largest slice and never shrunk, so a slice does not re-initialise it; the
  // L0 hits are the DOM ranges, with gaps where a chunk's frames had excluded hits or were rejected
  // (their space may hold hits of a rejected frame). time_index likewise.
  L0Slice l0;
  std::vector<DataFilter::DomChunk> chunks;
  std::vector<L1Hit> l1;
  L1SortBuffers l1_sort;
  std::vector<std::int32_t> slot_of_module;
  std::vector<TriggerCandidate> candidates;
  TriggerScratch trigger_scratch;
  // The triggers on the runner's threads: the 3D ones' own candidates and buffers, the MX shower's parts.
  std::vector<TriggerCandidate> shower_candidates, muon_candidates;
  TriggerScratch shower_scratch, muon_scratch;
  std::vector<MxShowerPart> mx_parts;
  std::vector<std::uint32_t> time_index_row;  // per frame: its row in l0.time_index, or L0Dom::kNoTimeIndex
  std::vector<std::int32_t> sn_slot_of_dom;  // per SupernovaSliceFigure::doms entry: L0 slot, -1 if excluded
  std::vector<SupernovaCluster> sn_clusters;  // the chunks' clusters, merged
  std::vector<std::pair<std::uint32_t, std::uint32_t>> sn_cluster_ranges;  // per L0 slot: [begin, end) in sn_clusters
  std::vector<SupernovaCoincidenceTime> sn_times;  // for the correlated-DOM veto

  // Splits the frames into up to `tasks` chunks of about equal hit counts; returns how many.
  std::size_t split_frames(const dataflow::Timeslice& slice, std::size_t tasks);
};

}  // namespace shoredaq::filters
