// HIL: the node's SNEWS side end to end (issue 12). A run with an injected supernova burst on a
// node whose SNEWS hook is a command (a script this test writes, capturing each message from its
// stdin): heartbeats "ON" once per 2 s of detector time, the one alert, a final "OFF" at stop, all
// also on the alert stream (sn.<det>, sn_heartbeat.<det>); the alert is in the store's run record
// (shore-events alerts), in the run file (shore-events runfile), the store still verifies, and
// /status counts heartbeats and hook deliveries.
#include <gtest/gtest.h>

#include <zmq.hpp>

#include "hil_support.hpp"

using namespace hil;

namespace {

std::vector<nlohmann::json> captured(const fs::path& file) {
  std::vector<nlohmann::json> out;
  std::istringstream in(read_file(file));
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object()) out.push_back(std::move(j));
  }
  return out;
}

}  // namespace

TEST(HilSnews, HeartbeatsTheAlertAndOffReachTheHookTheStreamTheStoreAndTheRunFile) {
  TempDir hook_dir("snews-hook");
  const fs::path capture = hook_dir / "captured.jsonl";
  const fs::path script = hook_dir / "snews-hook.sh";
  // One JSON message per line (the node's JSON has no newline of its own).
  write_file(script, "#!/bin/sh\n{ cat; echo; } >> '" + capture.string() + "'\n");
  fs::permissions(script, fs::perms::owner_all);
  const std::string alerts_endpoint = "ipc://" + (hook_dir / "alerts.sock").string();
  Rig rig("snews", "first:1",
          "[snews]\nheartbeat_period_s = 2\nhook_command = [\"" + script.string() +
              "\"]\nhook_timeout_ms = 5000\n[alerts]\nendpoint = \"" + alerts_endpoint +
              "\"\n[metrics]\nenabled = false\n[builder]\nqueue_slices = 64\n",
          "[trigger.supernova]\nbaseline_s = 20\nmin_baseline_s = 5\n");

  zmq::context_t context;
  zmq::socket_t sub(context, zmq::socket_type::sub);
  sub.set(zmq::sockopt::linger, 0);
  sub.set(zmq::sockopt::rcvtimeo, 200);
  sub.set(zmq::sockopt::reconnect_ivl, 10);
  sub.set(zmq::sockopt::subscribe, "sn");  // sn.133 (alerts) and sn_heartbeat.133
  sub.connect(alerts_endpoint);

  constexpr std::uint32_t kRun = 91;
  constexpr unsigned kSlices = 150;  // 15 s of detector time; the burst at 10 s for 3 s
  rig.start_run(kRun);
  auto args = rig.du_sim_args(kRun, kSlices, 5);
  args.insert(args.end(), {"--sn-burst-at", "10", "--sn-burst-seconds", "3"});
  rig.feed(args);
  ASSERT_TRUE(rig.wait_slices(kSlices - 11));
  rig.stop_run();

  // The hook: ON heartbeats every 2 s of detector time, the alert among them, OFF last.
  ASSERT_TRUE(wait_until([&] {
    const auto m = captured(capture);
    return !m.empty() && m.back().value("detector_status", "") == "OFF";
  }, 30s, 50ms)) << read_file(capture);
  const auto messages = captured(capture);
  std::vector<nlohmann::json> on, alerts;
  for (const auto& m : messages) {
    if (m.contains("detector_status") && m["detector_status"] == "ON") on.push_back(m);
    if (m.contains("neutrino_time")) alerts.push_back(m);
  }
  ASSERT_EQ(alerts.size(), 1u) << read_file(capture);
  EXPECT_EQ(alerts[0]["meta"]["run"], kRun);
  EXPECT_EQ(alerts[0]["is_test"], false);
  // Slices the node built: 139..150 (the last few may expire at stop); one ON per 20 of them.
  EXPECT_GE(on.size(), 7u);
  EXPECT_LE(on.size(), 8u);
  EXPECT_EQ(messages.size(), on.size() + 2);
  for (std::size_t i = 0; i < on.size(); ++i) {
    EXPECT_EQ(on[i]["meta"]["run"], kRun);
    EXPECT_EQ(on[i]["meta"]["sequence"], i);
    EXPECT_EQ(on[i]["detector_name"], "KM3NeT");
    EXPECT_GT(on[i]["meta"]["effective_doms"].get<unsigned>(), 0u);
    EXPECT_LE(on[i]["meta"]["effective_doms"].get<unsigned>(), 18u);  // one DU
  }
  EXPECT_TRUE(on.back()["meta"]["significance_sigma"].is_number()) << "the baseline is ready by then";

  // The alert stream carried the same messages under the two topics.
  std::size_t stream_heartbeats = 0, stream_alerts = 0;
  for (;;) {
    zmq::message_t topic, body;
    if (!sub.recv(topic)) break;  // 200 ms without a message: all received
    ASSERT_TRUE(sub.recv(body));
    const auto j = nlohmann::json::parse(body.to_string());
    if (topic.to_string() == "sn_heartbeat.133") ++stream_heartbeats;
    if (topic.to_string() == "sn.133") {
      ++stream_alerts;
      EXPECT_EQ(j, alerts[0]);
    }
  }
  // A subscriber joins a PUB asynchronously: it may miss the very first heartbeat, nothing later.
  EXPECT_GE(stream_heartbeats, on.size());
  EXPECT_LE(stream_heartbeats, on.size() + 1);
  EXPECT_EQ(stream_alerts, 1u);

  const auto status = rig.status();
  const auto& counters = status["counters"];
  EXPECT_EQ(counters["supernova.heartbeats"], on.size() + 1);
  EXPECT_EQ(counters["alerts.snews_heartbeats_sent"], on.size() + 1);
  EXPECT_EQ(counters["snews_hook.delivered"], messages.size());
  EXPECT_EQ(counters["snews_hook.heartbeats_offered"], on.size() + 1);
  EXPECT_EQ(counters["snews_hook.alerts_offered"], 1);
  EXPECT_EQ(status["supernova"]["heartbeats"]["off_sent"], 1);

  // The store keeps the alert in the run record; verify still passes.
  const auto store_alerts = run({program("shore-events"), "--store", rig.node().store().string(), "alerts", "--run",
                                 std::to_string(kRun), "--json"},
                                rig.tmp().path());
  ASSERT_EQ(store_alerts.code, 0) << store_alerts.err;
  const auto kept = nlohmann::json::parse(store_alerts.out);
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0], alerts[0]);
  const auto verify = run({program("shore-events"), "--store", rig.node().store().string(), "verify", "--deep"},
                          rig.tmp().path());
  EXPECT_EQ(verify.code, 0) << verify.out << verify.err;

  // ... and the run file too.
  std::size_t in_run_files = 0;
  for (const auto& e : fs::directory_iterator(rig.node().spool() / "ready")) {
    if (e.path().extension() != ".daq") continue;
    const auto r = run({program("shore-events"), "runfile", e.path().string(), "--json"}, rig.tmp().path());
    ASSERT_EQ(r.code, 0) << r.err;
    const auto listed = nlohmann::json::parse(r.out);
    for (const auto& a : listed["supernova_alerts"]) {
      EXPECT_EQ(a, alerts[0]);
      ++in_run_files;
    }
  }
  EXPECT_EQ(in_run_files, 1u);
  rig.quit();
}
