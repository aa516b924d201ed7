// HIL: the streams besides events and summaries (issue "plug into the station"): the DOMs' TMCH
// monitoring reaches /status per DOM and /metrics per DU.
#include <gtest/gtest.h>

#include <map>

#include "hil_support.hpp"
#include "shoredaq/formats/clb_datagram.hpp"
#include "shoredaq/formats/record_stream.hpp"

using namespace hil;

namespace {
std::uint64_t u64(const nlohmann::json& j, const std::string& key) { return j.at(key).get<std::uint64_t>(); }
}  // namespace

TEST(HilStreams, MonitoringReachesStatusPerDomAndMetricsPerDu) {
  Rig rig("streams-monit", "first:2", "[metrics]\nenabled = true\nport = 0\n");
  const int port = metrics_port_of(rig.daemon());
  rig.start_run(31);
  constexpr unsigned kSlices = 20;
  auto a = rig.du_sim_args(31, kSlices, 32);
  a.push_back("--monitoring");
  const auto sim = rig.feed(a);
  ASSERT_TRUE(rig.wait_slices(kSlices - 11));
  const std::string metrics = http_get(port, "/metrics");
  rig.stop_run();
  const auto status = rig.status();
  const auto& c = status["counters"];
  // One TMCH packet per DOM per slice, each passed on with the next slice the builder emits; only
  // packets that came after the run's last slice have no slice to go with (counted).
  const std::uint64_t attached = u64(c, "builder.monitoring_attached");
  EXPECT_EQ(u64(c, "builder.monitoring_datagrams"), 36u * kSlices) << sim.dump();
  EXPECT_EQ(attached + u64(status["drops"], "builder.monitoring_unattached"), 36u * kSlices);
  EXPECT_GE(attached, 36u * (kSlices - 1));
  const auto& doms = status["detector_health"]["doms_monitoring"];
  ASSERT_EQ(doms.size(), 36u) << status["detector_health"].dump(1);
  for (const auto& d : doms) {
    EXPECT_GE(d["packets"].get<unsigned>(), kSlices - 1);
    EXPECT_GT(d["temperature_c"].get<double>(), 0.0);
  }
  for (const auto& du : status["detector_health"]["dus"]) EXPECT_EQ(du["doms_monitoring"], 18u);
  EXPECT_NE(metrics.find("shoredaq_du_temperature_celsius{du="), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("shoredaq_du_doms_monitoring{du="), std::string::npos);
  rig.quit();
}

// Acoustic data are not dropped: every TAES datagram du-sim sends is in the run's sealed acoustic
// parts (checked against their manifests) and counted per run; none is lost.
TEST(HilStreams, AcousticDatagramsAreKeptInTheRunsAcousticParts) {
  Rig rig("streams-acoustic", "first:1");
  rig.start_run(32);
  constexpr unsigned kSlices = 10;
  auto a = rig.du_sim_args(32, kSlices, 33);
  a.insert(a.end(), {"--acoustic", "--acoustic-rate-hz", "20"});
  const auto sim = rig.feed(a);
  ASSERT_TRUE(rig.wait_slices(kSlices - 1));
  const std::uint64_t sent = sim.at("acoustic_datagrams").get<std::uint64_t>();
  ASSERT_GT(sent, 0u) << sim.dump();
  // Every datagram sent is in the node before the run stops (they are counted as they arrive).
  ASSERT_TRUE(wait_until([&] { return u64(rig.status()["counters"], "builder.acoustic_datagrams") == sent; }, 30s));
  rig.stop_run();
  const auto status = rig.status();
  const auto& c = status["counters"];
  EXPECT_EQ(u64(c, "acoustic.datagrams_written"), sent) << status.dump(1);
  EXPECT_EQ(u64(status["drops"], "acoustic.datagrams_lost"), 0u);
  EXPECT_EQ(u64(status["drops"], "acoustic.datagrams_bad"), 0u);
  // The sealed parts: their manifests count every datagram, their records are whole TAES datagrams.
  std::uint64_t in_parts = 0;
  for (const auto& e : fs::directory_iterator(rig.node().spool() / "ready")) {
    const std::string name = e.path().filename().string();
    if (name.size() < 13 || name.substr(name.size() - 13) != ".acoustic.dqd") continue;
    const auto manifest = nlohmann::json::parse(read_file(fs::path(e.path().string() + ".json")));
    EXPECT_EQ(manifest["data_type"], "acoustic");
    EXPECT_EQ(manifest["run"], 32);
    const auto records = shoredaq::dataflow::read_dqd_file(e.path());
    EXPECT_EQ(manifest["datagrams"].get<std::uint64_t>(), records.size());
    for (const auto& r : records) {
      const auto parsed = shoredaq::dataflow::parse_clb_datagram(r);
      EXPECT_EQ(parsed.error, shoredaq::dataflow::DatagramError::None);
      EXPECT_EQ(parsed.datagram.header.data_type, shoredaq::dataflow::DataType::Acoustic);
    }
    in_parts += records.size();
  }
  EXPECT_EQ(in_parts, sent);
  rig.quit();
}

// Every stream kept in the run files: events, summary slices, the prescaled L1 timeslices, the SN
// slices and the TMCH packets of a short run, decoded by `shore-events runfile` (the online-format
// reader that checks the collaboration's reference files).
TEST(HilStreams, RunFilesKeepEventsSummariesPrescaledL1SnSlicesAndMonitoring) {
  Rig rig("streams-runfile", "first:2", "[builder]\nqueue_slices = 64\n", "[trigger.prescale]\nl1 = 5\nsn = 1\n");
  rig.start_run(33);
  constexpr unsigned kSlices = 20;
  auto a = rig.du_sim_args(33, kSlices, 34);
  a.insert(a.end(), {"--monitoring", "--muon-rate-hz", "20", "--muon-yield", "400"});
  rig.feed(a);
  ASSERT_TRUE(rig.wait_slices(kSlices));
  rig.stop_run();
  const auto status = rig.status();
  const auto& c = status["counters"];
  std::map<std::string, std::uint64_t> totals;
  std::size_t parts = 0;
  for (const auto& e : fs::directory_iterator(rig.node().spool() / "ready")) {
    if (e.path().extension() != ".daq") continue;
    ++parts;
    const auto r = run({program("shore-events"), "runfile", e.path().string(), "--json"}, rig.tmp().path());
    ASSERT_EQ(r.code, 0) << r.err << r.out;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_TRUE(j["problem"].is_null()) << r.out;
    EXPECT_EQ(j["unknown_objects"], 0) << r.out;
    for (const char* k : {"summary_slices", "events", "monitoring_packets"}) totals[k] += j[k].get<std::uint64_t>();
    for (const auto& [k, v] : j["timeslices"].items()) totals["timeslices_" + k] += v.get<std::uint64_t>();
  }
  ASSERT_GE(parts, 1u);
  EXPECT_EQ(totals["summary_slices"], kSlices);
  EXPECT_EQ(totals["events"], u64(c, "events"));
  EXPECT_GT(totals["events"], 0u);
  EXPECT_EQ(totals["timeslices_l1"], kSlices / 5);
  EXPECT_EQ(totals["timeslices_sn"], kSlices);
  EXPECT_EQ(totals["monitoring_packets"], u64(c, "builder.monitoring_attached"));
  rig.quit();
}
