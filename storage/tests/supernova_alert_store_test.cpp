// Supernova alerts kept (issue 12): in the event store's run record, with their slice in one
// transaction (shore-events alerts lists them; verify checks them; the run control's own record
// cannot wipe them), and in the run file as a shoredaq object 3002 (shore-events runfile lists
// them; the manifest counts them and still validates; a torn object is told apart).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "shoredaq/storage/event_store.hpp"
#include "shoredaq/storage/supernova_alert_record.hpp"
#include "shoredaq/storage/tier0_manifest.hpp"
#include "shoredaq/storage/tier0_spool.hpp"
#include "shore_events_tool.hpp"
#include "storage_test_support.hpp"
#include "tier0_spool_test_support.hpp"

using namespace shoredaq;
using namespace shoredaq::storage;
namespace st = shoredaq::storage::testing;
namespace fs = std::filesystem;

namespace {

constexpr std::int32_t kDetector = 133;

std::string alert_json(std::uint32_t frame) {
  return nlohmann::json{{"detector_name", "KM3NeT"},
                        {"machine_time", "2026-12-06T08:00:00.000000000"},
                        {"neutrino_time", "2026-12-06T07:59:59.500000000"},
                        {"p_val", 1e-9},
                        {"is_test", false},
                        {"meta", {{"frame_index", frame}, {"significance_sigma", 6.1}}}}
      .dump();
}

}  // namespace

TEST(SupernovaAlertRecord, RoundTripsAndRefusesDamage) {
  dataflow::SliceHeader h;
  h.detector_id = kDetector;
  h.run = 9;
  h.frame_index = 42;
  h.utc_seconds = 1'700'000'004;
  h.ticks_16ns = 12'500'000;
  std::vector<std::uint8_t> bytes;
  const std::string message = alert_json(42);
  encode_online_supernova_alert(h, message, bytes);
  ASSERT_EQ(bytes.size(), kOnlineSupernovaAlertFixedBytes + message.size());
  const auto decoded = decode_online_supernova_alert(bytes);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded.value.header, h);
  EXPECT_EQ(decoded.value.message, message);
  auto wrong_count = bytes;
  wrong_count[kOnlineSupernovaAlertFixedBytes - 4] ^= 1;
  EXPECT_EQ(decode_online_supernova_alert(wrong_count).error, dataflow::OnlineError::LengthMismatch);
  EXPECT_FALSE(decode_online_supernova_alert(std::span(bytes).first(10)));
}

TEST(SupernovaAlertStore, AlertsGoIntoTheRunRecordWithTheirSliceAndSurviveTheRunControlsRecord) {
  st::TempDir dir("sn-store");
  {
    EventStoreConfig c;
    c.directory = dir.path();
    c.initial_map_bytes = 1 << 20;
    c.disk_reserve_bytes = 0;
    c.sync = SyncMode::NoSync;
    c.detector_id = kDetector;
    EventStore store(c);
    dataflow::RunRecord start;
    start.run = 21;
    start.detector_id = kDetector;
    ASSERT_TRUE(store.put_run_record(start));
    const std::vector<std::string> first{alert_json(3)}, second{alert_json(8)};
    for (std::uint32_t frame = 1; frame <= 10; ++frame) {
      const auto events = st::make_slice_events(kDetector, 21, frame, 1);
      const auto summary = st::make_summary(kDetector, 21, frame);
      const std::span<const std::string> alerts = frame == 3 ? first : frame == 8 ? second : std::span<const std::string>{};
      ASSERT_TRUE(store.commit_slice(21, frame, events, &summary, alerts));
    }
    auto record = store.reader().run(21);
    ASSERT_TRUE(record);
    EXPECT_EQ(record->supernova_alerts, (std::vector<std::string>{first[0], second[0]}));
    EXPECT_EQ(record->counter(kCounterStoredSupernovaAlerts), 2u);
    // The run control writes its view at stop: the alerts stay.
    dataflow::RunRecord stop = start;
    stop.state = dataflow::RunOutcome::Stopped;
    stop.counters["supernova.alerts"] = 2;
    ASSERT_TRUE(store.put_run_record(stop));
    record = store.reader().run(21);
    EXPECT_EQ(record->supernova_alerts.size(), 2u);
    EXPECT_EQ(record->state, dataflow::RunOutcome::Stopped);
    VerifyOptions deep;
    deep.deep = true;
    const auto report = store.reader().verify(deep);
    EXPECT_TRUE(report.ok()) << (report.problems.empty() ? "" : report.problems.front());
  }
  const auto listed = st::run_tool("--store " + dir.path().string() + " alerts --run 21 --json");
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  const auto alerts = nlohmann::json::parse(listed.out);
  ASSERT_EQ(alerts.size(), 2u);
  EXPECT_EQ(alerts[1]["meta"]["frame_index"], 8);
  const auto text = st::run_tool("--store " + dir.path().string() + " alerts --run 21");
  EXPECT_NE(text.out.find("2 supernova alert(s)"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("2026-12-06T07:59:59.500000000"), std::string::npos) << text.out;
  EXPECT_EQ(st::run_tool("--store " + dir.path().string() + " alerts --run 22").exit_code, 1) << "no such run";
  EXPECT_EQ(st::run_tool("--store " + dir.path().string() + " verify --deep").exit_code, 0);
}

TEST(SupernovaAlertSpool, TheRunFileKeepsTheAlertWithItsSliceAndRunfileListsIt) {
  st::TempDir dir("sn-spool");
  Tier0SpoolConfig config;
  config.directory = dir.path();
  config.fsync = false;
  Tier0Spool spool(config);
  spool.begin_run(23, kDetector);
  for (std::uint32_t f = 0; f < 10; ++f) {
    auto products = st::make_products(kDetector, 23, f, 1, {}, 0);
    if (f == 6) products.supernova_alerts.push_back(alert_json(6));
    spool.write_slice(products);
  }
  spool.end_run();
  const fs::path part = spool.ready_dir() / Tier0Spool::part_file_name(kDetector, 23, 0);
  const auto manifest_text = [&] {
    std::ifstream in(part.string() + ".json");
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }();
  EXPECT_TRUE(validate_tier0_manifest(manifest_text).empty());
  const auto manifest = nlohmann::json::parse(manifest_text);
  EXPECT_EQ(manifest["supernova_alerts"], 1);
  EXPECT_EQ(manifest["summary_slices"], 10);

  const auto r = st::run_tool("runfile " + part.string() + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["supernova_alerts"].size(), 1u);
  EXPECT_EQ(j["supernova_alerts"][0]["meta"]["frame_index"], 6);
  EXPECT_EQ(j["unknown_objects"], 0);
  EXPECT_EQ(j["last_frame"], 9);
  const auto text = st::run_tool("runfile " + part.string());
  EXPECT_NE(text.out.find("supernova alerts   1"), std::string::npos) << text.out;
}

TEST(SupernovaAlertSpool, RecoveryOfACrashedPartKeepsAndCountsTheAlert) {
  st::TempDir dir("sn-spool-recover");
  const fs::path open = dir.path() / "open";
  fs::create_directories(open);
  std::vector<std::uint8_t> bytes;
  for (std::uint32_t f = 0; f < 4; ++f) {
    const auto p = st::make_products(kDetector, 24, f, 1, {}, 0);
    dataflow::encode_online_summary_slice(p.summary, bytes);
    if (f == 2) encode_online_supernova_alert(p.header, alert_json(2), bytes);
    for (const auto& e : p.events) dataflow::encode_online_event(e, bytes);
  }
  const std::string name = Tier0Spool::part_file_name(kDetector, 24, 0);
  std::ofstream(open / name, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                      static_cast<std::streamsize>(bytes.size()));
  Tier0SpoolConfig config;
  config.directory = dir.path();
  config.fsync = false;
  Tier0Spool spool(config);
  EXPECT_EQ(spool.counters().parts_recovered, 1u);
  EXPECT_EQ(spool.counters().damaged_bytes, 0u) << "the alert object is not a torn tail";
  const auto manifest = st::read_json(spool.ready_dir() / (name + ".json"));
  EXPECT_EQ(manifest["size_bytes"], bytes.size());
  EXPECT_EQ(manifest["supernova_alerts"], 1);
  EXPECT_EQ(manifest["events"], 4);
  EXPECT_TRUE(validate_tier0_manifest(manifest.dump()).empty());
}
