// shore-events runfile: the program lists what a spool file holds (every object decoded), and
// exports one kind of object, for run files (.daq) and acoustic parts (.acoustic.dqd).

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "shoredaq/formats/clb_datagram.hpp"
#include "shoredaq/formats/online_format.hpp"
#include "shoredaq/formats/record_stream.hpp"
#include "shoredaq/storage/acoustic_spool.hpp"
#include "shoredaq/storage/tier0_spool.hpp"
#include "shore_events_tool.hpp"
#include "storage_test_support.hpp"
#include "tier0_spool_test_support.hpp"

using namespace shoredaq;
using namespace shoredaq::storage;
namespace st = shoredaq::storage::testing;
using dataflow::TimesliceKind;
namespace fs = std::filesystem;

namespace {

constexpr std::int32_t kDetector = 133;

// A sealed run file of 10 slices: 2 events and 3 TMCH packets each, an L1 slice at frames 0,
// an SN slice at frames 0 and 5, an error slice at frame 7.
fs::path seal_run_file(const fs::path& dir) {
  Tier0SpoolConfig config;
  config.directory = dir;
  config.fsync = false;
  Tier0Spool spool(config);
  spool.begin_run(14, kDetector);
  for (std::uint32_t f = 0; f < 10; ++f) {
    std::vector<TimesliceKind> kinds;
    if (f == 0) kinds.push_back(TimesliceKind::L1);
    if (f % 5 == 0) kinds.push_back(TimesliceKind::SN);
    if (f == 7) kinds.push_back(TimesliceKind::Error);
    spool.write_slice(st::make_products(kDetector, 14, f, 2, kinds, 3));
  }
  spool.end_run();
  return spool.ready_dir() / Tier0Spool::part_file_name(kDetector, 14, 0);
}

}  // namespace

TEST(ShoreEventsRunfile, CountsEveryObjectOfARunFile) {
  st::TempDir dir("runfile");
  const fs::path part = seal_run_file(dir.path());
  const auto r = st::run_tool("runfile " + part.string() + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["summary_slices"], 10);
  EXPECT_EQ(j["events"], 20);
  EXPECT_EQ(j["timeslices"], (nlohmann::json{{"error", 1}, {"l0", 0}, {"l1", 1}, {"l2", 0}, {"sn", 2}}));
  EXPECT_EQ(j["monitoring_packets"], 30);
  EXPECT_EQ(j["monitoring_doms"], 3);
  EXPECT_EQ(j["objects"], 10 + 20 + 4 + 30);
  EXPECT_EQ(j["first_frame"], 0);
  EXPECT_EQ(j["last_frame"], 9);
  EXPECT_EQ(j["bytes_read"], fs::file_size(part));
  EXPECT_TRUE(j["problem"].is_null());

  const auto text = st::run_tool("runfile " + part.string());
  ASSERT_EQ(text.exit_code, 0);
  EXPECT_NE(text.out.find("timeslices SN      2"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("monitoring (TMCH)  30 packets of 3 DOMs"), std::string::npos) << text.out;
}

TEST(ShoreEventsRunfile, ExportsOneKindUnchanged) {
  st::TempDir dir("runfile-export");
  const fs::path part = seal_run_file(dir.path());
  const fs::path sn = dir.path() / "sn.dat";
  ASSERT_EQ(st::run_tool("runfile " + part.string() + " --export sn --out " + sn.string()).exit_code, 0);
  const auto sn_bytes = st::read_bytes(sn);
  dataflow::OnlineObjectReader reader(sn_bytes);
  dataflow::OnlineObject object;
  std::vector<std::uint32_t> frames;
  while (reader.next(object)) {
    const auto t = dataflow::decode_online_timeslice(object.bytes);
    ASSERT_TRUE(t);
    EXPECT_EQ(t.value.kind, TimesliceKind::SN);
    frames.push_back(t.value.slice.header.frame_index);
  }
  EXPECT_EQ(reader.error(), dataflow::OnlineError::None);
  EXPECT_EQ(frames, (std::vector<std::uint32_t>{0, 5}));

  // The TMCH packets come out as a .dqd of the packets as received: it replays.
  const fs::path monitoring = dir.path() / "monitoring.dqd";
  ASSERT_EQ(st::run_tool("runfile " + part.string() + " --export monitoring --out " + monitoring.string()).exit_code, 0);
  const auto packets = dataflow::read_dqd_file(monitoring);
  ASSERT_EQ(packets.size(), 30u);
  for (const auto& p : packets) EXPECT_TRUE(dataflow::parse_monitoring_packet(p));
  EXPECT_EQ(packets[4], st::make_monitoring(st::slice_header(kDetector, 14, 1), 10'001).datagram);

  // To stdout: only the objects there (the JSON summary goes to stderr).
  const auto events = st::run_tool("runfile " + part.string() + " --export events --json");
  ASSERT_EQ(events.exit_code, 0);
  const std::vector<std::uint8_t> bytes(events.out.begin(), events.out.end());
  dataflow::OnlineObjectReader event_reader(bytes);
  std::size_t n = 0;
  while (event_reader.next(object)) n += dataflow::decode_online_event(object.bytes) ? 1 : 0;
  EXPECT_EQ(n, 20u);
  EXPECT_EQ(nlohmann::json::parse(events.err)["exported"], 20);

  EXPECT_EQ(st::run_tool("runfile " + part.string() + " --export acoustic").exit_code, 3);
}

TEST(ShoreEventsRunfile, ATornRunFileIsNamedAndExitsOne) {
  st::TempDir dir("runfile-torn");
  const fs::path part = seal_run_file(dir.path());
  fs::resize_file(part, fs::file_size(part) - 100);
  const auto r = st::run_tool("runfile " + part.string() + " --json");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("torn or bad object at byte"), std::string::npos) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_FALSE(j["problem"].is_null());
  EXPECT_EQ(j["summary_slices"], 10);  // the whole objects before the tear are counted
  EXPECT_EQ(st::run_tool("runfile /nonexistent/file.daq").exit_code, 2);
}

TEST(ShoreEventsRunfile, ListsAnAcousticPartPerDom) {
  st::TempDir dir("runfile-acoustic");
  AcousticSpoolConfig config;
  config.directory = dir.path();
  config.fsync = false;
  AcousticSpool spool(config);
  spool.begin_run(15, kDetector);
  for (std::uint32_t i = 0; i < 12; ++i) {
    dataflow::ClbHeader h;
    h.data_type = dataflow::DataType::Acoustic;
    h.utc_seconds = 1'700'000'000u;
    h.dom_id = 700 + i % 4;
    std::vector<std::uint8_t> d;
    dataflow::encode_clb_header(h, dataflow::HeaderLayout::Standard40, d);
    d.resize(d.size() + 30);
    spool.write(d, h.dom_id);
  }
  spool.end_run();
  const fs::path part = spool.ready_dir() / AcousticSpool::part_file_name(kDetector, 15, 0);
  const auto r = st::run_tool("runfile " + part.string() + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["datagrams"], 12);
  EXPECT_EQ(j["per_type"], (nlohmann::json{{"acoustic", 12}}));
  EXPECT_EQ(j["doms"], 4);
  EXPECT_EQ(j["datagrams_per_dom"]["701"], 3);
  EXPECT_EQ(j["utc_start"], "2023-11-14T22:13:20.000000000Z");
}

TEST(ShoreEventsRunfile, HelpSaysWhereTheOtherStreamsAreAndTheStoreCommandsStillNeedAStore) {
  const auto help = st::run_tool("--help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("runfile"), std::string::npos);
  EXPECT_NE(help.out.find("TMCH"), std::string::npos);
  EXPECT_EQ(st::run_tool("events --run 1").exit_code, 3);
  EXPECT_EQ(st::run_tool("runfile").exit_code, 3);
}
