// Raw-data dumps: a slice's records rebuild the same frames in the TimesliceBuilder; windows are
// clipped to the ring and capped, a window older than the ring is refused with the reason; a dump
// is a sealed file in spool/ready/ with a valid manifest and exactly the window's slices.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "shoredaq/dataflow/timeslice_builder.hpp"
#include "shoredaq/formats/clb_datagram.hpp"
#include "shoredaq/formats/record_stream.hpp"
#include "shoredaq/storage/acoustic_spool.hpp"
#include "shoredaq/storage/ring_dump.hpp"
#include "shoredaq/storage/tier0_manifest.hpp"
#include "storage_test_support.hpp"

using namespace shoredaq;
using namespace shoredaq::storage;
using shoredaq::storage::testing::TempDir;

namespace {

constexpr std::uint32_t kUtc = 1'700'000'000;
constexpr std::uint64_t kT0 = std::uint64_t{kUtc} * 1'000'000'000ull;
constexpr std::uint64_t kSlice = 100'000'000ull;

dataflow::Timeslice make_slice(std::uint32_t index, std::size_t hits_per_dom) {
  dataflow::Timeslice t;
  t.header.detector_id = 49;
  t.header.run = 7;
  t.header.frame_index = index + 1;
  t.header.utc_seconds = kUtc + index / 10;
  t.header.ticks_16ns = (index % 10) * dataflow::kTicksPerSlice;
  for (std::uint32_t dom : {101u, 102u, 103u}) {
    dataflow::DomFrame f;
    f.dom_id = dom;
    for (std::size_t h = 0; h < hits_per_dom; ++h) {
      const dataflow::Hit hit{static_cast<std::uint8_t>(h % 31), static_cast<std::uint32_t>(h * 97 + dom), 26};
      f.hits.resize(f.hits.size() + dataflow::kHitBytes);
      dataflow::encode_hit(hit, f.hits.data() + f.hits.size() - dataflow::kHitBytes);
    }
    const std::uint32_t datagrams = static_cast<std::uint32_t>(std::max<std::size_t>(1, (hits_per_dom + 1491) / 1492));
    f.status.daq = dataflow::FrameStatus::make_daq(datagrams, datagrams - 1);
    f.status.status = dataflow::kStatus1WhiteRabbitOk | 0x5;
    f.status.fifo = dataflow::kStatus2Trailer | 0x2;
    if (dom == 103) f.status.fifo = 0x2;  // no trailer: an incomplete frame
    t.frames.push_back(std::move(f));
  }
  return t;
}

std::vector<dataflow::Timeslice> rebuild(const std::vector<std::uint8_t>& records) {
  dataflow::TimesliceBuilderConfig c;
  c.detector_id = 49;
  c.run_number = 7;
  c.expected_doms = {101, 102, 103};
  c.expiry_wall_ns = 0;
  std::vector<dataflow::Timeslice> out;
  dataflow::TimesliceBuilder builder(c, [&](dataflow::Timeslice&& t) { out.push_back(std::move(t)); });
  dataflow::for_each_record(records, [&](std::span<const std::uint8_t> d) {
    const auto parsed = dataflow::parse_clb_datagram(d);
    ASSERT_TRUE(parsed);
    builder.add(parsed.datagram, 0);
  });
  builder.flush(0);
  return out;
}

void fill_ring(RawSliceRing& ring, std::uint32_t from, std::uint32_t to, std::uint32_t skip = UINT32_MAX) {
  for (std::uint32_t i = from; i < to; ++i) {
    if (i == skip) continue;
    std::vector<std::uint8_t> bytes;
    const auto slice = make_slice(i, 20);
    const std::uint32_t records = encode_slice_records(slice, bytes);
    ASSERT_EQ(ring.append({slice.header.slice_start_ns(), 49, 7, i + 1, records}, bytes), RingAppendStatus::Stored);
  }
}

}  // namespace

TEST(RingDump, SliceRecordsRebuildTheSameFrames) {
  std::vector<std::uint8_t> records;
  const auto a = make_slice(0, 3000);  // more hits than one datagram carries
  const auto b = make_slice(1, 0);     // frames without hits
  EXPECT_EQ(encode_slice_records(a, records), 3u * 3u);
  EXPECT_EQ(encode_slice_records(b, records), 3u);
  const auto rebuilt = rebuild(records);
  ASSERT_EQ(rebuilt.size(), 2u);
  for (std::size_t s = 0; s < 2; ++s) {
    const auto& want = s == 0 ? a : b;
    const auto& got = rebuilt[s];
    EXPECT_EQ(got.header.slice_start_ns(), want.header.slice_start_ns());
    ASSERT_EQ(got.frames.size(), want.frames.size());
    for (std::size_t i = 0; i < want.frames.size(); ++i) {
      EXPECT_EQ(got.frames[i].dom_id, want.frames[i].dom_id);
      EXPECT_EQ(got.frames[i].hits, want.frames[i].hits) << i;
      EXPECT_EQ(got.frames[i].status.complete(), want.frames[i].status.complete()) << i;
      EXPECT_EQ(got.frames[i].status.status, want.frames[i].status.status);
      EXPECT_EQ(got.frames[i].status.fifo & dataflow::kChannelMask31, want.frames[i].status.fifo & dataflow::kChannelMask31);
    }
  }
}

TEST(RingDump, WindowsAreClippedToTheRingCappedAndRefusedWhenOlder) {
  RingFill fill;
  fill.slices = 600;
  fill.oldest_ns = kT0;
  fill.newest_ns = kT0 + 599 * kSlice;
  const std::uint64_t s = 1'000'000'000ull;
  auto w = clip_dump_window(kT0 + 10 * s, kT0 + 20 * s, fill, 60, 120);
  EXPECT_TRUE(w.refusal.empty());
  EXPECT_FALSE(w.clipped);
  w = clip_dump_window(kT0 - 30 * s, kT0 + 20 * s, fill, 60, 120);
  EXPECT_TRUE(w.clipped);
  EXPECT_EQ(w.from_ns, kT0);
  w = clip_dump_window(kT0 + 50 * s, kT0 + 90 * s, fill, 60, 120);
  EXPECT_EQ(w.to_ns, kT0 + 60 * s);
  w = clip_dump_window(kT0 + 1 * s, kT0 + 50 * s, fill, 60, 10);  // capped to 10 s from its start
  EXPECT_EQ(w.from_ns, kT0 + 1 * s);
  EXPECT_EQ(w.to_ns, kT0 + 11 * s);
  w = clip_dump_window(kT0 - 100 * s, kT0 - 90 * s, fill, 60, 120);
  EXPECT_NE(w.refusal.find("window older than the ring's 60 s"), std::string::npos) << w.refusal;
  w = clip_dump_window(kT0 + 5 * s, kT0 + 5 * s, fill, 60, 120);
  EXPECT_FALSE(w.refusal.empty());
  w = clip_dump_window(kT0 + 70 * s, kT0 + 80 * s, fill, 60, 120);
  EXPECT_FALSE(w.refusal.empty());
  EXPECT_FALSE(clip_dump_window(kT0, kT0 + s, RingFill{}, 60, 120).refusal.empty());
}

TEST(RingDump, WritesASealedFileWithItsManifestAndCountsMissingSlices) {
  TempDir dir("ring-dump");
  RawSliceRingConfig rc;
  rc.directory = dir.path() / "ring";
  rc.max_bytes = 1 << 22;
  rc.max_seconds = 60;
  RawSliceRing ring(rc);
  fill_ring(ring, 0, 50, /*skip=*/25);
  const DumpRequest request{"d1", kT0 + 2 * 1'000'000'000ull, kT0 + 3 * 1'000'000'000ull, "test dump"};
  const auto window = clip_dump_window(request.from_ns, request.to_ns, ring.fill(), 60, 120);
  DumpOutput out;
  out.spool_dir = dir.path() / "spool";
  out.fsync = false;
  const DumpResult r = write_ring_dump(ring, request, window, out);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.file, "KM3NeT_00000049_00000007_0000.dump.dqd");
  EXPECT_TRUE(is_dump_file_name(r.file));
  EXPECT_TRUE(is_spool_part_file_name(r.file));  // shore-transfer ships it
  EXPECT_EQ(r.slices, 9u);  // slices 20..29 without 25
  EXPECT_EQ(r.missing_slices, 1u);
  EXPECT_EQ(r.datagrams, 9u * 3u);

  // The file is exactly the window's slices, in order.
  std::vector<std::uint8_t> want;
  for (std::uint32_t i = 20; i < 30; ++i) {
    if (i != 25) encode_slice_records(make_slice(i, 20), want);
  }
  std::ifstream in(out.spool_dir / "ready" / r.file, std::ios::binary);
  const std::vector<std::uint8_t> got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(got, want);
  EXPECT_FALSE(std::filesystem::exists(out.spool_dir / "open" / r.file));

  std::ifstream mf(out.spool_dir / "ready" / (r.file + ".json"));
  const auto manifest = nlohmann::json::parse(mf);
  EXPECT_TRUE(validate_tier0_manifest(manifest.dump()).empty()) << ::testing::PrintToString(validate_tier0_manifest(manifest.dump()));
  EXPECT_EQ(manifest["data_type"], "dumps");
  EXPECT_EQ(manifest["format"], "clb-records");
  EXPECT_EQ(manifest["bytes"], want.size());
  EXPECT_EQ(manifest["adler32"], r.adler32);
  EXPECT_EQ(manifest["first_frame"], 21);
  EXPECT_EQ(manifest["last_frame"], 30);
  EXPECT_EQ(manifest["dump"]["reason"], "test dump");
  EXPECT_EQ(manifest["dump"]["missing_slices"], 1);
  EXPECT_EQ(manifest["dump"]["missing_slice_starts"][0], format_utc_ns(kT0 + 25 * kSlice));

  // The next dump of the run gets the next number; a refused window writes nothing.
  EXPECT_EQ(write_ring_dump(ring, request, window, out).file, "KM3NeT_00000049_00000007_0001.dump.dqd");
  const auto old = clip_dump_window(kT0 - 100'000'000'000ull, kT0 - 90'000'000'000ull, ring.fill(), 60, 120);
  const DumpResult refused = write_ring_dump(ring, request, old, out);
  EXPECT_FALSE(refused.ok);
  EXPECT_NE(refused.error.find("older than the ring"), std::string::npos);
}

TEST(RingDump, AnInterruptedDumpIsSetAsideNotShipped) {
  TempDir dir("ring-dump-crash");
  const auto spool = dir.path() / "spool";
  std::filesystem::create_directories(spool / "open");
  std::ofstream(spool / "open" / "KM3NeT_00000049_00000007_0003.dump.dqd") << "half";
  std::ofstream(spool / "open" / "KM3NeT_00000049_00000007_0003.daq") << "a run file";
  const auto moved = set_aside_interrupted_dumps(spool);
  ASSERT_EQ(moved.size(), 1u);
  EXPECT_TRUE(std::filesystem::exists(spool / "damaged" / "KM3NeT_00000049_00000007_0003.dump.dqd.partial"));
  EXPECT_TRUE(std::filesystem::exists(spool / "open" / "KM3NeT_00000049_00000007_0003.daq"));  // not ours
}
