// HIL: run control through shorectl against a real shoredaq process. Invalid commands are refused
// with the current state; an invalid detector file or run setup never reaches Running; quit and
// SIGTERM end the daemon cleanly; a dead endpoint gives a clear timeout.
#include <gtest/gtest.h>

#include "hil_support.hpp"

using namespace hil;

namespace {
const std::string kDetx = std::string(SHOREDAQ_TESTDATA_DIR) + "/detx/KM3NeT_00000133_20221025.detx";

void expect_refused(const NodeSetup& node, std::vector<std::string> args, const std::string& state) {
  auto r = shorectl(node, args);
  EXPECT_EQ(r.code, 1) << args[0] << ": " << r.out << r.err;
  ASSERT_TRUE(r.reply.is_object()) << r.out;
  EXPECT_FALSE(r.reply.value("ok", true));
  EXPECT_EQ(r.reply.value("state", ""), state) << r.out;
  EXPECT_NE(r.reply.value("error", "").find(state), std::string::npos) << r.out;
}

void expect_ok(const NodeSetup& node, std::vector<std::string> args, const std::string& state) {
  auto r = shorectl(node, args);
  EXPECT_EQ(r.code, 0) << args[0] << ": " << r.out << r.err;
  EXPECT_EQ(r.reply.value("state", ""), state) << r.out;
}
}  // namespace

TEST(HilRunControl, InvalidCommandsAreRefusedWithTheState) {
  TempDir tmp("rc");
  auto node = make_node_setup(tmp);
  Child daemon = start_node(node);

  EXPECT_EQ(state_of(node), "Idle");
  expect_refused(node, {"start", "--run", "1"}, "Idle");
  expect_refused(node, {"configure", "--detx", kDetx}, "Idle");
  expect_refused(node, {"stop"}, "Idle");
  expect_ok(node, {"init"}, "Standby");
  expect_refused(node, {"init"}, "Standby");
  expect_refused(node, {"pause"}, "Standby");
  expect_refused(node, {"start", "--run", "1"}, "Standby");
  expect_ok(node, {"configure", "--detx", kDetx}, "Ready");
  expect_refused(node, {"continue"}, "Ready");
  expect_refused(node, {"stop"}, "Ready");
  expect_ok(node, {"start", "--run", "11"}, "Running");
  expect_refused(node, {"configure", "--detx", kDetx}, "Running");
  expect_refused(node, {"reset"}, "Running");
  expect_refused(node, {"start", "--run", "12"}, "Running");
  expect_ok(node, {"pause"}, "Paused");
  expect_refused(node, {"pause"}, "Paused");
  expect_ok(node, {"continue"}, "Running");
  expect_ok(node, {"stop"}, "Standby");
  // stop -> Standby: the next run needs a fresh configure.
  expect_refused(node, {"start", "--run", "12"}, "Standby");
  expect_ok(node, {"reset"}, "Idle");
  expect_ok(node, {"quit"}, "Exited");
  EXPECT_EQ(daemon.wait(20s), 0) << daemon.err();
}

TEST(HilRunControl, InvalidSetupNeverReachesRunning) {
  TempDir tmp("setup");
  auto node = make_node_setup(tmp);
  Child daemon = start_node(node);
  expect_ok(node, {"init"}, "Standby");

  // Missing detector file, malformed detector file.
  auto r = shorectl(node, {"configure", "--detx", (tmp / "nope.detx").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.reply.value("state", ""), "Standby");
  write_file(tmp / "bad.detx", "this is not a detector\n");
  r = shorectl(node, {"configure", "--detx", (tmp / "bad.detx").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.reply.value("state", ""), "Standby");

  // A run setup with an unknown key and one with an out-of-range value: the key is named.
  write_file(tmp / "typo.toml", "[trigger]\nTMaxLocal_nss = 10\n");
  r = shorectl(node, {"configure", "--detx", kDetx, "--setup", (tmp / "typo.toml").string()});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_EQ(r.reply.value("state", ""), "Standby");
  EXPECT_NE(r.reply.value("error", "").find("TMaxLocal_nss"), std::string::npos) << r.out;
  write_file(tmp / "range.toml", "[trigger.muon3d]\nroad_width_m = -3.0\n");
  r = shorectl(node, {"configure", "--detx", kDetx, "--setup", (tmp / "range.toml").string()});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.reply.value("error", "").find("road_width_m"), std::string::npos) << r.out;
  write_file(tmp / "section.toml", "[triggers]\nx = 1\n");
  r = shorectl(node, {"configure", "--detx", kDetx, "--setup", (tmp / "section.toml").string()});
  EXPECT_EQ(r.code, 1) << r.out;

  expect_refused(node, {"start", "--run", "3"}, "Standby");
  EXPECT_EQ(state_of(node), "Standby");

  // After a good configure the node reaches Running.
  write_file(tmp / "good.toml", "[trigger]\n");
  expect_ok(node, {"configure", "--detx", kDetx, "--setup", (tmp / "good.toml").string()}, "Ready");
  expect_ok(node, {"start", "--run", "3"}, "Running");
  // SIGTERM = stop + quit.
  daemon.signal(SIGTERM);
  EXPECT_EQ(daemon.wait(30s), 0) << daemon.err();
}

TEST(HilRunControl, ShorectlTimesOutOnADeadEndpoint) {
  TempDir tmp("dead");
  auto node = make_node_setup(tmp);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = shorectl(node, {"status"}, 500ms);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("did not answer"), std::string::npos) << r.err;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
}

TEST(HilRunControl, CheckConfig) {
  TempDir tmp("check");
  auto node = make_node_setup(tmp);
  auto ok = run({program("shoredaq"), "--check-config", node.config().string()}, tmp.path());
  EXPECT_EQ(ok.code, 0) << ok.err;
  write_file(tmp / "bad.toml", "[builder]\nexpiry_ms = 1\n");
  auto bad = run({program("shoredaq"), "--check-config", (tmp / "bad.toml").string()}, tmp.path());
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("builder.expiry_ms"), std::string::npos) << bad.err;
  auto example = run({program("shoredaq"), "--check-config", std::string(SHOREDAQ_SOURCE_DIR) + "/firmware/shoredaq.example.toml"},
                     tmp.path());
  EXPECT_EQ(example.code, 0) << example.err;
}
