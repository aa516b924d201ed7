// TimesliceBuilder, slice-time sanity (see "Slice-time sanity" and "Run start" at the top of
// timeslice_builder.hpp): whether a datagram's slice time may enter or move the window, holding
// datagrams while the window is tentative, and restarting a tentative window that lost the vote.
#include <algorithm>

#include "shoredaq/dataflow/timeslice_builder.hpp"

namespace shoredaq::dataflow {
namespace {
constexpr std::uint64_t kMaxFrameIndex = 0xffff'ffffu;  // frame indices run 1 .. 2^32 - 1
}  // namespace


namespace {
// Bounds what a tentative window holds: a few DOMs' datagrams of one slice are enough to outvote a
// bad first datagram (the rest is dropped with the reason it would have had).
constexpr std::size_t kMaxHeldDatagrams = 4096;

std::uint64_t distance(std::uint64_t a, std::uint64_t b) noexcept { return a > b ? a - b : b - a; }
}  // namespace

std::uint64_t TimesliceBuilder::lead_tolerance_slices() const noexcept {
  return std::max<std::uint64_t>(config_.expiry_lag_slices, 1);
}

std::size_t TimesliceBuilder::quorum() const noexcept {
  return std::clamp<std::size_t>(config_.time_quorum_doms, 1, std::max<std::size_t>(doms_.size(), 1));
}

bool TimesliceBuilder::still_sending(std::size_t dom, std::uint64_t newest, std::uint64_t now_ns) const noexcept {
  if (newest == 0 || newest + lead_tolerance_slices() < *newest_slice_) return false;
  // Live: a DOM not heard from for the wall-clock expiry has stopped, whatever its last slice said.
  const std::uint64_t last = dom_last_receive_ns_[dom];
  return config_.expiry_wall_ns == 0 || now_ns <= last || now_ns - last <= config_.expiry_wall_ns;
}

bool TimesliceBuilder::claimed_near(std::size_t dom, std::uint64_t slice) const noexcept {
  const std::uint64_t claim = dom_claimed_slice_[dom];
  return claim != 0 && distance(claim, slice) <= lead_tolerance_slices();
}

TimesliceBuilder::TimeJudgement TimesliceBuilder::judge_time(std::size_t dom, std::uint64_t slice,
                                                             std::uint64_t receive_ns) {
  // The frame index is 32 bits in the online header (13.6 years of slices): a slice beyond it would
  // wrap to an old frame number and break frame order. Found by fuzz_builder (quorum 1, a DOM with
  // a clock 68 years ahead).
  if (run_start_slice_ && slice >= *run_start_slice_ && slice - *run_start_slice_ >= kMaxFrameIndex)
    return {TimeVerdict::Drop, BuilderDropReason::TimeJump};
  if (!newest_slice_) {  // the first datagram of the run (or of a restarted window)
    if (run_start_slice_ && slice < *run_start_slice_) return {TimeVerdict::Drop, BuilderDropReason::BeforeRunStart};
    return {};
  }
  const std::uint64_t newest = *newest_slice_;
  // Far behind: dropped, unless the window itself may be the odd one out (held, see hold()).
  if (slice + config_.max_time_jump_slices < newest) {
    return {established_ ? TimeVerdict::Drop : TimeVerdict::Hold, BuilderDropReason::TimeJump};
  }
  if (run_start_slice_ && slice < *run_start_slice_) {
    if (established_ || config_.run_start_ns) return {TimeVerdict::Drop, BuilderDropReason::BeforeRunStart};
    if (slice + lead_tolerance_slices() >= *run_start_slice_) return {};  // moves the tentative start back
    return {TimeVerdict::Hold, BuilderDropReason::BeforeRunStart};
  }
  if (slice <= newest) return {};
  return judge_forward(dom, slice, receive_ns);
}

TimesliceBuilder::TimeJudgement TimesliceBuilder::judge_forward(std::size_t dom, std::uint64_t slice,
                                                                std::uint64_t receive_ns) {
  const std::uint64_t lead = lead_tolerance_slices();
  const bool step = slice <= *newest_slice_ + lead;
  // The common case, a new slice: every DOM still sending stays within the lead of it.
  if (step && (!min_sending_newest_ || *min_sending_newest_ + lead >= slice)) return {};

  // Who vouches for the new time (this DOM, DOMs already near it, DOMs that claimed it), who would
  // be left behind (DOMs still sending, further back than the lead), and who takes part at all.
  std::size_t vouching = 0, left_behind = 0, taking_part = 0;
  for (std::size_t d = 0; d < doms_.size(); ++d) {
    const std::uint64_t newest = dom_newest_slice_[d];
    const bool sending = still_sending(d, newest, receive_ns);
    const bool vouches = d == dom || (newest != 0 && newest + lead >= slice) || claimed_near(d, slice);
    if (vouches) {
      ++vouching;
    } else if (sending) {
      ++left_behind;
    }
    if (vouches || sending) ++taking_part;
  }
  // A step may leave DOMs behind when a quorum moves on, or when those left behind are no more
  // than those moving on (a DOM of a pair that stopped). A jump needs the quorum of the DOMs
  // taking part, and no more DOMs left behind than vouching (so a DU with a bad clock cannot take
  // the window away from the rest of the detector).
  const bool agreed = step ? vouching >= quorum() || vouching >= left_behind
                           : vouching >= std::min(quorum(), taking_part) && vouching >= left_behind;
  // A jump away from a tentative window that is confirmed, or has more DOMs behind it than the
  // tentative window: the tentative window was the odd one out.
  if (!step && !established_ && (agreed || vouching > doms_heard_)) {
    return {TimeVerdict::RestartWindow, BuilderDropReason::TimeJump};
  }
  if (!agreed) {
    dom_claimed_slice_[dom] = slice;
    return {TimeVerdict::Drop, BuilderDropReason::TimeJump};
  }
  return {};
}

void TimesliceBuilder::hold(const ClbDatagram& datagram, std::size_t dom, std::uint64_t slice,
                            std::uint64_t receive_ns, BuilderDropReason reason) {
  if (held_.size() >= kMaxHeldDatagrams || held_bytes_ + datagram.payload.size() > config_.max_frame_bytes) {
    return drop(reason, datagram.header, dom);
  }
  HeldDatagram h;
  h.header = datagram.header;
  h.layout = datagram.layout;
  h.payload.assign(datagram.payload.begin(), datagram.payload.end());
  h.receive_ns = receive_ns;
  h.slice_index = slice;
  held_bytes_ += h.payload.size();
  held_.push_back(std::move(h));
  if (replaying_) return;

  // Do the held datagrams near this one outvote the tentative window?
  std::vector<bool> near(doms_.size(), false);
  std::size_t near_doms = 0;
  for (const HeldDatagram& other : held_) {
    if (distance(other.slice_index, slice) > lead_tolerance_slices()) continue;
    const std::size_t d = dom_index_.at(other.header.dom_id);
    if (!near[d]) near[d] = true, ++near_doms;
  }
  if (near_doms >= quorum() || near_doms > doms_heard_) restart_window_from_held(slice);
}

void TimesliceBuilder::restart_window() {
  // Everything accepted so far was tentative (nothing emitted): its datagrams are dropped now.
  for (auto& [index, s] : open_) {
    for (std::size_t d = 0; d < doms_.size(); ++d) {
      const DomSlot& slot = s.slots[d];
      if (slot.received == 0) continue;
      counters_.datagrams_accepted -= slot.received;
      counters_.hits_accepted -= slot.bytes.size() / kHitBytes;
      counters_.payload_bytes_accepted -= slot.bytes.size();
      ClbHeader h;
      h.run_number = config_.run_number;
      h.utc_seconds = s.utc_seconds;
      h.ticks_16ns = s.ticks_16ns;
      h.dom_id = doms_[d];
      for (std::uint32_t i = 0; i < slot.received; ++i) drop(BuilderDropReason::TimeJump, h, d);
    }
  }
  open_.clear();
  newest_slice_.reset();
  expiry_bound_cache_.reset();
  min_sending_newest_.reset();
  std::fill(dom_newest_slice_.begin(), dom_newest_slice_.end(), 0);
  doms_heard_ = 0;
  if (!config_.run_start_ns) run_start_slice_.reset();
}

void TimesliceBuilder::restart_window_from_held(std::uint64_t around_slice) {
  restart_window();
  std::vector<HeldDatagram> held;
  held.swap(held_);
  held_bytes_ = 0;
  replaying_ = true;
  // The winners first, in arrival order, so the earliest of them starts the new window; the rest
  // is judged against it (accepted, held again or dropped).
  for (const HeldDatagram& h : held) {
    if (distance(h.slice_index, around_slice) <= lead_tolerance_slices()) replay(h);
  }
  for (const HeldDatagram& h : held) {
    if (distance(h.slice_index, around_slice) > lead_tolerance_slices()) replay(h);
  }
  replaying_ = false;
}

void TimesliceBuilder::confirm_window() { established_ = true; }

void TimesliceBuilder::release_held() {
  std::vector<HeldDatagram> held;
  held.swap(held_);
  held_bytes_ = 0;
  const bool was_replaying = replaying_;
  replaying_ = true;
  for (const HeldDatagram& h : held) replay(h);  // confirmed window: accepted or dropped, never held
  replaying_ = was_replaying;
}

void TimesliceBuilder::replay(const HeldDatagram& held) {
  ClbDatagram d;
  d.header = held.header;
  d.layout = held.layout;
  d.payload = held.payload;
  add_optical(d, held.receive_ns);
}

}  // namespace shoredaq::dataflow
