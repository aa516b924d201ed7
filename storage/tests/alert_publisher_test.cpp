#include "shoredaq/storage/alert_publisher.hpp"
#include "shoredaq/storage/alert_sink.hpp"

#include <gtest/gtest.h>

#include <chrono>

#include "shoredaq/formats/fb_codec.hpp"
#include "storage_test_support.hpp"

using namespace shoredaq;
using namespace shoredaq::storage;
using storage::testing::make_event;
using storage::testing::make_summary;

namespace {

constexpr std::int32_t kDetector = 77;

zmq::socket_t make_sub(zmq::context_t& ctx, const std::string& endpoint, const std::string& topic) {
  zmq::socket_t sub(ctx, zmq::socket_type::sub);
  sub.set(zmq::sockopt::linger, 0);
  sub.set(zmq::sockopt::rcvtimeo, 100);
  sub.set(zmq::sockopt::subscribe, topic);
  sub.connect(endpoint);
  return sub;
}

// Receives one [topic][payload] message, or nothing within the socket's receive timeout.
bool receive(zmq::socket_t& sub, std::string& topic, std::vector<std::uint8_t>& payload) {
  zmq::message_t t, p;
  if (!sub.recv(t)) return false;
  topic = t.to_string();
  EXPECT_TRUE(t.more());
  if (!sub.recv(p)) return false;
  EXPECT_FALSE(p.more());
  payload.assign(static_cast<const std::uint8_t*>(p.data()), static_cast<const std::uint8_t*>(p.data()) + p.size());
  return true;
}

// PUB/SUB subscriptions travel asynchronously: publish probes until one arrives (with a deadline).
void wait_until_subscribed(AlertPublisher& pub, zmq::socket_t& sub) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  const dataflow::Event probe = make_event(kDetector, 1, 0, 0, 3);
  std::string topic;
  std::vector<std::uint8_t> payload;
  while (std::chrono::steady_clock::now() < deadline) {
    pub.publish_event(probe);
    if (receive(sub, topic, payload)) {
      while (receive(sub, topic, payload)) {
      }  // drain the other probes
      return;
    }
  }
  FAIL() << "subscriber never connected";
}

}  // namespace

TEST(AlertSelection, TriggerMaskHitsAndDoms) {
  dataflow::Event e = make_event(kDetector, 1, 2, 0, 30, dataflow::trigger_bit(dataflow::kTriggerBit3DShower));
  AlertSelection any;
  EXPECT_TRUE(any.selects(e));
  AlertSelection muon_only;
  muon_only.trigger_mask = dataflow::trigger_bit(dataflow::kTriggerBit3DMuon);
  EXPECT_FALSE(muon_only.selects(e));
  AlertSelection many_hits;
  many_hits.min_triggered_hits = e.triggered.size() + 1;
  EXPECT_FALSE(many_hits.selects(e));
  many_hits.min_triggered_hits = e.triggered.size();
  EXPECT_TRUE(many_hits.selects(e));
  AlertSelection doms;
  doms.dom_ids = {1, 2, 3};
  EXPECT_FALSE(doms.selects(e));
  doms.dom_ids.push_back(e.triggered.back().dom_id);
  EXPECT_TRUE(doms.selects(e));
}

TEST(AlertPublisher, SubscriberReceivesSelectedEventsAndSummaries) {
  zmq::context_t ctx;
  AlertPublisherConfig config;
  config.endpoints = {"tcp://127.0.0.1:*"};
  config.detector_id = kDetector;
  config.selection.trigger_mask = dataflow::trigger_bit(dataflow::kTriggerBit3DMuon);
  AlertPublisher pub(ctx, config);
  EXPECT_EQ(pub.event_topic(), "event.77");
  EXPECT_EQ(pub.summary_topic(), "summary.77");
  auto sub = make_sub(ctx, pub.bound_endpoints().at(0), "");
  wait_until_subscribed(pub, sub);

  const auto sent_before = pub.counters().events_sent;
  const dataflow::Event muon = make_event(kDetector, 4, 9, 2, 12);
  const dataflow::Event shower = make_event(kDetector, 4, 9, 3, 12, dataflow::trigger_bit(dataflow::kTriggerBit3DShower));
  EXPECT_TRUE(pub.publish_event(muon));
  EXPECT_FALSE(pub.publish_event(shower));  // not selected
  EXPECT_TRUE(pub.publish_summary(make_summary(kDetector, 4, 9)));
  std::string topic;
  std::vector<std::uint8_t> payload;
  ASSERT_TRUE(receive(sub, topic, payload));
  EXPECT_EQ(topic, "event.77");
  const auto decoded = dataflow::decode_event_fb(payload);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded.value.event, muon);
  ASSERT_TRUE(receive(sub, topic, payload));
  EXPECT_EQ(topic, "summary.77");
  const auto summary = dataflow::decode_summary_slice_fb(payload);
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary.value, make_summary(kDetector, 4, 9));
  EXPECT_EQ(pub.counters().events_sent, sent_before + 1);
  EXPECT_EQ(pub.counters().events_not_selected, 1u);
  EXPECT_EQ(pub.counters().summaries_sent, 1u);
}

// A supernova alert rides the slice to the alert sink: topic sn.<det>, the SNEWS-format text as is.
TEST(AlertPublisher, SupernovaAlertsGoOutUnderTheirOwnTopic) {
  zmq::context_t ctx;
  AlertPublisherConfig config;
  config.endpoints = {"inproc://alerts-sn"};
  config.detector_id = kDetector;
  config.publish_summaries = false;
  AlertSink sink(std::make_unique<AlertPublisher>(ctx, config));
  auto sn = make_sub(ctx, "inproc://alerts-sn", "sn.");
  dataflow::SliceProducts slice;
  slice.summary = make_summary(kDetector, 1, 1);
  const std::string message = R"({"detector_name":"KM3NeT","p_val":1e-9})";
  slice.supernova_alerts.push_back(message);
  // Until the subscription has reached the PUB socket the alert may go nowhere: resend, each time
  // waiting up to the socket's receive timeout, within a deadline.
  std::string topic;
  std::vector<std::uint8_t> payload;
  bool got = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!got && std::chrono::steady_clock::now() < deadline) {
    sink.write(slice);
    got = receive(sn, topic, payload);
  }
  ASSERT_TRUE(got);
  EXPECT_EQ(topic, "sn.77");
  EXPECT_EQ(std::string(payload.begin(), payload.end()), message);
  dataflow::CounterSet counters;
  sink.counters(counters);
  EXPECT_GE(counters.value("alerts.supernova_alerts_sent"), 1u);
}

TEST(AlertPublisher, TopicFilterOnTheSubscriber) {
  zmq::context_t ctx;
  AlertPublisherConfig config;
  config.endpoints = {"inproc://alerts-topic"};
  config.detector_id = kDetector;
  AlertPublisher pub(ctx, config);
  auto events = make_sub(ctx, "inproc://alerts-topic", "event.");
  wait_until_subscribed(pub, events);
  pub.publish_summary(make_summary(kDetector, 1, 1));
  pub.publish_event(make_event(kDetector, 1, 1, 0, 3));
  std::string topic;
  std::vector<std::uint8_t> payload;
  ASSERT_TRUE(receive(events, topic, payload));
  EXPECT_EQ(topic, "event.77");  // the summary was filtered out by the subscription
}

TEST(AlertPublisher, StalledSubscriberCausesCountedDropsNeverBlocking) {
  zmq::context_t ctx;
  AlertPublisherConfig config;
  config.endpoints = {"inproc://alerts-stalled"};
  config.detector_id = kDetector;
  config.send_hwm = 10;
  AlertPublisher pub(ctx, config);
  zmq::socket_t stalled(ctx, zmq::socket_type::sub);
  stalled.set(zmq::sockopt::linger, 0);
  stalled.set(zmq::sockopt::rcvhwm, 10);
  stalled.set(zmq::sockopt::rcvtimeo, 100);
  stalled.set(zmq::sockopt::subscribe, "");
  stalled.connect("inproc://alerts-stalled");
  wait_until_subscribed(pub, stalled);
  // The subscriber now never reads: 5000 publishes all return (the test finishing is the proof
  // that none blocked); what the pipes cannot hold is dropped and counted.
  const auto before = pub.counters();
  const dataflow::Event e = make_event(kDetector, 2, 0, 0, 20);
  std::size_t sent = 0;
  for (int i = 0; i < 5000; ++i) sent += pub.publish_event(e) ? 1 : 0;
  for (int i = 0; i < 100; ++i) pub.publish_summary(make_summary(kDetector, 2, 0));
  const auto& after = pub.counters();
  EXPECT_EQ(after.events_sent - before.events_sent, sent);
  EXPECT_EQ(after.events_sent + after.events_dropped - before.events_sent - before.events_dropped, 5000u);
  EXPECT_GT(after.events_dropped, 4000u);
  EXPECT_LE(sent, 40u);  // bounded by the two high-water marks
  EXPECT_EQ(after.summaries_dropped, 100u);
  // Messages that did go out are whole [topic][payload] pairs.
  std::string topic;
  std::vector<std::uint8_t> payload;
  std::size_t received = 0;
  while (receive(stalled, topic, payload)) {
    EXPECT_EQ(topic, "event.77");
    EXPECT_TRUE(dataflow::decode_event_fb(payload));
    ++received;
  }
  EXPECT_EQ(received, sent);
}
