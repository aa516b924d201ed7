#include "shoredaq/dataflow/timeslice_transport.hpp"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>

#include "shoredaq/dataflow/pipeline.hpp"

using namespace shoredaq::dataflow;
using namespace std::chrono_literals;

namespace {

Timeslice make_slice(std::uint32_t frame) {
  Timeslice t;
  t.header.detector_id = 133;
  t.header.run = 9;
  t.header.frame_index = frame;
  t.header.utc_seconds = 1'700'000'000 + frame / 10;
  t.header.ticks_16ns = (frame % 10) * kTicksPerSlice;
  t.stamps.received_unix_ns = 1000 + frame;
  t.stamps.completed_unix_ns = 2000 + frame;
  for (std::uint32_t dom = 1; dom <= 3; ++dom) {
    DomFrame f;
    f.dom_id = 800 + dom;
    f.status.daq = FrameStatus::make_daq(2, 1);
    f.status.status = kStatus1WhiteRabbitOk | dom;
    f.status.fifo = kStatus2Trailer;
    for (std::uint32_t h = 0; h < frame % 4 + dom; ++h) {
      f.hits.resize(f.hits.size() + kHitBytes);
      encode_hit(Hit{static_cast<std::uint8_t>(h), 100 * h, 25}, f.hits.data() + f.hits.size() - kHitBytes);
    }
    t.frames.push_back(std::move(f));
  }
  return t;
}

void expect_same(const Timeslice& a, const Timeslice& b) {
  EXPECT_EQ(a.header, b.header);
  EXPECT_EQ(a.stamps.received_unix_ns, b.stamps.received_unix_ns);
  EXPECT_EQ(a.stamps.completed_unix_ns, b.stamps.completed_unix_ns);
  ASSERT_EQ(a.frames.size(), b.frames.size());
  for (std::size_t i = 0; i < a.frames.size(); ++i) {
    EXPECT_EQ(a.frames[i].dom_id, b.frames[i].dom_id);
    EXPECT_EQ(a.frames[i].status, b.frames[i].status);
    EXPECT_EQ(a.frames[i].hits, b.frames[i].hits);
  }
}

struct Collected {
  std::mutex m;
  std::condition_variable cv;
  std::vector<Timeslice> slices;
  void add(Timeslice&& t) {
    std::lock_guard lock(m);
    slices.push_back(std::move(t));
    cv.notify_all();
  }
  bool wait_count(std::size_t n) {
    std::unique_lock lock(m);
    return cv.wait_for(lock, 10s, [&] { return slices.size() >= n; });
  }
};

bool wait_until(const std::function<bool()>& cond) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

void round_trip(const std::string& bind_endpoint) {
  zmq::context_t ctx;
  Collected got;
  TimesliceReceiverConfig rc;
  rc.endpoints = {bind_endpoint};
  TimesliceReceiver receiver(ctx, rc, [&](Timeslice&& t) { got.add(std::move(t)); });
  receiver.start();
  ASSERT_EQ(receiver.bound_endpoints().size(), 1u);
  TimesliceSenderConfig sc;
  sc.endpoints = receiver.bound_endpoints();
  sc.send_timeout = 5s;
  TimesliceSender sender(ctx, sc);
  for (std::uint32_t f = 1; f <= 10; ++f) ASSERT_TRUE(sender.send(make_slice(f)));
  ASSERT_TRUE(got.wait_count(10));
  for (std::uint32_t f = 1; f <= 10; ++f) expect_same(got.slices[f - 1], make_slice(f));
  EXPECT_EQ(sender.counters().sent, 10u);
  EXPECT_EQ(sender.counters().dropped, 0u);
  EXPECT_EQ(receiver.counters().received, 10u);
  EXPECT_EQ(receiver.counters().bytes, sender.counters().bytes);
  receiver.stop();
}

}  // namespace

TEST(TimesliceTransport, RoundTripOverInproc) { round_trip("inproc://slices"); }

TEST(TimesliceTransport, RoundTripOverTcpLoopback) { round_trip("tcp://127.0.0.1:*"); }

TEST(TimesliceTransport, BadBuffersAreCountedAndDropped) {
  zmq::context_t ctx;
  Collected got;
  TimesliceReceiverConfig rc;
  rc.endpoints = {"inproc://slices-bad"};
  RateLimitedLog log(nullptr, 10s, 1);
  TimesliceReceiver receiver(ctx, rc, [&](Timeslice&& t) { got.add(std::move(t)); }, &log);
  receiver.start();
  zmq::socket_t push(ctx, zmq::socket_type::push);
  push.set(zmq::sockopt::linger, 100);
  push.connect("inproc://slices-bad");
  std::vector<std::uint8_t> junk(64, 0x5a);
  push.send(zmq::buffer(junk), zmq::send_flags::none);
  auto good = encode_timeslice_fb(make_slice(3));
  auto damaged = good;
  damaged[0] = 0xff;  // root offset now points outside the buffer
  damaged[1] = 0xff;
  push.send(zmq::buffer(damaged), zmq::send_flags::none);
  push.send(zmq::buffer(good), zmq::send_flags::none);
  ASSERT_TRUE(got.wait_count(1));
  ASSERT_TRUE(wait_until([&] { return receiver.counters().bad_buffers == 2; }));
  expect_same(got.slices[0], make_slice(3));
  const auto c = receiver.counters();
  EXPECT_EQ(c.received, 1u);
  EXPECT_EQ(c.bytes, junk.size() + damaged.size() + good.size());
  receiver.stop();
}

TEST(TimesliceTransport, SenderWithoutPeerDropsAfterTimeout) {
  zmq::context_t ctx;
  TimesliceSenderConfig sc;
  sc.endpoints = {"inproc://nobody-connects"};
  sc.bind = true;  // no receiver ever connects
  sc.send_timeout = 20ms;
  TimesliceSender sender(ctx, sc);
  EXPECT_FALSE(sender.send(make_slice(1)));
  EXPECT_EQ(sender.counters().blocked, 1u);
  EXPECT_EQ(sender.counters().dropped, 1u);
  EXPECT_EQ(sender.counters().sent, 0u);
}

// Scale-out: a "builder node" pipeline encodes slices in its workers and its writer sends them; a
// "filter node" pipeline receives whole slices and processes them. Same stage code, endpoints only.
TEST(TimesliceTransport, PipelineToPipelineAcrossTcp) {
  zmq::context_t ctx;
  PipelineConfig filter_cfg;
  filter_cfg.workers = 2;
  filter_cfg.lossless = true;
  filter_cfg.tick = 5ms;
  std::mutex m;
  std::vector<std::pair<std::uint32_t, std::size_t>> written;
  Pipeline<std::size_t> filter_node(
      filter_cfg, [](const Timeslice& t) { return t.hit_count(); },
      [&](ProcessedSlice<std::size_t>&& p) {
        std::lock_guard lock(m);
        written.emplace_back(p.info.header.frame_index, p.result);
      });
  filter_node.start();
  TimesliceReceiverConfig rc;
  rc.endpoints = {"tcp://127.0.0.1:*"};
  TimesliceReceiver receiver(ctx, rc, [&](Timeslice&& t) {
    while (filter_node.feed_slice(std::move(t), 100ms) == QueueStatus::Timeout) {
    }
  });
  receiver.start();

  TimesliceSenderConfig sc;
  sc.endpoints = receiver.bound_endpoints();
  sc.send_timeout = 5s;
  TimesliceSender sender(ctx, sc);
  PipelineConfig builder_cfg;
  builder_cfg.workers = 2;
  builder_cfg.lossless = true;
  builder_cfg.tick = 5ms;
  Pipeline<std::vector<std::uint8_t>> builder_node(
      builder_cfg, [](const Timeslice& t) { return encode_timeslice_fb(t); },
      [&](ProcessedSlice<std::vector<std::uint8_t>>&& p) { sender.send_encoded(p.result); });
  builder_node.start();
  for (std::uint32_t f = 1; f <= 30; ++f) {
    ASSERT_EQ(builder_node.feed_slice(make_slice(f), 1s), QueueStatus::Ok);
  }
  EXPECT_TRUE(builder_node.stop(10s).drained);
  ASSERT_TRUE(wait_until([&] { return receiver.counters().received == 30; }));
  receiver.stop();
  EXPECT_TRUE(filter_node.stop(10s).drained);
  ASSERT_EQ(written.size(), 30u);
  for (std::uint32_t f = 1; f <= 30; ++f) {
    EXPECT_EQ(written[f - 1].first, f);  // one sender, one receiver: order kept end to end
    EXPECT_EQ(written[f - 1].second, make_slice(f).hit_count());
  }
  EXPECT_EQ(sender.counters().sent, 30u);
}
