#pragma once
// TimesliceBuilder: gathers every DOM's CLB datagrams of one 100 ms slice into a whole Timeslice
// (DESIGN.md sections 1 and 6, DOMAIN.md section 2). Pure logic: no threads, no clock of its own
// (every call carries the time), so the live pipeline and offline replay run the same code.
//
// Per slice and DOM it keeps the datagrams' payloads, reorders them by sequence number and tracks
// completeness (received == highest sequence + 1, trailer seen). A slice is emitted, always in
// slice order, when every expected DOM is complete or when it expires:
//  - data time: every DOM that is still sending has begun a slice `expiry_lag_slices` (default
//    10 = 1 s) later than it; a DOM counts as still sending when its newest slice is within
//    `expiry_lag_slices` of the newest slice seen from any DOM (so a silent DOM never holds back);
//  - wall clock (live only): `expiry_wall_ns` after its first datagram arrived (0 = off);
//  - at flush() (run stop / end of a replayed file);
//  - eviction: opening a slice beyond `max_open_slices` force-emits the oldest open slice as
//    expired (its data is kept, counted as `slices_evicted`), which bounds memory.
// Missing DOMs get an empty frame with an all-zero status; incomplete ones keep what arrived and
// their daq word shows the gap, so FrameStatus::complete() is false for both (the EUDP defect).

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "shoredaq/dataflow/clb_datagram.hpp"
#include "shoredaq/dataflow/detector.hpp"
#include "shoredaq/dataflow/timeslice.hpp"

namespace shoredaq::dataflow {

// Why the builder dropped a datagram; each reason has its own counter.
enum class BuilderDropReason : std::uint8_t {
  LateDatagram,        // its slice was already emitted
  Duplicate,           // same DOM, slice and sequence number seen before
  UnknownDom,          // DOM not among the expected DOMs
  WrongRun,            // run number differs from the configured run
  TimeJump,            // slice start far from the current window
  BadSliceTime,        // ticks not a multiple of a slice, or beyond one second
  BeforeRunStart,      // slice earlier than the run start
  SequenceOutOfRange,  // sequence number does not fit the 16-bit daq word
  FrameTooLarge,       // the DOM's frame would exceed max_frame_bytes
  Evicted,             // a new slice older than every open one while max_open_slices are open
  Count_
};
inline constexpr std::size_t kBuilderDropReasonCount = static_cast<std::size_t>(BuilderDropReason::Count_);
std::string_view to_string(BuilderDropReason reason) noexcept;

struct TimesliceBuilderConfig {
  std::int32_t detector_id = 0;
  std::uint32_t run_number = 0;
  std::vector<std::uint32_t> expected_doms;  // any order; duplicates ignored
  std::size_t max_open_slices = 32;
  std::uint32_t expiry_lag_slices = 10;       // data-time expiry, see above
  std::uint64_t expiry_wall_ns = 3'000'000'000ull;  // 0 = no wall-clock expiry (offline replay)
  std::uint32_t max_time_jump_slices = 600;   // 60 s: further from the window = TimeJump
  std::size_t max_frame_bytes = std::size_t{16} << 20;  // per DOM per slice
  // Run start (Unix ns of the slice that is frame 1); unset = the first slice seen in the run.
  std::optional<std::uint64_t> run_start_ns;

  // The optical modules of a detector (base modules have no PMTs), minus the disabled ones.
  static std::vector<std::uint32_t> expected_doms_of(const Detector& detector,
                                                     std::span<const std::uint32_t> disabled_doms = {});
};

struct TimesliceBuilderCounters {
  std::uint64_t datagrams_accepted = 0;
  std::uint64_t hits_accepted = 0;
  std::uint64_t payload_bytes_accepted = 0;
  std::uint64_t monitoring_datagrams = 0;  // TMCH: not part of a slice, handed to the monitor sink
  std::uint64_t acoustic_datagrams = 0;    // TAES: not handled, dropped
  std::uint64_t slices_complete = 0;
  std::uint64_t slices_expired = 0;        // incl. evicted and flushed ones
  std::uint64_t slices_evicted = 0;        // force-emitted because of max_open_slices
  std::uint64_t frames_incomplete = 0;     // emitted frames with a gap or no trailer (DOM sent something)
  std::uint64_t frames_missing = 0;        // emitted frames of DOMs that sent nothing
  std::array<std::uint64_t, kBuilderDropReasonCount> dropped{};

  std::uint64_t dropped_total() const noexcept {
    std::uint64_t n = 0;
    for (auto d : dropped) n += d;
    return n;
  }
  std::uint64_t dropped_of(BuilderDropReason r) const noexcept { return dropped[static_cast<std::size_t>(r)]; }
};

class TimesliceBuilder {
 public:
  using SliceSink = std::function<void(Timeslice&&)>;
  // Called for every datagram the builder drops (e.g. for rate-limited logging).
  using DropSink = std::function<void(BuilderDropReason, const ClbHeader&)>;
  using MonitoringSink = std::function<void(const ClbDatagram&)>;

  TimesliceBuilder(TimesliceBuilderConfig config, SliceSink sink);

  void set_drop_sink(DropSink sink) { drop_sink_ = std::move(sink); }
  void set_monitoring_sink(MonitoringSink sink) { monitoring_sink_ = std::move(sink); }

  // One parsed datagram; its payload is copied. Emits any slice that became ready.
  void add(const ClbDatagram& datagram, std::uint64_t receive_unix_ns);
  // Wall-clock expiry check (call periodically in live mode). Emits expired slices.
  void poll(std::uint64_t now_unix_ns);
  // Emits every open slice (expired ones marked), e.g. at run stop or at the end of a file.
  void flush(std::uint64_t now_unix_ns);

  const TimesliceBuilderCounters& counters() const noexcept { return counters_; }
  const TimesliceBuilderConfig& config() const noexcept { return config_; }
  std::size_t open_slices() const noexcept { return open_.size(); }
  std::size_t expected_dom_count() const noexcept { return doms_.size(); }
  // Frame index a slice start would get (0 if before the run start or no run start known yet).
  std::uint32_t frame_index_of(std::uint64_t slice_start_ns) const noexcept;

 private:
  struct Fragment {
    std::uint32_t sequence = 0;
    std::uint32_t offset = 0;  // into DomSlot::bytes
    std::uint32_t size = 0;
  };
  struct DomSlot {
    std::vector<std::uint8_t> bytes;      // payloads in arrival order
    std::vector<Fragment> fragments;      // one per datagram
    std::vector<std::uint64_t> seen;      // bitmap of sequence numbers
    std::uint32_t received = 0;
    std::uint32_t highest_sequence = 0;
    bool trailer = false;
    bool in_order = true;                 // fragments arrived in sequence order
    std::uint32_t status1_or = 0;
    std::uint32_t status2_or = 0;
    std::uint32_t status3_or = 0;
    std::uint32_t status4_or = 0;
    bool white_rabbit_ok = true;
    bool complete() const noexcept { return received != 0 && trailer && received == highest_sequence + 1; }
  };
  struct OpenSlice {
    std::uint64_t slice_index = 0;  // slice start / 100 ms
    std::uint32_t utc_seconds = 0;
    std::uint32_t ticks_16ns = 0;
    std::vector<DomSlot> slots;     // by DOM index
    std::size_t complete_doms = 0;
    std::uint64_t first_receive_ns = 0;
    std::uint64_t completed_ns = 0;  // when the last DOM became complete
  };

  void drop(BuilderDropReason reason, const ClbHeader& header);
  void add_optical(const ClbDatagram& datagram, std::uint64_t receive_unix_ns);
  OpenSlice* open_slice(std::uint64_t slice_index, const ClbHeader& header, std::uint64_t now_ns);
  void note_dom_progress(std::size_t dom, std::uint64_t slice_index);
  // Emits ready slices from the front: complete ones, and all up to `expire_through` (inclusive).
  void emit_ready(std::optional<std::uint64_t> expire_through, std::uint64_t now_ns);
  std::optional<std::uint64_t> data_time_expiry_bound() const noexcept;
  void emit(std::map<std::uint64_t, OpenSlice>::iterator it, bool expired, std::uint64_t now_ns);

  TimesliceBuilderConfig config_;
  SliceSink sink_;
  DropSink drop_sink_;
  MonitoringSink monitoring_sink_;
  TimesliceBuilderCounters counters_;

  std::vector<std::uint32_t> doms_;  // sorted expected DOM ids
  std::unordered_map<std::uint32_t, std::size_t> dom_index_;
  std::vector<std::uint64_t> dom_newest_slice_;  // newest slice index per DOM (0 = none yet)
  std::vector<std::size_t> dom_last_frame_bytes_;  // size of each DOM's last emitted frame
  std::map<std::uint64_t, OpenSlice> open_;
  std::optional<std::uint64_t> run_start_slice_;
  std::optional<std::uint64_t> newest_slice_;
  std::optional<std::uint64_t> last_emitted_slice_;
  std::optional<std::uint64_t> expiry_bound_cache_;  // recomputed when a DOM advances
};

}  // namespace shoredaq::dataflow
