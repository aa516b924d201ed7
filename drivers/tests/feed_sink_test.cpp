// The du-sim sinks: .dqd file and ZeroMQ sender (batching, bad-length records, HWM counters).

#include "shoredaq/drivers/feed_sink.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <optional>
#include <random>
#include <zmq.hpp>

#include "shoredaq/formats/clb_datagram.hpp"
#include "shoredaq/formats/record_stream.hpp"

namespace shoredaq::drivers {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device rd;
    path = fs::temp_directory_path() / ("feed_sink_" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

DuSimulator make_sim(double corrupt_pct) {
  static auto det = std::make_shared<const dataflow::Detector>(
      dataflow::Detector::load(SHOREDAQ_TESTDATA_DIR "/detx/KM3NeT_00000133_20221025.detx"));
  DuSimConfig c;
  c.detector = det;
  c.dus = {5};
  c.start_unix_ns = 1'700'000'000'000'000'000ull;
  c.seed = 5;
  c.faults.corrupt_pct = corrupt_pct;
  return DuSimulator(c);
}

TEST(DqdFileSink, WritesRecordsInOrderAndBadLengthsLast) {
  TempDir tmp;
  const fs::path file = tmp.path / "out.dqd";
  auto sim = make_sim(5);
  std::vector<std::vector<std::uint8_t>> good;
  std::size_t bad = 0;
  {
    DqdFileSink sink(file);
    for (int k = 0; k < 2; ++k) {
      const auto s = sim.next_slice();
      for (const auto& d : s.datagrams) {
        if (d.fault == DatagramFault::BadLengthRecord) ++bad;
        else good.push_back(d.bytes);
      }
      sink.write(s.datagrams);
    }
    sink.finish();
    EXPECT_EQ(sink.counters().records, good.size() + bad);
    EXPECT_EQ(sink.counters().bad_length_records, bad);
    EXPECT_EQ(sink.counters().bytes, fs::file_size(file));
  }
  ASSERT_GT(bad, 0u);
  dataflow::DqdFileReader reader(file);
  std::span<const std::uint8_t> rec;
  std::size_t i = 0;
  while (reader.next(rec)) {
    ASSERT_LT(i, good.size());
    EXPECT_TRUE(std::equal(rec.begin(), rec.end(), good[i].begin(), good[i].end())) << i;
    ++i;
  }
  EXPECT_EQ(i, good.size());  // every good record readable, the bad length comes only at the end
  EXPECT_NE(reader.error(), dataflow::RecordError::None);
}

std::optional<zmq::message_t> receive(zmq::socket_t& s, Clock::time_point deadline) {
  while (Clock::now() < deadline) {
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(50));
    if (item.revents & ZMQ_POLLIN) {
      zmq::message_t m;
      if (s.recv(m, zmq::recv_flags::dontwait)) return m;
    }
  }
  return std::nullopt;
}

TEST(ZmqFeedSender, PushBatchesRecordsAndIsolatesBadLengths) {
  zmq::context_t ctx;
  zmq::socket_t pull(ctx, zmq::socket_type::pull);
  pull.set(zmq::sockopt::linger, 0);
  pull.bind("tcp://127.0.0.1:*");
  const std::string endpoint = pull.get(zmq::sockopt::last_endpoint);

  auto sim = make_sim(3);
  std::vector<std::vector<std::uint8_t>> good;
  std::size_t bad = 0;
  ZmqSenderConfig cfg;
  cfg.endpoint = endpoint;
  cfg.batch_bytes = 16 * 1024;
  cfg.linger_ms = 0;
  ZmqFeedSender sender(cfg);
  for (int k = 0; k < 2; ++k) {
    const auto s = sim.next_slice();
    for (const auto& d : s.datagrams)
      if (d.fault == DatagramFault::BadLengthRecord) ++bad;
      else good.push_back(d.bytes);
    sender.write(s.datagrams);
  }
  ASSERT_GT(bad, 0u);
  const auto& c = sender.counters();
  EXPECT_EQ(c.records, good.size() + bad);
  EXPECT_EQ(c.bad_length_records, bad);
  EXPECT_EQ(c.hwm_blocked, 0u);

  std::size_t messages = 0, bad_messages = 0, i = 0, bytes = 0;
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (messages < c.messages) {
    auto m = receive(pull, deadline);
    ASSERT_TRUE(m) << "received " << messages << " of " << c.messages;
    ++messages;
    bytes += m->size();
    const std::span<const std::uint8_t> msg(static_cast<const std::uint8_t*>(m->data()), m->size());
    const auto scan = dataflow::for_each_record(msg, [&](std::span<const std::uint8_t> rec) {
      ASSERT_LT(i, good.size());
      EXPECT_TRUE(std::equal(rec.begin(), rec.end(), good[i].begin(), good[i].end()));
      ++i;
    });
    if (!scan) {
      // A bad length travels alone: nothing else of that message is lost.
      EXPECT_EQ(scan.records, 0u);
      EXPECT_EQ(scan.error, dataflow::RecordError::LengthOverrun);
      ++bad_messages;
    } else if (scan.records > 1) {
      EXPECT_LE(m->size(), cfg.batch_bytes);
    }
  }
  EXPECT_EQ(i, good.size());
  EXPECT_EQ(bad_messages, bad);
  EXPECT_EQ(bytes, c.bytes);
  EXPECT_LT(c.messages, good.size() / 4);  // batched, not one message per datagram
}

TEST(ZmqFeedSender, PubCountsDropsAtTheHighWaterMark) {
  TempDir tmp;
  const std::string endpoint = "ipc://" + (tmp.path / "pub.ipc").string();
  auto sim = make_sim(0);
  const auto slice = sim.next_slice();
  ZmqSenderConfig cfg;
  cfg.endpoint = endpoint;
  cfg.kind = ZmqSenderConfig::Kind::Pub;
  cfg.bind = true;
  cfg.send_hwm = 1;
  cfg.linger_ms = 0;
  ZmqFeedSender sender(cfg);
  zmq::context_t ctx;
  zmq::socket_t sub(ctx, zmq::socket_type::sub);
  sub.set(zmq::sockopt::linger, 0);
  sub.set(zmq::sockopt::rcvhwm, 1);
  sub.set(zmq::sockopt::subscribe, "");
  sub.connect(endpoint);
  // The subscriber never reads: once its subscription has arrived, the PUB queue fills.
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (sender.counters().hwm_dropped == 0 && Clock::now() < deadline) sender.write(slice.datagrams);
  EXPECT_GT(sender.counters().hwm_dropped, 0u);
}

TEST(ZmqFeedSender, PushCountsBlockingAndAStopAbortsTheWait) {
  TempDir tmp;
  const std::string endpoint = "ipc://" + (tmp.path / "push.ipc").string();
  zmq::context_t ctx;
  zmq::socket_t pull(ctx, zmq::socket_type::pull);
  pull.set(zmq::sockopt::linger, 0);
  pull.set(zmq::sockopt::rcvhwm, 1);
  pull.bind(endpoint);
  auto sim = make_sim(0);
  const auto slice = sim.next_slice();
  std::atomic<bool> stop{true};  // requested from the start: a blocked send must give up at once
  ZmqSenderConfig cfg;
  cfg.endpoint = endpoint;
  cfg.send_hwm = 1;
  cfg.linger_ms = 0;
  cfg.blocked_retry_ms = 10;
  ZmqFeedSender sender(cfg, &stop);
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (sender.counters().dropped_on_stop == 0 && Clock::now() < deadline) sender.write(slice.datagrams);
  EXPECT_GT(sender.counters().hwm_blocked, 0u);
  EXPECT_GT(sender.counters().dropped_on_stop, 0u);
}

}  // namespace
}  // namespace shoredaq::drivers
