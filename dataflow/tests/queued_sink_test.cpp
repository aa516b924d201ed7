// QueuedSink: a sink that blocks never stalls the writer; what does not fit is dropped whole and
// counted; end_run drains (bounded) and never hangs on a stuck sink.
#include "shoredaq/dataflow/queued_sink.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <vector>

using namespace shoredaq::dataflow;

namespace {

// A sink whose writes wait while the gate is closed; records the frames it wrote.
class GatedSink final : public Sink {
 public:
  std::string_view name() const noexcept override { return "gated"; }
  void begin_run(const RunRecord&) override { ++runs_begun; }
  SinkWrite write(const SliceProducts& slice) override {
    std::unique_lock lock(m);
    inside = true;
    cv.notify_all();
    cv.wait_for(lock, std::chrono::seconds(20), [&] { return open; });
    inside = false;
    frames.push_back(slice.header.frame_index);
    return {};
  }
  void end_run(RunRecord& record) override { record.counters["gated.frames"] = frames.size(); }
  void idle() override { ++idles; }
  void counters(CounterSet& out) const override {
    std::lock_guard lock(m);
    out.total("gated", "slices", frames.size());
  }
  void set_open(bool value) {
    std::lock_guard lock(m);
    open = value;
    cv.notify_all();
  }
  bool wait_inside() {
    std::unique_lock lock(m);
    return cv.wait_for(lock, std::chrono::seconds(10), [&] { return inside; });
  }

  mutable std::mutex m;
  std::condition_variable cv;
  bool open = true, inside = false;
  std::vector<std::uint32_t> frames;
  std::atomic<int> runs_begun{0}, idles{0};
};

std::shared_ptr<const SliceProducts> slice(std::uint32_t frame) {
  auto p = std::make_shared<SliceProducts>();
  p->header.frame_index = frame;
  return p;
}

}  // namespace

TEST(QueuedSink, WritesInOrderOnItsOwnThreadAndDrainsAtEndOfRun) {
  auto inner = std::make_unique<GatedSink>();
  GatedSink& g = *inner;
  QueuedSink q(std::move(inner), 100);
  q.begin_run(RunRecord{});
  for (std::uint32_t f = 1; f <= 50; ++f) EXPECT_TRUE(q.write_shared(slice(f)).accepted);
  RunRecord record;
  q.end_run(record);
  EXPECT_EQ(record.counters["gated.frames"], 50u);
  std::vector<std::uint32_t> expected(50);
  for (std::uint32_t f = 0; f < 50; ++f) expected[f] = f + 1;
  EXPECT_EQ(g.frames, expected);
  CounterSet c;
  q.counters(c);
  EXPECT_EQ(c.value("gated.slices"), 50u);
  EXPECT_EQ(c.value("gated.slices_queue_full", true), 0u);
}

TEST(QueuedSink, ABlockedSinkNeverBlocksTheWriterAndDropsAreCountedWhole) {
  auto inner = std::make_unique<GatedSink>();
  GatedSink& g = *inner;
  g.set_open(false);
  QueuedSink q(std::move(inner), 4);
  q.write_shared(slice(1));
  ASSERT_TRUE(g.wait_inside());  // frame 1 is stuck inside the sink
  const auto t0 = std::chrono::steady_clock::now();
  for (std::uint32_t f = 2; f <= 11; ++f) q.write_shared(slice(f));  // never waits
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  CounterSet c;
  q.counters(c);
  EXPECT_EQ(c.value("gated.slices_queue_full", true), 6u);  // 10 offered, 4 fit
  g.set_open(true);
  RunRecord record;
  q.end_run(record);
  EXPECT_EQ(g.frames, (std::vector<std::uint32_t>{1, 8, 9, 10, 11}));  // the oldest went first
}

TEST(QueuedSink, EndRunNeverHangsOnAStuckSink) {
  auto inner = std::make_unique<GatedSink>();
  GatedSink& g = *inner;
  g.set_open(false);
  QueuedSink q(std::move(inner), 8, std::chrono::milliseconds(200));
  q.write_shared(slice(1));
  q.write_shared(slice(2));
  ASSERT_TRUE(g.wait_inside());
  RunRecord record;
  const auto t0 = std::chrono::steady_clock::now();
  q.end_run(record);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_EQ(record.counters["stop.gated_not_ended"], 1u);
  CounterSet c;
  q.counters(c);
  EXPECT_EQ(c.value("gated.slices_queue_full", true), 1u);  // frame 2 never got in
  g.set_open(true);
}

TEST(QueuedSink, IdleReachesTheInnerSinkWhenNothingComes) {
  auto inner = std::make_unique<GatedSink>();
  GatedSink& g = *inner;
  QueuedSink q(std::move(inner), 8);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (g.idles.load() == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_GT(g.idles.load(), 0);
}

TEST(CounterSet, FlatNamesAndSums) {
  CounterSet a;
  a.total("", "slices", 3);
  a.total("builder", "datagrams", 10);
  a.drop("builder", "time_jump", 2, LossUnit::Datagrams);
  EXPECT_EQ(a.flat().at("slices"), 3u);
  EXPECT_EQ(a.flat().at("builder.datagrams"), 10u);
  EXPECT_EQ(a.flat().at("drop.builder.time_jump"), 2u);
  CounterSet b;
  b.total("builder", "datagrams", 5);
  b.drop("store", "slices_cap_reached", 1, LossUnit::SinkSlices);
  a.add(b);
  EXPECT_EQ(a.value("builder.datagrams"), 15u);
  EXPECT_EQ(a.value("store.slices_cap_reached", true), 1u);
  EXPECT_EQ(a.value("builder.time_jump", true), 2u);
}
