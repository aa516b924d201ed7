#include "shoredaq/storage/dispatcher.hpp"

#include <gtest/gtest.h>

#include <utility>  // before Asio: Boost 1.74 awaitable.hpp needs std::exchange
#include <boost/asio.hpp>
#include <chrono>
#include <thread>

#include "shoredaq/formats/online_format.hpp"
#include "storage_test_support.hpp"

using namespace shoredaq;
using namespace shoredaq::storage;
using boost::asio::ip::tcp;
using storage::testing::make_event;
using storage::testing::make_summary;

namespace {

constexpr std::int32_t kDetector = 5;

template <class Pred>
bool wait_for(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // polling a condition, with a deadline
  }
  return true;
}

void send_message(tcp::socket& s, std::string_view tag, std::string_view payload) {
  const auto m = encode_controlhost_message(
      tag, std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size()));
  boost::asio::write(s, boost::asio::buffer(m));
}

std::pair<std::string, std::vector<std::uint8_t>> read_message(tcp::socket& s) {
  std::array<std::uint8_t, kControlHostPrefixBytes> prefix{};
  boost::asio::read(s, boost::asio::buffer(prefix));
  std::string tag(reinterpret_cast<const char*>(prefix.data()), 8);
  tag.erase(tag.find('\0') == std::string::npos ? tag.size() : tag.find('\0'));
  const std::uint32_t n = (std::uint32_t{prefix[8]} << 24) | (std::uint32_t{prefix[9]} << 16) |
                          (std::uint32_t{prefix[10]} << 8) | prefix[11];
  std::vector<std::uint8_t> body(n);
  boost::asio::read(s, boost::asio::buffer(body));
  return {tag, body};
}

}  // namespace

TEST(ControlHost, MessageEncoding) {
  const std::vector<std::uint8_t> payload{1, 2, 3};
  const auto m = encode_controlhost_message("IO_EVT", payload);
  ASSERT_EQ(m.size(), 19u);
  EXPECT_EQ(std::string(m.data(), 6), "IO_EVT");
  EXPECT_EQ(m[6], '\0');
  EXPECT_EQ(m[7], '\0');
  EXPECT_EQ(static_cast<unsigned char>(m[11]), 3u);
  EXPECT_EQ(m[8] | m[9] | m[10] | m[12] | m[13] | m[14] | m[15], 0);
}

TEST(Dispatcher, ServesSubscribedTagsToALoopbackClient) {
  DispatcherConfig config;
  config.port = 0;
  Dispatcher dispatcher(config);
  boost::asio::io_context io;
  tcp::socket client(io);
  client.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), dispatcher.port()));
  send_message(client, "_Subscri", " a IO_EVT w MSG");
  send_message(client, "_Always", "");
  ASSERT_TRUE(wait_for([&] { return dispatcher.counters().subscriptions.load() == 1; }));

  const dataflow::Event event = make_event(kDetector, 8, 3, 1, 12);
  dispatcher.publish_summary(make_summary(kDetector, 8, 3));  // not subscribed
  dispatcher.publish_event(event);
  dispatcher.publish_log("run 8 started");

  const auto [tag1, body1] = read_message(client);
  EXPECT_EQ(tag1, "IO_EVT");
  const auto decoded = dataflow::decode_online_event(body1);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded.value.header, event.header);
  EXPECT_EQ(decoded.value.snapshot, event.snapshot);
  EXPECT_EQ(decoded.value.triggered, event.triggered);
  const auto [tag2, body2] = read_message(client);
  EXPECT_EQ(tag2, "MSG");
  EXPECT_EQ(std::string(body2.begin(), body2.end()), "run 8 started");
  EXPECT_EQ(dispatcher.counters().messages_published.load(), 3u);
  EXPECT_EQ(dispatcher.counters().messages_queued.load(), 2u);
}

TEST(Dispatcher, StalledClientDropsAreCountedAndPublishNeverBlocks) {
  DispatcherConfig config;
  config.port = 0;
  config.max_queue_bytes_all = 64 << 10;
  Dispatcher dispatcher(config);
  boost::asio::io_context io;
  tcp::socket stalled(io), healthy(io);
  const tcp::endpoint ep(boost::asio::ip::make_address("127.0.0.1"), dispatcher.port());
  stalled.open(tcp::v4());
  stalled.set_option(boost::asio::socket_base::receive_buffer_size(4096));
  stalled.connect(ep);
  healthy.connect(ep);
  send_message(stalled, "_Subscri", " a IO_EVT");
  send_message(stalled, "_Always", "");
  send_message(healthy, "_Subscri", " a MSG");
  send_message(healthy, "_Always", "");
  ASSERT_TRUE(wait_for([&] { return dispatcher.counters().subscriptions.load() == 2; }));
  const dataflow::Event event = make_event(kDetector, 9, 0, 0, 150);  // ~2 KB online
  for (int i = 0; i < 3000; ++i) dispatcher.publish_event(event);  // ~6 MB at a client that never reads
  dispatcher.publish_log("still alive");
  // The healthy client is served despite the stalled one.
  const auto [tag, body] = read_message(healthy);
  EXPECT_EQ(tag, "MSG");
  EXPECT_GT(dispatcher.counters().messages_dropped.load(), 0u);
  EXPECT_EQ(dispatcher.counters().messages_queued.load() + dispatcher.counters().messages_dropped.load(), 3001u);
}

TEST(Dispatcher, OversizedClientMessageDisconnects) {
  DispatcherConfig config;
  config.port = 0;
  config.max_client_message_bytes = 100;
  Dispatcher dispatcher(config);
  boost::asio::io_context io;
  tcp::socket client(io);
  client.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), dispatcher.port()));
  send_message(client, "_Subscri", std::string(200, 'x'));
  ASSERT_TRUE(wait_for([&] { return dispatcher.counters().bad_client_messages.load() == 1; }));
  ASSERT_TRUE(wait_for([&] { return dispatcher.counters().clients_connected.load() == 0; }));
}
