#include "shoredaq/firmware/filtered_slice_fb.hpp"

#include <algorithm>
#include <cstring>

#include "shoredaq/fb/filtered_slice_generated.h"

namespace shoredaq::firmware {

namespace {

using dataflow::FbError;
using ByteVector = flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>>;

// Every field of FilterCounters is in the schema, by name: a new counter must be added there too.
static_assert(sizeof(filters::FilterCounters) == 26 * sizeof(std::uint64_t),
              "FilterCounters changed: update filtered_slice.fbs and filtered_slice_fb.cpp");
static_assert(static_cast<int>(filters::PrescaledSlice::Kind::SN) == static_cast<int>(fb::PrescaledKind::SN));
static_assert(static_cast<int>(filters::SupernovaDomState::Burst) == static_cast<int>(fb::SupernovaDomState::Burst));

// Our buffers hold scalars of up to 8 bytes, read in place: nested buffers are placed 8-aligned so
// their decoders need not copy them, and a whole buffer at an odd address is copied first.
constexpr std::size_t kMaxAlign = 8;

fb::SliceHeader to_fb(const dataflow::SliceHeader& h) noexcept {
  return fb::SliceHeader(h.detector_id, h.run, h.frame_index, h.utc_seconds, h.ticks_16ns);
}
dataflow::SliceHeader from_fb(const fb::SliceHeader& h) noexcept {
  return dataflow::SliceHeader{h.detector_id(), h.run(), h.frame_index(), h.utc_seconds(), h.ticks_16ns()};
}

ByteVector nest(flatbuffers::FlatBufferBuilder& builder, const flatbuffers::FlatBufferBuilder& nested) {
  builder.ForceVectorAlignment(nested.GetSize(), sizeof(std::uint8_t), kMaxAlign);
  return builder.CreateVector(nested.GetBufferPointer(), nested.GetSize());
}

// An absent nested buffer is empty: its decoder then rejects it (WrongIdentifier).
std::span<const std::uint8_t> bytes_of(const flatbuffers::Vector<std::uint8_t>* v) noexcept {
  if (v == nullptr) return {};
  return {v->data(), v->size()};
}

dataflow::TimesliceKind timeslice_kind(filters::PrescaledSlice::Kind kind) noexcept {
  switch (kind) {
    case filters::PrescaledSlice::Kind::L0: return dataflow::TimesliceKind::L0;
    case filters::PrescaledSlice::Kind::L1: return dataflow::TimesliceKind::L1;
    case filters::PrescaledSlice::Kind::L2: return dataflow::TimesliceKind::L2;
    case filters::PrescaledSlice::Kind::SN: break;
  }
  return dataflow::TimesliceKind::SN;
}

flatbuffers::Offset<fb::FilterCounters> encode_counters(const filters::FilterCounters& c,
                                                        flatbuffers::FlatBufferBuilder& builder) {
  fb::FilterCountersBuilder b(builder);
  b.add_slices(c.slices);
  b.add_frames(c.frames);
  b.add_frames_good(c.frames_good);
  b.add_frames_missing(c.frames_missing);
  b.add_frames_defective(c.frames_defective);
  b.add_frames_epmt(c.frames_epmt);
  b.add_frames_etdc(c.frames_etdc);
  b.add_frames_time(c.frames_time);
  b.add_frames_eudp(c.frames_eudp);
  b.add_frames_size(c.frames_size);
  b.add_frames_unknown_dom(c.frames_unknown_dom);
  b.add_hits_in(c.hits_in);
  b.add_hits_defective(c.hits_defective);
  b.add_hits_vetoed(c.hits_vetoed);
  b.add_pmts_vetoed(c.pmts_vetoed);
  b.add_l0_hits(c.l0_hits);
  b.add_l1_hits(c.l1_hits);
  b.add_l2_hits(c.l2_hits);
  b.add_triggers_3d_shower(c.triggers_3d_shower);
  b.add_triggers_mx_shower(c.triggers_mx_shower);
  b.add_triggers_3d_muon(c.triggers_3d_muon);
  b.add_triggers_factory_limit(c.triggers_factory_limit);
  b.add_events(c.events);
  b.add_triggered_hits(c.triggered_hits);
  b.add_snapshot_hits(c.snapshot_hits);
  b.add_event_bytes(c.event_bytes);
  return b.Finish();
}

filters::FilterCounters decode_counters(const fb::FilterCounters& f) noexcept {
  filters::FilterCounters c;
  c.slices = f.slices();
  c.frames = f.frames();
  c.frames_good = f.frames_good();
  c.frames_missing = f.frames_missing();
  c.frames_defective = f.frames_defective();
  c.frames_epmt = f.frames_epmt();
  c.frames_etdc = f.frames_etdc();
  c.frames_time = f.frames_time();
  c.frames_eudp = f.frames_eudp();
  c.frames_size = f.frames_size();
  c.frames_unknown_dom = f.frames_unknown_dom();
  c.hits_in = f.hits_in();
  c.hits_defective = f.hits_defective();
  c.hits_vetoed = f.hits_vetoed();
  c.pmts_vetoed = f.pmts_vetoed();
  c.l0_hits = f.l0_hits();
  c.l1_hits = f.l1_hits();
  c.l2_hits = f.l2_hits();
  c.triggers_3d_shower = f.triggers_3d_shower();
  c.triggers_mx_shower = f.triggers_mx_shower();
  c.triggers_3d_muon = f.triggers_3d_muon();
  c.triggers_factory_limit = f.triggers_factory_limit();
  c.events = f.events();
  c.triggered_hits = f.triggered_hits();
  c.snapshot_hits = f.snapshot_hits();
  c.event_bytes = f.event_bytes();
  return c;
}

flatbuffers::Offset<fb::SupernovaFigure> encode_supernova(const filters::SupernovaSliceFigure& s,
                                                          flatbuffers::FlatBufferBuilder& builder) {
  std::vector<fb::SupernovaDom> doms;
  doms.reserve(s.doms.size());
  for (const filters::SupernovaDomFigure& d : s.doms) {
    doms.emplace_back(d.dom_id, static_cast<fb::SupernovaDomState>(d.state), d.hits, d.coincidences, d.vetoed,
                      d.correlated);
  }
  const auto dom_vector = builder.CreateVectorOfStructs(doms);
  const auto counts = builder.CreateVector(s.multiplicity_counts.data(), s.multiplicity_counts.size());
  const fb::SliceHeader header = to_fb(s.header);
  return fb::CreateSupernovaFigure(builder, &header, dom_vector, counts);
}

FbError decode_supernova(const fb::SupernovaFigure& f, filters::SupernovaSliceFigure& out) {
  if (f.header() == nullptr) return FbError::MissingHeader;
  const auto* counts = f.multiplicity_counts();
  // A spectrum of another length is not a figure this node makes: a bad buffer.
  if (counts == nullptr || counts->size() != out.multiplicity_counts.size()) return FbError::VerifyFailed;
  out.header = from_fb(*f.header());
  std::copy(counts->begin(), counts->end(), out.multiplicity_counts.begin());
  if (const auto* doms = f.doms()) {
    out.doms.reserve(doms->size());
    for (const fb::SupernovaDom* d : *doms) {
      const auto state = static_cast<std::uint8_t>(d->state());
      if (state > static_cast<std::uint8_t>(filters::SupernovaDomState::Burst)) return FbError::BadEnum;
      out.doms.push_back({d->dom_id(), static_cast<filters::SupernovaDomState>(state), d->hits(),
                          d->coincidences(), d->vetoed(), d->correlated()});
    }
  }
  return FbError::None;
}

// The FlatBuffers verifier over the whole (aligned) buffer. Nested buffers are skipped here: each
// is verified once, by its own decoder, with the same limits.
FbError verify(std::span<const std::uint8_t> bytes, const dataflow::FbLimits& limits) {
  constexpr std::size_t kHeaderBytes = sizeof(flatbuffers::uoffset_t) + flatbuffers::kFileIdentifierLength;
  if (bytes.size() < kHeaderBytes || !fb::FilteredSliceBufferHasIdentifier(bytes.data())) {
    return FbError::WrongIdentifier;
  }
  flatbuffers::Verifier::Options options;
  options.max_depth = limits.max_depth;
  options.max_tables = limits.max_tables;
  options.check_alignment = true;
  options.check_nested_flatbuffers = false;
  flatbuffers::Verifier verifier(bytes.data(), bytes.size(), options);
  return fb::VerifyFilteredSliceBuffer(verifier) ? FbError::None : FbError::VerifyFailed;
}

FbError decode(const fb::FilteredSlice& f, const dataflow::FbLimits& limits, FilteredSlice& out) {
  const fb::SliceInfo* info = f.info();
  if (info == nullptr || info->header() == nullptr) return FbError::MissingHeader;
  out.info.header = from_fb(*info->header());
  out.info.stamps = {info->received_unix_ns(), info->completed_unix_ns()};
  out.info.sequence = info->sequence();
  out.info.hits = info->hits();
  out.info.frames = info->frames();
  out.info.frames_complete = info->frames_complete();
  out.processed_unix_ns = f.processed_unix_ns();

  filters::FilterResult& r = out.result;
  if (const auto* events = f.events()) {
    r.events.reserve(events->size());
    for (const fb::EventBuffer* e : *events) {
      auto event = dataflow::decode_event_fb(bytes_of(e->bytes()), limits);
      if (!event) return event.error;
      r.events.push_back(std::move(event.value.event));
    }
  }
  auto summary = dataflow::decode_summary_slice_fb(bytes_of(f.summary()), limits);
  if (!summary) return summary.error;
  r.summary = std::move(summary.value);
  auto errors = dataflow::decode_timeslice_fb(bytes_of(f.error_frames()), limits);
  if (!errors) return errors.error;
  r.error_frames = std::move(errors.value.timeslice);
  if (const auto* defects = f.error_defects()) r.error_defects.assign(defects->begin(), defects->end());
  if (const auto* prescaled = f.prescaled()) {
    r.prescaled.reserve(prescaled->size());
    for (const fb::PrescaledSlice* p : *prescaled) {
      const auto kind = static_cast<std::uint8_t>(p->kind());
      if (kind > static_cast<std::uint8_t>(filters::PrescaledSlice::Kind::SN)) return FbError::BadEnum;
      auto slice = dataflow::decode_timeslice_fb(bytes_of(p->slice()), limits);
      if (!slice) return slice.error;
      r.prescaled.push_back({static_cast<filters::PrescaledSlice::Kind>(kind), std::move(slice.value.timeslice)});
    }
  }
  if (f.counters() != nullptr) r.counters = decode_counters(*f.counters());
  if (const fb::SupernovaFigure* supernova = f.supernova()) {
    r.supernova.emplace();
    if (const FbError e = decode_supernova(*supernova, *r.supernova); e != FbError::None) return e;
  }
  if (const auto* packets = f.monitoring()) {
    out.monitoring.reserve(packets->size());
    for (const fb::Monitoring* m : *packets) {
      dataflow::RawMonitoring packet{m->dom_id(), {}};
      if (const auto* datagram = m->datagram()) packet.datagram.assign(datagram->begin(), datagram->end());
      out.monitoring.push_back(std::move(packet));
    }
  }
  return FbError::None;
}

}  // namespace

void encode_filtered_slice_fb(const FilteredSlice& slice, flatbuffers::FlatBufferBuilder& builder) {
  builder.Clear();
  builder.ForceDefaults(false);
  const filters::FilterResult& r = slice.result;
  flatbuffers::FlatBufferBuilder nested(1024);

  std::vector<flatbuffers::Offset<fb::EventBuffer>> events;
  events.reserve(r.events.size());
  for (const dataflow::Event& e : r.events) {
    dataflow::encode_event_fb(e, nested);
    events.push_back(fb::CreateEventBuffer(builder, nest(builder, nested)));
  }
  const auto event_vector = builder.CreateVector(events);
  dataflow::encode_summary_slice_fb(r.summary, nested);
  const auto summary = nest(builder, nested);
  dataflow::encode_timeslice_fb(r.error_frames, nested, dataflow::TimesliceKind::Error);
  const auto error_frames = nest(builder, nested);
  const auto defects = builder.CreateVector(r.error_defects);
  std::vector<flatbuffers::Offset<fb::PrescaledSlice>> prescaled;
  prescaled.reserve(r.prescaled.size());
  for (const filters::PrescaledSlice& p : r.prescaled) {
    dataflow::encode_timeslice_fb(p.slice, nested, timeslice_kind(p.kind));
    prescaled.push_back(fb::CreatePrescaledSlice(builder, static_cast<fb::PrescaledKind>(p.kind), nest(builder, nested)));
  }
  const auto prescaled_vector = builder.CreateVector(prescaled);
  const auto counters = encode_counters(r.counters, builder);
  flatbuffers::Offset<fb::SupernovaFigure> supernova;  // absent: std::nullopt
  if (r.supernova) supernova = encode_supernova(*r.supernova, builder);
  std::vector<flatbuffers::Offset<fb::Monitoring>> packets;
  packets.reserve(slice.monitoring.size());
  for (const dataflow::RawMonitoring& m : slice.monitoring) {
    packets.push_back(fb::CreateMonitoring(builder, m.dom_id, builder.CreateVector(m.datagram)));
  }
  const auto monitoring = builder.CreateVector(packets);

  const dataflow::SliceInfo& i = slice.info;
  const fb::SliceHeader header = to_fb(i.header);
  const auto info = fb::CreateSliceInfo(builder, &header, i.stamps.received_unix_ns, i.stamps.completed_unix_ns,
                                        i.sequence, i.hits, i.frames, i.frames_complete);
  fb::FinishFilteredSliceBuffer(
      builder, fb::CreateFilteredSlice(builder, info, slice.processed_unix_ns, event_vector, summary, error_frames,
                                       defects, prescaled_vector, counters, supernova, monitoring));
}

std::vector<std::uint8_t> encode_filtered_slice_fb(const FilteredSlice& slice) {
  flatbuffers::FlatBufferBuilder builder(4096);
  encode_filtered_slice_fb(slice, builder);
  return {builder.GetBufferPointer(), builder.GetBufferPointer() + builder.GetSize()};
}

dataflow::FbDecoded<FilteredSlice> decode_filtered_slice_fb(std::span<const std::uint8_t> bytes,
                                                            const dataflow::FbLimits& limits) {
  dataflow::FbDecoded<FilteredSlice> result;
  if (bytes.size() > limits.max_buffer_bytes || bytes.size() >= FLATBUFFERS_MAX_BUFFER_SIZE) {
    result.error = FbError::TooLarge;
    return result;
  }
  std::vector<std::uint64_t> aligned_copy;
  if (reinterpret_cast<std::uintptr_t>(bytes.data()) % kMaxAlign != 0) {
    aligned_copy.resize((bytes.size() + kMaxAlign - 1) / kMaxAlign);
    std::memcpy(aligned_copy.data(), bytes.data(), bytes.size());
    bytes = {reinterpret_cast<const std::uint8_t*>(aligned_copy.data()), bytes.size()};
  }
  result.error = verify(bytes, limits);
  if (result.error == FbError::None) result.error = decode(*fb::GetFilteredSlice(bytes.data()), limits, result.value);
  if (result.error != FbError::None) result.value = FilteredSlice{};
  return result;
}

}  // namespace shoredaq::firmware
