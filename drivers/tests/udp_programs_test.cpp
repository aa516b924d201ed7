// End to end with the real programs on loopback: du-sim --udp (live, and --replay of a .dqd) ->
// clb-bridge -> a ZeroMQ PULL in the test gets exactly the records of the .dqd du-sim writes for
// the same seed, and the bridge reports zero kernel drops (rate-limited sender, big buffer).

#include <gtest/gtest.h>

#include <algorithm>
#include <future>
#include <sstream>

#include <zmq.hpp>

#include "../../tests/hil/hil_support.hpp"
#include "shoredaq/formats/record_stream.hpp"
#include "udp_test_support.hpp"

namespace {

using namespace std::chrono_literals;
const std::string kDuSim = SHOREDAQ_BINARY_DIR "/drivers/du-sim";
const std::string kBridge = SHOREDAQ_BINARY_DIR "/drivers/clb-bridge";
const std::string kDetx = SHOREDAQ_TESTDATA_DIR "/detx/KM3NeT_00000133_20221025.detx";
using Records = std::vector<std::vector<std::uint8_t>>;

// The JSON lines a program printed so far.
std::vector<nlohmann::json> json_lines(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded()) out.push_back(j);
  }
  return out;
}

Records receive_records(zmq::socket_t& pull, std::size_t expected) {
  Records out;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (out.size() < expected && std::chrono::steady_clock::now() < deadline) {
    zmq::pollitem_t item{pull.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, 100ms);
    zmq::message_t m;
    if (!pull.recv(m, zmq::recv_flags::dontwait)) continue;
    shoredaq::dataflow::for_each_record({static_cast<const std::uint8_t*>(m.data()), m.size()},
                                        [&](std::span<const std::uint8_t> r) { out.emplace_back(r.begin(), r.end()); });
  }
  return out;
}

class UdpPrograms : public ::testing::Test {
 protected:
  void SetUp() override {
    pull_.set(zmq::sockopt::linger, 0);
    pull_.bind("tcp://127.0.0.1:*");
    // The reference: the same simulation into a file (TTDC and TMCH).
    const auto r = hil::run({kDuSim, "--detx", kDetx, "--dus", "9", "--slices", "3", "--seed", "21", "--start-utc",
                             "1700000000", "--monitoring", "--out", (tmp_ / "ref.dqd").string()},
                            tmp_.path());
    ASSERT_EQ(r.code, 0) << r.err;
    reference_ = shoredaq::dataflow::read_dqd_file(tmp_ / "ref.dqd");
    ASSERT_GT(reference_.size(), 1000u);
  }

  // Starts clb-bridge on ephemeral loopback ports; returns {optical, monitoring} as HOST:PORT.
  std::pair<std::string, std::string> start_bridge() {
    bridge_ = hil::Child({kBridge, "--optical", "127.0.0.1:0", "--monitoring", "127.0.0.1:0", "--endpoint",
                          pull_.get(zmq::sockopt::last_endpoint), "--stats-interval-s", "0", "--linger-ms", "5000"},
                         tmp_ / "bridge.out", tmp_ / "bridge.err");
    std::vector<nlohmann::json> lines;
    EXPECT_TRUE(hil::wait_until([&] { return !(lines = json_lines(bridge_.out())).empty() || !bridge_.running(); }, 20s));
    if (lines.empty()) throw std::runtime_error("clb-bridge did not come up: " + bridge_.err());
    const auto& sockets = lines.front().at("sockets");
    EXPECT_EQ(lines.front().at("event"), "listening");
    return {sockets.at(0).at("address").get<std::string>(), sockets.at(1).at("address").get<std::string>()};
  }

  // Stops the bridge (SIGTERM) and returns its final counters.
  nlohmann::json stop_bridge() {
    bridge_.signal(SIGTERM);
    const auto code = bridge_.wait(30s);
    EXPECT_EQ(code, 0) << bridge_.err();
    const std::string out = bridge_.out();
    const auto lines = json_lines(out);
    EXPECT_FALSE(lines.empty());
    // stdout is for the JSON lines only (logs go to stderr), so a supervisor can parse every line.
    EXPECT_EQ(lines.size(), static_cast<std::size_t>(std::count(out.begin(), out.end(), '\n'))) << out;
    return lines.empty() ? nlohmann::json{} : lines.back();
  }

  // What went through: the same records (as a set: the two ports interleave), nothing lost anywhere.
  void expect_everything_through(Records received, const nlohmann::json& bridge_exit) {
    EXPECT_EQ(bridge_exit.at("event"), "exit");
    ASSERT_EQ(received.size(), reference_.size());
    Records expected = reference_;
    std::sort(received.begin(), received.end());
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(received, expected);
    std::uint64_t datagrams = 0;
    for (const auto& s : bridge_exit.at("sockets")) {
      SCOPED_TRACE(s.dump());
      EXPECT_EQ(s.at("kernel_drops").get<std::uint64_t>(), 0u);
      EXPECT_EQ(s.at("truncated").get<std::uint64_t>(), 0u);
      EXPECT_TRUE(s.at("rejected").empty());
      EXPECT_EQ(s.at("other_data_type").get<std::uint64_t>(), 0u);
      datagrams += s.at("datagrams").get<std::uint64_t>();
    }
    EXPECT_EQ(datagrams, reference_.size());
    EXPECT_EQ(bridge_exit.at("forward").at("records").get<std::size_t>(), reference_.size());
    EXPECT_EQ(bridge_exit.at("forward").at("hwm_dropped_records").get<std::uint64_t>(), 0u);
  }

  hil::TempDir tmp_{"udp-programs"};
  zmq::context_t context_;
  zmq::socket_t pull_{context_, zmq::socket_type::pull};
  Records reference_;
  hil::Child bridge_;
};

TEST_F(UdpPrograms, DuSimOverUdpThroughTheBridgeGivesTheRecordsOfTheFile) {
  const auto [optical, monitoring] = start_bridge();
  // du-sim runs while the test takes what the bridge forwards (it must not stall at the HWM).
  auto run = std::async(std::launch::async, [&] {
    return hil::run({kDuSim, "--detx", kDetx, "--dus", "9", "--slices", "3", "--seed", "21", "--start-utc",
                     "1700000000", "--monitoring", "--udp", optical, "--udp-monitoring", monitoring,
                     "--udp-rate-limit", "20000", "--json"},
                    tmp_.path());
  });
  const auto received = receive_records(pull_, reference_.size());
  const auto sim = run.get();
  ASSERT_EQ(sim.code, 0) << sim.err;
  const auto summary = nlohmann::json::parse(sim.out);
  EXPECT_EQ(summary.at("udp").at("datagrams_sent").get<std::size_t>(), reference_.size());
  EXPECT_EQ(summary.at("udp").at("datagrams_failed").get<std::size_t>(), 0u);
  EXPECT_EQ(summary.at("udp").at("unrouted").get<std::size_t>(), 0u);
  expect_everything_through(received, stop_bridge());
}

TEST_F(UdpPrograms, ReplayOfTheFileOverUdpGivesTheSameRecords) {
  const auto [optical, monitoring] = start_bridge();
  auto run = std::async(std::launch::async, [&] {
    return hil::run({kDuSim, "--replay", (tmp_ / "ref.dqd").string(), "--udp", optical, "--udp-monitoring", monitoring,
                     "--udp-rate-limit", "20000", "--json"},
                    tmp_.path());
  });
  const auto received = receive_records(pull_, reference_.size());
  const auto sim = run.get();
  ASSERT_EQ(sim.code, 0) << sim.err;
  EXPECT_EQ(nlohmann::json::parse(sim.out).at("udp").at("datagrams_sent").get<std::size_t>(), reference_.size());
  expect_everything_through(received, stop_bridge());
}

TEST_F(UdpPrograms, BadOptionsFailWithAMessage) {
  // TMCH packets without a port of their own.
  auto r = hil::run({kDuSim, "--detx", kDetx, "--dus", "9", "--slices", "1", "--monitoring", "--udp", "127.0.0.1:9"},
                    tmp_.path());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--udp-monitoring"), std::string::npos) << r.err;
  r = hil::run({kDuSim, "--detx", kDetx, "--dus", "9", "--slices", "1", "--udp", "127.0.0.1"}, tmp_.path());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("127.0.0.1"), std::string::npos) << r.err;
  // A port in use: the bridge names it and exits 1.
  const auto [optical, monitoring] = start_bridge();
  r = hil::run({kBridge, "--optical", optical, "--monitoring", "off", "--endpoint", "tcp://127.0.0.1:9", "--seconds", "1"},
               tmp_.path());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find(optical), std::string::npos) << r.err;
  r = hil::run({kBridge, "--optical", "off", "--monitoring", "off", "--endpoint", "tcp://127.0.0.1:9"}, tmp_.path());
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(hil::run({kBridge, "--help"}, tmp_.path()).code, 0);
  EXPECT_NE(hil::run({kBridge}, tmp_.path()).code, 0);  // --endpoint is required
  // A bad datagram is counted by cause and logged - on stderr, never between the JSON lines.
  udp_test::Sender sender;
  const std::vector<std::uint8_t> junk(64, 0x4A);
  sender.send(static_cast<std::uint16_t>(std::stoi(optical.substr(optical.rfind(':') + 1))), junk);
  ASSERT_TRUE(hil::wait_until([&] { return bridge_.err().find("unknown_data_type") != std::string::npos; }, 20s))
      << bridge_.err();
  const auto exit = stop_bridge();
  EXPECT_EQ(exit.at("sockets").at(0).at("rejected").at("unknown_data_type").at("records"), 1);
}

}  // namespace
