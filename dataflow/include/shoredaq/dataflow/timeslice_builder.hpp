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
//
// Legacy 28-byte headers (ClbDatagram::layout, known per datagram) carry no trailer bit. For them
// completeness is inferred from what they have (DOMAIN.md section 2): no sequence gap (received ==
// highest sequence + 1) and the DOM has begun a later slice (in a sane stream a DOM's slice gets no
// more datagrams once it sends the next one), or, at flush(), no gap. The emitted frame of such a
// complete legacy frame carries the trailer bit in its `fifo` word, so the frame checks, the
// summaries and the online format see it exactly like a complete 40-byte frame; a legacy frame
// with a gap (or whose DOM fell silent) gets no trailer bit and stays incomplete.
//
// Slice-time sanity: one DOM must not be able to move the builder's window (newest slice, data-time
// expiry, run start / frame numbering, open slices). A datagram is judged against the window before
// it touches anything; an implausible one is dropped by its cause (TimeJump, BeforeRunStart,
// WallClockOffset, BadSliceTime) and counted for its DOM (implausible_time_doms()):
//  - Wall clock (optional): slice start more than `max_wall_clock_offset_s` from the receive time
//    the caller passes.
//  - Behind: more than `max_time_jump_slices` behind the newest slice, or before the run start.
//  - Ahead: a datagram may move the window forward only if that leaves no DOM that is still sending
//    more than `expiry_lag_slices` behind (what would make it look stopped), unless enough DOMs
//    vouch for the new time: DOMs whose newest slice, or whose last rejected ("claimed") slice, is
//    within `expiry_lag_slices` of it. For a step of at most `expiry_lag_slices` beyond the newest
//    slice, `time_quorum_doms` of them, or at least as many as would be left behind, suffice (so a
//    DOM that stopped does not stall a 2-DOM set); a larger jump needs min(time_quorum_doms, DOMs
//    taking part) of them and at least as many as would be left behind (so a DU with a bad clock
//    cannot take the window from the rest). The quorum is clamped to 1..expected DOMs.
//    So a DOM with a bad clock gets at most `expiry_lag_slices` ahead of the others, a recorded
//    run replayed with old times works (every DOM agrees), and a detector-wide time step is followed
//    once K = max(quorum, half the DOMs taking part, rounded up) DOMs have sent at the new time:
//    what the first K - 1 of them sent at the new time before that is dropped as TimeJump (one
//    datagram each when a DOM sends one per slice: 2 with the default quorum and up to 6 DOMs).
//    Backward steps of the whole detector are not followed.
//    In live mode (expiry_wall_ns > 0) a DOM not heard from for expiry_wall_ns no longer counts as
//    still sending, so a few DOMs that outlive many stopped ones are not held back for long.
//  - Run start: until `time_quorum_doms` DOMs agree (or a slice has been emitted) the window is
//    tentative. Datagrams far behind it (or more than `expiry_lag_slices` before its run start) are
//    held, not dropped; when the held ones outnumber the DOMs of the tentative window (or reach the
//    quorum), or when a jump ahead of it is confirmed or vouched for by more DOMs than it has, the
//    tentative slices are discarded (their datagrams dropped as TimeJump) and the window restarts
//    from the winners, so a single bad first datagram can set neither the window nor frame 1 (one
//    an hour ahead costs nothing else; one an hour behind also costs the first real datagram, which
//    ties one against one and is dropped). Nearby earlier data moves the tentative run start back.
//    Held datagrams are bounded (4096, max_frame_bytes); beyond that they are dropped.

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "shoredaq/formats/clb_datagram.hpp"
#include "shoredaq/formats/detector.hpp"
#include "shoredaq/formats/timeslice.hpp"

namespace shoredaq::dataflow {

// Why the builder dropped a datagram; each reason has its own counter.
enum class BuilderDropReason : std::uint8_t {
  LateDatagram,        // its slice was already emitted
  Duplicate,           // same DOM, slice and sequence number seen before
  UnknownDom,          // DOM not among the expected DOMs
  WrongRun,            // run number differs from the configured run
  TimeJump,            // slice start implausibly far from the window, no quorum of DOMs confirms it
  BadSliceTime,        // ticks not a multiple of a slice, or beyond one second
  BeforeRunStart,      // slice earlier than the run start
  SequenceOutOfRange,  // sequence number does not fit the 16-bit daq word
  FrameTooLarge,       // the DOM's frame would exceed max_frame_bytes
  Evicted,             // a new slice older than every open one while max_open_slices are open
  WallClockOffset,     // slice start further than max_wall_clock_offset_s from the receive time
  Count_
};
inline constexpr std::size_t kBuilderDropReasonCount = static_cast<std::size_t>(BuilderDropReason::Count_);
std::string_view to_string(BuilderDropReason reason) noexcept;
// The reasons that say "this DOM's slice time is implausible" (counted per DOM as well).
bool is_implausible_time(BuilderDropReason reason) noexcept;

struct TimesliceBuilderConfig {
  std::int32_t detector_id = 0;
  std::uint32_t run_number = 0;
  std::vector<std::uint32_t> expected_doms;  // any order; duplicates ignored
  // On a farm (issue 13): DOMs of the detector that other ingest processes build. Their datagrams
  // are passed over quietly (datagrams_other_ingest), not dropped as unknown DOMs.
  std::vector<std::uint32_t> other_ingest_doms;
  std::size_t max_open_slices = 32;
  std::uint32_t expiry_lag_slices = 10;       // data-time expiry, and the lead a DOM may take alone
  std::uint64_t expiry_wall_ns = 3'000'000'000ull;  // 0 = no wall-clock expiry (offline replay)
  std::uint32_t max_time_jump_slices = 600;   // 60 s: further behind the newest slice = TimeJump
  // Distinct DOMs that must agree before the window jumps ahead or leaves DOMs that are still
  // sending behind, and before the run start is final (see the top of this file); clamped to
  // 1..expected DOMs, so 1- and 2-DOM sets work.
  std::uint32_t time_quorum_doms = 3;
  // A datagram whose slice start is further than this from the receive time passed to add() is
  // dropped (WallClockOffset). 0 = off: offline replay and rigs replaying recorded data need it off.
  std::uint32_t max_wall_clock_offset_s = 0;
  std::size_t max_frame_bytes = std::size_t{16} << 20;  // per DOM per slice
  // Run start (Unix ns of the slice that is frame 1); unset = the first slice of the run, once
  // confirmed (see "Run start" above).
  std::optional<std::uint64_t> run_start_ns;

  // The optical modules of a detector (base modules have no PMTs), minus the disabled ones.
  static std::vector<std::uint32_t> expected_doms_of(const Detector& detector,
                                                     std::span<const std::uint32_t> disabled_doms = {});
};

struct TimesliceBuilderCounters {
  std::uint64_t datagrams_accepted = 0;
  std::uint64_t hits_accepted = 0;
  std::uint64_t payload_bytes_accepted = 0;
  std::uint64_t monitoring_datagrams = 0;  // TMCH received (also handed to the monitoring sink)
  std::uint64_t monitoring_attached = 0;   // ... passed on with the next emitted slice (Timeslice::monitoring)
  std::uint64_t monitoring_unattached = 0; // ... of an unknown DOM or run, beyond the bound, or after the last slice
  std::uint64_t acoustic_datagrams = 0;    // TAES: handed to the acoustic sink (dropped when none is set)
  std::uint64_t slices_complete = 0;
  std::uint64_t slices_expired = 0;        // incl. evicted and flushed ones
  std::uint64_t slices_evicted = 0;        // force-emitted because of max_open_slices
  std::uint64_t frames_incomplete = 0;     // emitted frames with a gap or no trailer (DOM sent something)
  std::uint64_t frames_missing = 0;        // emitted frames of DOMs that sent nothing
  std::uint64_t frames_completeness_inferred = 0;  // legacy frames found complete without a trailer bit
  std::uint64_t implausible_time_datagrams = 0;    // sum over DOMs of implausible_time_doms()
  std::uint64_t datagrams_other_ingest = 0;        // of other_ingest_doms: another process builds them
  std::array<std::uint64_t, kBuilderDropReasonCount> dropped{};

  std::uint64_t dropped_total() const noexcept {
    std::uint64_t n = 0;
    for (auto d : dropped) n += d;
    return n;
  }
  std::uint64_t dropped_of(BuilderDropReason r) const noexcept { return dropped[static_cast<std::size_t>(r)]; }
};

// A DOM and how many of its datagrams something happened to.
struct DomCount {
  std::uint32_t dom_id = 0;
  std::uint64_t count = 0;
  friend bool operator==(const DomCount&, const DomCount&) = default;
};

class TimesliceBuilder {
 public:
  using SliceSink = std::function<void(Timeslice&&)>;
  // Called for every datagram the builder drops (e.g. for rate-limited logging).
  using DropSink = std::function<void(BuilderDropReason, const ClbHeader&)>;
  using MonitoringSink = std::function<void(const ClbDatagram&)>;
  // TAES datagrams are not part of a timeslice: they go as received to their own stream.
  using AcousticSink = std::function<void(const ClbDatagram&)>;

  TimesliceBuilder(TimesliceBuilderConfig config, SliceSink sink);

  void set_drop_sink(DropSink sink) { drop_sink_ = std::move(sink); }
  void set_monitoring_sink(MonitoringSink sink) { monitoring_sink_ = std::move(sink); }
  void set_acoustic_sink(AcousticSink sink) { acoustic_sink_ = std::move(sink); }

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
  // DOMs that sent datagrams with an implausible slice time (is_implausible_time()), by DOM id;
  // only DOMs with a non-zero count.
  std::vector<DomCount> implausible_time_doms() const;
  // False while the window is tentative (see "Run start" above).
  bool window_confirmed() const noexcept { return established_; }

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
    bool legacy = false;                  // a 28-byte-header datagram: no trailer bit to wait for
    bool later_slice_begun = false;       // the DOM has sent a later slice (or the stream ended)
    bool in_order = true;                 // fragments arrived in sequence order
    std::uint32_t status1_or = 0;
    std::uint32_t status2_or = 0;
    std::uint32_t status3_or = 0;
    std::uint32_t status4_or = 0;
    bool white_rabbit_ok = true;
    bool gap_free() const noexcept { return received != 0 && received == highest_sequence + 1; }
    bool complete() const noexcept { return gap_free() && (trailer || (legacy && later_slice_begun)); }
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
  // A datagram kept while the window is tentative (it may belong to the real window).
  struct HeldDatagram {
    ClbHeader header;
    HeaderLayout layout = HeaderLayout::Standard40;
    std::vector<std::uint8_t> payload;
    std::uint64_t receive_ns = 0;
    std::uint64_t slice_index = 0;
  };
  enum class TimeVerdict : std::uint8_t { Accept, Drop, Hold, RestartWindow };
  struct TimeJudgement {
    TimeVerdict verdict = TimeVerdict::Accept;
    BuilderDropReason reason = BuilderDropReason::TimeJump;  // for Drop and Hold
  };

  void drop(BuilderDropReason reason, const ClbHeader& header, std::size_t dom_index);
  void add_optical(const ClbDatagram& datagram, std::uint64_t receive_unix_ns);
  void accept_optical(const ClbDatagram& datagram, std::size_t dom, std::uint64_t slice, std::uint64_t receive_ns);
  OpenSlice* open_slice(std::uint64_t slice_index, const ClbHeader& header, std::uint64_t now_ns);
  void note_dom_progress(std::size_t dom, std::uint64_t slice_index, std::uint64_t receive_ns);
  void set_slot_later_slice_begun(OpenSlice& s, std::size_t dom, std::uint64_t now_ns);
  // Emits ready slices from the front: complete ones, and all up to `expire_through` (inclusive).
  void emit_ready(std::optional<std::uint64_t> expire_through, std::uint64_t now_ns);
  std::optional<std::uint64_t> data_time_expiry_bound() const noexcept;
  void emit(std::map<std::uint64_t, OpenSlice>::iterator it, bool expired, std::uint64_t now_ns);

  // Slice-time sanity (timeslice_builder_time.cpp).
  std::uint64_t lead_tolerance_slices() const noexcept;
  std::size_t quorum() const noexcept;
  bool still_sending(std::size_t dom, std::uint64_t newest, std::uint64_t now_ns) const noexcept;
  TimeJudgement judge_time(std::size_t dom, std::uint64_t slice, std::uint64_t receive_ns);
  TimeJudgement judge_forward(std::size_t dom, std::uint64_t slice, std::uint64_t receive_ns);
  bool claimed_near(std::size_t dom, std::uint64_t slice) const noexcept;
  void hold(const ClbDatagram& datagram, std::size_t dom, std::uint64_t slice, std::uint64_t receive_ns,
            BuilderDropReason reason);
  void restart_window();
  void restart_window_from_held(std::uint64_t around_slice);
  void confirm_window();
  void release_held();  // after confirmation: each held datagram is judged again (accepted or dropped)
  void replay(const HeldDatagram& held);

  TimesliceBuilderConfig config_;
  SliceSink sink_;
  DropSink drop_sink_;
  MonitoringSink monitoring_sink_;
  AcousticSink acoustic_sink_;
  // TMCH packets received since the last slice was emitted; they go with the next one.
  std::vector<RawMonitoring> pending_monitoring_;
  void add_monitoring(const ClbDatagram& datagram);
  TimesliceBuilderCounters counters_;

  std::vector<std::uint32_t> doms_;  // sorted expected DOM ids
  std::unordered_map<std::uint32_t, std::size_t> dom_index_;
  std::unordered_set<std::uint32_t> other_ingest_doms_;
  std::vector<std::uint64_t> dom_newest_slice_;  // newest accepted slice per DOM (0 = none yet)
  std::vector<std::uint64_t> dom_claimed_slice_;  // last slice rejected as a jump, per DOM (0 = none)
  std::vector<std::uint64_t> dom_last_receive_ns_;  // receive time of its last accepted datagram
  std::vector<std::uint64_t> dom_implausible_time_;  // per DOM: implausible-time datagrams
  std::vector<std::size_t> dom_last_frame_bytes_;  // size of each DOM's last emitted frame
  std::size_t doms_heard_ = 0;                     // DOMs with an accepted datagram
  std::map<std::uint64_t, OpenSlice> open_;
  std::optional<std::uint64_t> run_start_slice_;
  std::optional<std::uint64_t> newest_slice_;
  std::optional<std::uint64_t> last_emitted_slice_;
  std::optional<std::uint64_t> expiry_bound_cache_;  // recomputed when a DOM advances
  std::optional<std::uint64_t> min_sending_newest_;  // oldest newest slice among DOMs still sending

  bool established_ = false;        // the window is confirmed (see "Run start")
  bool replaying_ = false;          // re-adding held datagrams: no nested window restarts
  std::vector<HeldDatagram> held_;  // while tentative
  std::size_t held_bytes_ = 0;
};

}  // namespace shoredaq::dataflow
