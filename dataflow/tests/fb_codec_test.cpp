#include "shoredaq/formats/fb_codec.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <random>

#include "shoredaq/fb/event_generated.h"
#include "shoredaq/fb/run_record_generated.h"
#include "shoredaq/fb/timeslice_generated.h"

namespace sd = shoredaq::dataflow;

namespace {

sd::SliceHeader make_header(std::uint32_t frame) {
  return sd::SliceHeader{49, 1234, frame, 1'700'000'000u | 0x8000'0000u, 3'125'000};
}

sd::Event make_event(std::uint32_t frame, std::uint32_t number, std::size_t snapshot_hits) {
  sd::Event e;
  e.header = make_header(frame);
  e.event_number = number;
  e.trigger_counter = 1000 + number;
  e.trigger_mask = sd::trigger_bit(sd::kTriggerBit3DMuon) | sd::trigger_bit(sd::kTriggerBitFactoryLimit);
  e.overlays = 2;
  for (std::size_t i = 0; i < snapshot_hits; ++i) {
    sd::SnapshotHit s{808'000'000u + static_cast<std::uint32_t>(i % 18),
                      sd::Hit{static_cast<std::uint8_t>(i % 31), 12'345'678u + static_cast<std::uint32_t>(i * 7),
                              static_cast<std::uint8_t>(20 + i % 50)}};
    e.snapshot.push_back(s);
    if (i % 3 == 0) e.triggered.push_back(sd::TriggeredHit{s.dom_id, s.hit, e.trigger_mask});
  }
  e.stamps.received_unix_ns = 111;
  e.stamps.completed_unix_ns = 222;
  e.filtered_unix_ns = 333;
  return e;
}

sd::Timeslice make_timeslice() {
  sd::Timeslice t;
  t.header = make_header(77);
  t.stamps = {5, 6};
  for (std::uint32_t d = 0; d < 5; ++d) {
    sd::DomFrame f;
    f.dom_id = 800 + d;
    f.status = sd::FrameStatus{sd::FrameStatus::make_daq(3, 2), sd::kStatus1WhiteRabbitOk | 4u,
                               sd::kStatus2Trailer, 0, d};
    for (std::uint32_t h = 0; h < d * 4; ++h) {
      f.hits.resize(f.hits.size() + sd::kHitBytes);
      sd::encode_hit(sd::Hit{static_cast<std::uint8_t>(h % 31), h * 1000, 26}, f.hits.data() + f.hits.size() - sd::kHitBytes);
    }
    t.frames.push_back(std::move(f));
  }
  return t;
}

// TMCH packets are carried as opaque bytes: any content (and length) must come back identical.
sd::Timeslice make_timeslice_with_monitoring() {
  sd::Timeslice t = make_timeslice();
  for (std::uint32_t p = 0; p < 4; ++p) {
    sd::RawMonitoring m{802 + p % 2, std::vector<std::uint8_t>(sd::kMonitoringPacketBytes)};
    for (std::size_t i = 0; i < m.datagram.size(); ++i) m.datagram[i] = static_cast<std::uint8_t>(i * 13 + p);
    t.monitoring.push_back(std::move(m));
  }
  t.monitoring.push_back({809, {}});  // an empty datagram stays empty
  return t;
}

sd::SummarySlice make_summary() {
  sd::SummarySlice s;
  s.header = make_header(9);
  for (std::uint32_t d = 0; d < 18; ++d) {
    sd::SummaryFrame f;
    f.dom_id = 900 + d;
    f.status = sd::FrameStatus{1, 2, 3, 4, 5 + d};
    for (unsigned c = 0; c < sd::kPmtsPerDom; ++c) f.rate_codes[c] = static_cast<std::uint8_t>(d * 7 + c);
    s.frames.push_back(f);
  }
  return s;
}

sd::RunRecord make_run_record() {
  sd::RunRecord r;
  r.run = 1234;
  r.detector_id = 49;
  r.state = sd::RunOutcome::Stopped;
  r.start_unix_ns = 1'700'000'000'000'000'000ull;
  r.stop_unix_ns = 1'700'000'100'000'000'000ull;
  r.first_frame = 1;
  r.last_frame = 1000;
  r.run_setup = "[trigger3dmuon]\nenabled = true\n";
  r.run_setup_hash = "0123456789abcdef";
  r.detector_file = "/etc/shoredaq/D_ORCA006.detx";
  r.counters = {{"events", 42}, {"slices", 1000}, {"dropped.queue_full", 0}, {"hits", 1ull << 40}};
  return r;
}

}  // namespace

TEST(FbCodec, EventRoundTripKeepsEveryField) {
  const sd::Event e = make_event(12, 3, 40);
  const auto bytes = sd::encode_event_fb(e, 999);
  EXPECT_EQ(sd::identify_fb(bytes), sd::FbKind::Event);
  const auto decoded = sd::decode_event_fb(bytes);
  ASSERT_TRUE(decoded) << sd::to_string(decoded.error);
  EXPECT_EQ(decoded.value.event, e);
  EXPECT_EQ(decoded.value.event.event_number, 3u);
  EXPECT_EQ(decoded.value.event.stamps.received_unix_ns, 111u);
  EXPECT_EQ(decoded.value.event.stamps.completed_unix_ns, 222u);
  EXPECT_EQ(decoded.value.event.filtered_unix_ns, 333u);
  EXPECT_EQ(decoded.value.committed_unix_ns, 999u);
}

TEST(FbCodec, EmptyEventRoundTrips) {
  sd::Event e;
  e.header = make_header(0);
  const auto decoded = sd::decode_event_fb(sd::encode_event_fb(e));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded.value.event, e);
  EXPECT_TRUE(decoded.value.event.snapshot.empty());
}

TEST(FbCodec, EventHitsUseTheOnlineLayouts) {
  sd::Event e;
  e.header = make_header(1);
  e.snapshot.push_back({0x01020304u, sd::Hit{7, 0x0A0B0C0Du, 33}});
  e.triggered.push_back({0x01020304u, sd::Hit{7, 0x0A0B0C0Du, 33}, 0x1122334455667788ull});
  const auto bytes = sd::encode_event_fb(e);
  const auto* fe = shoredaq::fb::GetEvent(bytes.data());
  ASSERT_EQ(fe->triggered_hits()->size(), 18u);
  ASSERT_EQ(fe->snapshot_hits()->size(), 10u);
  const std::vector<std::uint8_t> snapshot(fe->snapshot_hits()->begin(), fe->snapshot_hits()->end());
  EXPECT_EQ(snapshot, (std::vector<std::uint8_t>{0x04, 0x03, 0x02, 0x01, 7, 0x0A, 0x0B, 0x0C, 0x0D, 33}));
  const std::vector<std::uint8_t> triggered(fe->triggered_hits()->begin(), fe->triggered_hits()->end());
  EXPECT_EQ(triggered, (std::vector<std::uint8_t>{0x04, 0x03, 0x02, 0x01, 7, 0x0A, 0x0B, 0x0C, 0x0D, 33, 0x88, 0x77,
                                                  0x66, 0x55, 0x44, 0x33, 0x22, 0x11}));
}

TEST(FbCodec, CommittedStampIsSetInPlace) {
  flatbuffers::FlatBufferBuilder builder;
  sd::encode_event_fb(make_event(1, 0, 5), builder);  // committed 0: still present (defaults forced)
  std::span<std::uint8_t> buffer(builder.GetBufferPointer(), builder.GetSize());
  ASSERT_TRUE(sd::stamp_event_committed(buffer, 123456789));
  const auto decoded = sd::decode_event_fb(buffer);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded.value.committed_unix_ns, 123456789u);
  std::vector<std::uint8_t> garbage(64, 0xAB);
  EXPECT_FALSE(sd::stamp_event_committed(garbage, 1));
}

TEST(FbCodec, DecodesFromAnUnalignedAddress) {
  const sd::Event e = make_event(4, 1, 7);
  const auto bytes = sd::encode_event_fb(e);
  std::vector<std::uint8_t> shifted(bytes.size() + 3);
  std::copy(bytes.begin(), bytes.end(), shifted.begin() + 3);
  const auto decoded = sd::decode_event_fb(std::span<const std::uint8_t>(shifted).subspan(3));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded.value.event, e);
}

TEST(FbCodec, TimesliceRoundTrip) {
  const sd::Timeslice t = make_timeslice();
  const auto bytes = sd::encode_timeslice_fb(t, sd::TimesliceKind::L1);
  EXPECT_EQ(sd::identify_fb(bytes), sd::FbKind::Timeslice);
  const auto decoded = sd::decode_timeslice_fb(bytes);
  ASSERT_TRUE(decoded) << sd::to_string(decoded.error);
  EXPECT_EQ(decoded.value.kind, sd::TimesliceKind::L1);
  const sd::Timeslice& d = decoded.value.timeslice;
  EXPECT_EQ(d.header, t.header);
  EXPECT_EQ(d.stamps.received_unix_ns, 5u);
  EXPECT_EQ(d.stamps.completed_unix_ns, 6u);
  ASSERT_EQ(d.frames.size(), t.frames.size());
  for (std::size_t i = 0; i < d.frames.size(); ++i) {
    EXPECT_EQ(d.frames[i].dom_id, t.frames[i].dom_id);
    EXPECT_EQ(d.frames[i].status, t.frames[i].status);
    EXPECT_EQ(d.frames[i].hits, t.frames[i].hits);
  }
  EXPECT_EQ(d.hit_count(), t.hit_count());
}

TEST(FbCodec, TimesliceMonitoringRoundTripsInArrivalOrder) {
  const sd::Timeslice t = make_timeslice_with_monitoring();
  const auto decoded = sd::decode_timeslice_fb(sd::encode_timeslice_fb(t));
  ASSERT_TRUE(decoded) << sd::to_string(decoded.error);
  const auto& got = decoded.value.timeslice.monitoring;
  ASSERT_EQ(got.size(), t.monitoring.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].dom_id, t.monitoring[i].dom_id) << i;
    EXPECT_EQ(got[i].datagram, t.monitoring[i].datagram) << i;
  }
  EXPECT_EQ(decoded.value.timeslice.hit_count(), t.hit_count());
}

TEST(FbCodec, TimesliceWithoutMonitoringKeepsItsFormerLayout) {
  // A slice without packets leaves the field out, so its bytes are what the schema before the
  // field gave; such a buffer (built here without the field) decodes with no packets.
  const auto bytes = sd::encode_timeslice_fb(make_timeslice());
  EXPECT_EQ(shoredaq::fb::GetTimeslice(bytes.data())->monitoring(), nullptr);

  flatbuffers::FlatBufferBuilder old;
  const shoredaq::fb::SliceHeader header(1, 2, 3, 4, 5);
  shoredaq::fb::FinishTimesliceBuffer(
      old, shoredaq::fb::CreateTimesliceDirect(old, &header, shoredaq::fb::TimesliceKind::L2, nullptr, 10, 20));
  const auto decoded = sd::decode_timeslice_fb({old.GetBufferPointer(), old.GetSize()});
  ASSERT_TRUE(decoded) << sd::to_string(decoded.error);
  EXPECT_EQ(decoded.value.kind, sd::TimesliceKind::L2);
  EXPECT_EQ(decoded.value.timeslice.stamps.completed_unix_ns, 20u);
  EXPECT_TRUE(decoded.value.timeslice.monitoring.empty());
}

TEST(FbCodec, SummarySliceRoundTrip) {
  const sd::SummarySlice s = make_summary();
  const auto bytes = sd::encode_summary_slice_fb(s);
  EXPECT_EQ(sd::identify_fb(bytes), sd::FbKind::SummarySlice);
  const auto decoded = sd::decode_summary_slice_fb(bytes);
  ASSERT_TRUE(decoded) << sd::to_string(decoded.error);
  EXPECT_EQ(decoded.value, s);
}

TEST(FbCodec, RunRecordRoundTrip) {
  const sd::RunRecord r = make_run_record();
  const auto bytes = sd::encode_run_record_fb(r);
  EXPECT_EQ(sd::identify_fb(bytes), sd::FbKind::RunRecord);
  const auto decoded = sd::decode_run_record_fb(bytes);
  ASSERT_TRUE(decoded) << sd::to_string(decoded.error);
  EXPECT_EQ(decoded.value, r);
  EXPECT_EQ(decoded.value.counter("hits"), 1ull << 40);
  EXPECT_EQ(decoded.value.counter("absent"), 0u);
  // The counters are a sorted (key) vector, so a reader can binary-search them.
  const auto* counter = shoredaq::fb::GetRunRecord(bytes.data())->counters()->LookupByKey("slices");
  ASSERT_NE(counter, nullptr);
  EXPECT_EQ(counter->value(), 1000u);
}

TEST(FbCodec, WrongKindIsRejected) {
  const auto event = sd::encode_event_fb(make_event(1, 0, 3));
  EXPECT_EQ(sd::decode_summary_slice_fb(event).error, sd::FbError::WrongIdentifier);
  EXPECT_EQ(sd::decode_run_record_fb(event).error, sd::FbError::WrongIdentifier);
  EXPECT_EQ(sd::decode_timeslice_fb(event).error, sd::FbError::WrongIdentifier);
  EXPECT_EQ(sd::verify_fb(sd::FbKind::Event, event), sd::FbError::None);
  EXPECT_EQ(sd::verify_fb(sd::FbKind::Unknown, event), sd::FbError::WrongIdentifier);
  EXPECT_EQ(sd::decode_event_fb({}).error, sd::FbError::WrongIdentifier);
}

TEST(FbCodec, SizeLimitIsEnforced) {
  const auto event = sd::encode_event_fb(make_event(1, 0, 100));
  sd::FbLimits limits;
  limits.max_buffer_bytes = event.size() - 1;
  EXPECT_EQ(sd::decode_event_fb(event, limits).error, sd::FbError::TooLarge);
  limits.max_buffer_bytes = event.size();
  EXPECT_TRUE(sd::decode_event_fb(event, limits));
}

TEST(FbCodec, TableLimitIsEnforced) {
  const auto bytes = sd::encode_timeslice_fb(make_timeslice());  // 1 root + 5 frame tables
  sd::FbLimits limits;
  limits.max_tables = 3;
  EXPECT_EQ(sd::decode_timeslice_fb(bytes, limits).error, sd::FbError::VerifyFailed);
  limits.max_tables = 6;
  EXPECT_TRUE(sd::decode_timeslice_fb(bytes, limits));
  limits.max_depth = 1;  // root table -> frames vector -> DomFrame tables is deeper than 1
  EXPECT_EQ(sd::decode_timeslice_fb(bytes, limits).error, sd::FbError::VerifyFailed);
}

TEST(FbCodec, PartialHitBytesAreRejected) {
  flatbuffers::FlatBufferBuilder b;
  const std::vector<std::uint8_t> seventeen(17, 1);
  const shoredaq::fb::SliceHeader header(1, 2, 3, 4, 5);
  shoredaq::fb::FinishEventBuffer(b, shoredaq::fb::CreateEventDirect(b, &header, 0, 0, 0, 0, &seventeen));
  EXPECT_EQ(sd::decode_event_fb({b.GetBufferPointer(), b.GetSize()}).error, sd::FbError::BadHitBytes);

  flatbuffers::FlatBufferBuilder t;
  const std::vector<std::uint8_t> five(5, 1);
  std::vector<flatbuffers::Offset<shoredaq::fb::DomFrame>> frames{shoredaq::fb::CreateDomFrameDirect(t, 1, nullptr, &five)};
  shoredaq::fb::FinishTimesliceBuffer(t, shoredaq::fb::CreateTimesliceDirect(t, &header, shoredaq::fb::TimesliceKind::L0, &frames));
  EXPECT_EQ(sd::decode_timeslice_fb({t.GetBufferPointer(), t.GetSize()}).error, sd::FbError::BadHitBytes);
}

TEST(FbCodec, MissingHeaderAndBadEnumAreRejected) {
  flatbuffers::FlatBufferBuilder b;
  shoredaq::fb::FinishEventBuffer(b, shoredaq::fb::CreateEvent(b));
  EXPECT_EQ(sd::decode_event_fb({b.GetBufferPointer(), b.GetSize()}).error, sd::FbError::MissingHeader);

  flatbuffers::FlatBufferBuilder r;
  r.ForceDefaults(true);
  shoredaq::fb::FinishRunRecordBuffer(r, shoredaq::fb::CreateRunRecord(r, 1, 2, static_cast<shoredaq::fb::RunState>(9)));
  EXPECT_EQ(sd::decode_run_record_fb({r.GetBufferPointer(), r.GetSize()}).error, sd::FbError::BadEnum);
}

// Decode then re-encode, so decoded values of any kind can be compared as bytes.
std::optional<std::vector<std::uint8_t>> reencode(sd::FbKind kind, std::span<const std::uint8_t> bytes) {
  switch (kind) {
    case sd::FbKind::Event:
      if (auto d = sd::decode_event_fb(bytes)) return sd::encode_event_fb(d.value.event, d.value.committed_unix_ns);
      break;
    case sd::FbKind::Timeslice:
      if (auto d = sd::decode_timeslice_fb(bytes)) return sd::encode_timeslice_fb(d.value.timeslice, d.value.kind);
      break;
    case sd::FbKind::SummarySlice:
      if (auto d = sd::decode_summary_slice_fb(bytes)) return sd::encode_summary_slice_fb(d.value);
      break;
    case sd::FbKind::RunRecord:
      if (auto d = sd::decode_run_record_fb(bytes)) return sd::encode_run_record_fb(d.value);
      break;
    case sd::FbKind::Unknown: break;
  }
  return std::nullopt;
}

// Every truncation and many random corruptions: an error or a decoded value, never a crash (the
// sanitizer build turns any out-of-bounds read into a failure).
TEST(FbCodec, DamagedBuffersNeverCrash) {
  const std::vector<std::vector<std::uint8_t>> buffers{
      sd::encode_event_fb(make_event(1, 0, 30)), sd::encode_timeslice_fb(make_timeslice_with_monitoring()),
      sd::encode_summary_slice_fb(make_summary()), sd::encode_run_record_fb(make_run_record())};
  std::mt19937 rng(7);
  const auto kinds = {sd::FbKind::Event, sd::FbKind::Timeslice, sd::FbKind::SummarySlice, sd::FbKind::RunRecord};
  for (const auto& original : buffers) {
    const sd::FbKind kind = sd::identify_fb(original);
    const auto expected = reencode(kind, original);
    ASSERT_TRUE(expected.has_value());
    std::size_t rejected = 0;
    for (std::size_t len = 0; len < original.size(); ++len) {
      const auto got = reencode(kind, std::span<const std::uint8_t>(original.data(), len));
      // Only trailing alignment padding may be cut and still decode, and then to the same value.
      if (got) {
        EXPECT_EQ(*got, *expected) << "length " << len;
        EXPECT_GE(len + 8, original.size());
      } else {
        ++rejected;
      }
    }
    EXPECT_GE(rejected + 8, original.size());
    for (int round = 0; round < 2000; ++round) {
      auto damaged = original;
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int i = 0; i < flips; ++i) damaged[rng() % damaged.size()] ^= static_cast<std::uint8_t>(1 + rng() % 255);
      for (auto k : kinds) {
        (void)reencode(k, damaged);
        (void)sd::verify_fb(k, damaged);
      }
    }
  }
}
