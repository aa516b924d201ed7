#include "shoredaq/dataflow/timeslice_builder.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

namespace shoredaq::dataflow {

namespace {
constexpr std::uint64_t kSlicesPerSecond = 1'000'000'000ull / kSliceDurationNs;  // 10
constexpr std::uint32_t kMaxSequence = 0xffffu;  // the daq word holds 16 bits
constexpr std::uint32_t kUtcWhiteRabbitNotOk = 1u << 31;
constexpr std::size_t kNoDom = std::numeric_limits<std::size_t>::max();
}  // namespace

std::string_view to_string(BuilderDropReason reason) noexcept {
  switch (reason) {
    case BuilderDropReason::LateDatagram: return "late_datagram";
    case BuilderDropReason::Duplicate: return "duplicate";
    case BuilderDropReason::UnknownDom: return "unknown_dom";
    case BuilderDropReason::WrongRun: return "wrong_run";
    case BuilderDropReason::TimeJump: return "time_jump";
    case BuilderDropReason::BadSliceTime: return "bad_slice_time";
    case BuilderDropReason::BeforeRunStart: return "before_run_start";
    case BuilderDropReason::SequenceOutOfRange: return "sequence_out_of_range";
    case BuilderDropReason::FrameTooLarge: return "frame_too_large";
    case BuilderDropReason::Evicted: return "evicted";
    case BuilderDropReason::WallClockOffset: return "wall_clock_offset";
    case BuilderDropReason::Count_: break;
  }
  return "unknown";
}

bool is_implausible_time(BuilderDropReason reason) noexcept {
  switch (reason) {
    case BuilderDropReason::TimeJump:
    case BuilderDropReason::BadSliceTime:
    case BuilderDropReason::BeforeRunStart:
    case BuilderDropReason::WallClockOffset:
      return true;
    default:
      return false;
  }
}

std::vector<std::uint32_t> TimesliceBuilderConfig::expected_doms_of(const Detector& detector,
                                                                   std::span<const std::uint32_t> disabled_doms) {
  std::vector<std::uint32_t> doms;
  for (const Module& m : detector.modules()) {
    if (m.is_base()) continue;
    if (std::find(disabled_doms.begin(), disabled_doms.end(), m.id) != disabled_doms.end()) continue;
    doms.push_back(m.id);
  }
  std::sort(doms.begin(), doms.end());
  doms.erase(std::unique(doms.begin(), doms.end()), doms.end());
  return doms;
}

TimesliceBuilder::TimesliceBuilder(TimesliceBuilderConfig config, SliceSink sink)
    : config_(std::move(config)), sink_(std::move(sink)) {
  doms_ = config_.expected_doms;
  std::sort(doms_.begin(), doms_.end());
  doms_.erase(std::unique(doms_.begin(), doms_.end()), doms_.end());
  dom_index_.reserve(doms_.size());
  for (std::size_t i = 0; i < doms_.size(); ++i) dom_index_.emplace(doms_[i], i);
  for (std::uint32_t d : config_.other_ingest_doms) {
    if (!dom_index_.contains(d)) other_ingest_doms_.insert(d);
  }
  dom_newest_slice_.assign(doms_.size(), 0);
  dom_claimed_slice_.assign(doms_.size(), 0);
  dom_last_receive_ns_.assign(doms_.size(), 0);
  dom_implausible_time_.assign(doms_.size(), 0);
  dom_last_frame_bytes_.assign(doms_.size(), 0);
  if (config_.max_open_slices == 0) config_.max_open_slices = 1;
  if (config_.run_start_ns) run_start_slice_ = *config_.run_start_ns / kSliceDurationNs;
}

std::uint32_t TimesliceBuilder::frame_index_of(std::uint64_t slice_start_ns) const noexcept {
  if (!run_start_slice_) return 0;
  const std::uint64_t s = slice_start_ns / kSliceDurationNs;
  if (s < *run_start_slice_) return 0;
  return static_cast<std::uint32_t>(s - *run_start_slice_ + 1);
}

std::vector<DomCount> TimesliceBuilder::implausible_time_doms() const {
  std::vector<DomCount> out;
  for (std::size_t d = 0; d < doms_.size(); ++d) {
    if (dom_implausible_time_[d] != 0) out.push_back(DomCount{doms_[d], dom_implausible_time_[d]});
  }
  return out;
}

void TimesliceBuilder::drop(BuilderDropReason reason, const ClbHeader& header, std::size_t dom_index) {
  ++counters_.dropped[static_cast<std::size_t>(reason)];
  if (dom_index != kNoDom && is_implausible_time(reason)) {
    ++dom_implausible_time_[dom_index];
    ++counters_.implausible_time_datagrams;
  }
  if (drop_sink_) drop_sink_(reason, header);
}

void TimesliceBuilder::add(const ClbDatagram& datagram, std::uint64_t receive_unix_ns) {
  switch (datagram.header.data_type) {
    case DataType::Monitoring:
      ++counters_.monitoring_datagrams;
      add_monitoring(datagram);
      if (monitoring_sink_) monitoring_sink_(datagram);
      break;
    case DataType::Acoustic:
      ++counters_.acoustic_datagrams;
      if (acoustic_sink_) acoustic_sink_(datagram);
      break;
    case DataType::Optical:
      add_optical(datagram, receive_unix_ns);
      break;
  }
  // Cheap wall-clock check per datagram: only the oldest open slice (a full poll() scans them all).
  if (config_.expiry_wall_ns != 0 && !open_.empty()) {
    const std::uint64_t first = open_.begin()->second.first_receive_ns;
    if (receive_unix_ns >= first && receive_unix_ns - first >= config_.expiry_wall_ns) poll(receive_unix_ns);
  }
  if (established_ && !held_.empty() && !replaying_) release_held();
}

void TimesliceBuilder::add_optical(const ClbDatagram& datagram, std::uint64_t receive_unix_ns) {
  const ClbHeader& h = datagram.header;
  // Another ingest process's DOM first: its datagrams (of any run) are counted there, not k times.
  if (!other_ingest_doms_.empty() && other_ingest_doms_.contains(h.dom_id)) {
    ++counters_.datagrams_other_ingest;
    return;
  }
  if (h.run_number != config_.run_number) return drop(BuilderDropReason::WrongRun, h, kNoDom);
  const auto dom_it = dom_index_.find(h.dom_id);
  if (dom_it == dom_index_.end()) return drop(BuilderDropReason::UnknownDom, h, kNoDom);
  const std::size_t dom = dom_it->second;
  if (h.ticks_16ns % kTicksPerSlice != 0 || h.ticks_16ns >= kTicksPerSlice * kSlicesPerSecond) {
    return drop(BuilderDropReason::BadSliceTime, h, dom);
  }
  if (h.udp_sequence > kMaxSequence) return drop(BuilderDropReason::SequenceOutOfRange, h, dom);
  if (config_.max_wall_clock_offset_s != 0 && receive_unix_ns != 0) {
    const std::uint64_t start_ns = h.slice_start_ns();
    const std::uint64_t offset_ns = start_ns > receive_unix_ns ? start_ns - receive_unix_ns : receive_unix_ns - start_ns;
    if (offset_ns > std::uint64_t{config_.max_wall_clock_offset_s} * 1'000'000'000ull) {
      return drop(BuilderDropReason::WallClockOffset, h, dom);
    }
  }

  const std::uint64_t slice = std::uint64_t{h.utc_seconds} * kSlicesPerSecond + h.ticks_16ns / kTicksPerSlice;
  const TimeJudgement judgement = judge_time(dom, slice, receive_unix_ns);
  switch (judgement.verdict) {
    case TimeVerdict::Drop: return drop(judgement.reason, h, dom);
    case TimeVerdict::Hold: return hold(datagram, dom, slice, receive_unix_ns, judgement.reason);
    case TimeVerdict::RestartWindow: restart_window(); break;
    case TimeVerdict::Accept: break;
  }
  if (last_emitted_slice_ && slice <= *last_emitted_slice_) return drop(BuilderDropReason::LateDatagram, h, dom);
  accept_optical(datagram, dom, slice, receive_unix_ns);
}

void TimesliceBuilder::accept_optical(const ClbDatagram& datagram, std::size_t dom, std::uint64_t slice,
                                      std::uint64_t receive_ns) {
  const ClbHeader& h = datagram.header;
  auto open_it = open_.find(slice);
  OpenSlice* s = open_it != open_.end() ? &open_it->second : nullptr;
  if (s != nullptr) {
    const DomSlot& slot = s->slots[dom];
    const std::size_t word = h.udp_sequence / 64;
    if (word < slot.seen.size() && (slot.seen[word] >> (h.udp_sequence % 64) & 1u) != 0) {
      return drop(BuilderDropReason::Duplicate, h, dom);
    }
    if (slot.bytes.size() + datagram.payload.size() > config_.max_frame_bytes) {
      return drop(BuilderDropReason::FrameTooLarge, h, dom);
    }
  } else {
    if (datagram.payload.size() > config_.max_frame_bytes) return drop(BuilderDropReason::FrameTooLarge, h, dom);
    s = open_slice(slice, h, receive_ns);
    if (s == nullptr) return drop(BuilderDropReason::Evicted, h, dom);
  }

  DomSlot& slot = s->slots[dom];
  if (slot.received == 0) {
    // Size the frame like this DOM's previous one: avoids regrowing (and copying) the buffer.
    slot.bytes.reserve(std::max(dom_last_frame_bytes_[dom] + dom_last_frame_bytes_[dom] / 4,
                                datagram.payload.size()));
  }
  const bool was_complete = slot.complete();
  const std::size_t word = h.udp_sequence / 64;
  if (word >= slot.seen.size()) slot.seen.resize(word + 1, 0);
  slot.seen[word] |= std::uint64_t{1} << (h.udp_sequence % 64);
  if (!slot.fragments.empty() && h.udp_sequence < slot.fragments.back().sequence) slot.in_order = false;
  slot.fragments.push_back(Fragment{h.udp_sequence, static_cast<std::uint32_t>(slot.bytes.size()),
                                    static_cast<std::uint32_t>(datagram.payload.size())});
  slot.bytes.insert(slot.bytes.end(), datagram.payload.begin(), datagram.payload.end());
  ++slot.received;
  slot.highest_sequence = std::max(slot.highest_sequence, h.udp_sequence);
  slot.trailer = slot.trailer || h.is_trailer();
  slot.legacy = slot.legacy || datagram.layout == HeaderLayout::Legacy28;
  // A datagram of an older slice than the DOM's newest: that frame's end has been seen already.
  slot.later_slice_begun = slot.later_slice_begun || dom_newest_slice_[dom] > slice;
  // Veto/FIFO bits: a channel flagged in any datagram of the slice stays flagged; White Rabbit is
  // ok only if every datagram says so.
  slot.status1_or |= h.status1 & kChannelMask31;
  slot.status2_or |= h.status2 & kChannelMask31;
  slot.status3_or |= h.status3;
  slot.status4_or |= h.status4;
  slot.white_rabbit_ok = slot.white_rabbit_ok && h.white_rabbit_ok();
  const bool now_complete = slot.complete();
  if (now_complete && !was_complete) {
    ++s->complete_doms;
    if (s->complete_doms == doms_.size()) s->completed_ns = receive_ns;
  } else if (!now_complete && was_complete) {
    --s->complete_doms;  // a datagram beyond the trailer: the DOM is incomplete again
  }

  ++counters_.datagrams_accepted;
  counters_.hits_accepted += datagram.hit_count();
  counters_.payload_bytes_accepted += datagram.payload.size();

  note_dom_progress(dom, slice, receive_ns);
  emit_ready(data_time_expiry_bound(), receive_ns);
}

TimesliceBuilder::OpenSlice* TimesliceBuilder::open_slice(std::uint64_t slice_index, const ClbHeader& header,
                                                          std::uint64_t now_ns) {
  // Frame 1 is the first slice of the run; while the window is tentative, nearby earlier data
  // (judge_time() let it through) moves it back: no frame index has been handed out yet.
  if (!run_start_slice_ || (!established_ && !config_.run_start_ns && slice_index < *run_start_slice_)) {
    run_start_slice_ = slice_index;
  }
  // Bound memory: make room by force-emitting the oldest open slice(s) as expired.
  // The front slice is never complete here (complete front slices are emitted at once).
  while (open_.size() >= config_.max_open_slices) {
    auto oldest = open_.begin();
    if (slice_index < oldest->first) return nullptr;  // the new slice would be the one evicted
    ++counters_.slices_evicted;
    emit(oldest, /*expired=*/true, now_ns);
    // Complete slices now at the front go too, but only those before the new one (frame order).
    while (!open_.empty() && open_.begin()->first < slice_index &&
           open_.begin()->second.complete_doms == doms_.size()) {
      emit(open_.begin(), false, now_ns);
    }
  }
  OpenSlice s;
  s.slice_index = slice_index;
  s.utc_seconds = header.utc_seconds;
  s.ticks_16ns = header.ticks_16ns;
  s.slots.resize(doms_.size());
  s.first_receive_ns = now_ns;
  return &open_.emplace(slice_index, std::move(s)).first->second;
}

void TimesliceBuilder::set_slot_later_slice_begun(OpenSlice& s, std::size_t dom, std::uint64_t now_ns) {
  DomSlot& slot = s.slots[dom];
  if (slot.later_slice_begun) return;
  const bool was_complete = slot.complete();
  slot.later_slice_begun = true;
  if (!was_complete && slot.complete()) {
    ++s.complete_doms;
    if (s.complete_doms == doms_.size()) s.completed_ns = now_ns;
  }
}

void TimesliceBuilder::note_dom_progress(std::size_t dom, std::uint64_t slice_index, std::uint64_t receive_ns) {
  dom_last_receive_ns_[dom] = std::max(dom_last_receive_ns_[dom], receive_ns);
  dom_claimed_slice_[dom] = 0;  // the DOM is back in the window: its claim of another time is void
  if (!newest_slice_ || slice_index > *newest_slice_) newest_slice_ = slice_index;
  const std::uint64_t previous = dom_newest_slice_[dom];
  if (slice_index <= previous) return;
  dom_newest_slice_[dom] = slice_index;
  if (previous == 0) {
    ++doms_heard_;
  } else if (auto it = open_.find(previous); it != open_.end()) {
    // The DOM began a later slice: a legacy frame without a gap is complete now.
    set_slot_later_slice_begun(it->second, dom, receive_ns);
  }
  // Recompute the data-time bound: the oldest newest-slice among the DOMs still sending, and the
  // same over the lead tolerance for judge_forward().
  const std::uint64_t lag = config_.expiry_lag_slices;
  const std::uint64_t lead = lead_tolerance_slices();
  const std::uint64_t active_from = *newest_slice_ > lag ? *newest_slice_ - lag : 0;
  const std::uint64_t sending_from = *newest_slice_ > lead ? *newest_slice_ - lead : 0;
  std::uint64_t min_active = *newest_slice_;
  std::uint64_t min_sending = *newest_slice_;
  for (std::uint64_t s : dom_newest_slice_) {
    if (s == 0) continue;
    if (s >= active_from) min_active = std::min(min_active, s);
    if (s >= sending_from) min_sending = std::min(min_sending, s);
  }
  expiry_bound_cache_ = min_active >= lag ? std::optional<std::uint64_t>(min_active - lag) : std::nullopt;
  min_sending_newest_ = min_sending;
  if (!established_ && doms_heard_ >= quorum()) confirm_window();
}

std::optional<std::uint64_t> TimesliceBuilder::data_time_expiry_bound() const noexcept {
  return expiry_bound_cache_;
}

void TimesliceBuilder::poll(std::uint64_t now_unix_ns) {
  if (config_.expiry_wall_ns != 0 && !open_.empty()) {
    // The newest slice whose first datagram is older than the wall-clock bound; older slices go too.
    std::optional<std::uint64_t> through;
    for (const auto& [index, s] : open_) {
      if (now_unix_ns >= s.first_receive_ns && now_unix_ns - s.first_receive_ns >= config_.expiry_wall_ns) {
        through = index;
      }
    }
    if (through) emit_ready(through, now_unix_ns);
  }
  if (established_ && !held_.empty() && !replaying_) release_held();
}

void TimesliceBuilder::flush(std::uint64_t now_unix_ns) {
  if (!held_.empty()) {
    confirm_window();  // nothing more will come: the window is what it is
    release_held();
  }
  // The stream has ended: a legacy frame without a gap can get no more datagrams.
  for (auto& [index, s] : open_) {
    for (std::size_t d = 0; d < doms_.size(); ++d) {
      if (s.slots[d].legacy) set_slot_later_slice_begun(s, d, now_unix_ns);
    }
  }
  while (!open_.empty()) {
    auto it = open_.begin();
    emit(it, it->second.complete_doms != doms_.size(), now_unix_ns);
  }
  // Monitoring that came after the last slice: no slice will carry it now.
  counters_.monitoring_unattached += pending_monitoring_.size();
  pending_monitoring_.clear();
}

void TimesliceBuilder::emit_ready(std::optional<std::uint64_t> expire_through, std::uint64_t now_ns) {
  while (!open_.empty()) {
    auto it = open_.begin();
    const bool complete = it->second.complete_doms == doms_.size();
    if (complete) {
      emit(it, false, now_ns);
    } else if (expire_through && it->first <= *expire_through) {
      emit(it, true, now_ns);
    } else {
      break;
    }
  }
}

void TimesliceBuilder::emit(std::map<std::uint64_t, OpenSlice>::iterator it, bool expired, std::uint64_t now_ns) {
  confirm_window();  // a slice with a frame index is out: the window can no longer restart
  OpenSlice& s = it->second;
  Timeslice out;
  out.header.detector_id = config_.detector_id;
  out.header.run = config_.run_number;
  out.header.frame_index = run_start_slice_ && s.slice_index >= *run_start_slice_
                               ? static_cast<std::uint32_t>(s.slice_index - *run_start_slice_ + 1)
                               : 0;
  out.header.utc_seconds = s.utc_seconds;
  out.header.ticks_16ns = s.ticks_16ns;
  out.stamps.received_unix_ns = s.first_receive_ns;
  out.stamps.completed_unix_ns = expired || s.completed_ns == 0 ? now_ns : s.completed_ns;

  bool any_white_rabbit_bad = false;
  out.frames.resize(doms_.size());
  for (std::size_t d = 0; d < doms_.size(); ++d) {
    DomSlot& slot = s.slots[d];
    DomFrame& f = out.frames[d];
    f.dom_id = doms_[d];
    if (slot.received == 0) {
      ++counters_.frames_missing;
      continue;  // empty frame, daq 0
    }
    const bool complete = slot.complete();
    if (!complete) ++counters_.frames_incomplete;
    if (complete && !slot.trailer) ++counters_.frames_completeness_inferred;
    dom_last_frame_bytes_[d] = std::min(slot.bytes.size(), config_.max_frame_bytes);
    f.status.daq = FrameStatus::make_daq(slot.received, slot.highest_sequence);
    f.status.status = slot.status1_or | (slot.white_rabbit_ok ? kStatus1WhiteRabbitOk : 0u);
    // A legacy frame found complete gets the trailer bit its header cannot carry (see the top of
    // the header), so FrameStatus::complete() says the same as for a 40-byte frame.
    f.status.fifo = slot.status2_or | (slot.trailer || complete ? kStatus2Trailer : 0u);
    f.status.status3 = slot.status3_or;
    f.status.status4 = slot.status4_or;
    any_white_rabbit_bad = any_white_rabbit_bad || !slot.white_rabbit_ok;
    if (slot.in_order) {
      f.hits = std::move(slot.bytes);
    } else {
      std::sort(slot.fragments.begin(), slot.fragments.end(),
                [](const Fragment& a, const Fragment& b) { return a.sequence < b.sequence; });
      f.hits.resize(slot.bytes.size());
      std::size_t at = 0;
      for (const Fragment& fr : slot.fragments) {
        if (fr.size != 0) std::memcpy(f.hits.data() + at, slot.bytes.data() + fr.offset, fr.size);
        at += fr.size;
      }
    }
  }
  // The online header flags a slice whose time is not White-Rabbit-ok in the seconds' MSB.
  if (any_white_rabbit_bad) out.header.utc_seconds |= kUtcWhiteRabbitNotOk;

  if (expired) {
    ++counters_.slices_expired;
  } else {
    ++counters_.slices_complete;
  }
  counters_.monitoring_attached += pending_monitoring_.size();
  out.monitoring = std::move(pending_monitoring_);
  pending_monitoring_.clear();
  last_emitted_slice_ = s.slice_index;
  open_.erase(it);
  if (sink_) sink_(std::move(out));
}

// The DOMs' TMCH packets travel in the slice stream: each goes with the next slice the builder
// emits (it keeps its own slice time in its header). A packet usually arrives after its slice's hits,
// often after the slice is complete, so tying it to its own slice would lose it or hold the slice.
void TimesliceBuilder::add_monitoring(const ClbDatagram& datagram) {
  const ClbHeader& h = datagram.header;
  if (other_ingest_doms_.contains(h.dom_id)) {
    ++counters_.datagrams_other_ingest;
    return;
  }
  if (h.run_number != config_.run_number || !dom_index_.contains(h.dom_id)) {
    ++counters_.monitoring_unattached;
    return;
  }
  // Bounded: a feed of monitoring without optical data (no slice to carry it) cannot grow memory.
  const std::size_t bound = 4 * std::max<std::size_t>(config_.max_open_slices, 1) * std::max<std::size_t>(doms_.size(), 1);
  if (pending_monitoring_.size() >= bound) {
    pending_monitoring_.erase(pending_monitoring_.begin());
    ++counters_.monitoring_unattached;
  }
  RawMonitoring raw;
  raw.dom_id = h.dom_id;
  encode_clb_header(h, datagram.layout, raw.datagram);
  raw.datagram.insert(raw.datagram.end(), datagram.payload.begin(), datagram.payload.end());
  pending_monitoring_.push_back(std::move(raw));
}

}  // namespace shoredaq::dataflow
