// The run files keep every stream of a slice: summary, events, the kept timeslices (prescaled
// L0/L1/L2, SN, errors) and the TMCH monitoring packets, whole per slice and in frame order;
// manifests count each kind; the golden reader decodes every object; recovery counts them too.

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>

#include "shoredaq/formats/online_format.hpp"
#include "shoredaq/formats/record_stream.hpp"
#include "shoredaq/storage/acoustic_spool.hpp"
#include "shoredaq/storage/monitoring_record.hpp"
#include "shoredaq/storage/tier0_spool.hpp"
#include "shoredaq/storage/tier0_spool_sink.hpp"
#include "storage_test_support.hpp"
#include "tier0_spool_test_support.hpp"

using namespace shoredaq;
using namespace shoredaq::storage;
namespace st = shoredaq::storage::testing;
using dataflow::TimesliceKind;
namespace fs = std::filesystem;

namespace {

constexpr std::int32_t kDetector = 133;
constexpr std::size_t kMonitoringDoms = 3;

Tier0SpoolConfig config_for(const fs::path& dir) {
  Tier0SpoolConfig c;
  c.directory = dir;
  c.fsync = false;
  c.write_buffer_bytes = 4096;
  return c;
}

// Frame f keeps an L1 timeslice every 20th frame (the stored configuration's prescale), an SN
// slice every 5th, an L2 slice every 10th, an error slice at frame 7; every frame has a summary,
// two events and the TMCH packets of three DOMs.
std::vector<TimesliceKind> kinds_of(std::uint32_t f) {
  std::vector<TimesliceKind> kinds;
  if (f % 20 == 0) kinds.push_back(TimesliceKind::L1);
  if (f % 10 == 0) kinds.push_back(TimesliceKind::L2);
  if (f % 5 == 0) kinds.push_back(TimesliceKind::SN);
  if (f == 7) kinds.push_back(TimesliceKind::Error);
  return kinds;
}

dataflow::SliceProducts products(std::uint32_t run, std::uint32_t f) {
  return st::make_products(kDetector, run, f, 2, kinds_of(f), kMonitoringDoms);
}

}  // namespace

TEST(Tier0SpoolStreams, EveryObjectOfASliceIsInTheRunFileInFrameOrderAndCounted) {
  st::TempDir dir("spool-streams");
  Tier0Spool spool(config_for(dir.path()));
  spool.begin_run(8, kDetector);
  constexpr std::uint32_t kFrames = 41;
  for (std::uint32_t f = 0; f < kFrames; ++f) EXPECT_EQ(spool.write_slice(products(8, f)).status, SpoolSliceStatus::Accepted);
  spool.end_run();

  const auto contents = st::check_sealed_parts(spool.ready_dir());
  ASSERT_EQ(contents.parts, 1u);
  EXPECT_EQ(contents.summary_frames.size(), kFrames);
  EXPECT_EQ(contents.event_frames.size(), 2 * kFrames);
  EXPECT_EQ(contents.timeslice_frames[static_cast<std::size_t>(TimesliceKind::L1)], (std::vector<std::uint32_t>{0, 20, 40}));
  EXPECT_EQ(contents.timeslice_frames[static_cast<std::size_t>(TimesliceKind::L2)].size(), 5u);
  EXPECT_EQ(contents.timeslice_frames[static_cast<std::size_t>(TimesliceKind::SN)].size(), 9u);
  EXPECT_EQ(contents.timeslice_frames[static_cast<std::size_t>(TimesliceKind::Error)], (std::vector<std::uint32_t>{7}));
  EXPECT_TRUE(contents.timeslice_frames[static_cast<std::size_t>(TimesliceKind::L0)].empty());
  EXPECT_EQ(contents.monitoring_frames.size(), kMonitoringDoms * kFrames);
  // Frame order: a slice's objects together, slices one after the other.
  EXPECT_TRUE(std::is_sorted(contents.all_frames.begin(), contents.all_frames.end()));

  const std::string part = Tier0Spool::part_file_name(kDetector, 8, 0);
  const auto manifest = st::read_json(spool.ready_dir() / (part + ".json"));
  EXPECT_EQ(manifest["timeslices"], (nlohmann::json{{"error", 1}, {"l0", 0}, {"l1", 3}, {"l2", 5}, {"sn", 9}}));
  EXPECT_EQ(manifest["monitoring_packets"], kMonitoringDoms * kFrames);
  EXPECT_EQ(manifest["first_frame"], 0);
  EXPECT_EQ(manifest["last_frame"], kFrames - 1);
  EXPECT_TRUE(validate_tier0_manifest(manifest.dump()).empty());
  const auto run_manifest = st::read_json(spool.ready_dir() / Tier0Spool::run_manifest_name(kDetector, 8));
  EXPECT_EQ(run_manifest["timeslices"]["sn"], 9);
  EXPECT_EQ(run_manifest["monitoring_packets"], kMonitoringDoms * kFrames);

  const auto& c = spool.run_counters();
  EXPECT_EQ(c.slices_written, kFrames);
  EXPECT_EQ(c.timeslices_written, 18u);
  EXPECT_EQ(c.monitoring_written, kMonitoringDoms * kFrames);
}

// The golden reader (the one that checks the reference IO_*.dat files) streams the sealed file
// and decodes every object; the monitoring objects give back the packets byte for byte.
TEST(Tier0SpoolStreams, TheGoldenReaderDecodesEveryObjectOfASealedPart) {
  st::TempDir dir("spool-golden");
  Tier0Spool spool(config_for(dir.path()));
  spool.begin_run(9, kDetector);
  std::vector<dataflow::SliceProducts> written;
  for (std::uint32_t f = 0; f < 21; ++f) {
    written.push_back(products(9, f));
    spool.write_slice(written.back());
  }
  spool.end_run();

  dataflow::OnlineFileReader reader(spool.ready_dir() / Tier0Spool::part_file_name(kDetector, 9, 0));
  dataflow::OnlineObject object;
  std::map<std::int32_t, std::size_t> per_type;
  std::size_t monitoring_index = 0;
  while (reader.next(object)) {
    ++per_type[object.type];
    if (object.type == dataflow::online_type::kEvent) {
      EXPECT_TRUE(dataflow::decode_online_event(object.bytes));
    } else if (object.type == dataflow::online_type::kSummarySlice) {
      EXPECT_TRUE(dataflow::decode_online_summary_slice(object.bytes));
    } else if (object.timeslice_kind()) {
      const auto t = dataflow::decode_online_timeslice(object.bytes);
      ASSERT_TRUE(t);
      const auto& frames = written[t.value.slice.header.frame_index].timeslices.front().slice.frames;
      ASSERT_EQ(t.value.slice.frames.size(), frames.size());
      for (std::size_t i = 0; i < frames.size(); ++i) {
        EXPECT_EQ(t.value.slice.frames[i].dom_id, frames[i].dom_id);
        EXPECT_EQ(t.value.slice.frames[i].status, frames[i].status);
        EXPECT_EQ(t.value.slice.frames[i].hits, frames[i].hits);
      }
    } else if (object.type == kOnlineMonitoringType) {
      const auto m = decode_online_monitoring(object.bytes);
      ASSERT_TRUE(m);
      const auto& expected = written[monitoring_index / kMonitoringDoms].monitoring[monitoring_index % kMonitoringDoms];
      EXPECT_EQ(m.value.header, written[monitoring_index / kMonitoringDoms].header);
      EXPECT_EQ(m.value.dom_id, expected.dom_id);
      EXPECT_TRUE(std::equal(m.value.datagram.begin(), m.value.datagram.end(), expected.datagram.begin(),
                             expected.datagram.end()));
      const auto packet = dataflow::parse_monitoring_packet(m.value.datagram);
      ASSERT_TRUE(packet);
      EXPECT_EQ(packet.packet.header.dom_id, expected.dom_id);
      EXPECT_DOUBLE_EQ(packet.packet.temperature_c, 30.25);
      ++monitoring_index;
    } else {
      ADD_FAILURE() << "unexpected object type " << object.type;
    }
  }
  EXPECT_EQ(reader.error(), dataflow::OnlineError::None);
  EXPECT_FALSE(reader.read_failed());
  EXPECT_EQ(per_type[dataflow::online_type::kSummarySlice], 21u);
  EXPECT_EQ(per_type[dataflow::online_type::kEvent], 42u);
  EXPECT_EQ(per_type[dataflow::online_type::kTimesliceL1], 2u);
  EXPECT_EQ(per_type[dataflow::online_type::kTimesliceL2], 3u);
  EXPECT_EQ(per_type[dataflow::online_type::kTimesliceSN], 5u);
  EXPECT_EQ(per_type[dataflow::online_type::kTimesliceError], 1u);
  EXPECT_EQ(per_type[kOnlineMonitoringType], 63u);
}

TEST(Tier0SpoolStreams, MonitoringObjectRoundTripsAndRefusesDamage) {
  const auto header = st::slice_header(kDetector, 3, 17);
  const auto packet = st::make_monitoring(header, 806'472'270u);
  std::vector<std::uint8_t> bytes;
  encode_online_monitoring(header, packet, bytes);
  ASSERT_EQ(bytes.size(), online_monitoring_size(packet));
  ASSERT_EQ(bytes.size(), kOnlineMonitoringFixedBytes + dataflow::kMonitoringPacketBytes);
  const auto ok = decode_online_monitoring(bytes);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok.value.header, header);
  EXPECT_EQ(ok.value.dom_id, 806'472'270u);
  // The tail is one .dqd record: length word then the datagram.
  const std::size_t tail = kOnlineMonitoringFixedBytes - dataflow::kRecordLengthBytes;
  dataflow::RecordReader records(std::span<const std::uint8_t>(bytes).subspan(tail));
  std::span<const std::uint8_t> datagram;
  ASSERT_TRUE(records.next(datagram));
  EXPECT_TRUE(std::equal(datagram.begin(), datagram.end(), packet.datagram.begin(), packet.datagram.end()));

  auto truncated = bytes;
  truncated.pop_back();
  EXPECT_FALSE(decode_online_monitoring(truncated));
  auto wrong_count = bytes;
  wrong_count[kOnlineMonitoringFixedBytes - 4] ^= 1;
  EXPECT_EQ(decode_online_monitoring(wrong_count).error, dataflow::OnlineError::LengthMismatch);
  auto wrong_version = bytes;
  wrong_version[dataflow::kOnlinePreambleBytes] = 9;
  EXPECT_EQ(decode_online_monitoring(wrong_version).error, dataflow::OnlineError::UnsupportedVersion);
  std::vector<std::uint8_t> summary;
  dataflow::encode_online_summary_slice(st::make_summary(kDetector, 3, 17), summary);
  EXPECT_EQ(decode_online_monitoring(summary).error, dataflow::OnlineError::WrongType);
}

// The sink hands the spool the whole slice.
TEST(Tier0SpoolStreams, TheSinkWritesEveryStreamAndCountsIt) {
  st::TempDir dir("spool-sink-streams");
  Tier0Spool spool(config_for(dir.path()));
  Tier0SpoolSink sink(spool);
  dataflow::RunRecord run;
  run.run = 12;
  run.detector_id = kDetector;
  sink.begin_run(run);
  for (std::uint32_t f = 0; f < 20; ++f) EXPECT_TRUE(sink.write(products(12, f)).accepted);
  sink.end_run(run);
  dataflow::CounterSet counters;
  sink.counters(counters);
  EXPECT_EQ(counters.value("spool.timeslices_written"), 1u + 2 + 4 + 1);
  EXPECT_EQ(counters.value("spool.monitoring_written"), 20 * kMonitoringDoms);
  const auto contents = st::check_sealed_parts(spool.ready_dir());
  EXPECT_EQ(contents.monitoring_frames.size(), 20 * kMonitoringDoms);
  EXPECT_EQ(contents.timeslice_frames[static_cast<std::size_t>(TimesliceKind::SN)].size(), 4u);
}

// A crash leaves a part in open/ holding every stream and a torn tail: recovery counts each kind
// of whole object into the manifest and cuts the tail off.
TEST(Tier0SpoolStreams, RecoveryCountsEveryStreamOfACrashedPart) {
  st::TempDir dir("spool-streams-recover");
  const fs::path open = dir.path() / "open";
  fs::create_directories(open);
  std::vector<std::uint8_t> bytes;
  for (std::uint32_t f = 0; f < 6; ++f) {
    const auto p = products(4, f);
    dataflow::encode_online_summary_slice(p.summary, bytes);
    for (const auto& e : p.events) dataflow::encode_online_event(e, bytes);
    for (const auto& t : p.timeslices) dataflow::encode_online_timeslice(t.slice, t.kind, bytes);
    for (const auto& m : p.monitoring) encode_online_monitoring(p.header, m, bytes);
  }
  const std::size_t whole = bytes.size();
  std::vector<std::uint8_t> torn;
  encode_online_monitoring(st::slice_header(kDetector, 4, 6), st::make_monitoring(st::slice_header(kDetector, 4, 6), 1), torn);
  bytes.insert(bytes.end(), torn.begin(), torn.begin() + 100);
  const std::string name = Tier0Spool::part_file_name(kDetector, 4, 0);
  std::ofstream(open / name, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                      static_cast<std::streamsize>(bytes.size()));

  Tier0Spool spool(config_for(dir.path()));
  EXPECT_EQ(spool.counters().parts_recovered, 1u);
  EXPECT_EQ(spool.counters().damaged_bytes, 100u);
  const auto manifest = st::read_json(spool.ready_dir() / (name + ".json"));
  EXPECT_EQ(manifest["size_bytes"], whole);
  EXPECT_EQ(manifest["summary_slices"], 6);
  EXPECT_EQ(manifest["events"], 12);
  EXPECT_EQ(manifest["timeslices"], (nlohmann::json{{"error", 0}, {"l0", 0}, {"l1", 1}, {"l2", 1}, {"sn", 2}}));
  EXPECT_EQ(manifest["monitoring_packets"], 6 * kMonitoringDoms);
  EXPECT_EQ(manifest["last_frame"], 5);
  EXPECT_TRUE(validate_tier0_manifest(manifest.dump()).empty());
  st::check_sealed_parts(spool.ready_dir());
}

// The acoustic spool shares the directories: the run files' recovery leaves its parts and its
// provenance records alone (they are the acoustic spool's to recover).
TEST(Tier0SpoolStreams, RecoveryLeavesAcousticPartsAndRecordsAlone) {
  st::TempDir dir("spool-leaves-acoustic");
  for (const char* sub : {"open", "runs"}) fs::create_directories(dir.path() / sub);
  const std::string acoustic = AcousticSpool::part_file_name(kDetector, 5, 0);
  const std::string record = AcousticSpool::run_provenance_name(kDetector, 5);
  std::ofstream(dir.path() / "open" / acoustic) << "not yet recovered";
  std::ofstream(dir.path() / "runs" / record) << "{}";
  std::ofstream(dir.path() / "runs" / Tier0Spool::run_provenance_name(kDetector, 5)) << "{}";

  Tier0Spool spool(config_for(dir.path()));
  EXPECT_TRUE(fs::exists(dir.path() / "open" / acoustic));
  EXPECT_TRUE(fs::exists(dir.path() / "runs" / record));
  EXPECT_FALSE(fs::exists(dir.path() / "runs" / Tier0Spool::run_provenance_name(kDetector, 5)));
  EXPECT_TRUE(fs::is_empty(spool.damaged_dir()));
}
