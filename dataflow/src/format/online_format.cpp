// The collaboration's online objects (DOMAIN.md section 3), decoded with bounds checks everywhere
// and encoded with one allocation per object.
#include "shoredaq/formats/online_format.hpp"

#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

namespace shoredaq::dataflow {
namespace {

// Bounded little-endian reader over one object's bytes.
class Cursor {
 public:
  explicit Cursor(std::span<const std::uint8_t> bytes, std::size_t pos = 0) noexcept : bytes_(bytes), pos_(pos) {}
  std::size_t left() const noexcept { return bytes_.size() - pos_; }
  bool has(std::size_t n) const noexcept { return left() >= n; }
  std::size_t pos() const noexcept { return pos_; }
  const std::uint8_t* here() const noexcept { return bytes_.data() + pos_; }
  void skip(std::size_t n) noexcept { pos_ += n; }

  // Callers check has() first.
  std::uint32_t u32() noexcept {
    const std::uint8_t* p = here();
    pos_ += 4;
    return std::uint32_t{p[0]} | (std::uint32_t{p[1]} << 8) | (std::uint32_t{p[2]} << 16) | (std::uint32_t{p[3]} << 24);
  }
  std::int32_t i32() noexcept { return static_cast<std::int32_t>(u32()); }
  std::uint64_t u64() noexcept {
    const std::uint64_t lo = u32();
    return lo | (std::uint64_t{u32()} << 32);
  }
  std::int16_t i16() noexcept {
    const std::uint8_t* p = here();
    pos_ += 2;
    return static_cast<std::int16_t>(p[0] | (p[1] << 8));
  }

 private:
  std::span<const std::uint8_t> bytes_;
  std::size_t pos_;
};

// Writes into a buffer that was resized for the whole object up front.
class Writer {
 public:
  explicit Writer(std::uint8_t* p) noexcept : p_(p) {}
  void u32(std::uint32_t v) noexcept {
    p_[0] = static_cast<std::uint8_t>(v);
    p_[1] = static_cast<std::uint8_t>(v >> 8);
    p_[2] = static_cast<std::uint8_t>(v >> 16);
    p_[3] = static_cast<std::uint8_t>(v >> 24);
    p_ += 4;
  }
  void i32(std::int32_t v) noexcept { u32(static_cast<std::uint32_t>(v)); }
  void u64(std::uint64_t v) noexcept {
    u32(static_cast<std::uint32_t>(v));
    u32(static_cast<std::uint32_t>(v >> 32));
  }
  void i16(std::int16_t v) noexcept {
    const auto u = static_cast<std::uint16_t>(v);
    p_[0] = static_cast<std::uint8_t>(u);
    p_[1] = static_cast<std::uint8_t>(u >> 8);
    p_ += 2;
  }
  void bytes(const std::uint8_t* src, std::size_t n) noexcept {
    if (n != 0) std::memcpy(p_, src, n);
    p_ += n;
  }
  void hit(const Hit& h) noexcept {
    encode_hit(h, p_);
    p_ += kHitBytes;
  }
  std::uint8_t* position() const noexcept { return p_; }

 private:
  std::uint8_t* p_;
};

SliceHeader read_header(Cursor& c) noexcept {
  SliceHeader h;
  h.detector_id = c.i32();
  h.run = c.u32();
  h.frame_index = c.u32();
  h.utc_seconds = c.u32();
  h.ticks_16ns = c.u32();
  return h;
}

FrameStatus read_status(Cursor& c) noexcept {
  FrameStatus s;
  s.daq = c.u32();
  s.status = c.u32();
  s.fifo = c.u32();
  s.status3 = c.u32();
  s.status4 = c.u32();
  return s;
}

void write_header(Writer& w, const SliceHeader& h) noexcept {
  w.i32(h.detector_id);
  w.u32(h.run);
  w.u32(h.frame_index);
  w.u32(h.utc_seconds);
  w.u32(h.ticks_16ns);
}

void write_status(Writer& w, const FrameStatus& s) noexcept {
  w.u32(s.daq);
  w.u32(s.status);
  w.u32(s.fifo);
  w.u32(s.status3);
  w.u32(s.status4);
}

std::int32_t checked_i32(std::size_t n, const char* what) {
  if (n > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
    throw std::invalid_argument(std::string("online format: ") + what + " exceeds int32");
  }
  return static_cast<std::int32_t>(n);
}

std::size_t superframe_size(const DomFrame& frame) noexcept { return kOnlineEmptySuperframeBytes + frame.hits.size(); }

// Reads the preamble of an object that must be of one of the accepted types and hands back a
// cursor limited to the object, positioned after the preamble.
template <typename T>
bool open_object(std::span<const std::uint8_t> bytes, OnlineDecodeResult<T>& result, std::int32_t& type,
                 std::span<const std::uint8_t>& object) noexcept {
  const auto preamble = decode_online_preamble(bytes);
  if (!preamble) {
    result.error = preamble.error;
    return false;
  }
  type = preamble.value.type;
  result.bytes_used = static_cast<std::size_t>(preamble.value.length);
  object = bytes.first(result.bytes_used);
  return true;
}

template <typename T>
bool read_version(Cursor& c, std::int16_t expected, OnlineDecodeResult<T>& result) noexcept {
  if (!c.has(kOnlineVersionBytes)) {
    result.error = OnlineError::Truncated;
    return false;
  }
  if (c.i16() != expected) {
    result.error = OnlineError::UnsupportedVersion;
    return false;
  }
  return true;
}

// A count of items of `item_bytes` each that must fit in what is left of the object.
bool read_count(Cursor& c, std::size_t item_bytes, std::size_t& count, OnlineError& error) noexcept {
  if (!c.has(4)) {
    error = OnlineError::Truncated;
    return false;
  }
  const std::int32_t n = c.i32();
  if (n < 0 || static_cast<std::size_t>(n) > c.left() / item_bytes) {
    error = OnlineError::BadCount;
    return false;
  }
  count = static_cast<std::size_t>(n);
  return true;
}

// Decodes one superframe starting at the cursor (inside a timeslice or standalone).
OnlineError read_superframe(Cursor& c, OnlineSuperframe& out) {
  if (!c.has(kOnlinePreambleBytes)) return OnlineError::Truncated;
  const std::int32_t length = c.i32();
  const std::int32_t type = c.i32();
  if (type != online_type::kSuperframe) return OnlineError::WrongType;
  if (length < static_cast<std::int32_t>(kOnlineEmptySuperframeBytes)) return OnlineError::BadLength;
  if (!c.has(static_cast<std::size_t>(length) - kOnlinePreambleBytes)) return OnlineError::Truncated;
  out.header = read_header(c);
  out.frame.dom_id = c.u32();
  out.frame.status = read_status(c);
  const std::int32_t hits = c.i32();
  if (hits < 0) return OnlineError::BadCount;
  if (static_cast<std::size_t>(length) - kOnlineEmptySuperframeBytes != static_cast<std::size_t>(hits) * kHitBytes) {
    return OnlineError::LengthMismatch;
  }
  const std::size_t hit_bytes = static_cast<std::size_t>(hits) * kHitBytes;
  out.frame.hits.assign(c.here(), c.here() + hit_bytes);
  c.skip(hit_bytes);
  return OnlineError::None;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
std::optional<TimesliceKind> timeslice_kind_of(std::int32_t type) noexcept {
  if (type < online_type::kTimesliceError || type > online_type::kTimesliceSN) return std::nullopt;
  return static_cast<TimesliceKind>(type - online_type::kTimesliceError);
}

std::string_view to_string(TimesliceKind kind) noexcept {
  switch (kind) {
    case TimesliceKind::Error: return "error";
    case TimesliceKind::L0: return "L0";
    case TimesliceKind::L1: return "L1";
    case TimesliceKind::L2: return "L2";
    case TimesliceKind::SN: return "SN";
  }
  return "unknown";
}

std::string_view online_type_name(std::int32_t type) noexcept {
  switch (type) {
    case online_type::kSuperframe: return "superframe";
    case online_type::kSummaryFrame: return "summary frame";
    case online_type::kTimesliceError: return "timeslice error";
    case online_type::kTimesliceL0: return "timeslice L0";
    case online_type::kTimesliceL1: return "timeslice L1";
    case online_type::kTimesliceL2: return "timeslice L2";
    case online_type::kTimesliceSN: return "timeslice SN";
    case online_type::kSummarySlice: return "summary slice";
    case online_type::kEvent: return "event";
    default: return "unknown";
  }
}

std::string_view to_string(OnlineError e) noexcept {
  switch (e) {
    case OnlineError::None: return "none";
    case OnlineError::Truncated: return "truncated object";
    case OnlineError::BadLength: return "preamble length too small";
    case OnlineError::WrongType: return "unexpected object type";
    case OnlineError::UnsupportedVersion: return "unsupported class version";
    case OnlineError::BadCount: return "count does not fit the object";
    case OnlineError::LengthMismatch: return "content does not match the object length";
    case OnlineError::InconsistentFrameHeader: return "superframe header differs from the timeslice header";
  }
  return "unknown error";
}

OnlineDecodeResult<OnlinePreamble> decode_online_preamble(std::span<const std::uint8_t> bytes) noexcept {
  OnlineDecodeResult<OnlinePreamble> result;
  if (bytes.size() < kOnlinePreambleBytes) {
    result.error = OnlineError::Truncated;
    return result;
  }
  Cursor c(bytes);
  result.value.length = c.i32();
  result.value.type = c.i32();
  if (result.value.length < static_cast<std::int32_t>(kOnlinePreambleBytes)) {
    result.error = OnlineError::BadLength;
    return result;
  }
  result.bytes_used = static_cast<std::size_t>(result.value.length);
  if (result.bytes_used > bytes.size()) result.error = OnlineError::Truncated;
  return result;
}

// ---------------------------------------------------------------------------------------------
OnlineDecodeResult<OnlineSuperframe> decode_online_superframe(std::span<const std::uint8_t> bytes) {
  OnlineDecodeResult<OnlineSuperframe> result;
  std::int32_t type = 0;
  std::span<const std::uint8_t> object;
  if (!open_object(bytes, result, type, object)) return result;
  Cursor c(object);
  result.error = read_superframe(c, result.value);
  if (result.error == OnlineError::None && c.left() != 0) result.error = OnlineError::LengthMismatch;
  return result;
}

OnlineDecodeResult<OnlineTimeslice> decode_online_timeslice(std::span<const std::uint8_t> bytes) {
  OnlineDecodeResult<OnlineTimeslice> result;
  std::int32_t type = 0;
  std::span<const std::uint8_t> object;
  if (!open_object(bytes, result, type, object)) return result;
  const auto kind = timeslice_kind_of(type);
  if (!kind) {
    result.error = OnlineError::WrongType;
    return result;
  }
  result.value.kind = *kind;
  Cursor c(object, kOnlinePreambleBytes);
  if (!read_version(c, kOnlineTimesliceVersion, result)) return result;
  if (!c.has(kOnlineHeaderBytes)) {
    result.error = OnlineError::Truncated;
    return result;
  }
  Timeslice& slice = result.value.slice;
  slice.header = read_header(c);
  std::size_t frames = 0;
  if (!read_count(c, kOnlineEmptySuperframeBytes, frames, result.error)) return result;
  slice.frames.reserve(frames);
  OnlineSuperframe superframe;
  for (std::size_t i = 0; i < frames; ++i) {
    result.error = read_superframe(c, superframe);
    if (result.error != OnlineError::None) return result;
    if (!(superframe.header == slice.header)) {
      // The format repeats the slice header in every superframe; a frame from another slice
      // cannot be represented by Timeslice (and would not round-trip), so it is refused.
      result.error = OnlineError::InconsistentFrameHeader;
      return result;
    }
    slice.frames.push_back(std::move(superframe.frame));
    superframe.frame = DomFrame{};
  }
  if (c.left() != 0) result.error = OnlineError::LengthMismatch;
  return result;
}

OnlineDecodeResult<SummarySlice> decode_online_summary_slice(std::span<const std::uint8_t> bytes) {
  OnlineDecodeResult<SummarySlice> result;
  std::int32_t type = 0;
  std::span<const std::uint8_t> object;
  if (!open_object(bytes, result, type, object)) return result;
  if (type != online_type::kSummarySlice) {
    result.error = OnlineError::WrongType;
    return result;
  }
  Cursor c(object, kOnlinePreambleBytes);
  if (!read_version(c, kOnlineSummarySliceVersion, result)) return result;
  if (!c.has(kOnlineHeaderBytes)) {
    result.error = OnlineError::Truncated;
    return result;
  }
  result.value.header = read_header(c);
  std::size_t frames = 0;
  if (!read_count(c, kOnlineSummaryFrameBytes, frames, result.error)) return result;
  if (c.left() != frames * kOnlineSummaryFrameBytes) {
    result.error = OnlineError::LengthMismatch;
    return result;
  }
  result.value.frames.resize(frames);
  for (auto& f : result.value.frames) {
    f.dom_id = c.u32();
    f.status = read_status(c);
    std::memcpy(f.rate_codes.data(), c.here(), kPmtsPerDom);
    c.skip(kPmtsPerDom);
  }
  return result;
}

OnlineDecodeResult<Event> decode_online_event(std::span<const std::uint8_t> bytes) {
  OnlineDecodeResult<Event> result;
  std::int32_t type = 0;
  std::span<const std::uint8_t> object;
  if (!open_object(bytes, result, type, object)) return result;
  if (type != online_type::kEvent) {
    result.error = OnlineError::WrongType;
    return result;
  }
  Cursor c(object, kOnlinePreambleBytes);
  if (!read_version(c, kOnlineEventVersion, result)) return result;
  if (!c.has(kOnlineHeaderBytes + 8 + 8 + 4)) {
    result.error = OnlineError::Truncated;
    return result;
  }
  Event& e = result.value;
  e.header = read_header(c);
  e.trigger_counter = c.u64();
  e.trigger_mask = c.u64();
  e.overlays = c.u32();
  std::size_t triggered = 0;
  if (!read_count(c, kOnlineTriggeredHitBytes, triggered, result.error)) return result;
  e.triggered.resize(triggered);
  for (auto& h : e.triggered) {
    h.dom_id = c.u32();
    h.hit = decode_hit(c.here());
    c.skip(kHitBytes);
    h.trigger_mask = c.u64();
  }
  std::size_t snapshot = 0;
  if (!read_count(c, kOnlineSnapshotHitBytes, snapshot, result.error)) return result;
  if (c.left() != snapshot * kOnlineSnapshotHitBytes) {
    result.error = OnlineError::LengthMismatch;
    return result;
  }
  e.snapshot.resize(snapshot);
  for (auto& h : e.snapshot) {
    h.dom_id = c.u32();
    h.hit = decode_hit(c.here());
    c.skip(kHitBytes);
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
std::size_t online_timeslice_size(const Timeslice& slice) noexcept {
  std::size_t n = kOnlinePreambleBytes + kOnlineVersionBytes + kOnlineHeaderBytes + 4;
  for (const auto& f : slice.frames) n += superframe_size(f);
  return n;
}

std::size_t online_summary_slice_size(const SummarySlice& slice) noexcept {
  return kOnlinePreambleBytes + kOnlineVersionBytes + kOnlineHeaderBytes + 4 +
         slice.frames.size() * kOnlineSummaryFrameBytes;
}

std::size_t online_event_size(const Event& event) noexcept {
  return kOnlinePreambleBytes + kOnlineVersionBytes + kOnlineHeaderBytes + 8 + 8 + 4 + 4 +
         event.triggered.size() * kOnlineTriggeredHitBytes + 4 + event.snapshot.size() * kOnlineSnapshotHitBytes;
}

void encode_online_header(const SliceHeader& header, std::vector<std::uint8_t>& out) {
  const std::size_t at = out.size();
  out.resize(at + kOnlineHeaderBytes);
  Writer w(out.data() + at);
  write_header(w, header);
}

void encode_online_frame_status(const FrameStatus& status, std::vector<std::uint8_t>& out) {
  const std::size_t at = out.size();
  out.resize(at + kOnlineFrameStatusBytes);
  Writer w(out.data() + at);
  write_status(w, status);
}

namespace {
void write_superframe(Writer& w, const SliceHeader& header, const DomFrame& frame) {
  w.i32(checked_i32(superframe_size(frame), "superframe length"));
  w.i32(online_type::kSuperframe);
  write_header(w, header);
  w.u32(frame.dom_id);
  write_status(w, frame.status);
  w.i32(checked_i32(frame.hit_count(), "hit count"));
  w.bytes(frame.hits.data(), frame.hits.size());
}

void check_frames(const Timeslice& slice) {
  for (const auto& f : slice.frames) {
    if (f.hits.size() % kHitBytes != 0) {
      throw std::invalid_argument("online format: frame of DOM " + std::to_string(f.dom_id) +
                                  " holds a partial hit");
    }
  }
}
}  // namespace

void encode_online_superframe(const SliceHeader& header, const DomFrame& frame, std::vector<std::uint8_t>& out) {
  if (frame.hits.size() % kHitBytes != 0) throw std::invalid_argument("online format: partial hit in frame");
  const std::size_t at = out.size();
  out.resize(at + superframe_size(frame));
  Writer w(out.data() + at);
  write_superframe(w, header, frame);
}

void encode_online_timeslice(const Timeslice& slice, TimesliceKind kind, std::vector<std::uint8_t>& out) {
  check_frames(slice);
  const std::size_t size = online_timeslice_size(slice);
  const std::int32_t length = checked_i32(size, "timeslice length");
  const std::size_t at = out.size();
  out.resize(at + size);
  Writer w(out.data() + at);
  w.i32(length);
  w.i32(online_type_of(kind));
  w.i16(kOnlineTimesliceVersion);
  write_header(w, slice.header);
  w.i32(checked_i32(slice.frames.size(), "frame count"));
  for (const auto& f : slice.frames) write_superframe(w, slice.header, f);
}

void encode_online_summary_slice(const SummarySlice& slice, std::vector<std::uint8_t>& out) {
  const std::size_t size = online_summary_slice_size(slice);
  const std::int32_t length = checked_i32(size, "summary slice length");
  const std::size_t at = out.size();
  out.resize(at + size);
  Writer w(out.data() + at);
  w.i32(length);
  w.i32(online_type::kSummarySlice);
  w.i16(kOnlineSummarySliceVersion);
  write_header(w, slice.header);
  w.i32(checked_i32(slice.frames.size(), "frame count"));
  for (const auto& f : slice.frames) {
    w.u32(f.dom_id);
    write_status(w, f.status);
    w.bytes(f.rate_codes.data(), kPmtsPerDom);
  }
}

void encode_online_event(const Event& event, std::vector<std::uint8_t>& out) {
  const std::size_t size = online_event_size(event);
  const std::int32_t length = checked_i32(size, "event length");
  const std::size_t at = out.size();
  out.resize(at + size);
  Writer w(out.data() + at);
  w.i32(length);
  w.i32(online_type::kEvent);
  w.i16(kOnlineEventVersion);
  write_header(w, event.header);
  w.u64(event.trigger_counter);
  w.u64(event.trigger_mask);
  w.u32(event.overlays);
  w.i32(checked_i32(event.triggered.size(), "triggered hit count"));
  for (const auto& h : event.triggered) {
    w.u32(h.dom_id);
    w.hit(h.hit);
    w.u64(h.trigger_mask);
  }
  w.i32(checked_i32(event.snapshot.size(), "snapshot hit count"));
  for (const auto& h : event.snapshot) {
    w.u32(h.dom_id);
    w.hit(h.hit);
  }
}

}  // namespace shoredaq::dataflow
