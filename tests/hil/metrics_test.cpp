// HIL: after a short du-sim run the node's Prometheus /metrics (scraped over loopback HTTP) parses
// as Prometheus text and its event and slice counters equal what the store holds (shore-events).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "../../firmware/tests/metrics_text_parser.hpp"
#include "hil_support.hpp"
#include "shoredaq/formats/detector.hpp"

using namespace hil;

namespace {

double sample(const shoredaq::test::PrometheusText& t, const std::string& family) {
  auto it = t.families.find(family);
  if (it == t.families.end() || it->second.samples.empty()) return -1;
  return it->second.samples.front().value;
}

}  // namespace

TEST(HilMetrics, CountersAfterARunMatchTheStore) {
  const int port = free_port();
  ASSERT_GT(port, 0);
  Rig rig("metrics", "first:2",
          "[metrics]\nenabled = true\nlisten_address = \"127.0.0.1\"\nport = " + std::to_string(port) + "\n");
  rig.start_run(5);
  rig.feed(rig.du_sim_args(5, 20, 21));
  rig.stop_run();

  const std::string text = http_get(port, "/metrics");
  ASSERT_FALSE(text.empty()) << "no /metrics on port " << port;
  const auto parsed = shoredaq::test::parse_prometheus_text(text);
  ASSERT_TRUE(parsed.errors.empty()) << parsed.errors.front() << "\n" << text;

  const auto runs = run({program("shore-events"), "--store", rig.node().store().string(), "runs", "--json"}, rig.tmp().path());
  ASSERT_EQ(runs.code, 0) << runs.err;
  const auto records = nlohmann::json::parse(runs.out);
  ASSERT_EQ(records.size(), 1u);
  const auto stored_slices = records[0]["counters"].value("store.slices", std::uint64_t{0});
  const auto events = run({program("shore-events"), "--store", rig.node().store().string(), "events", "--run", "5", "--json"},
                          rig.tmp().path());
  ASSERT_EQ(events.code, 0) << events.err;
  std::uint64_t stored_events = 0;
  for (char c : events.out) stored_events += c == '\n' ? 1 : 0;

  EXPECT_GT(stored_slices, 0u);
  EXPECT_GT(stored_events, 0u) << "du-sim's muons should trigger";
  EXPECT_EQ(sample(parsed, "shoredaq_slices_written_total"), static_cast<double>(stored_slices)) << text;
  EXPECT_EQ(sample(parsed, "shoredaq_events_total"), static_cast<double>(stored_events)) << text;
  EXPECT_EQ(sample(parsed, "shoredaq_slices_total"), 20.0) << text;
  EXPECT_EQ(sample(parsed, "shoredaq_running"), 0.0);
  EXPECT_EQ(sample(parsed, "shoredaq_run_number"), 5.0);
  // Per DU, the last slice of the run: every DOM reporting, rates of 18 x 31 PMTs at ~7-12 kHz.
  const auto detector = shoredaq::dataflow::Detector::load(rig.detx());
  ASSERT_EQ(detector.du_ids().size(), 2u);
  for (const int du : detector.du_ids()) {
    const std::map<std::string, std::string> labels{{"du", std::to_string(du)}};
    EXPECT_EQ(parsed.value("shoredaq_du_doms_expected", labels), 18.0) << text;
    EXPECT_EQ(parsed.value("shoredaq_du_doms_reporting", labels), 18.0) << text;
    const double rate_hz = parsed.value("shoredaq_du_rate_hz", labels).value_or(-1);
    EXPECT_GT(rate_hz, 18 * 31 * 6e3) << text;
    EXPECT_LT(rate_hz, 18 * 31 * 12e3) << text;
  }
  rig.quit();
}
