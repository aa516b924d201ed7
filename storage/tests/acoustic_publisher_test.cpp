#include "shoredaq/storage/acoustic_publisher.hpp"

#include <gtest/gtest.h>

#include <chrono>

#include "shoredaq/formats/clb_datagram.hpp"

using namespace shoredaq;
using namespace shoredaq::storage;

namespace {

std::vector<std::uint8_t> taes(std::uint32_t dom, std::uint8_t fill) {
  dataflow::ClbHeader h;
  h.data_type = dataflow::DataType::Acoustic;
  h.dom_id = dom;
  std::vector<std::uint8_t> d;
  dataflow::encode_clb_header(h, dataflow::HeaderLayout::Standard40, d);
  d.resize(d.size() + 300, fill);
  return d;
}

}  // namespace

TEST(AcousticPublisher, DatagramsGoOutAsReceivedUnderTheDetectorsTopic) {
  zmq::context_t ctx;
  AcousticPublisherConfig config;
  config.endpoints = {"inproc://acoustic-test"};
  config.detector_id = 133;
  AcousticPublisher pub(ctx, config);
  EXPECT_EQ(pub.topic(), "acoustic.133");
  zmq::socket_t sub(ctx, zmq::socket_type::sub);
  sub.set(zmq::sockopt::linger, 0);
  sub.set(zmq::sockopt::rcvtimeo, 100);
  sub.set(zmq::sockopt::subscribe, "acoustic.133");
  sub.connect("inproc://acoustic-test");
  // PUB/SUB subscriptions travel asynchronously: probe until one arrives (with a deadline).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  bool subscribed = false;
  zmq::message_t topic, payload;
  while (!subscribed && std::chrono::steady_clock::now() < deadline) {
    pub.publish(taes(1, 0));
    if (sub.recv(topic)) {
      ASSERT_TRUE(sub.recv(payload));
      subscribed = true;
    }
  }
  ASSERT_TRUE(subscribed);
  while (sub.recv(topic)) ASSERT_TRUE(sub.recv(payload));  // the other probes
  const std::uint64_t sent_before = pub.counters().datagrams_sent;
  const auto datagram = taes(808, 0x77);
  EXPECT_TRUE(pub.publish(datagram));
  ASSERT_TRUE(sub.recv(topic));
  EXPECT_EQ(topic.to_string(), "acoustic.133");
  ASSERT_TRUE(topic.more());
  ASSERT_TRUE(sub.recv(payload));
  EXPECT_EQ(std::vector<std::uint8_t>(static_cast<const std::uint8_t*>(payload.data()),
                                      static_cast<const std::uint8_t*>(payload.data()) + payload.size()),
            datagram);
  EXPECT_EQ(pub.counters().datagrams_sent, sent_before + 1);
}

TEST(AcousticPublisher, ASubscriberThatDoesNotReadCostsDropsNeverAWait) {
  zmq::context_t ctx;
  AcousticPublisherConfig config;
  config.endpoints = {"inproc://acoustic-hwm"};
  config.send_hwm = 10;
  AcousticPublisher pub(ctx, config);
  zmq::socket_t sub(ctx, zmq::socket_type::sub);
  sub.set(zmq::sockopt::rcvhwm, 10);
  sub.set(zmq::sockopt::subscribe, "");
  sub.connect("inproc://acoustic-hwm");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (pub.counters().datagrams_dropped == 0 && std::chrono::steady_clock::now() < deadline) pub.publish(taes(2, 1));
  EXPECT_GT(pub.counters().datagrams_dropped, 0u);
  EXPECT_EQ(pub.counters().send_errors, 0u);
}
