// `[ingest] udp` and `udp_receive_buffer_mb`: typed once, bad entries named with key and reason.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config_error.hpp"

#include <string>

#include "shoredaq/firmware/config.hpp"

using namespace shoredaq::firmware;
using shoredaq::firmware::test_support::config_error_of;
using shoredaq::dataflow::DataType;
using ::testing::HasSubstr;


TEST(ConfigUdp, DefaultIsNoUdpAnd32MiB) {
  const NodeConfig c = parse_config("");
  EXPECT_TRUE(c.ingest.udp.empty());
  EXPECT_EQ(c.ingest.udp_receive_buffer_mb, 32u);
  const NodeConfig example = load_config(SHOREDAQ_SOURCE_DIR "/firmware/shoredaq.example.toml");
  EXPECT_EQ(example.ingest.udp, c.ingest.udp);
  EXPECT_EQ(example.ingest.udp_receive_buffer_mb, c.ingest.udp_receive_buffer_mb);
}

TEST(ConfigUdp, EntriesAreTyped) {
  const NodeConfig c = parse_config(R"(
[ingest]
udp = ["optical@127.0.0.1:56015", "monitoring@0.0.0.0:56017", "acoustic@[::1]:56016", "optical@127.0.0.1:0", "optical@127.0.0.1:0"]
udp_receive_buffer_mb = 8
)");
  ASSERT_EQ(c.ingest.udp.size(), 5u);
  EXPECT_EQ(c.ingest.udp[0], (UdpPortSetting{DataType::Optical, "127.0.0.1", 56015}));
  EXPECT_EQ(c.ingest.udp[1], (UdpPortSetting{DataType::Monitoring, "0.0.0.0", 56017}));
  EXPECT_EQ(c.ingest.udp[2], (UdpPortSetting{DataType::Acoustic, "::1", 56016}));
  EXPECT_EQ(c.ingest.udp[3].port, 0u);  // ephemeral ports may repeat
  EXPECT_EQ(c.ingest.udp_receive_buffer_mb, 8u);
  EXPECT_EQ(to_string(c.ingest.udp[2]), "acoustic@[::1]:56016");
  EXPECT_EQ(parse_udp_port_setting(to_string(c.ingest.udp[0])), c.ingest.udp[0]);
  EXPECT_EQ(c.ingest.endpoints.size(), 1u);  // the ZeroMQ default stays unless set
}

TEST(ConfigUdp, UdpWithoutZeroMqEndpoints) {
  const NodeConfig c = parse_config("[ingest]\nendpoints = []\nudp = [\"optical@127.0.0.1:0\"]\n");
  EXPECT_TRUE(c.ingest.endpoints.empty());
  EXPECT_EQ(c.ingest.udp.size(), 1u);
  // Neither: refused.
  EXPECT_THAT(config_error_of("[ingest]\nendpoints = []\nudp = []\n"), HasSubstr("ingest.endpoints: at least one endpoint"));
}

TEST(ConfigUdp, BadEntriesNameTheKeyAndReason) {
  const auto udp = [](const std::string& entries) { return config_error_of("[ingest]\nudp = [" + entries + "]\n"); };
  EXPECT_THAT(udp("\"127.0.0.1:56015\""), HasSubstr("ingest.udp[0]: \"127.0.0.1:56015\": no data type"));
  EXPECT_THAT(udp("\"optical@127.0.0.1:1\", \"timeslice@127.0.0.1:2\""),
              HasSubstr("ingest.udp[1]: \"timeslice@127.0.0.1:2\": data type \"timeslice\" is not optical"));
  EXPECT_THAT(udp("\"optical@127.0.0.1\""), HasSubstr("ingest.udp[0]"));
  EXPECT_THAT(udp("\"optical@127.0.0.1:65536\""), HasSubstr("port \"65536\" is not a number in [0, 65535]"));
  EXPECT_THAT(udp("\"optical@127.0.0.1:-1\""), HasSubstr("is not a number"));
  EXPECT_THAT(udp("\"optical@127.0.0.1:\""), HasSubstr("is not a number"));
  EXPECT_THAT(udp("\"optical@999.0.0.1:56015\""), HasSubstr("\"999.0.0.1\" is not an IPv4 address"));
  EXPECT_THAT(udp("\"optical@daq-node:56015\""), HasSubstr("is not an IPv4 address"));
  EXPECT_THAT(udp("\"optical@[::g]:56015\""), HasSubstr("\"::g\" is not an IPv6 address"));
  EXPECT_THAT(udp("\"optical@:56015\""), HasSubstr("ingest.udp[0]"));
  EXPECT_THAT(udp("\"optical@127.0.0.1:56015\", \"monitoring@127.0.0.1:56015\""),
              HasSubstr("ingest.udp[1]: \"monitoring@127.0.0.1:56015\": the same address and port as ingest.udp[0]"));
  EXPECT_THAT(udp("56015"), HasSubstr("ingest.udp: expected an array of strings"));
  EXPECT_THAT(config_error_of("[ingest]\nudp = \"optical@127.0.0.1:56015\"\n"), HasSubstr("ingest.udp: expected an array"));
  EXPECT_THAT(config_error_of("[ingest]\nudp_receive_buffer_mb = 0\n"), HasSubstr("ingest.udp_receive_buffer_mb: 0 is out of range"));
  EXPECT_THAT(config_error_of("[ingest]\nudp_receive_buffer_mb = 2048\n"), HasSubstr("ingest.udp_receive_buffer_mb"));
  EXPECT_THAT(config_error_of("[ingest]\nudp_port = 3\n"), HasSubstr("ingest.udp_port: unknown key"));
}

TEST(ConfigUdp, CurveNeedsZeroMqEndpoints) {
  EXPECT_THAT(config_error_of("[security]\nserver_secret_key_file = \"/k\"\n[ingest]\nendpoints = []\nudp = [\"optical@127.0.0.1:0\"]\n"
                       "curve = true\ncurve_allowed_keys = \"/keys\"\n"),
              HasSubstr("ingest.curve"));
}
