// The filter process -> writer process buffer: a real FilterResult comes back field for field, and
// damaged buffers give an error, never a crash or a half-decoded slice.
#include "shoredaq/firmware/filtered_slice_fb.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "../../drivers/tests/reference_detector.hpp"
#include "shoredaq/drivers/du_simulator.hpp"
#include "shoredaq/fb/filtered_slice_generated.h"

using namespace shoredaq;
using firmware::FilteredSlice;

namespace {

// Two DUs of detector 133, with bright muons so that the slice has events.
std::shared_ptr<const dataflow::Detector> two_dus() {
  const auto& full = *drivers::test_support::detector133();
  const std::vector<int> all = full.du_ids();
  const std::vector<int> dus(all.begin(), all.begin() + 2);
  std::vector<dataflow::Module> kept;
  for (const auto& m : full.modules()) {
    if (std::find(dus.begin(), dus.end(), m.du) != dus.end()) kept.push_back(m);
  }
  return std::make_shared<const dataflow::Detector>(full.id(), kept, full.format_version());
}

// One simulated slice through a DataFilter with every output on; a defective frame for the error
// stream and the slice's TMCH packets passed by, as the pipeline does.
FilteredSlice real_filtered_slice() {
  const auto detector = two_dus();
  drivers::DuSimConfig c;
  c.detector = detector;
  c.run_number = 12;
  c.seed = 5;
  c.start_unix_ns = 1'700'000'000'000'000'000ull;
  c.muon.rate_hz = 300;
  c.muon.light_yield_pe_m = 300;
  c.monitoring_packets = true;
  drivers::DuSimulator sim(c);
  drivers::SimulatedSlice simulated = sim.next_slice();
  dataflow::Timeslice slice = std::move(simulated.truth);
  slice.frames[1].hits[0] = 40;  // channel 40: a defective frame
  slice.stamps = {1'700'000'000'100'000'000ull, 1'700'000'000'250'000'000ull};

  filters::TriggerParameters p;
  p.prescale_l0 = p.prescale_l1 = p.prescale_l2 = p.prescale_sn = 1;
  p.supernova.enabled = true;
  const filters::DataFilter filter(*detector, p);

  FilteredSlice out;
  out.info = dataflow::SliceInfo::of(slice, 17);
  out.result = filter.process(slice);
  out.processed_unix_ns = 1'700'000'000'300'000'000ull;
  for (std::size_t i = 0; i < out.result.events.size(); ++i) {
    out.result.events[i].stamps = slice.stamps;
    out.result.events[i].filtered_unix_ns = out.processed_unix_ns + i;
  }
  for (auto& d : simulated.datagrams) {
    if (dataflow::parse_monitoring_packet(d.bytes)) out.monitoring.push_back({d.dom_id, std::move(d.bytes)});
  }
  return out;
}

// A few of everything, hand-made: small enough to damage at every byte.
FilteredSlice small_filtered_slice() {
  FilteredSlice s;
  const dataflow::SliceHeader header{133, 12, 40, 1'700'000'004u, 0};
  s.info = {header, {11, 22}, 3, 9, 2, 1};
  s.processed_unix_ns = 33;
  dataflow::DomFrame frame{808, {dataflow::FrameStatus::make_daq(1, 0), 0, dataflow::kStatus2Trailer, 0, 0}, {}};
  frame.hits.resize(3 * dataflow::kHitBytes);
  for (std::uint8_t h = 0; h < 3; ++h) dataflow::encode_hit({h, 100u * h, 26}, &frame.hits[h * dataflow::kHitBytes]);
  for (std::uint32_t n = 0; n < 2; ++n) {
    dataflow::Event e;
    e.header = header;
    e.event_number = n;
    e.trigger_mask = dataflow::trigger_bit(dataflow::kTriggerBit3DMuon);
    e.snapshot = {{808, {1, 100, 26}}, {808, {2, 200, 26}}};
    e.triggered = {{808, {1, 100, 26}, e.trigger_mask}};
    e.stamps = {11, 22};
    e.filtered_unix_ns = 30 + n;
    s.result.events.push_back(e);
  }
  s.result.summary.header = header;
  s.result.summary.frames.push_back({808, frame.status, {}});
  s.result.error_frames = {header, {frame}, {}, {}};
  s.result.error_defects = {0x4};
  s.result.prescaled.push_back({filters::PrescaledSlice::Kind::L2, {header, {frame}, {}, {}}});
  s.result.counters.slices = 1;
  s.result.counters.events = 2;
  filters::SupernovaSliceFigure sn;
  sn.header = header;
  sn.doms = {{808, filters::SupernovaDomState::Included, 3, 1, 0, 0}, {809, filters::SupernovaDomState::Missing, 0, 0, 0, 0}};
  sn.multiplicity_counts[2] = 5;
  s.result.supernova = sn;
  s.monitoring.push_back({808, std::vector<std::uint8_t>(dataflow::kMonitoringPacketBytes, 0x5a)});
  return s;
}

void expect_same_slice(const dataflow::Timeslice& a, const dataflow::Timeslice& b) {
  EXPECT_EQ(a.header, b.header);
  EXPECT_EQ(a.stamps.received_unix_ns, b.stamps.received_unix_ns);
  EXPECT_EQ(a.stamps.completed_unix_ns, b.stamps.completed_unix_ns);
  ASSERT_EQ(a.frames.size(), b.frames.size());
  for (std::size_t i = 0; i < a.frames.size(); ++i) {
    EXPECT_EQ(a.frames[i].dom_id, b.frames[i].dom_id);
    EXPECT_EQ(a.frames[i].status, b.frames[i].status);
    EXPECT_EQ(a.frames[i].hits, b.frames[i].hits);
  }
  EXPECT_EQ(a.monitoring.size(), b.monitoring.size());
}

void expect_same_monitoring(const std::vector<dataflow::RawMonitoring>& a, const std::vector<dataflow::RawMonitoring>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].dom_id, b[i].dom_id);
    EXPECT_EQ(a[i].datagram, b[i].datagram);
  }
}

void expect_same(const FilteredSlice& a, const FilteredSlice& b) {
  EXPECT_EQ(a.info.header, b.info.header);
  EXPECT_EQ(a.info.stamps.received_unix_ns, b.info.stamps.received_unix_ns);
  EXPECT_EQ(a.info.stamps.completed_unix_ns, b.info.stamps.completed_unix_ns);
  EXPECT_EQ(a.info.sequence, b.info.sequence);
  EXPECT_EQ(a.info.hits, b.info.hits);
  EXPECT_EQ(a.info.frames, b.info.frames);
  EXPECT_EQ(a.info.frames_complete, b.info.frames_complete);
  EXPECT_EQ(a.processed_unix_ns, b.processed_unix_ns);
  const filters::FilterResult& x = a.result;
  const filters::FilterResult& y = b.result;
  ASSERT_EQ(x.events.size(), y.events.size());
  for (std::size_t i = 0; i < x.events.size(); ++i) {
    EXPECT_EQ(x.events[i], y.events[i]) << i;
    // operator== leaves these out.
    EXPECT_EQ(x.events[i].event_number, y.events[i].event_number);
    EXPECT_EQ(x.events[i].stamps.received_unix_ns, y.events[i].stamps.received_unix_ns);
    EXPECT_EQ(x.events[i].stamps.completed_unix_ns, y.events[i].stamps.completed_unix_ns);
    EXPECT_EQ(x.events[i].filtered_unix_ns, y.events[i].filtered_unix_ns);
  }
  EXPECT_EQ(x.summary, y.summary);
  expect_same_slice(x.error_frames, y.error_frames);
  EXPECT_EQ(x.error_defects, y.error_defects);
  ASSERT_EQ(x.prescaled.size(), y.prescaled.size());
  for (std::size_t i = 0; i < x.prescaled.size(); ++i) {
    EXPECT_EQ(x.prescaled[i].kind, y.prescaled[i].kind);
    expect_same_slice(x.prescaled[i].slice, y.prescaled[i].slice);
  }
  EXPECT_EQ(x.counters, y.counters);
  EXPECT_EQ(x.supernova, y.supernova);
  expect_same_monitoring(a.monitoring, b.monitoring);
}

}  // namespace

TEST(FilteredSliceFb, RealFilterResultRoundTrips) {
  const FilteredSlice original = real_filtered_slice();
  // The slice must exercise every part of the buffer.
  ASSERT_GT(original.result.events.size(), 0u);
  ASSERT_FALSE(original.result.summary.frames.empty());
  ASSERT_FALSE(original.result.error_frames.frames.empty());
  ASSERT_EQ(original.result.prescaled.size(), 4u);
  ASSERT_TRUE(original.result.supernova.has_value());
  ASSERT_FALSE(original.monitoring.empty());

  const auto bytes = firmware::encode_filtered_slice_fb(original);
  const auto decoded = firmware::decode_filtered_slice_fb(bytes);
  ASSERT_TRUE(decoded) << dataflow::to_string(decoded.error);
  expect_same(decoded.value, original);
  EXPECT_EQ(decoded.value.result.error_frames.header, original.result.error_frames.header);

  // From an odd address (a ZeroMQ frame) too.
  std::vector<std::uint8_t> shifted(bytes.size() + 3);
  std::copy(bytes.begin(), bytes.end(), shifted.begin() + 3);
  const auto unaligned = firmware::decode_filtered_slice_fb(std::span<const std::uint8_t>(shifted).subspan(3));
  ASSERT_TRUE(unaligned) << dataflow::to_string(unaligned.error);
  expect_same(unaligned.value, original);
}

TEST(FilteredSliceFb, EveryCounterKeepsItsName) {
  FilteredSlice s = small_filtered_slice();
  // Every counter a different value (in declaration order), so two swapped fields would show.
  s.result.counters = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26};
  const auto decoded = firmware::decode_filtered_slice_fb(firmware::encode_filtered_slice_fb(s));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded.value.result.counters, s.result.counters);
}

TEST(FilteredSliceFb, AbsentSupernovaStaysAbsent) {
  FilteredSlice s = small_filtered_slice();
  s.result.supernova.reset();
  flatbuffers::FlatBufferBuilder builder;
  firmware::encode_filtered_slice_fb(s, builder);
  EXPECT_EQ(fb::GetFilteredSlice(builder.GetBufferPointer())->supernova(), nullptr);
  const auto decoded = firmware::decode_filtered_slice_fb({builder.GetBufferPointer(), builder.GetSize()});
  ASSERT_TRUE(decoded);
  EXPECT_FALSE(decoded.value.result.supernova.has_value());
  expect_same(decoded.value, s);
}

TEST(FilteredSliceFb, WrongIdentifierIsRejected) {
  const auto event = dataflow::encode_event_fb(small_filtered_slice().result.events[0]);
  EXPECT_EQ(firmware::decode_filtered_slice_fb(event).error, dataflow::FbError::WrongIdentifier);
  EXPECT_EQ(firmware::decode_filtered_slice_fb({}).error, dataflow::FbError::WrongIdentifier);
  dataflow::FbLimits limits;
  const auto bytes = firmware::encode_filtered_slice_fb(small_filtered_slice());
  limits.max_buffer_bytes = bytes.size() - 1;
  EXPECT_EQ(firmware::decode_filtered_slice_fb(bytes, limits).error, dataflow::FbError::TooLarge);
}

TEST(FilteredSliceFb, DamagedNestedPartsGiveTheirErrorAndNothingPartial) {
  const auto original = firmware::encode_filtered_slice_fb(small_filtered_slice());
  const auto damaged = [&](auto&& damage) {
    auto bytes = original;
    damage(*fb::GetMutableFilteredSlice(bytes.data()));
    const auto decoded = firmware::decode_filtered_slice_fb(bytes);
    EXPECT_TRUE(decoded.value.result.events.empty() && decoded.value.monitoring.empty());
    return decoded.error;
  };
  // The second event's identifier: its own decoder rejects it.
  EXPECT_EQ(damaged([](fb::FilteredSlice& f) { f.mutable_events()->GetMutableObject(1)->mutable_bytes()->Mutate(4, 'X'); }),
            dataflow::FbError::WrongIdentifier);
  EXPECT_EQ(damaged([](fb::FilteredSlice& f) {
              f.mutable_prescaled()->GetMutableObject(0)->mutate_kind(static_cast<fb::PrescaledKind>(9));
            }),
            dataflow::FbError::BadEnum);
  EXPECT_EQ(damaged([](fb::FilteredSlice& f) {
              f.mutable_supernova()->mutable_doms()->GetMutableObject(1)->mutate_state(static_cast<fb::SupernovaDomState>(5));
            }),
            dataflow::FbError::BadEnum);
}

TEST(FilteredSliceFb, WrongSpectrumLengthIsRejected) {
  const FilteredSlice s = small_filtered_slice();
  const auto summary = dataflow::encode_summary_slice_fb(s.result.summary);
  const auto errors = dataflow::encode_timeslice_fb(s.result.error_frames, dataflow::TimesliceKind::Error);
  flatbuffers::FlatBufferBuilder b;
  const fb::SliceHeader header(1, 2, 3, 4, 5);
  const std::vector<std::uint32_t> counts(5, 1);  // not kPmtsPerDom + 1
  const auto info = fb::CreateSliceInfo(b, &header);
  const auto supernova = fb::CreateSupernovaFigureDirect(b, &header, nullptr, &counts);
  const auto root = fb::CreateFilteredSliceDirect(b, info, 0, nullptr, &summary, &errors, nullptr, nullptr, 0,
                                                  supernova);
  fb::FinishFilteredSliceBuffer(b, root);
  const auto decoded = firmware::decode_filtered_slice_fb({b.GetBufferPointer(), b.GetSize()});
  EXPECT_EQ(decoded.error, dataflow::FbError::VerifyFailed);
  EXPECT_FALSE(decoded.value.result.supernova.has_value());
}

// Every truncation and many random corruptions: an error or a decoded value, never a crash (the
// sanitizer build turns any out-of-bounds read into a failure).
TEST(FilteredSliceFb, TruncatedAndCorruptedBuffersNeverCrash) {
  const FilteredSlice slice = small_filtered_slice();
  const auto original = firmware::encode_filtered_slice_fb(slice);
  std::size_t decoded_whole = 0;
  for (std::size_t len = 0; len < original.size(); ++len) {
    const auto got = firmware::decode_filtered_slice_fb(std::span<const std::uint8_t>(original.data(), len));
    // Only trailing alignment padding may be cut and still decode.
    if (got) {
      ++decoded_whole;
      EXPECT_GE(len + 8, original.size());
    }
  }
  EXPECT_LE(decoded_whole, 8u);
  std::mt19937 rng(11);
  std::size_t rejected = 0;
  for (int round = 0; round < 3000; ++round) {
    auto damaged = original;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < flips; ++i) damaged[rng() % damaged.size()] ^= static_cast<std::uint8_t>(1 + rng() % 255);
    const auto got = firmware::decode_filtered_slice_fb(damaged);
    if (!got) ++rejected;
  }
  EXPECT_GT(rejected, 0u);
}
