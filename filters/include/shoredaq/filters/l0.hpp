#pragma once
// L0: every hit of a good frame, calibrated with its PMT's t0 and time-ordered per DOM.

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <span>
#include <vector>

#include "shoredaq/filters/frame_check.hpp"
#include "shoredaq/formats/detector.hpp"
#include "shoredaq/formats/timeslice.hpp"

namespace shoredaq::filters {

struct L0Hit {
  double time_ns = 0;             // calibrated: raw + PMT t0
  std::uint32_t raw_time_ns = 0;  // as the DOM sent it (events store raw hits)
  std::uint8_t channel = 0;
  std::uint8_t tot_ns = 0;
};

// The t0 of every DAQ channel of one DOM; channels without a PMT are marked absent.
struct DomCalibration {
  std::array<double, dataflow::kPmtsPerDom> t0_ns{};
  std::uint32_t present_channels = 0;  // bit c set when the module has a PMT on channel c
  static DomCalibration of(const dataflow::Module& module);
};

// One DOM's L0 hits inside L0Slice::hits.
struct L0Dom {
  std::uint32_t dom_id = 0;
  std::uint32_t module_index = 0;  // into Detector::modules()
  std::uint32_t begin = 0, end = 0;
  std::uint32_t time_index = kNoTimeIndex;  // where its L0TimeIndex buckets start in L0Slice::time_index
  static constexpr std::uint32_t kNoTimeIndex = UINT32_MAX;  // none built: searches start at `begin`
};

// A coarse time index of one DOM's L0 hits: bucket b holds a hit index (slice-wide) at most 7 hits
// before the first hit with time_ns >= b * kBucketNs. A trigger looking for a neighbour's hits near a time starts there,
// one cache line from the answer, instead of searching the DOM's hits (each probe a cold line once
// the slice's L0 outgrows the cache). Buckets of 65.5 us hold ~14 hits at 7 kHz per PMT.
struct L0TimeIndex {
  static constexpr double kBucketNs = 65'536.0;
  static constexpr std::size_t kBuckets = 1'536;  // 100.66 ms: the slice, plus t0; later hits are in the last
  // Writes the kBuckets entries of the DOM whose hits (by time) are `hits`, the first at `first_hit`.
  static void build(std::span<const L0Hit> hits, std::uint32_t first_hit, std::uint32_t* buckets) noexcept;
};

// All L0 hits of one slice: DOMs in frame order (by DOM id), each DOM's hits by calibrated time.
struct L0Slice {
  std::vector<L0Hit> hits;
  std::vector<L0Dom> doms;
  std::vector<std::uint32_t> time_index;  // L0TimeIndex buckets per DOM, when the slice's user built them
  std::span<const L0Hit> hits_of(const L0Dom& d) const noexcept {
    return {hits.data() + d.begin, d.end - d.begin};
  }
  // A hit index of the DOM (or its end) not after the first of its hits with time_ns >= t: where a
  // forward search for t starts (the DOM's first hit when it has no time index).
  std::uint32_t search_start(const L0Dom& d, double t) const noexcept {
    const std::uint32_t* entry = search_start_entry(d, t);
    return entry != nullptr ? *entry : d.begin;
  }
  // Where search_start(d, t) reads its answer (nullptr: it needs none), for a prefetch.
  const std::uint32_t* search_start_entry(const L0Dom& d, double t) const noexcept {
    if (d.time_index == L0Dom::kNoTimeIndex || !(t >= L0TimeIndex::kBucketNs)) return nullptr;  // also NaN
    const double b = std::min(t / L0TimeIndex::kBucketNs, static_cast<double>(L0TimeIndex::kBuckets - 1));
    return time_index.data() + d.time_index + static_cast<std::size_t>(b);
  }
  // The DOM slot holding global hit index i.
  std::size_t dom_slot_of(std::uint32_t hit_index) const noexcept;
  void clear() noexcept { hits.clear(); doms.clear(); time_index.clear(); }
};

// Reusable buffers of build_l0_dom (one per thread).
struct L0Scratch {
  std::vector<std::uint32_t> keys;
  std::vector<std::uint32_t> bucket_starts;
};

// Appends the frame's hits (except channels in excluded_channels and channels without a PMT) to
// `out`, calibrated and sorted by calibrated time; returns how many were appended.
// The result is the stable sort by calibrated time. A frame in the CLB's order (time-ordered per
// channel, nearly so across channels) is decoded in order and each hit inserted into place: one
// pass. A frame further from time order (over n/2 moves) is sorted again, by a counting sort into
// ~1-hit-wide time buckets and an insertion pass within buckets: linear in practice on any order.
std::size_t build_l0_dom(const dataflow::DomFrame& frame, const DomCalibration& calibration,
                         std::uint32_t excluded_channels, std::vector<L0Hit>& out, L0Scratch& scratch);
// The same, into `dst`, which has room for every hit of the frame (for a buffer shared by threads).
std::size_t build_l0_dom_into(const dataflow::DomFrame& frame, const DomCalibration& calibration,
                              std::uint32_t excluded_channels, L0Hit* dst, L0Scratch& scratch);

// DataFilter's single read of a frame: scan_frame()'s checks and counts, and, from the same read,
// build_l0_dom_into()'s hits (whether to keep them, given the per-channel counts, is the caller's;
// a frame with defects may come back with fewer hits or none).
struct CheckedL0 {
  FrameScan scan;
  std::size_t hits = 0;  // written to dst
};
CheckedL0 build_l0_dom_checked(const dataflow::DomFrame& frame, const DomCalibration& calibration,
                               std::uint32_t excluded_channels, std::size_t max_hits_per_frame, L0Hit* dst,
                               L0Scratch& scratch);

}  // namespace shoredaq::filters
