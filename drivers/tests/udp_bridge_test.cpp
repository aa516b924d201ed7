// UdpBridge in-process: UDP datagrams in, ZeroMQ record-stream messages out. Only accepted
// datagrams are forwarded (bad ones are counted by cause at the bridge), and a node that takes
// nothing costs counted drops at the high-water mark, never a hang.

#include "shoredaq/drivers/udp_bridge.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <future>

#include "shoredaq/formats/record_stream.hpp"
#include "udp_test_support.hpp"

namespace shoredaq::drivers {
namespace {

using namespace std::chrono_literals;
using dataflow::DataType;

UdpBridgeConfig bridge_config(const std::string& endpoint) {
  UdpBridgeConfig c;
  c.endpoint = endpoint;
  for (DataType t : {DataType::Optical, DataType::Monitoring}) {
    UdpPortConfig p;
    p.data_type = t;
    p.bind = UdpEndpoint{"127.0.0.1", 0};
    p.receive_buffer_bytes = 4 << 20;
    c.receiver.ports.push_back(p);
  }
  c.linger_ms = 0;
  return c;
}

std::vector<std::vector<std::uint8_t>> receive_records(zmq::socket_t& pull, std::size_t expected) {
  std::vector<std::vector<std::uint8_t>> out;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (out.size() < expected && std::chrono::steady_clock::now() < deadline) {
    zmq::pollitem_t item{pull.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, 100ms);
    zmq::message_t m;
    if (!pull.recv(m, zmq::recv_flags::dontwait)) continue;
    const auto scan = dataflow::for_each_record({static_cast<const std::uint8_t*>(m.data()), m.size()},
                                                [&](std::span<const std::uint8_t> r) { out.emplace_back(r.begin(), r.end()); });
    EXPECT_TRUE(scan);
  }
  return out;
}

TEST(UdpBridge, ForwardsTheAcceptedDatagramsAsRecordStreamsAndCountsTheRest) {
  zmq::context_t context;
  zmq::socket_t pull(context, zmq::socket_type::pull);
  pull.set(zmq::sockopt::linger, 0);
  pull.bind("tcp://127.0.0.1:*");
  UdpBridge bridge(context, bridge_config(pull.get(zmq::sockopt::last_endpoint)));
  bridge.start();
  const auto sockets = bridge.receiver().sockets();

  std::vector<std::vector<std::uint8_t>> good_optical, bad;
  for (std::uint32_t i = 0; i < 50; ++i) good_optical.push_back(udp_test::optical(11, i, 1 + i));
  auto unknown = udp_test::optical(11, 99);
  std::memcpy(unknown.data(), "JUNK", 4);
  auto odd = udp_test::optical(11, 98);
  odd.pop_back();
  const auto tmch = udp_test::monitoring(11);
  udp_test::Sender sender;
  // Bad ones in between the good ones: the batches that hold them are re-framed without them.
  for (std::size_t i = 0; i < good_optical.size(); ++i) {
    sender.send(sockets[0].bound.port, good_optical[i]);
    if (i == 10) sender.send(sockets[0].bound.port, unknown);
    if (i == 30) sender.send(sockets[0].bound.port, odd);
  }
  sender.send(sockets[1].bound.port, tmch);

  auto received = receive_records(pull, good_optical.size() + 1);
  ASSERT_TRUE(udp_test::wait_until([&] { return bridge.receiver().counters().datagrams == 53; }));
  bridge.stop();
  ASSERT_EQ(received.size(), good_optical.size() + 1);
  // Per port the order is kept; the monitoring packet may come anywhere in between.
  const auto tmch_at = std::find(received.begin(), received.end(), tmch);
  ASSERT_NE(tmch_at, received.end());
  received.erase(tmch_at);
  EXPECT_EQ(received, good_optical);

  const auto c = bridge.counters();
  EXPECT_EQ(c.records_forwarded, 51u);
  EXPECT_EQ(c.hwm_dropped_messages + c.send_errors, 0u);
  EXPECT_LE(c.reframed_messages, 2u);
  const auto in = bridge.receiver().counters(0).ingest;
  EXPECT_EQ(in.rejected_records_of(dataflow::IngestRejectCause::UnknownDataType), 1u);
  EXPECT_EQ(in.rejected_records_of(dataflow::IngestRejectCause::BadPayloadSize), 1u);
  EXPECT_EQ(c.messages_forwarded, bridge.receiver().counters().messages);
}

TEST(UdpBridge, ANodeThatTakesNothingCostsCountedDropsNotAHang) {
  zmq::context_t context;
  // A PUSH with an HWM of 1 bound where nobody connects: the first message has nowhere to go.
  auto config = bridge_config("tcp://127.0.0.1:*");
  config.bind = true;
  config.send_hwm = 1;
  config.max_block = 20ms;
  UdpBridge bridge(context, config);
  bridge.start();
  const auto port = bridge.receiver().sockets()[0].bound.port;
  udp_test::Sender sender;
  for (std::uint32_t i = 0; i < 5; ++i) {  // one datagram per batch: each waits for the previous one
    sender.send(port, udp_test::optical(12, i));
    ASSERT_TRUE(udp_test::wait_until([&] { return bridge.receiver().counters().messages == i + 1; }));
  }
  auto stopped = std::async(std::launch::async, [&] { bridge.stop(); });
  ASSERT_EQ(stopped.wait_for(30s), std::future_status::ready);
  const auto c = bridge.counters();
  EXPECT_EQ(c.hwm_dropped_messages, 5u);  // no peer: no pipe, nothing can be queued
  EXPECT_EQ(c.hwm_dropped_records, 5u);
  EXPECT_EQ(c.hwm_blocked, 5u);
  EXPECT_EQ(c.messages_forwarded, 0u);
}

}  // namespace
}  // namespace shoredaq::drivers
