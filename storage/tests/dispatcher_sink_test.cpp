// The ControlHost dispatcher as the node uses it: every stream of a slice to the tags subscribed,
// with exact counts, checked by a client written from the protocol description
// (controlhost_test_client.hpp); who may connect; slow clients dropped or disconnected and counted
// while publishing goes on.

#include "shoredaq/storage/dispatcher_sink.hpp"

#include <gtest/gtest.h>

#include <map>
#include <thread>

#include "controlhost_test_client.hpp"
#include "shoredaq/formats/online_format.hpp"
#include "storage_test_support.hpp"

using namespace shoredaq;
using namespace shoredaq::storage;
namespace st = shoredaq::storage::testing;
using dataflow::TimesliceKind;

namespace {

constexpr std::int32_t kDetector = 133;
constexpr std::size_t kEventsPerSlice = 2;
constexpr std::size_t kMonitoringDoms = 3;

DispatcherConfig loopback_config() {
  DispatcherConfig c;
  c.port = 0;
  return c;
}

template <class Pred>
bool wait_for(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // polling a condition, with a deadline
  }
  return true;
}

// Frame f: an L1 slice every 20th frame, an SN slice every 5th, an error slice at frame 3.
dataflow::SliceProducts products(std::uint32_t run, std::uint32_t f) {
  std::vector<TimesliceKind> kinds;
  if (f % 20 == 0) kinds.push_back(TimesliceKind::L1);
  if (f % 5 == 0) kinds.push_back(TimesliceKind::SN);
  if (f == 3) kinds.push_back(TimesliceKind::Error);
  return st::make_products(kDetector, run, f, kEventsPerSlice, kinds, kMonitoringDoms);
}

// Reads until a MSG arrives (the test's end marker); messages by tag.
std::map<std::string, std::vector<st::ControlHostClient::Message>> read_until_log_line(st::ControlHostClient& client) {
  std::map<std::string, std::vector<st::ControlHostClient::Message>> by_tag;
  for (;;) {
    auto m = client.receive();
    if (!m) {
      ADD_FAILURE() << "no end marker within the deadline";
      return by_tag;
    }
    const bool end = m->tag == "MSG";
    by_tag[m->tag].push_back(std::move(*m));
    if (end) return by_tag;
  }
}

}  // namespace

TEST(DispatcherSink, EveryStreamReachesItsSubscribersWithExactCountsPerTag) {
  Dispatcher dispatcher(loopback_config());
  DispatcherSink sink(dispatcher);
  st::ControlHostClient client(dispatcher.port());
  client.subscribe(" a IO_EVT a IO_SUM a IO_TSSN w IO_MONIT a MSG");
  ASSERT_TRUE(wait_for([&] { return dispatcher.has_subscribers(DispatchTag::Log); }));
  dataflow::RunRecord run;
  run.run = 21;
  sink.begin_run(run);
  constexpr std::uint32_t kFrames = 40;
  std::vector<dataflow::SliceProducts> written;
  for (std::uint32_t f = 0; f < kFrames; ++f) {
    written.push_back(products(21, f));
    EXPECT_TRUE(sink.write(written.back()).accepted);
  }
  dispatcher.publish_log("end of test run");

  auto by_tag = read_until_log_line(client);
  ASSERT_EQ(by_tag["IO_EVT"].size(), kFrames * kEventsPerSlice);
  ASSERT_EQ(by_tag["IO_SUM"].size(), kFrames);            // one per slice
  ASSERT_EQ(by_tag["IO_TSSN"].size(), kFrames / 5);       // one per SN slice kept
  ASSERT_EQ(by_tag["IO_MONIT"].size(), kFrames * kMonitoringDoms);  // per DOM per slice
  EXPECT_EQ(by_tag.count("IO_TSL1"), 0u);                 // not subscribed
  EXPECT_EQ(by_tag["MSG"].size(), 1u);
  // Byte-identical to the online objects (what the store exports) and to the packets received.
  for (std::uint32_t f = 0; f < kFrames; ++f) {
    for (std::size_t e = 0; e < kEventsPerSlice; ++e) {
      std::vector<std::uint8_t> expected;
      dataflow::encode_online_event(written[f].events[e], expected);
      EXPECT_EQ(by_tag["IO_EVT"][f * kEventsPerSlice + e].payload, expected) << f;
    }
    const auto summary = dataflow::decode_online_summary_slice(by_tag["IO_SUM"][f].payload);
    ASSERT_TRUE(summary);
    EXPECT_EQ(summary.value.header.frame_index, f);
    for (std::size_t d = 0; d < kMonitoringDoms; ++d) {
      EXPECT_EQ(by_tag["IO_MONIT"][f * kMonitoringDoms + d].payload, written[f].monitoring[d].datagram);
    }
  }
  for (std::size_t i = 0; i < by_tag["IO_TSSN"].size(); ++i) {
    const auto t = dataflow::decode_online_timeslice(by_tag["IO_TSSN"][i].payload);
    ASSERT_TRUE(t);
    EXPECT_EQ(t.value.kind, TimesliceKind::SN);
    EXPECT_EQ(t.value.slice.header.frame_index, 5 * i);
  }

  dataflow::CounterSet counters;
  sink.counters(counters);
  EXPECT_EQ(counters.value("dispatcher.published_io_evt"), kFrames * kEventsPerSlice);
  EXPECT_EQ(counters.value("dispatcher.published_io_sum"), kFrames);
  EXPECT_EQ(counters.value("dispatcher.published_io_tssn"), kFrames / 5);
  EXPECT_EQ(counters.value("dispatcher.published_io_monit"), kFrames * kMonitoringDoms);
  EXPECT_EQ(counters.value("dispatcher.published_io_tsl1"), 0u);  // nobody subscribed: not even encoded
  EXPECT_EQ(counters.value("dispatcher.published_msg"), 1u);
  EXPECT_EQ(counters.value("dispatcher.messages_slow_client", true), 0u);
}

TEST(DispatcherSink, TimesliceTagsByStreamAndTheErrorStreamIsNotPublished) {
  EXPECT_EQ(controlhost_tag(*dispatch_tag_of(TimesliceKind::L0)), "IO_TSL0");
  EXPECT_EQ(controlhost_tag(*dispatch_tag_of(TimesliceKind::L1)), "IO_TSL1");
  EXPECT_EQ(controlhost_tag(*dispatch_tag_of(TimesliceKind::L2)), "IO_TSL2");
  EXPECT_EQ(controlhost_tag(*dispatch_tag_of(TimesliceKind::SN)), "IO_TSSN");
  EXPECT_FALSE(dispatch_tag_of(TimesliceKind::Error));
  EXPECT_EQ(dispatch_tag_of("IO_MONIT"), DispatchTag::Monitoring);
  EXPECT_EQ(dispatch_tag_of("IO_XYZ"), DispatchTag::Other);

  Dispatcher dispatcher(loopback_config());
  st::ControlHostClient client(dispatcher.port());
  client.subscribe(" a IO_TSL0 a IO_TSL2 a MSG");
  ASSERT_TRUE(wait_for([&] { return dispatcher.has_subscribers(DispatchTag::Log); }));
  const auto slice = st::make_timeslice(kDetector, 2, 4);
  EXPECT_FALSE(dispatcher.publish_timeslice(slice, TimesliceKind::Error));
  EXPECT_TRUE(dispatcher.publish_timeslice(slice, TimesliceKind::L2));
  EXPECT_TRUE(dispatcher.publish_timeslice(slice, TimesliceKind::L0));
  dispatcher.publish_log("end");
  auto by_tag = read_until_log_line(client);
  ASSERT_EQ(by_tag["IO_TSL2"].size(), 1u);
  ASSERT_EQ(by_tag["IO_TSL0"].size(), 1u);
  EXPECT_EQ(dataflow::decode_online_timeslice(by_tag["IO_TSL2"][0].payload).value.kind, TimesliceKind::L2);
  EXPECT_EQ(dataflow::decode_online_timeslice(by_tag["IO_TSL0"][0].payload).value.kind, TimesliceKind::L0);
  EXPECT_EQ(dispatcher.snapshot().messages_published, 3u);  // the error slice never went out
}

TEST(DispatcherSink, SubscriberCountsFollowTheClients) {
  Dispatcher dispatcher(loopback_config());
  EXPECT_FALSE(dispatcher.has_subscribers(DispatchTag::Event));
  EXPECT_TRUE(dispatcher.has_subscribers(DispatchTag::Other));  // unknown to the node: cannot tell
  {
    st::ControlHostClient client(dispatcher.port());
    client.send("_Subscri", " w IO_EVT");
    // Not before _Always: the client is not ready.
    client.send("_Always", "");
    ASSERT_TRUE(wait_for([&] { return dispatcher.has_subscribers(DispatchTag::Event); }));
    EXPECT_FALSE(dispatcher.has_subscribers(DispatchTag::Summary));
    client.send("_Subscri", " a IO_SUM");  // a ready client adds a subscription
    ASSERT_TRUE(wait_for([&] { return dispatcher.has_subscribers(DispatchTag::Summary); }));
  }
  // The I/O thread lowers these counts one after another as the client goes: wait for all of them.
  EXPECT_TRUE(wait_for([&] {
    return !dispatcher.has_subscribers(DispatchTag::Event) && !dispatcher.has_subscribers(DispatchTag::Summary) &&
           dispatcher.counters().clients_connected.load() == 0;
  }));
  EXPECT_FALSE(dispatcher.has_subscribers(DispatchTag::Event));
  EXPECT_FALSE(dispatcher.has_subscribers(DispatchTag::Summary));
  EXPECT_EQ(dispatcher.counters().clients_connected.load(), 0u);
}

TEST(Dispatcher, ClientNetworksParseAndMatch) {
  const auto lan = ClientNetwork::parse("10.1.0.0/16");
  ASSERT_TRUE(lan);
  const std::uint8_t inside[4] = {10, 1, 200, 3}, outside[4] = {10, 2, 0, 1};
  EXPECT_TRUE(lan->contains(inside, false));
  EXPECT_FALSE(lan->contains(outside, false));
  // The same client on an IPv6 socket: ::ffff:10.1.200.3.
  const std::uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 200, 3};
  EXPECT_TRUE(lan->contains(mapped, true));
  EXPECT_EQ(ClientNetwork::parse("10.1.2.3/16")->to_string(), "10.1.0.0/16");  // host bits ignored
  const auto host = ClientNetwork::parse("192.168.7.9");
  ASSERT_TRUE(host);
  EXPECT_EQ(host->prefix_bits, 32u);
  const auto v6 = ClientNetwork::parse("2001:db8::/32");
  ASSERT_TRUE(v6);
  std::uint8_t v6_client[16] = {0x20, 0x01, 0x0d, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  EXPECT_TRUE(v6->contains(v6_client, true));
  v6_client[3] = 0xb9;
  EXPECT_FALSE(v6->contains(v6_client, true));
  EXPECT_FALSE(v6->contains(inside, false));
  EXPECT_TRUE(ClientNetwork::parse("0.0.0.0/0")->contains(outside, false));
  for (const char* bad : {"", "10.1.0.0/33", "10.1.0.0/", "10.1.0/8", "::1/129", "host.example", "10.0.0.0/8x"}) {
    EXPECT_FALSE(ClientNetwork::parse(bad)) << bad;
  }
  EXPECT_THROW(parse_client_networks({"10.0.0.0/8", "nonsense"}), std::invalid_argument);
}

TEST(Dispatcher, AConnectionFromOutsideTheAllowedNetworksIsRefusedAndCounted) {
  auto config = loopback_config();
  config.allowed_networks = {"10.0.0.0/8", "2001:db8::/32"};
  Dispatcher refusing(config);
  st::ControlHostClient stranger(refusing.port());
  EXPECT_TRUE(stranger.wait_until_closed());
  EXPECT_EQ(refusing.counters().clients_refused_network.load(), 1u);
  EXPECT_EQ(refusing.counters().clients_accepted.load(), 0u);

  config.allowed_networks = {"10.0.0.0/8", "127.0.0.0/8"};
  Dispatcher admitting(config);
  st::ControlHostClient friendly(admitting.port());
  friendly.subscribe(" a MSG");
  ASSERT_TRUE(wait_for([&] { return admitting.has_subscribers(DispatchTag::Log); }));
  admitting.publish_log("welcome");
  const auto m = friendly.receive();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->tag, "MSG");
  EXPECT_EQ(admitting.counters().clients_refused_network.load(), 0u);
}

TEST(Dispatcher, ANonLoopbackAddressNeedsAnAllowList) {
  auto config = loopback_config();
  config.address = "0.0.0.0";
  EXPECT_THROW(Dispatcher{config}, std::invalid_argument);
  config.allowed_networks = {"bad"};
  EXPECT_THROW(Dispatcher{config}, std::invalid_argument);
  config.allowed_networks = {"127.0.0.1"};
  Dispatcher opened(config);  // listening on every interface, admitting loopback only
  st::ControlHostClient client(opened.port());
  client.subscribe(" w MSG");
  EXPECT_TRUE(wait_for([&] { return opened.has_subscribers(DispatchTag::Log); }));
}

// A client subscribed to all events stops reading: it is disconnected and counted, while the
// publisher never waits and a healthy client gets every message.
TEST(Dispatcher, AStalledAllClientIsDisconnectedAndCountedWhileTheOthersGetEverything) {
  auto config = loopback_config();
  config.max_queue_bytes_all = 256 << 10;
  config.disconnect_slow_all_clients = true;
  Dispatcher dispatcher(config);
  st::ControlHostClient stalled(dispatcher.port(), 4096);
  st::ControlHostClient healthy(dispatcher.port());
  stalled.subscribe(" a IO_EVT");
  healthy.subscribe(" a IO_EVT a MSG");
  ASSERT_TRUE(wait_for([&] { return dispatcher.counters().subscriptions.load() == 2; }));
  // ~2.6 KB each, published 40 at a time and read by the healthy client before the next 40: ~26 MB
  // in all, far beyond what the stalled one's socket buffers hold. A chunk is well under half the
  // queue limit because the healthy client can read a chunk before the dispatcher's I/O thread has
  // run the write completion that takes it off the queue: its queue may then hold the chunk it read
  // and the next one (CI saw 100 per chunk, ~260 KB, disconnect the healthy client too).
  constexpr std::size_t kChunks = 250, kPerChunk = 40;
  const dataflow::Event event = st::make_event(kDetector, 9, 0, 0, 150);
  std::size_t received = 0;
  for (std::size_t chunk = 0; chunk < kChunks; ++chunk) {
    for (std::size_t i = 0; i < kPerChunk; ++i) dispatcher.publish_event(event);
    for (std::size_t i = 0; i < kPerChunk; ++i) {
      const auto m = healthy.receive();
      ASSERT_TRUE(m) << "chunk " << chunk;
      EXPECT_EQ(m->tag, "IO_EVT");
      ++received;
    }
  }
  dispatcher.publish_log("end");
  const auto end = healthy.receive();
  ASSERT_TRUE(end);
  EXPECT_EQ(end->tag, "MSG");
  EXPECT_EQ(received, kChunks * kPerChunk);
  EXPECT_EQ(dispatcher.counters().clients_disconnected_slow.load(), 1u);
  EXPECT_TRUE(stalled.wait_until_closed());
  EXPECT_EQ(dispatcher.counters().clients_connected.load(), 1u);
}

// A " w" client that stops reading misses messages: each is counted, as a drop that loses no data.
TEST(Dispatcher, AStalledAnyClientMissesMessagesCountedAsSlowClientDrops) {
  auto config = loopback_config();
  config.max_queue_bytes_any = 64 << 10;
  Dispatcher dispatcher(config);
  DispatcherSink sink(dispatcher);
  st::ControlHostClient stalled(dispatcher.port(), 4096);
  stalled.subscribe(" w IO_EVT");
  ASSERT_TRUE(wait_for([&] { return dispatcher.has_subscribers(DispatchTag::Event); }));
  const dataflow::Event event = st::make_event(kDetector, 9, 0, 0, 150);
  for (int i = 0; i < 2000; ++i) dispatcher.publish_event(event);
  ASSERT_TRUE(wait_for([&] {
    const auto s = dispatcher.snapshot();
    return s.messages_queued + s.messages_dropped == 2000;
  }));
  dataflow::CounterSet counters;
  sink.counters(counters);
  const auto drops = counters.value("dispatcher.messages_slow_client", true);
  EXPECT_GT(drops, 0u);
  EXPECT_EQ(drops + counters.value("dispatcher.messages_queued"), 2000u);
  for (const auto& e : counters.entries()) {
    if (e.drop) {
      EXPECT_EQ(e.loss, dataflow::LossUnit::NotLoss) << e.key();
    }
  }
  EXPECT_EQ(dispatcher.counters().clients_connected.load(), 1u);  // " w": kept, it asked for no more
}

// The backlog between publish() and the I/O thread is bounded too: past it, a message is dropped
// for everyone and counted (a bound of 0 drops them all: deterministic).
TEST(Dispatcher, TheBacklogIsBoundedAndItsDropsCounted) {
  auto config = loopback_config();
  config.max_backlog_bytes = 0;
  Dispatcher dispatcher(config);
  for (int i = 0; i < 10; ++i) dispatcher.publish_log("lost");
  EXPECT_EQ(dispatcher.counters().messages_dropped_backlog.load(), 10u);
  EXPECT_EQ(dispatcher.counters().published_per_tag[static_cast<std::size_t>(DispatchTag::Log)].load(), 10u);
  dataflow::CounterSet counters;
  DispatcherSink::describe(dispatcher.snapshot(), counters);
  EXPECT_EQ(counters.value("dispatcher.messages_backlog_full", true), 10u);
}

// A supernova alert raised at a slice goes out as IO_SN, the SNEWS-format text as is.
TEST(DispatcherSink, SupernovaAlertsGoOutAsIoSn) {
  Dispatcher dispatcher(loopback_config());
  st::ControlHostClient client(dispatcher.port());
  client.subscribe(" a IO_SN a MSG");
  ASSERT_TRUE(wait_for([&] { return dispatcher.has_subscribers(DispatchTag::Log); }));
  DispatcherSink sink(dispatcher);
  auto slice = products(22, 1);
  const std::string message = R"({"detector_name":"KM3NeT","neutrino_time":"2026-11-29T19:00:00.000000000"})";
  slice.supernova_alerts.push_back(message);
  sink.write(slice);
  sink.write(products(22, 2));  // no alert: nothing under IO_SN
  dispatcher.publish_log("end");
  auto by_tag = read_until_log_line(client);
  ASSERT_EQ(by_tag["IO_SN"].size(), 1u);
  EXPECT_EQ(std::string(by_tag["IO_SN"][0].payload.begin(), by_tag["IO_SN"][0].payload.end()), message);
  EXPECT_EQ(by_tag.size(), 2u);  // IO_SN and the MSG end marker only
}
