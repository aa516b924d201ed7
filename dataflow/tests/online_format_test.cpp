// Online (collaboration) format: byte-exact decode -> encode of every object in the public samples,
// the values the samples are documented to hold, and errors (not crashes) on damaged input.
#include "shoredaq/formats/online_format.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <tuple>

namespace sd = shoredaq::dataflow;
namespace fs = std::filesystem;

namespace {

std::vector<std::uint8_t> read_sample(const std::string& name) {
  const fs::path path = fs::path(SHOREDAQ_TESTDATA_DIR) / "daq" / name;
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<sd::OnlineObject> objects_of(const std::vector<std::uint8_t>& bytes) {
  std::vector<sd::OnlineObject> out;
  sd::OnlineObjectReader reader(bytes);
  sd::OnlineObject object;
  while (reader.next(object)) out.push_back(object);
  EXPECT_EQ(reader.error(), sd::OnlineError::None);
  EXPECT_EQ(reader.offset(), bytes.size());
  return out;
}

std::vector<std::uint8_t> to_vector(std::span<const std::uint8_t> s) { return {s.begin(), s.end()}; }

// Decodes any object and re-encodes it.
std::vector<std::uint8_t> reencode(const sd::OnlineObject& object) {
  std::vector<std::uint8_t> out;
  if (object.type == sd::online_type::kEvent) {
    const auto r = sd::decode_online_event(object.bytes);
    EXPECT_TRUE(r) << sd::to_string(r.error);
    sd::encode_online_event(r.value, out);
  } else if (object.type == sd::online_type::kSummarySlice) {
    const auto r = sd::decode_online_summary_slice(object.bytes);
    EXPECT_TRUE(r) << sd::to_string(r.error);
    sd::encode_online_summary_slice(r.value, out);
  } else {
    const auto r = sd::decode_online_timeslice(object.bytes);
    EXPECT_TRUE(r) << sd::to_string(r.error);
    sd::encode_online_timeslice(r.value.slice, r.value.kind, out);
  }
  return out;
}

sd::Event sample_event() {
  sd::Event e;
  e.header = {44, 6760, 12, 0x8000'0000u | 1574432873u, 6'250'000};
  e.trigger_counter = 0x1'0000'0001ull;
  e.trigger_mask = sd::trigger_bit(sd::kTriggerBit3DMuon) | sd::trigger_bit(sd::kTriggerBitFactoryLimit);
  e.overlays = 3;
  e.snapshot = {{808447186, {3, 1000, 26}}, {808447186, {4, 1002, 30}}, {808951460, {30, 99'999'999, 255}}};
  e.triggered = {{808447186, {3, 1000, 26}, e.trigger_mask}, {808447186, {4, 1002, 30}, 0x10}};
  return e;
}

sd::Timeslice sample_timeslice() {
  sd::Timeslice t;
  t.header = {48, 4380, 7, 1605025366, 31'250'000};
  sd::DomFrame a;
  a.dom_id = 806451572;
  a.status = {sd::FrameStatus::make_daq(3, 2), 0x8000'0001u, 0x8000'0000u, 0, 0};
  a.hits.resize(3 * sd::kHitBytes);
  sd::encode_hit({1, 10, 20}, a.hits.data());
  sd::encode_hit({2, 11, 21}, a.hits.data() + 6);
  sd::encode_hit({3, 12, 22}, a.hits.data() + 12);
  sd::DomFrame empty;
  empty.dom_id = 806455814;
  t.frames = {a, empty};
  return t;
}

}  // namespace

TEST(OnlineFormat, EverySampleObjectRoundTripsByteExact) {
  for (const char* name : {"IO_EVT.dat", "IO_SUM.dat", "IO_TSL1_1003.dat", "IO_TSSN.dat"}) {
    SCOPED_TRACE(name);
    const auto file = read_sample(name);
    const auto objects = objects_of(file);
    ASSERT_FALSE(objects.empty());
    std::vector<std::uint8_t> whole;
    for (const auto& object : objects) {
      const auto again = reencode(object);
      EXPECT_EQ(again, to_vector(object.bytes)) << sd::online_type_name(object.type);
      whole.insert(whole.end(), again.begin(), again.end());
    }
    EXPECT_EQ(whole, file);
  }
}

TEST(OnlineFormat, EventsHoldDocumentedValues) {
  const auto file = read_sample("IO_EVT.dat");
  const auto objects = objects_of(file);
  ASSERT_EQ(objects.size(), 3u);
  const std::uint32_t frames[] = {88733, 88736, 88740};
  const std::uint64_t counters[] = {2816, 2905, 2816};
  const std::uint64_t masks[] = {0b10110, 0b10110, 0b10};
  const std::uint32_t overlays[] = {54, 17, 0};
  const std::size_t triggered[] = {182, 49, 6};
  const std::size_t snapshot[] = {239, 101, 35};
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(objects[i].type, sd::online_type::kEvent);
    const auto r = sd::decode_online_event(objects[i].bytes);
    ASSERT_TRUE(r) << sd::to_string(r.error);
    const sd::Event& e = r.value;
    EXPECT_EQ(r.bytes_used, objects[i].bytes.size());
    EXPECT_EQ(e.header.detector_id, 44);
    EXPECT_EQ(e.header.run, 6760u);
    EXPECT_EQ(e.header.frame_index, frames[i]);
    EXPECT_EQ(e.trigger_counter, counters[i]);
    EXPECT_EQ(e.trigger_mask, masks[i]);
    EXPECT_EQ(e.overlays, overlays[i]);
    EXPECT_EQ(e.triggered.size(), triggered[i]);
    EXPECT_EQ(e.snapshot.size(), snapshot[i]);
    EXPECT_EQ(e.header.ticks_16ns % sd::kTicksPerSlice, 0u);
    EXPECT_EQ(sd::online_event_size(e), objects[i].bytes.size());
    // Triggered hits are a subset of the snapshot; every hit mask is within the event's mask.
    std::set<std::tuple<std::uint32_t, int, std::uint32_t, int>> snap;
    for (const auto& h : e.snapshot) snap.emplace(h.dom_id, h.hit.channel, h.hit.time_ns, h.hit.tot_ns);
    for (const auto& h : e.triggered) {
      EXPECT_TRUE(snap.count({h.dom_id, h.hit.channel, h.hit.time_ns, h.hit.tot_ns})) << h.dom_id;
      EXPECT_EQ(h.trigger_mask & ~e.trigger_mask, 0u);
      EXPECT_LT(h.hit.channel, 31);
      EXPECT_LT(h.hit.time_ns, 100'000'000u);
    }
  }
  // First triggered hit of the first event, read off the bytes: DOM 0x30117974, channel 23,
  // time 0x026828b6 (big-endian in the file), ToT 27, mask 0b100 (bit 2, MX shower).
  const auto first = sd::decode_online_event(objects[0].bytes).value.triggered.front();
  EXPECT_EQ(first.dom_id, 0x30117974u);
  EXPECT_EQ(first.hit, (sd::Hit{23, 0x026828b6u, 27}));
  EXPECT_EQ(first.trigger_mask, sd::trigger_bit(sd::kTriggerBitMXShower));
}

TEST(OnlineFormat, SummarySlicesHoldDocumentedValues) {
  const auto file = read_sample("IO_SUM.dat");  // the objects are views into it
  const auto objects = objects_of(file);
  ASSERT_EQ(objects.size(), 3u);
  const std::size_t frames[] = {33, 69, 69};
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(objects[i].type, sd::online_type::kSummarySlice);
    const auto r = sd::decode_online_summary_slice(objects[i].bytes);
    ASSERT_TRUE(r) << sd::to_string(r.error);
    EXPECT_EQ(r.value.header.detector_id, 44);
    EXPECT_EQ(r.value.header.run, 6760u);
    ASSERT_EQ(r.value.frames.size(), frames[i]);
    EXPECT_EQ(objects[i].bytes.size(), 34 + 55 * frames[i]);
    // The README's "single rates 6-9 kHz" is the quiet baseline: the lower decile of the non-zero
    // rates lies there (medians are 8-10 kHz; bioluminescent PMTs reach the 2 MHz code 255).
    std::vector<double> rates;
    for (const auto& f : r.value.frames) {
      for (unsigned ch = 0; ch < sd::kPmtsPerDom; ++ch) {
        if (f.rate_codes[ch] != 0) rates.push_back(f.rate_hz(ch));
      }
    }
    ASSERT_FALSE(rates.empty());
    std::sort(rates.begin(), rates.end());
    const double lower_decile = rates[rates.size() / 10];
    EXPECT_GT(lower_decile, 6000.0);
    EXPECT_LT(lower_decile, 9000.0);
    EXPECT_GT(rates.front(), 5000.0);
    EXPECT_LE(rates.back(), 2.0e6 + 1.0);
  }
  // First frame of the first slice, read off the bytes.
  const auto s = sd::decode_online_summary_slice(objects[0].bytes).value;
  EXPECT_EQ(s.header.frame_index, 241u);
  EXPECT_EQ(s.frames[0].dom_id, 0x30117974u);
  EXPECT_EQ(s.frames[0].status.datagrams_received(), 29u);
  EXPECT_EQ(s.frames[0].status.highest_sequence(), 28u);
  EXPECT_TRUE(s.frames[0].status.trailer_seen());
  EXPECT_TRUE(s.frames[0].status.complete());
  EXPECT_EQ(s.frames[0].rate_codes[0], 51);
  EXPECT_NEAR(s.frames[0].rate_hz(0), 7960.0, 10.0);
}

TEST(OnlineFormat, L1TimeslicesHoldDocumentedValues) {
  const auto file = read_sample("IO_TSL1_1003.dat");  // the objects are views into it
  const auto objects = objects_of(file);
  ASSERT_EQ(objects.size(), 10u);
  std::uint32_t previous_frame = 0;
  for (const auto& object : objects) {
    EXPECT_EQ(object.type, sd::online_type::kTimesliceL1);
    EXPECT_EQ(object.timeslice_kind(), sd::TimesliceKind::L1);
    const auto r = sd::decode_online_timeslice(object.bytes);
    ASSERT_TRUE(r) << sd::to_string(r.error);
    EXPECT_EQ(r.value.kind, sd::TimesliceKind::L1);
    const sd::Timeslice& t = r.value.slice;
    EXPECT_EQ(t.header.detector_id, 48);
    EXPECT_EQ(t.header.run, 4380u);
    EXPECT_EQ(t.frames.size(), 15u);
    EXPECT_GT(t.header.frame_index, previous_frame);
    previous_frame = t.header.frame_index;
    EXPECT_EQ(t.hit_count(), 9u * 200u);  // the pulsed test pattern: 6 empty frames, 9 with 200 hits
    EXPECT_EQ(sd::online_timeslice_size(t), object.bytes.size());
    for (const auto& f : t.frames) {
      EXPECT_TRUE(f.hit_count() == 0 || f.hit_count() == 200);
      EXPECT_TRUE(f.status.white_rabbit_ok());
    }
  }
}

TEST(OnlineFormat, SupernovaTimeslicesHoldDocumentedValues) {
  const auto file = read_sample("IO_TSSN.dat");  // the objects are views into it
  const auto objects = objects_of(file);
  ASSERT_EQ(objects.size(), 3u);
  const std::size_t frames[] = {1, 1, 33};
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(objects[i].type, sd::online_type::kTimesliceSN);
    const auto r = sd::decode_online_timeslice(objects[i].bytes);
    ASSERT_TRUE(r) << sd::to_string(r.error);
    EXPECT_EQ(r.value.kind, sd::TimesliceKind::SN);
    EXPECT_EQ(r.value.slice.header.detector_id, 44);
    EXPECT_EQ(r.value.slice.header.run, 6760u);
    EXPECT_EQ(r.value.slice.frames.size(), frames[i]);
  }
  EXPECT_EQ(objects[0].bytes.size(), 8 + 2 + 20 + 4 + sd::kOnlineEmptySuperframeBytes);
  EXPECT_EQ(sd::decode_online_timeslice(objects[1].bytes).value.slice.hit_count(), 4u);
}

TEST(OnlineFormat, SyntheticObjectsRoundTrip) {
  const sd::Event e = sample_event();
  std::vector<std::uint8_t> bytes;
  sd::encode_online_event(e, bytes);
  EXPECT_EQ(bytes.size(), sd::online_event_size(e));
  EXPECT_EQ(bytes.size(), 54 + 2 * 18 + 4 + 3 * 10u);
  const auto de = sd::decode_online_event(bytes);
  ASSERT_TRUE(de);
  EXPECT_EQ(de.value, e);
  EXPECT_FALSE(de.value.header.slice_start_ns() == 0);
  EXPECT_EQ(de.value.header.utc_seconds >> 31, 1u);  // the WR-not-OK flag is kept

  const sd::Timeslice t = sample_timeslice();
  for (auto kind : {sd::TimesliceKind::Error, sd::TimesliceKind::L0, sd::TimesliceKind::L1, sd::TimesliceKind::L2,
                    sd::TimesliceKind::SN}) {
    std::vector<std::uint8_t> tb;
    sd::encode_online_timeslice(t, kind, tb);
    const auto dt = sd::decode_online_timeslice(tb);
    ASSERT_TRUE(dt);
    EXPECT_EQ(dt.value.kind, kind);
    EXPECT_EQ(sd::decode_online_preamble(tb).value.type, sd::online_type_of(kind));
    EXPECT_EQ(dt.value.slice.header, t.header);
    ASSERT_EQ(dt.value.slice.frames.size(), 2u);
    EXPECT_EQ(dt.value.slice.frames[0].hits, t.frames[0].hits);
    EXPECT_EQ(dt.value.slice.frames[0].status, t.frames[0].status);
    EXPECT_EQ(dt.value.slice.frames[1].hit_count(), 0u);
    EXPECT_NE(sd::to_string(kind), "unknown");
  }

  std::vector<std::uint8_t> sf;
  sd::encode_online_superframe(t.header, t.frames[1], sf);
  EXPECT_EQ(sf.size(), sd::kOnlineEmptySuperframeBytes);
  const auto dsf = sd::decode_online_superframe(sf);
  ASSERT_TRUE(dsf);
  EXPECT_EQ(dsf.value.header, t.header);
  EXPECT_EQ(dsf.value.frame.dom_id, t.frames[1].dom_id);

  sd::SummarySlice s;
  s.header = t.header;
  sd::SummaryFrame f;
  f.dom_id = 7;
  f.status.daq = sd::FrameStatus::make_daq(1, 0);
  for (unsigned ch = 0; ch < sd::kPmtsPerDom; ++ch) f.rate_codes[ch] = sd::encode_rate_hz(1000.0 * (ch + 1));
  s.frames = {f, f};
  std::vector<std::uint8_t> sb;
  sd::encode_online_summary_slice(s, sb);
  const auto ds = sd::decode_online_summary_slice(sb);
  ASSERT_TRUE(ds);
  EXPECT_EQ(ds.value, s);

  // Header and frame status on their own.
  std::vector<std::uint8_t> hb;
  sd::encode_online_header(t.header, hb);
  sd::encode_online_frame_status(t.frames[0].status, hb);
  EXPECT_EQ(hb.size(), sd::kOnlineHeaderBytes + sd::kOnlineFrameStatusBytes);
  EXPECT_EQ(hb[0], 48);

  sd::Timeslice partial = t;
  partial.frames[0].hits.push_back(1);
  std::vector<std::uint8_t> ignored;
  EXPECT_THROW(sd::encode_online_timeslice(partial, sd::TimesliceKind::L0, ignored), std::invalid_argument);
}

TEST(OnlineFormat, EveryTruncationIsAnErrorNotACrash) {
  for (const char* name : {"IO_EVT.dat", "IO_SUM.dat", "IO_TSSN.dat"}) {
    const auto file = read_sample(name);
    const auto objects = objects_of(file);
    const auto object = to_vector(objects.back().bytes);
    for (std::size_t n = 0; n < object.size(); ++n) {
      const std::span<const std::uint8_t> cut(object.data(), n);
      EXPECT_FALSE(sd::decode_online_event(cut)) << name << " " << n;
      EXPECT_FALSE(sd::decode_online_summary_slice(cut)) << name << " " << n;
      EXPECT_FALSE(sd::decode_online_timeslice(cut)) << name << " " << n;
    }
    // The same bytes with the preamble length shrunk to fit: content no longer fits the length.
    for (std::size_t n = sd::kOnlinePreambleBytes; n < object.size(); n += 7) {
      std::vector<std::uint8_t> shrunk(object.begin(), object.begin() + static_cast<std::ptrdiff_t>(n));
      shrunk[0] = static_cast<std::uint8_t>(n);
      shrunk[1] = static_cast<std::uint8_t>(n >> 8);
      EXPECT_FALSE(sd::decode_online_event(shrunk));
      EXPECT_FALSE(sd::decode_online_summary_slice(shrunk));
      EXPECT_FALSE(sd::decode_online_timeslice(shrunk));
    }
  }
}

TEST(OnlineFormat, SpecificErrors) {
  std::vector<std::uint8_t> event;
  sd::encode_online_event(sample_event(), event);
  EXPECT_EQ(sd::decode_online_summary_slice(event).error, sd::OnlineError::WrongType);
  EXPECT_EQ(sd::decode_online_timeslice(event).error, sd::OnlineError::WrongType);
  EXPECT_EQ(sd::decode_online_event({}).error, sd::OnlineError::Truncated);

  auto bad_version = event;
  bad_version[8] = 3;
  EXPECT_EQ(sd::decode_online_event(bad_version).error, sd::OnlineError::UnsupportedVersion);

  auto small_length = event;
  small_length[0] = 4;
  small_length[1] = small_length[2] = small_length[3] = 0;
  EXPECT_EQ(sd::decode_online_event(small_length).error, sd::OnlineError::BadLength);

  // nTriggered = -1, then a count far beyond the object.
  auto negative = event;
  const std::size_t n_triggered_at = 8 + 2 + 20 + 8 + 8 + 4;
  for (std::size_t i = 0; i < 4; ++i) negative[n_triggered_at + i] = 0xff;
  EXPECT_EQ(sd::decode_online_event(negative).error, sd::OnlineError::BadCount);
  auto huge = event;
  huge[n_triggered_at + 3] = 0x10;
  EXPECT_EQ(sd::decode_online_event(huge).error, sd::OnlineError::BadCount);

  // Extra bytes inside the preamble length.
  auto padded = event;
  padded.push_back(0);
  padded[0] = static_cast<std::uint8_t>(padded.size());
  EXPECT_EQ(sd::decode_online_event(padded).error, sd::OnlineError::LengthMismatch);
  // Extra bytes after the object are not part of it.
  auto followed = event;
  followed.push_back(0);
  const auto r = sd::decode_online_event(followed);
  EXPECT_TRUE(r);
  EXPECT_EQ(r.bytes_used, event.size());

  // A superframe whose header is not its timeslice's.
  std::vector<std::uint8_t> slice;
  sd::encode_online_timeslice(sample_timeslice(), sd::TimesliceKind::L0, slice);
  auto other_frame = slice;
  const std::size_t first_frame_header = 8 + 2 + 20 + 4 + 8;
  other_frame[first_frame_header + 8] ^= 1;  // frame index
  EXPECT_EQ(sd::decode_online_timeslice(other_frame).error, sd::OnlineError::InconsistentFrameHeader);
  // A superframe whose hit count disagrees with its length.
  auto bad_hits = slice;
  bad_hits[first_frame_header - 8 + 52] = 2;
  EXPECT_EQ(sd::decode_online_timeslice(bad_hits).error, sd::OnlineError::LengthMismatch);
  // A superframe of the wrong type.
  auto bad_type = slice;
  bad_type[first_frame_header - 4] = 102;
  EXPECT_EQ(sd::decode_online_timeslice(bad_type).error, sd::OnlineError::WrongType);
  // Preamble type outside 1001-1005.
  auto not_slice = slice;
  not_slice[4] = 0xe8;  // 1000
  EXPECT_EQ(sd::decode_online_timeslice(not_slice).error, sd::OnlineError::WrongType);
  EXPECT_FALSE(sd::timeslice_kind_of(1000));
  EXPECT_FALSE(sd::timeslice_kind_of(1006));

  for (auto e : {sd::OnlineError::None, sd::OnlineError::Truncated, sd::OnlineError::BadLength,
                 sd::OnlineError::WrongType, sd::OnlineError::UnsupportedVersion, sd::OnlineError::BadCount,
                 sd::OnlineError::LengthMismatch, sd::OnlineError::InconsistentFrameHeader}) {
    EXPECT_FALSE(sd::to_string(e).empty());
  }
  EXPECT_EQ(sd::online_type_name(sd::online_type::kEvent), "event");
  EXPECT_EQ(sd::online_type_name(42), "unknown");
}

TEST(OnlineFormat, ObjectReaderStopsAtBadPreambleKeepingEarlierObjects) {
  std::vector<std::uint8_t> buffer;
  sd::encode_online_event(sample_event(), buffer);
  sd::encode_online_timeslice(sample_timeslice(), sd::TimesliceKind::L2, buffer);
  const std::size_t good = buffer.size();
  buffer.insert(buffer.end(), {0xff, 0xff, 0, 0, 0x11, 0x27, 0, 0});  // claims 65535 bytes
  sd::OnlineObjectReader reader(buffer);
  sd::OnlineObject o;
  ASSERT_TRUE(reader.next(o));
  EXPECT_EQ(o.type, sd::online_type::kEvent);
  EXPECT_FALSE(o.timeslice_kind());
  ASSERT_TRUE(reader.next(o));
  EXPECT_EQ(o.timeslice_kind(), sd::TimesliceKind::L2);
  EXPECT_FALSE(reader.next(o));
  EXPECT_EQ(reader.error(), sd::OnlineError::Truncated);
  EXPECT_EQ(reader.objects_read(), 2u);
  EXPECT_EQ(reader.bytes_rejected(), buffer.size() - good);
}

TEST(OnlineFormat, FileReaderStreamsConcatenatedSamples) {
  const fs::path dir = fs::temp_directory_path() / ("shoredaq-online-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path file = dir / "mixed.daq";
  std::vector<std::uint8_t> all;
  for (const char* name : {"IO_EVT.dat", "IO_SUM.dat", "IO_TSL1_1003.dat", "IO_TSSN.dat"}) {
    const auto bytes = read_sample(name);
    all.insert(all.end(), bytes.begin(), bytes.end());
  }
  {
    std::ofstream out(file, std::ios::binary);
    out.write(reinterpret_cast<const char*>(all.data()), static_cast<std::streamsize>(all.size()));
  }
  {
    sd::OnlineFileReader reader(file);
    sd::OnlineObject o;
    std::size_t events = 0, summaries = 0, l1 = 0, sn = 0;
    while (reader.next(o)) {
      if (o.type == sd::online_type::kEvent) ++events;
      if (o.type == sd::online_type::kSummarySlice) ++summaries;
      if (o.timeslice_kind() == sd::TimesliceKind::L1) ++l1;
      if (o.timeslice_kind() == sd::TimesliceKind::SN) ++sn;
      EXPECT_EQ(reencode(o), to_vector(o.bytes));
    }
    EXPECT_EQ(reader.error(), sd::OnlineError::None);
    EXPECT_EQ(reader.offset(), all.size());
    EXPECT_EQ(events, 3u);
    EXPECT_EQ(summaries, 3u);
    EXPECT_EQ(l1, 10u);
    EXPECT_EQ(sn, 3u);
  }
  fs::resize_file(file, all.size() - 3);
  {
    sd::OnlineFileReader reader(file);
    sd::OnlineObject o;
    std::size_t n = 0;
    while (reader.next(o)) ++n;
    EXPECT_EQ(n, 18u);
    EXPECT_EQ(reader.error(), sd::OnlineError::Truncated);
  }
  fs::remove_all(dir);
  EXPECT_THROW(sd::OnlineFileReader(dir / "missing.daq"), std::runtime_error);
}
