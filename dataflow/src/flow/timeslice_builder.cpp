#include "shoredaq/dataflow/timeslice_builder.hpp"

#include <algorithm>
#include <cstring>

namespace shoredaq::dataflow {

namespace {
constexpr std::uint64_t kSlicesPerSecond = 1'000'000'000ull / kSliceDurationNs;  // 10
constexpr std::uint32_t kMaxSequence = 0xffffu;  // the daq word holds 16 bits
constexpr std::uint32_t kUtcWhiteRabbitNotOk = 1u << 31;
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
    case BuilderDropReason::Count_: break;
  }
  return "unknown";
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
  dom_newest_slice_.assign(doms_.size(), 0);
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

void TimesliceBuilder::drop(BuilderDropReason reason, const ClbHeader& header) {
  ++counters_.dropped[static_cast<std::size_t>(reason)];
  if (drop_sink_) drop_sink_(reason, header);
}

void TimesliceBuilder::add(const ClbDatagram& datagram, std::uint64_t receive_unix_ns) {
  switch (datagram.header.data_type) {
    case DataType::Monitoring:
      ++counters_.monitoring_datagrams;
      if (monitoring_sink_) monitoring_sink_(datagram);
      break;
    case DataType::Acoustic:
      ++counters_.acoustic_datagrams;
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
}

void TimesliceBuilder::add_optical(const ClbDatagram& datagram, std::uint64_t receive_unix_ns) {
  const ClbHeader& h = datagram.header;
  if (h.run_number != config_.run_number) return drop(BuilderDropReason::WrongRun, h);
  const auto dom_it = dom_index_.find(h.dom_id);
  if (dom_it == dom_index_.end()) return drop(BuilderDropReason::UnknownDom, h);
  if (h.ticks_16ns % kTicksPerSlice != 0 || h.ticks_16ns >= kTicksPerSlice * kSlicesPerSecond) {
    return drop(BuilderDropReason::BadSliceTime, h);
  }
  if (h.udp_sequence > kMaxSequence) return drop(BuilderDropReason::SequenceOutOfRange, h);

  const std::uint64_t slice = std::uint64_t{h.utc_seconds} * kSlicesPerSecond + h.ticks_16ns / kTicksPerSlice;
  const std::uint64_t jump = config_.max_time_jump_slices;
  if (newest_slice_) {
    if (slice > *newest_slice_ + jump || slice + jump < *newest_slice_) {
      return drop(BuilderDropReason::TimeJump, h);
    }
  }
  if (run_start_slice_ && slice < *run_start_slice_) return drop(BuilderDropReason::BeforeRunStart, h);
  if (last_emitted_slice_ && slice <= *last_emitted_slice_) return drop(BuilderDropReason::LateDatagram, h);

  const std::size_t dom = dom_it->second;
  auto open_it = open_.find(slice);
  OpenSlice* s = open_it != open_.end() ? &open_it->second : nullptr;
  if (s != nullptr) {
    const DomSlot& slot = s->slots[dom];
    const std::size_t word = h.udp_sequence / 64;
    if (word < slot.seen.size() && (slot.seen[word] >> (h.udp_sequence % 64) & 1u) != 0) {
      return drop(BuilderDropReason::Duplicate, h);
    }
    if (slot.bytes.size() + datagram.payload.size() > config_.max_frame_bytes) {
      return drop(BuilderDropReason::FrameTooLarge, h);
    }
  } else {
    if (datagram.payload.size() > config_.max_frame_bytes) return drop(BuilderDropReason::FrameTooLarge, h);
    s = open_slice(slice, h, receive_unix_ns);
    if (s == nullptr) return drop(BuilderDropReason::Evicted, h);
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
    if (s->complete_doms == doms_.size()) s->completed_ns = receive_unix_ns;
  } else if (!now_complete && was_complete) {
    --s->complete_doms;  // a datagram beyond the trailer: the DOM is incomplete again
  }

  ++counters_.datagrams_accepted;
  counters_.hits_accepted += datagram.hit_count();
  counters_.payload_bytes_accepted += datagram.payload.size();

  note_dom_progress(dom, slice);
  emit_ready(data_time_expiry_bound(), receive_unix_ns);
}

TimesliceBuilder::OpenSlice* TimesliceBuilder::open_slice(std::uint64_t slice_index, const ClbHeader& header,
                                                          std::uint64_t now_ns) {
  if (!run_start_slice_) run_start_slice_ = slice_index;  // first slice seen in the run = frame 1
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

void TimesliceBuilder::note_dom_progress(std::size_t dom, std::uint64_t slice_index) {
  if (!newest_slice_ || slice_index > *newest_slice_) newest_slice_ = slice_index;
  if (slice_index <= dom_newest_slice_[dom]) return;
  dom_newest_slice_[dom] = slice_index;
  // Recompute the data-time bound: the oldest newest-slice among the DOMs still sending.
  const std::uint64_t lag = config_.expiry_lag_slices;
  const std::uint64_t active_from = *newest_slice_ > lag ? *newest_slice_ - lag : 0;
  std::uint64_t min_active = *newest_slice_;
  for (std::uint64_t s : dom_newest_slice_) {
    if (s != 0 && s >= active_from) min_active = std::min(min_active, s);
  }
  expiry_bound_cache_ = min_active >= lag ? std::optional<std::uint64_t>(min_active - lag) : std::nullopt;
}

std::optional<std::uint64_t> TimesliceBuilder::data_time_expiry_bound() const noexcept {
  return expiry_bound_cache_;
}

void TimesliceBuilder::poll(std::uint64_t now_unix_ns) {
  if (config_.expiry_wall_ns == 0 || open_.empty()) return;
  // The newest slice whose first datagram is older than the wall-clock bound; older slices go too.
  std::optional<std::uint64_t> through;
  for (const auto& [index, s] : open_) {
    if (now_unix_ns >= s.first_receive_ns && now_unix_ns - s.first_receive_ns >= config_.expiry_wall_ns) {
      through = index;
    }
  }
  if (through) emit_ready(through, now_unix_ns);
}

void TimesliceBuilder::flush(std::uint64_t now_unix_ns) {
  while (!open_.empty()) {
    auto it = open_.begin();
    emit(it, it->second.complete_doms != doms_.size(), now_unix_ns);
  }
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
    if (!slot.complete()) ++counters_.frames_incomplete;
    dom_last_frame_bytes_[d] = std::min(slot.bytes.size(), config_.max_frame_bytes);
    f.status.daq = FrameStatus::make_daq(slot.received, slot.highest_sequence);
    f.status.status = slot.status1_or | (slot.white_rabbit_ok ? kStatus1WhiteRabbitOk : 0u);
    f.status.fifo = slot.status2_or | (slot.trailer ? kStatus2Trailer : 0u);
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
  last_emitted_slice_ = s.slice_index;
  open_.erase(it);
  if (sink_) sink_(std::move(out));
}

}  // namespace shoredaq::dataflow
