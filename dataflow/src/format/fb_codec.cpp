#include "shoredaq/formats/fb_codec.hpp"

#include <cstring>
#include <memory>

#include "shoredaq/fb/event_generated.h"
#include "shoredaq/fb/run_record_generated.h"
#include "shoredaq/fb/summary_slice_generated.h"
#include "shoredaq/fb/timeslice_generated.h"

namespace shoredaq::dataflow {

static_assert(static_cast<int>(TimesliceKind::SN) == static_cast<int>(fb::TimesliceKind::SN) &&
              static_cast<int>(TimesliceKind::L1) == static_cast<int>(fb::TimesliceKind::L1));

std::string_view to_string(RunOutcome state) noexcept {
  switch (state) {
    case RunOutcome::Running: return "running";
    case RunOutcome::Stopped: return "stopped";
    case RunOutcome::Aborted: return "aborted";
  }
  return "unknown";
}

std::string_view to_string(FbKind kind) noexcept {
  switch (kind) {
    case FbKind::Event: return "Event";
    case FbKind::Timeslice: return "Timeslice";
    case FbKind::SummarySlice: return "SummarySlice";
    case FbKind::RunRecord: return "RunRecord";
    case FbKind::Unknown: break;
  }
  return "unknown";
}

std::string_view to_string(FbError error) noexcept {
  switch (error) {
    case FbError::None: return "none";
    case FbError::TooLarge: return "buffer larger than the limit";
    case FbError::WrongIdentifier: return "wrong file identifier";
    case FbError::VerifyFailed: return "FlatBuffers verifier rejected the buffer";
    case FbError::MissingHeader: return "slice header missing";
    case FbError::BadHitBytes: return "packed hits not a whole number of hits";
    case FbError::BadEnum: return "enum value out of range";
  }
  return "unknown";
}

namespace {

// Everything our buffers hold is at most 8-byte aligned; FlatBuffers reads scalars in place, so a
// buffer at an odd address (an LMDB value, a ZeroMQ frame) is first copied to aligned memory.
constexpr std::size_t kMaxAlign = 8;

class AlignedView {
 public:
  explicit AlignedView(std::span<const std::uint8_t> bytes) {
    if (reinterpret_cast<std::uintptr_t>(bytes.data()) % kMaxAlign == 0) {
      view_ = bytes;
    } else {
      copy_ = std::make_unique<std::uint64_t[]>((bytes.size() + 7) / 8);
      std::memcpy(copy_.get(), bytes.data(), bytes.size());
      view_ = {reinterpret_cast<const std::uint8_t*>(copy_.get()), bytes.size()};
    }
  }
  std::span<const std::uint8_t> bytes() const noexcept { return view_; }

 private:
  std::unique_ptr<std::uint64_t[]> copy_;
  std::span<const std::uint8_t> view_;
};

const char* identifier_of(FbKind kind) noexcept {
  switch (kind) {
    case FbKind::Event: return fb::EventIdentifier();
    case FbKind::Timeslice: return fb::TimesliceIdentifier();
    case FbKind::SummarySlice: return fb::SummarySliceIdentifier();
    case FbKind::RunRecord: return fb::RunRecordIdentifier();
    case FbKind::Unknown: break;
  }
  return nullptr;
}

bool has_identifier(std::span<const std::uint8_t> bytes, const char* id) noexcept {
  constexpr std::size_t kHeaderBytes = sizeof(flatbuffers::uoffset_t) + flatbuffers::kFileIdentifierLength;
  return bytes.size() >= kHeaderBytes &&
         std::memcmp(bytes.data() + sizeof(flatbuffers::uoffset_t), id, flatbuffers::kFileIdentifierLength) == 0;
}

// Aligned bytes only.
FbError verify_aligned(FbKind kind, std::span<const std::uint8_t> bytes, const FbLimits& limits) noexcept {
  if (bytes.size() > limits.max_buffer_bytes || bytes.size() >= FLATBUFFERS_MAX_BUFFER_SIZE) {
    return FbError::TooLarge;
  }
  const char* id = identifier_of(kind);
  if (id == nullptr || !has_identifier(bytes, id)) return FbError::WrongIdentifier;
  flatbuffers::Verifier verifier(bytes.data(), bytes.size(), limits.max_depth, limits.max_tables,
                                 /*check_alignment=*/true);
  bool ok = false;
  switch (kind) {
    case FbKind::Event: ok = fb::VerifyEventBuffer(verifier); break;
    case FbKind::Timeslice: ok = fb::VerifyTimesliceBuffer(verifier); break;
    case FbKind::SummarySlice: ok = fb::VerifySummarySliceBuffer(verifier); break;
    case FbKind::RunRecord: ok = fb::VerifyRunRecordBuffer(verifier); break;
    case FbKind::Unknown: break;
  }
  return ok ? FbError::None : FbError::VerifyFailed;
}

fb::SliceHeader to_fb(const SliceHeader& h) noexcept {
  return fb::SliceHeader(h.detector_id, h.run, h.frame_index, h.utc_seconds, h.ticks_16ns);
}
SliceHeader from_fb(const fb::SliceHeader& h) noexcept {
  return SliceHeader{h.detector_id(), h.run(), h.frame_index(), h.utc_seconds(), h.ticks_16ns()};
}
fb::FrameStatus to_fb(const FrameStatus& s) noexcept {
  return fb::FrameStatus(s.daq, s.status, s.fifo, s.status3, s.status4);
}
FrameStatus from_fb(const fb::FrameStatus& s) noexcept {
  return FrameStatus{s.daq(), s.status(), s.fifo(), s.status3(), s.status4()};
}

void put_le32(std::uint32_t v, std::uint8_t* out) noexcept {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
void put_le64(std::uint64_t v, std::uint8_t* out) noexcept {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
std::uint32_t get_le32(const std::uint8_t* p) noexcept {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
std::uint64_t get_le64(const std::uint8_t* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

template <class T, class Fn>
FbDecoded<T> decode_with(FbKind kind, std::span<const std::uint8_t> bytes, const FbLimits& limits, Fn&& fn) {
  FbDecoded<T> result;
  if (bytes.size() > limits.max_buffer_bytes) {
    result.error = FbError::TooLarge;
    return result;
  }
  const AlignedView aligned(bytes);
  result.error = verify_aligned(kind, aligned.bytes(), limits);
  if (result.error == FbError::None) result.error = fn(aligned.bytes().data(), result.value);
  if (result.error != FbError::None) result.value = T{};
  return result;
}

}  // namespace

FbKind identify_fb(std::span<const std::uint8_t> bytes) noexcept {
  for (const FbKind kind : {FbKind::Event, FbKind::Timeslice, FbKind::SummarySlice, FbKind::RunRecord}) {
    if (has_identifier(bytes, identifier_of(kind))) return kind;
  }
  return FbKind::Unknown;
}

FbError verify_fb(FbKind kind, std::span<const std::uint8_t> bytes, const FbLimits& limits) noexcept {
  if (bytes.size() > limits.max_buffer_bytes) return FbError::TooLarge;
  try {
    const AlignedView aligned(bytes);
    return verify_aligned(kind, aligned.bytes(), limits);
  } catch (const std::bad_alloc&) {
    return FbError::TooLarge;
  }
}

// ---- packed hits ----

void append_triggered_hit(const TriggeredHit& hit, std::vector<std::uint8_t>& out) {
  const std::size_t at = out.size();
  out.resize(at + kTriggeredHitBytes);
  std::uint8_t* p = out.data() + at;
  put_le32(hit.dom_id, p);
  encode_hit(hit.hit, p + 4);
  put_le64(hit.trigger_mask, p + 10);
}

void append_snapshot_hit(const SnapshotHit& hit, std::vector<std::uint8_t>& out) {
  const std::size_t at = out.size();
  out.resize(at + kSnapshotHitBytes);
  std::uint8_t* p = out.data() + at;
  put_le32(hit.dom_id, p);
  encode_hit(hit.hit, p + 4);
}

TriggeredHit read_triggered_hit(const std::uint8_t* p) noexcept {
  return TriggeredHit{get_le32(p), decode_hit(p + 4), get_le64(p + 10)};
}

SnapshotHit read_snapshot_hit(const std::uint8_t* p) noexcept { return SnapshotHit{get_le32(p), decode_hit(p + 4)}; }

// ---- Event ----

void encode_event_fb(const Event& event, flatbuffers::FlatBufferBuilder& builder, std::uint64_t committed_unix_ns) {
  builder.Clear();
  // Every scalar present, so the committed stamp can be set in place after encoding.
  builder.ForceDefaults(true);
  std::uint8_t* triggered_bytes = nullptr;
  const auto triggered =
      builder.CreateUninitializedVector(event.triggered.size() * kTriggeredHitBytes, &triggered_bytes);
  for (const TriggeredHit& h : event.triggered) {
    put_le32(h.dom_id, triggered_bytes);
    encode_hit(h.hit, triggered_bytes + 4);
    put_le64(h.trigger_mask, triggered_bytes + 10);
    triggered_bytes += kTriggeredHitBytes;
  }
  std::uint8_t* snapshot_bytes = nullptr;
  const auto snapshot =
      builder.CreateUninitializedVector(event.snapshot.size() * kSnapshotHitBytes, &snapshot_bytes);
  for (const SnapshotHit& h : event.snapshot) {
    put_le32(h.dom_id, snapshot_bytes);
    encode_hit(h.hit, snapshot_bytes + 4);
    snapshot_bytes += kSnapshotHitBytes;
  }
  const fb::SliceHeader header = to_fb(event.header);
  const auto root = fb::CreateEvent(builder, &header, event.event_number, event.trigger_counter,
                                    event.trigger_mask, event.overlays, triggered, snapshot,
                                    event.stamps.received_unix_ns, event.stamps.completed_unix_ns,
                                    event.filtered_unix_ns, committed_unix_ns);
  fb::FinishEventBuffer(builder, root);
}

std::vector<std::uint8_t> encode_event_fb(const Event& event, std::uint64_t committed_unix_ns) {
  flatbuffers::FlatBufferBuilder builder(256 + event.triggered.size() * kTriggeredHitBytes +
                                         event.snapshot.size() * kSnapshotHitBytes);
  encode_event_fb(event, builder, committed_unix_ns);
  return {builder.GetBufferPointer(), builder.GetBufferPointer() + builder.GetSize()};
}

FbDecoded<DecodedEvent> decode_event_fb(std::span<const std::uint8_t> bytes, const FbLimits& limits) {
  return decode_with<DecodedEvent>(FbKind::Event, bytes, limits, [](const std::uint8_t* buf, DecodedEvent& out) {
    const fb::Event* e = fb::GetEvent(buf);
    if (e->header() == nullptr) return FbError::MissingHeader;
    const auto* triggered = e->triggered_hits();
    const auto* snapshot = e->snapshot_hits();
    if ((triggered != nullptr && triggered->size() % kTriggeredHitBytes != 0) ||
        (snapshot != nullptr && snapshot->size() % kSnapshotHitBytes != 0)) {
      return FbError::BadHitBytes;
    }
    Event& ev = out.event;
    ev.header = from_fb(*e->header());
    ev.event_number = e->event_number();
    ev.trigger_counter = e->trigger_counter();
    ev.trigger_mask = e->trigger_mask();
    ev.overlays = e->overlays();
    if (triggered != nullptr) {
      ev.triggered.reserve(triggered->size() / kTriggeredHitBytes);
      for (std::size_t i = 0; i < triggered->size(); i += kTriggeredHitBytes) {
        ev.triggered.push_back(read_triggered_hit(triggered->data() + i));
      }
    }
    if (snapshot != nullptr) {
      ev.snapshot.reserve(snapshot->size() / kSnapshotHitBytes);
      for (std::size_t i = 0; i < snapshot->size(); i += kSnapshotHitBytes) {
        ev.snapshot.push_back(read_snapshot_hit(snapshot->data() + i));
      }
    }
    ev.stamps.received_unix_ns = e->received_unix_ns();
    ev.stamps.completed_unix_ns = e->completed_unix_ns();
    ev.filtered_unix_ns = e->filtered_unix_ns();
    out.committed_unix_ns = e->committed_unix_ns();
    return FbError::None;
  });
}

bool stamp_event_committed(std::span<std::uint8_t> event_buffer, std::uint64_t committed_unix_ns) noexcept {
  if (reinterpret_cast<std::uintptr_t>(event_buffer.data()) % kMaxAlign != 0) return false;
  if (verify_aligned(FbKind::Event, event_buffer, FbLimits{}) != FbError::None) return false;
  return fb::GetMutableEvent(event_buffer.data())->mutate_committed_unix_ns(committed_unix_ns);
}

// ---- Timeslice ----

void encode_timeslice_fb(const Timeslice& slice, flatbuffers::FlatBufferBuilder& builder, TimesliceKind kind) {
  builder.Clear();
  builder.ForceDefaults(false);
  std::vector<flatbuffers::Offset<fb::DomFrame>> frames;
  frames.reserve(slice.frames.size());
  for (const DomFrame& f : slice.frames) {
    const auto hits = builder.CreateVector(f.hits);
    const fb::FrameStatus status = to_fb(f.status);
    frames.push_back(fb::CreateDomFrame(builder, f.dom_id, &status, hits));
  }
  const auto frame_vector = builder.CreateVector(frames);
  // Absent (not empty) when there are none, so slices without monitoring keep their former bytes.
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::Monitoring>>> monitoring;
  if (!slice.monitoring.empty()) {
    std::vector<flatbuffers::Offset<fb::Monitoring>> packets;
    packets.reserve(slice.monitoring.size());
    for (const RawMonitoring& m : slice.monitoring) {
      packets.push_back(fb::CreateMonitoring(builder, m.dom_id, builder.CreateVector(m.datagram)));
    }
    monitoring = builder.CreateVector(packets);
  }
  const fb::SliceHeader header = to_fb(slice.header);
  const auto root = fb::CreateTimeslice(builder, &header, static_cast<fb::TimesliceKind>(kind), frame_vector,
                                        slice.stamps.received_unix_ns, slice.stamps.completed_unix_ns, monitoring);
  fb::FinishTimesliceBuffer(builder, root);
}

std::vector<std::uint8_t> encode_timeslice_fb(const Timeslice& slice, TimesliceKind kind) {
  flatbuffers::FlatBufferBuilder builder(1024 + slice.hit_count() * kHitBytes + slice.frames.size() * 64 +
                                         slice.monitoring.size() * (kMonitoringPacketBytes + 32));
  encode_timeslice_fb(slice, builder, kind);
  return {builder.GetBufferPointer(), builder.GetBufferPointer() + builder.GetSize()};
}

FbDecoded<DecodedTimeslice> decode_timeslice_fb(std::span<const std::uint8_t> bytes, const FbLimits& limits) {
  return decode_with<DecodedTimeslice>(
      FbKind::Timeslice, bytes, limits, [](const std::uint8_t* buf, DecodedTimeslice& out) {
        const fb::Timeslice* t = fb::GetTimeslice(buf);
        if (t->header() == nullptr) return FbError::MissingHeader;
        const auto kind = static_cast<std::uint8_t>(t->kind());
        if (kind > static_cast<std::uint8_t>(TimesliceKind::SN)) return FbError::BadEnum;
        out.kind = static_cast<TimesliceKind>(kind);
        Timeslice& ts = out.timeslice;
        ts.header = from_fb(*t->header());
        ts.stamps.received_unix_ns = t->received_unix_ns();
        ts.stamps.completed_unix_ns = t->completed_unix_ns();
        if (const auto* frames = t->frames()) {
          ts.frames.reserve(frames->size());
          for (const fb::DomFrame* f : *frames) {
            DomFrame frame;
            frame.dom_id = f->dom_id();
            if (f->status() != nullptr) frame.status = from_fb(*f->status());
            if (const auto* hits = f->hits()) {
              if (hits->size() % kHitBytes != 0) return FbError::BadHitBytes;
              frame.hits.assign(hits->begin(), hits->end());
            }
            ts.frames.push_back(std::move(frame));
          }
        }
        if (const auto* packets = t->monitoring()) {
          ts.monitoring.reserve(packets->size());
          for (const fb::Monitoring* m : *packets) {
            RawMonitoring packet{m->dom_id(), {}};
            if (const auto* datagram = m->datagram()) packet.datagram.assign(datagram->begin(), datagram->end());
            ts.monitoring.push_back(std::move(packet));
          }
        }
        return FbError::None;
      });
}

// ---- SummarySlice ----

void encode_summary_slice_fb(const SummarySlice& summary, flatbuffers::FlatBufferBuilder& builder) {
  builder.Clear();
  builder.ForceDefaults(false);
  // CreateVectorOfStructs aligns to the struct's alignment (the "uninitialized" variant of
  // FlatBuffers 2.0 aligns to the struct's size and pads oddly).
  std::vector<fb::SummaryFrame> frames_in;
  frames_in.reserve(summary.frames.size());
  for (const SummaryFrame& f : summary.frames) {
    frames_in.emplace_back(f.dom_id, to_fb(f.status),
                           flatbuffers::span<const std::uint8_t, kPmtsPerDom>(f.rate_codes.data(), kPmtsPerDom));
  }
  const auto frames = builder.CreateVectorOfStructs(frames_in);
  const fb::SliceHeader header = to_fb(summary.header);
  fb::FinishSummarySliceBuffer(builder, fb::CreateSummarySlice(builder, &header, frames));
}

std::vector<std::uint8_t> encode_summary_slice_fb(const SummarySlice& summary) {
  flatbuffers::FlatBufferBuilder builder(128 + summary.frames.size() * sizeof(fb::SummaryFrame));
  encode_summary_slice_fb(summary, builder);
  return {builder.GetBufferPointer(), builder.GetBufferPointer() + builder.GetSize()};
}

FbDecoded<SummarySlice> decode_summary_slice_fb(std::span<const std::uint8_t> bytes, const FbLimits& limits) {
  return decode_with<SummarySlice>(FbKind::SummarySlice, bytes, limits, [](const std::uint8_t* buf, SummarySlice& out) {
    const fb::SummarySlice* s = fb::GetSummarySlice(buf);
    if (s->header() == nullptr) return FbError::MissingHeader;
    out.header = from_fb(*s->header());
    if (const auto* frames = s->frames()) {
      out.frames.reserve(frames->size());
      for (const fb::SummaryFrame* f : *frames) {
        SummaryFrame frame;
        frame.dom_id = f->dom_id();
        frame.status = from_fb(f->status());
        for (unsigned i = 0; i < kPmtsPerDom; ++i) frame.rate_codes[i] = f->rates()->Get(i);
        out.frames.push_back(frame);
      }
    }
    return FbError::None;
  });
}

// ---- RunRecord ----

void encode_run_record_fb(const RunRecord& record, flatbuffers::FlatBufferBuilder& builder) {
  builder.Clear();
  builder.ForceDefaults(false);
  std::vector<flatbuffers::Offset<fb::Counter>> counters;
  counters.reserve(record.counters.size());
  for (const auto& [name, value] : record.counters) {
    counters.push_back(fb::CreateCounter(builder, builder.CreateString(name), value));
  }
  const auto counter_vector = builder.CreateVectorOfSortedTables(&counters);
  const auto setup = builder.CreateString(record.run_setup);
  const auto setup_hash = builder.CreateString(record.run_setup_hash);
  const auto detector_file = builder.CreateString(record.detector_file);
  const auto software_version = builder.CreateString(record.software_version);
  const auto config_hash = builder.CreateString(record.config_hash);
  const auto detector_file_hash = builder.CreateString(record.detector_file_hash);
  const auto host = builder.CreateString(record.host);
  const auto run_type = builder.CreateString(record.run_type);
  const auto start_reason = builder.CreateString(record.start_reason);
  const auto stop_reason = builder.CreateString(record.stop_reason);
  // Absent (not empty) when there are none, so records without alerts keep their former bytes.
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>> alerts;
  if (!record.supernova_alerts.empty()) alerts = builder.CreateVectorOfStrings(record.supernova_alerts);
  const auto root = fb::CreateRunRecord(builder, record.run, record.detector_id,
                                        static_cast<fb::RunState>(record.state), record.start_unix_ns,
                                        record.stop_unix_ns, record.first_frame, record.last_frame, setup,
                                        setup_hash, detector_file, counter_vector, software_version, config_hash,
                                        detector_file_hash, host, run_type, start_reason, stop_reason, alerts);
  fb::FinishRunRecordBuffer(builder, root);
}

std::vector<std::uint8_t> encode_run_record_fb(const RunRecord& record) {
  flatbuffers::FlatBufferBuilder builder(1024 + record.run_setup.size() + record.detector_file.size());
  encode_run_record_fb(record, builder);
  return {builder.GetBufferPointer(), builder.GetBufferPointer() + builder.GetSize()};
}

FbDecoded<RunRecord> decode_run_record_fb(std::span<const std::uint8_t> bytes, const FbLimits& limits) {
  return decode_with<RunRecord>(FbKind::RunRecord, bytes, limits, [](const std::uint8_t* buf, RunRecord& out) {
    const fb::RunRecord* r = fb::GetRunRecord(buf);
    const auto state = static_cast<std::uint8_t>(r->state());
    if (state > static_cast<std::uint8_t>(RunOutcome::Aborted)) return FbError::BadEnum;
    out.run = r->run();
    out.detector_id = r->detector_id();
    out.state = static_cast<RunOutcome>(state);
    out.start_unix_ns = r->start_unix_ns();
    out.stop_unix_ns = r->stop_unix_ns();
    out.first_frame = r->first_frame();
    out.last_frame = r->last_frame();
    if (r->run_setup() != nullptr) out.run_setup = r->run_setup()->str();
    if (r->run_setup_hash() != nullptr) out.run_setup_hash = r->run_setup_hash()->str();
    if (r->detector_file() != nullptr) out.detector_file = r->detector_file()->str();
    const auto text = [](const flatbuffers::String* s) { return s != nullptr ? s->str() : std::string(); };
    out.software_version = text(r->software_version());
    out.config_hash = text(r->config_hash());
    out.detector_file_hash = text(r->detector_file_hash());
    out.host = text(r->host());
    out.run_type = text(r->run_type());
    out.start_reason = text(r->start_reason());
    out.stop_reason = text(r->stop_reason());
    if (const auto* counters = r->counters()) {
      for (const fb::Counter* c : *counters) {
        if (c->name() != nullptr) out.counters[c->name()->str()] = c->value();
      }
    }
    if (const auto* alerts = r->supernova_alerts()) {
      for (const flatbuffers::String* a : *alerts) out.supernova_alerts.push_back(text(a));
    }
    return FbError::None;
  });
}

}  // namespace shoredaq::dataflow
