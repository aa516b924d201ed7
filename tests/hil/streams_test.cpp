// HIL: the streams besides events and summaries (issue "plug into the station"): the DOMs' TMCH
// monitoring reaches /status per DOM and /metrics per DU.
#include <gtest/gtest.h>

#include "hil_support.hpp"

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
