// [snews]: heartbeat period and the hook, with their defaults (the shipped example's) and the
// values refused by key.
#include <gtest/gtest.h>

#include "config_error.hpp"

#include "shoredaq/firmware/config.hpp"

using namespace shoredaq::firmware;
using shoredaq::firmware::test_support::config_error_of;

TEST(ConfigSnews, DefaultsAreTheExamplesAndTheHookIsOff) {
  const NodeConfig d = parse_config("");
  const NodeConfig example = load_config(SHOREDAQ_SOURCE_DIR "/firmware/shoredaq.example.toml");
  EXPECT_EQ(d.snews.heartbeat_period_s, 60.0);
  EXPECT_TRUE(d.snews.hook_command.empty());
  EXPECT_TRUE(d.snews.hook_endpoint.empty());
  EXPECT_EQ(example.snews.heartbeat_period_s, d.snews.heartbeat_period_s);
  EXPECT_EQ(example.snews.hook_command, d.snews.hook_command);
  EXPECT_EQ(example.snews.hook_endpoint, d.snews.hook_endpoint);
  EXPECT_EQ(example.snews.hook_timeout_ms, d.snews.hook_timeout_ms);
  EXPECT_EQ(example.snews.hook_queue_messages, d.snews.hook_queue_messages);
  EXPECT_EQ(example.snews.hook_sndhwm, d.snews.hook_sndhwm);
  EXPECT_EQ(example.snews.hook_linger_ms, d.snews.hook_linger_ms);
  EXPECT_EQ(example.snews.hook_test_messages, d.snews.hook_test_messages);
}

TEST(ConfigSnews, KeysAreReadAndBadValuesNamed) {
  const NodeConfig c = parse_config(R"(
[snews]
heartbeat_period_s = 0.5
hook_command = ["/usr/local/bin/snews-publish", "--stdin"]
hook_timeout_ms = 2000
hook_queue_messages = 8
hook_test_messages = false
)");
  EXPECT_EQ(c.snews.heartbeat_period_s, 0.5);
  EXPECT_EQ(c.snews.hook_command, (std::vector<std::string>{"/usr/local/bin/snews-publish", "--stdin"}));
  EXPECT_EQ(c.snews.hook_timeout_ms, 2000u);
  EXPECT_EQ(c.snews.hook_queue_messages, 8u);
  EXPECT_FALSE(c.snews.hook_test_messages);
  EXPECT_EQ(parse_config("[snews]\nhook_endpoint = \"ipc:///run/snews.sock\"\nhook_sndhwm = 5\n").snews.hook_sndhwm, 5);

  EXPECT_NE(config_error_of("[snews]\nheartbeat_period_s = 0.05\n").find("snews.heartbeat_period_s"), std::string::npos);
  EXPECT_NE(config_error_of("[snews]\nheartbeat_period_s = -1\n").find("snews.heartbeat_period_s"), std::string::npos);
  EXPECT_NE(config_error_of("[snews]\nhook_command = [\"snews-publish\"]\n").find("absolute path"), std::string::npos);
  EXPECT_NE(config_error_of("[snews]\nhook_command = [\"/bin/true\"]\nhook_endpoint = \"ipc:///x\"\n").find("choose one hook"),
            std::string::npos);
  EXPECT_NE(config_error_of("[snews]\nhook_endpoint = \"bogus\"\n").find("snews.hook_endpoint"), std::string::npos);
  EXPECT_NE(config_error_of("[snews]\nhook_timeout_ms = 1\n").find("snews.hook_timeout_ms"), std::string::npos);
  EXPECT_NE(config_error_of("[snews]\nhook = 1\n").find("snews.hook"), std::string::npos);
  EXPECT_EQ(parse_config("[snews]\nheartbeat_period_s = 0\n").snews.heartbeat_period_s, 0.0);
}
