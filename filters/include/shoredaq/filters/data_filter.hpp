#pragma once
// The whole filter chain for one timeslice: frame checks -> L0 -> L1/L2 -> the three triggers ->
// events, plus the summary slice, the error frames and the prescaled timeslices. Pure: no threads,
// sockets, clocks or files. process() is const and thread-safe, so worker threads share one
// DataFilter; per-call buffers are thread_local. Intra-slice parallelism is the caller's: the
// per-DOM work can be handed to a TaskRunner (threads live in dataflow/ and firmware/).

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "shoredaq/formats/detector.hpp"
#include "shoredaq/formats/event.hpp"
#include "shoredaq/formats/summary_slice.hpp"
#include "shoredaq/formats/timeslice.hpp"
#include "shoredaq/filters/event_builder.hpp"
#include "shoredaq/filters/l0.hpp"
#include "shoredaq/filters/supernova.hpp"
#include "shoredaq/filters/trigger_3d_muon.hpp"
#include "shoredaq/filters/trigger_mx_shower.hpp"
#include "shoredaq/filters/trigger_parameters.hpp"

namespace shoredaq::filters {

struct FilterCounters {
  std::uint64_t slices = 0;
  std::uint64_t frames = 0;            // frames in the slice (missing ones included)
  std::uint64_t frames_good = 0;       // passed every check, known DOM
  std::uint64_t frames_missing = 0;    // never arrived (daq == 0, no hits)
  std::uint64_t frames_defective = 0;  // any defect (went to error_frames)
  std::uint64_t frames_epmt = 0, frames_etdc = 0, frames_time = 0, frames_eudp = 0, frames_size = 0;
  std::uint64_t frames_unknown_dom = 0;  // DOM not in the detector (dropped, not in error_frames)
  std::uint64_t hits_in = 0;             // every hit of every frame
  std::uint64_t hits_defective = 0;      // hits of defective / unknown-DOM frames
  std::uint64_t hits_vetoed = 0;         // of good frames, left out of L0 (HRV / high rate)
  std::uint64_t pmts_vetoed = 0;
  std::uint64_t l0_hits = 0, l1_hits = 0, l2_hits = 0;
  std::uint64_t triggers_3d_shower = 0, triggers_mx_shower = 0, triggers_3d_muon = 0;
  std::uint64_t triggers_factory_limit = 0;
  std::uint64_t events = 0;
  std::uint64_t triggered_hits = 0, snapshot_hits = 0;
  std::uint64_t event_bytes = 0;  // online-format size of the events
  FilterCounters& operator+=(const FilterCounters& o);
  friend bool operator==(const FilterCounters&, const FilterCounters&) = default;
};

struct PrescaledSlice {
  enum class Kind : std::uint8_t { L0, L1, L2, SN };  // also their order in FilterResult::prescaled
  Kind kind = Kind::L1;
  dataflow::Timeslice slice;  // per DOM with selected hits: the selected hits, raw, by calibrated time
};
inline constexpr std::size_t kPrescaledKinds = 4;
constexpr std::size_t kind_index(PrescaledSlice::Kind kind) noexcept { return static_cast<std::size_t>(kind); }

struct FilterResult {
  std::vector<dataflow::Event> events;    // trigger_counter 0, event_number = index in the slice
  dataflow::SummarySlice summary;         // every frame of the slice
  dataflow::Timeslice error_frames;       // defective frames as received
  std::vector<std::uint32_t> error_defects;  // defect bits (frame_check.hpp) per error frame
  std::vector<PrescaledSlice> prescaled;
  FilterCounters counters;
  // The slice's supernova figure (supernova.hpp), when parameters.supernova.enabled: the same as
  // SupernovaCoincidences::process(slice, events) gives, from this slice's L0 hits and events.
  // SupernovaMonitor::observe() takes it, in frame order.
  std::optional<SupernovaSliceFigure> supernova;
};

// Runs task(0) .. task(tasks - 1), on any threads, and returns when every one has returned.
using TaskRunner = std::function<void(std::size_t tasks, const std::function<void(std::size_t)>& task)>;

class DataFilter {
 public:
  DataFilter(const dataflow::Detector& detector, TriggerParameters parameters);

  FilterResult process(const dataflow::Timeslice& slice) const;
  // The same result, with the per-DOM work (checks, summary, L0, L1, L2; most of the time) split
  // into frame ranges of about equal hit counts, run by `run` on its `threads` threads (the caller
  // included); the triggers and events then run on the merged L1 hits, so latency no longer grows
  // with the whole slice. There are kRangesPerThread ranges per thread: a thread the OS puts aside
  // (the cores are shared) then holds up a quarter of its share, the others take the rest.
  static constexpr std::size_t kRangesPerThread = 4;
  FilterResult process(const dataflow::Timeslice& slice, const TaskRunner& run, std::size_t threads) const;

  const TriggerParameters& parameters() const noexcept { return parameters_; }
  const dataflow::Detector& detector() const noexcept { return detector_; }
  std::size_t muon_directions() const noexcept { return muon_.direction_count(); }

 private:
  friend struct DataFilterWorkspace;
  struct DomChunk;
  // The slice's L0TimeIndex buffer (kBuckets per row) and each frame's row in it
  // (L0Dom::kNoTimeIndex: none); buckets is null when no index is built.
  struct TimeIndexRows {
    std::uint32_t* buckets = nullptr;
    const std::uint32_t* row_of_frame = nullptr;
  };
  // Which prescaled slices this slice gives (TriggerParameters::prescale_*), by PrescaledSlice::Kind.
  using KeptSlices = std::array<bool, kPrescaledKinds>;
  void process_doms(const dataflow::Timeslice& slice, DomChunk& chunk, L0Hit* l0_hits, TimeIndexRows time_index,
                    KeptSlices kept_slices, bool supernova) const;
  struct ModuleInfo {
    DomCalibration calibration;
    std::array<dataflow::Vec3, dataflow::kPmtsPerDom> pmt_directions{};
  };
  dataflow::Detector detector_;
  TriggerParameters parameters_;
  std::vector<ModuleInfo> modules_;  // by module index
  std::vector<dataflow::Vec3> module_positions_;
  ModuleNeighbours mx_neighbours_;
  Trigger3DMuon muon_;
};

}  // namespace shoredaq::filters
