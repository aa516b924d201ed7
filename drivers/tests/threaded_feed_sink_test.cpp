// ThreadedFeedSink: another sink's writes on a thread of its own, in order, with bounded
// back-pressure, a stop that abandons a waiting write (counted), and the inner sink's errors
// rethrown. The inner sink here is a gate the test opens and closes; every wait has a deadline.

#include "shoredaq/drivers/threaded_feed_sink.hpp"

#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace shoredaq::drivers {
namespace {

using namespace std::chrono_literals;

class GateSink final : public FeedSink {
 public:
  void open(bool open) {
    std::lock_guard lock(mutex_);
    open_ = open;
    changed_.notify_all();
  }
  void write(std::span<const SimDatagram> datagrams) override {
    std::unique_lock lock(mutex_);
    if (!changed_.wait_for(lock, 30s, [&] { return open_; })) throw std::runtime_error("gate never opened");
    if (throw_on_write_) throw std::runtime_error("inner sink failed");
    std::vector<std::uint32_t> doms;
    for (const auto& d : datagrams) doms.push_back(d.dom_id);
    writes.push_back(doms);
    threads.push_back(std::this_thread::get_id());
    counters_.records += datagrams.size();
  }
  void finish() override { finished = true; }
  const SinkCounters& counters() const noexcept override { return counters_; }

  std::vector<std::vector<std::uint32_t>> writes;
  std::vector<std::thread::id> threads;
  bool finished = false;
  bool throw_on_write_ = false;

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool open_ = true;
  SinkCounters counters_;
};

std::vector<SimDatagram> slice_of(std::uint32_t first_dom, std::size_t n) {
  std::vector<SimDatagram> s(n);
  for (std::size_t i = 0; i < n; ++i) s[i].dom_id = first_dom + static_cast<std::uint32_t>(i);
  return s;
}

TEST(ThreadedFeedSink, WritesEverySliceInOrderOnItsOwnThread) {
  auto inner = std::make_unique<GateSink>();
  GateSink* gate = inner.get();
  ThreadedFeedSink sink(std::move(inner), 2);
  for (std::uint32_t k = 0; k < 5; ++k) sink.write(slice_of(k * 10, k + 1));
  sink.finish();
  ASSERT_EQ(gate->writes.size(), 5u);
  for (std::uint32_t k = 0; k < 5; ++k) {
    std::vector<std::uint32_t> doms;
    for (const auto& d : slice_of(k * 10, k + 1)) doms.push_back(d.dom_id);
    EXPECT_EQ(gate->writes[k], doms);
  }
  for (const auto& id : gate->threads) EXPECT_NE(id, std::this_thread::get_id());
  EXPECT_TRUE(gate->finished);
  EXPECT_EQ(sink.counters().records, 15u);
  EXPECT_THROW(sink.write(slice_of(0, 1)), std::logic_error);
}

TEST(ThreadedFeedSink, WaitsForRoomAndAStopAbandonsTheWaitingSlice) {
  std::atomic<bool> stop{false};
  auto inner = std::make_unique<GateSink>();
  GateSink* gate = inner.get();
  gate->open(false);
  ThreadedFeedSink sink(std::move(inner), 2, &stop);
  sink.write(slice_of(1, 3));  // taken by the thread, held at the gate
  sink.write(slice_of(2, 4));  // queued: two pending
  auto third = std::async(std::launch::async, [&] { sink.write(slice_of(3, 5)); });
  EXPECT_EQ(third.wait_for(50ms), std::future_status::timeout);  // no room, no stop: it cannot return
  stop = true;
  ASSERT_EQ(third.wait_for(30s), std::future_status::ready);
  third.get();
  gate->open(true);
  sink.finish();
  EXPECT_EQ(gate->writes.size(), 2u);
  EXPECT_EQ(sink.counters().records, 7u);
  EXPECT_EQ(sink.counters().dropped_on_stop, 5u);
}

TEST(ThreadedFeedSink, AnErrorOfTheInnerSinkIsRethrown) {
  auto inner = std::make_unique<GateSink>();
  inner->throw_on_write_ = true;
  ThreadedFeedSink sink(std::move(inner), 1);
  sink.write(slice_of(1, 1));
  EXPECT_THROW(sink.finish(), std::runtime_error);
}

}  // namespace
}  // namespace shoredaq::drivers
