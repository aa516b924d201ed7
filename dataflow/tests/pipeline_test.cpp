#include "shoredaq/dataflow/pipeline.hpp"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <stdexcept>

using namespace shoredaq::dataflow;
using namespace std::chrono_literals;

namespace {

constexpr std::uint32_t kRun = 12;
constexpr std::uint32_t kT0 = 1'650'000'000;

void append_record(std::vector<std::uint8_t>& out, const std::vector<std::uint8_t>& datagram) {
  const auto n = static_cast<std::uint32_t>(datagram.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(n >> (8 * i)));
  out.insert(out.end(), datagram.begin(), datagram.end());
}

// One message with every DOM's (single, trailer) datagram of slice `s`, hits = s % 5 + 1 each.
std::vector<std::uint8_t> slice_message(std::uint32_t s, const std::vector<std::uint32_t>& doms) {
  std::vector<std::uint8_t> msg;
  for (std::uint32_t dom : doms) {
    ClbHeader h;
    h.run_number = kRun;
    h.utc_seconds = kT0 + s / 10;
    h.ticks_16ns = (s % 10) * kTicksPerSlice;
    h.dom_id = dom;
    h.status1 = kStatus1WhiteRabbitOk;
    h.status2 = kStatus2Trailer;
    std::vector<Hit> hits(s % 5 + 1, Hit{1, 1000, 25});
    append_record(msg, encode_optical_datagram(h, hits));
  }
  return msg;
}

ParsedMessage parsed(const std::vector<std::uint8_t>& bytes) {
  ParsedMessage pm;
  pm.message = zmq::message_t(bytes.data(), bytes.size());
  IngestParser parser;
  parser.parse(pm.bytes(), pm.records);
  pm.receive_unix_ns = unix_now_ns();
  return pm;
}

PipelineConfig config(std::vector<std::uint32_t> doms, std::size_t workers) {
  PipelineConfig c;
  c.builder.detector_id = 3;
  c.builder.run_number = kRun;
  c.builder.expected_doms = std::move(doms);
  c.builder.expiry_wall_ns = 0;
  c.workers = workers;
  c.tick = 5ms;
  return c;
}

// What the writer saw, with a condition to wait on.
struct Written {
  std::mutex m;
  std::condition_variable cv;
  std::vector<std::uint32_t> frames;
  std::vector<std::size_t> results;
  void add(const ProcessedSlice<std::size_t>& p) {
    std::lock_guard lock(m);
    frames.push_back(p.info.header.frame_index);
    results.push_back(p.result);
    cv.notify_all();
  }
  bool wait_count(std::size_t n) {
    std::unique_lock lock(m);
    return cv.wait_for(lock, 10s, [&] { return frames.size() >= n; });
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

// A gate a fake processor or writer can block on.
struct Gate {
  std::mutex m;
  std::condition_variable cv;
  bool open = false;
  bool entered = false;
  void pass() {
    std::unique_lock lock(m);
    entered = true;
    cv.notify_all();
    cv.wait_for(lock, 30s, [&] { return open; });
  }
  void release() {
    std::lock_guard lock(m);
    open = true;
    cv.notify_all();
  }
  bool wait_entered() {
    std::unique_lock lock(m);
    return cv.wait_for(lock, 10s, [&] { return entered; });
  }
};

}  // namespace

TEST(ReorderBuffer, ReturnsInSequenceAndPassesSkips) {
  ReorderBuffer<int> r(8);
  EXPECT_EQ(r.put(2, 20, 0ms), QueueStatus::Ok);
  r.skip(1);
  int v = 0;
  EXPECT_EQ(r.take(v, 1ms), QueueStatus::Timeout);  // 0 missing
  EXPECT_EQ(r.put(0, 0, 0ms), QueueStatus::Ok);
  EXPECT_EQ(r.take(v, 0ms), QueueStatus::Ok);
  EXPECT_EQ(v, 0);
  EXPECT_EQ(r.take(v, 0ms), QueueStatus::Ok);
  EXPECT_EQ(v, 20);
  EXPECT_EQ(r.next_sequence(), 3u);
}

TEST(ReorderBuffer, WindowBoundsPutsAndCloseFlushesPastGaps) {
  ReorderBuffer<int> r(2);
  EXPECT_EQ(r.put(1, 1, 0ms), QueueStatus::Ok);
  EXPECT_EQ(r.put(2, 2, 1ms), QueueStatus::Timeout);  // outside next(0) + window(2)
  EXPECT_EQ(r.put(0, 0, 0ms), QueueStatus::Ok);        // the next one always fits
  r.close();
  int v = -1;
  EXPECT_EQ(r.take(v, 0ms), QueueStatus::Ok);
  EXPECT_EQ(v, 0);
  EXPECT_EQ(r.take(v, 0ms), QueueStatus::Ok);
  EXPECT_EQ(v, 1);
  EXPECT_EQ(r.take(v, 0ms), QueueStatus::Closed);
}

TEST(Pipeline, ResultsReachWriterInFrameOrderWithManyWorkers) {
  const std::vector<std::uint32_t> doms = {10, 20, 30};
  auto c = config(doms, 4);
  c.lossless = true;
  Written w;
  Pipeline<std::size_t> p(
      c,
      [](const Timeslice& t) {
        // Uneven work so workers finish out of order.
        if (t.header.frame_index % 3 == 0) std::this_thread::sleep_for(2ms);
        return t.hit_count();
      },
      [&](ProcessedSlice<std::size_t>&& s) { w.add(s); });
  p.start();
  constexpr std::uint32_t kSlices = 60;
  for (std::uint32_t s = 0; s < kSlices; ++s) ASSERT_EQ(p.feed(parsed(slice_message(s, doms)), 5s), QueueStatus::Ok);
  const StopReport r = p.stop(20s);
  EXPECT_TRUE(r.drained);
  ASSERT_EQ(w.frames.size(), kSlices);
  for (std::uint32_t i = 0; i < kSlices; ++i) {
    EXPECT_EQ(w.frames[i], i + 1);
    EXPECT_EQ(w.results[i], doms.size() * (i % 5 + 1));
  }
  const PipelineStats st = p.stats();
  EXPECT_EQ(st.builder.slices_complete, kSlices);
  EXPECT_EQ(st.worker_stage.in, kSlices);
  EXPECT_EQ(st.writer_stage.out, kSlices);
  EXPECT_EQ(st.slices_dropped_queue_full, 0u);
  EXPECT_GT(st.writer_stage.last_progress_unix_ns, 0u);
}

TEST(Pipeline, FullSliceQueueDropsOldestWholeSliceAndCountsIt) {
  const std::vector<std::uint32_t> doms = {1, 2};
  auto c = config(doms, 1);
  c.slice_queue_capacity = 2;
  Gate gate;
  Written w;
  std::mutex dm;
  std::vector<std::pair<std::uint32_t, SliceDropCause>> drops;
  Pipeline<std::size_t> p(
      c,
      [&](const Timeslice& t) {
        if (t.header.frame_index == 1) gate.pass();
        return t.frames.size();
      },
      [&](ProcessedSlice<std::size_t>&& s) { w.add(s); });
  p.set_drop_observer([&](const SliceInfo& info, SliceDropCause cause) {
    std::lock_guard lock(dm);
    drops.emplace_back(info.header.frame_index, cause);
  });
  p.start();
  p.feed(parsed(slice_message(0, doms)), 1s);
  ASSERT_TRUE(gate.wait_entered());  // the only worker is busy with frame 1
  for (std::uint32_t s = 1; s < 10; ++s) p.feed(parsed(slice_message(s, doms)), 1s);
  ASSERT_TRUE(wait_until([&] { return p.stats().builder_stage.out == 10; }));
  gate.release();
  EXPECT_TRUE(p.stop(10s).drained);
  // Frame 1 was being processed; of 2..10 only the newest two fit the queue.
  EXPECT_EQ(w.frames, (std::vector<std::uint32_t>{1, 9, 10}));
  const PipelineStats st = p.stats();
  EXPECT_EQ(st.slices_dropped_queue_full, 7u);
  EXPECT_EQ(st.slice_queue.dropped_oldest, 7u);
  EXPECT_EQ(st.builder_stage.dropped, 7u);
  std::lock_guard lock(dm);
  ASSERT_EQ(drops.size(), 7u);
  for (std::size_t i = 0; i < drops.size(); ++i) {
    EXPECT_EQ(drops[i].first, i + 2);
    EXPECT_EQ(drops[i].second, SliceDropCause::SliceQueueFull);
  }
}

TEST(Pipeline, FullMessageQueueDropsOldestWholeMessage) {
  const std::vector<std::uint32_t> doms = {1};
  auto c = config(doms, 1);
  c.message_queue_capacity = 1;
  c.slice_queue_capacity = 1;
  Gate gate;
  Written w;
  Pipeline<std::size_t> p(
      c,
      [&](const Timeslice& t) {
        if (t.header.frame_index == 1) gate.pass();
        return std::size_t{0};
      },
      [&](ProcessedSlice<std::size_t>&& s) { w.add(s); });
  p.start();
  p.feed(parsed(slice_message(0, doms)), 1s);
  ASSERT_TRUE(gate.wait_entered());
  // Fill the slice queue (frame 2) and give the builder time to block on nothing: it never blocks
  // in live mode, so every further message is built and the slice queue drops instead. Feed the
  // message queue faster than it can matter: the counters must add up either way.
  for (std::uint32_t s = 1; s < 30; ++s) p.feed(parsed(slice_message(s, doms)), 1s);
  gate.release();
  EXPECT_TRUE(p.stop(10s).drained);
  const PipelineStats st = p.stats();
  // Every slice fed is accounted for: written, dropped as a whole message, or dropped as a slice.
  EXPECT_EQ(w.frames.size() + st.messages_dropped + st.slices_dropped_queue_full, 30u);
  EXPECT_EQ(st.datagrams_dropped, st.messages_dropped);
  EXPECT_EQ(st.message_queue.dropped_oldest, st.messages_dropped);
  EXPECT_TRUE(std::is_sorted(w.frames.begin(), w.frames.end()));
}

TEST(Pipeline, StopDrainsOpenSlicesAndEverythingQueued) {
  const std::vector<std::uint32_t> doms = {1, 2, 3};
  auto c = config(doms, 2);
  Written w;
  Pipeline<std::size_t> p(
      c, [](const Timeslice& t) { return t.hit_count(); }, [&](ProcessedSlice<std::size_t>&& s) { w.add(s); });
  p.start();
  // Five complete slices, then three with DOM 3 missing: those stay open until stop.
  for (std::uint32_t s = 0; s < 5; ++s) p.feed(parsed(slice_message(s, doms)), 1s);
  for (std::uint32_t s = 5; s < 8; ++s) p.feed(parsed(slice_message(s, {1, 2})), 1s);
  const StopReport r = p.stop(10s);
  EXPECT_TRUE(r.drained);
  ASSERT_EQ(w.frames.size(), 8u);
  for (std::uint32_t i = 0; i < 8; ++i) EXPECT_EQ(w.frames[i], i + 1);
  EXPECT_EQ(p.stats().builder.slices_expired, 3u);
  EXPECT_EQ(p.stats().builder.slices_complete, 5u);
  EXPECT_TRUE(p.stop().drained);  // idempotent
}

TEST(Pipeline, ProcessorErrorSkipsTheSliceAndKeepsOrder) {
  const std::vector<std::uint32_t> doms = {1};
  auto c = config(doms, 3);
  c.lossless = true;
  Written w;
  std::atomic<int> observed{0};
  Pipeline<std::size_t> p(
      c,
      [](const Timeslice& t) -> std::size_t {
        if (t.header.frame_index == 4) throw std::runtime_error("bad slice");
        return t.header.frame_index;
      },
      [&](ProcessedSlice<std::size_t>&& s) { w.add(s); });
  p.set_drop_observer([&](const SliceInfo& i, SliceDropCause cause) {
    if (cause == SliceDropCause::ProcessorError && i.header.frame_index == 4) ++observed;
  });
  p.start();
  for (std::uint32_t s = 0; s < 8; ++s) p.feed(parsed(slice_message(s, doms)), 1s);
  EXPECT_TRUE(p.stop(10s).drained);
  EXPECT_EQ(w.frames, (std::vector<std::uint32_t>{1, 2, 3, 5, 6, 7, 8}));
  EXPECT_EQ(p.stats().processor_errors, 1u);
  EXPECT_EQ(observed.load(), 1);
}

TEST(Pipeline, StuckWriterCannotHangStop) {
  const std::vector<std::uint32_t> doms = {1};
  auto c = config(doms, 1);
  c.reorder_window_slices = 1;
  Gate gate;
  Written w;
  Pipeline<std::size_t> p(
      c, [](const Timeslice&) { return std::size_t{1}; },
      [&](ProcessedSlice<std::size_t>&& s) {
        gate.pass();
        w.add(s);
      });
  p.start();
  for (std::uint32_t s = 0; s < 6; ++s) p.feed(parsed(slice_message(s, doms)), 1s);
  ASSERT_TRUE(gate.wait_entered());
  // Release the writer only once the deadline has passed and the stages gave up.
  std::thread releaser([&] {
    wait_until([&] { return p.stats().slices_aborted > 0; });
    gate.release();
  });
  const StopReport r = p.stop(100ms);
  releaser.join();
  EXPECT_FALSE(r.drained);
  EXPECT_LT(r.took, 10s);
  const PipelineStats st = p.stats();
  // Nothing vanished silently: every slice built was written, dropped or aborted.
  EXPECT_EQ(w.frames.size() + st.slices_aborted + st.slices_dropped_queue_full, st.builder_stage.out);
  EXPECT_EQ(st.builder_stage.out, 6u);
}

TEST(Pipeline, WallClockExpiryEmitsWhileRunning) {
  const std::vector<std::uint32_t> doms = {1, 2};
  auto c = config(doms, 1);
  c.builder.expiry_wall_ns = 30'000'000;  // 30 ms
  Written w;
  Pipeline<std::size_t> p(
      c, [](const Timeslice& t) { return t.frames[1].status.complete() ? 1u : 0u; },
      [&](ProcessedSlice<std::size_t>&& s) { w.add(s); });
  p.start();
  p.feed(parsed(slice_message(0, {1})), 1s);  // DOM 2 silent
  ASSERT_TRUE(w.wait_count(1));               // without stop: the wall-clock bound fired
  EXPECT_EQ(w.results[0], 0u);
  EXPECT_TRUE(p.stop(5s).drained);
}

TEST(Pipeline, LiveIngestOverInprocToWriter) {
  zmq::context_t ctx;
  const std::vector<std::uint32_t> doms = {7, 8};
  auto c = config(doms, 2);
  c.slice_queue_capacity = 32;  // the burst below arrives at once, not every 100 ms
  ZmqIngestConfig ic;
  IngestEndpoint ep;
  ep.address = "inproc://pipeline-live";
  ic.endpoints.push_back(ep);
  c.ingest = ic;
  Written w;
  Pipeline<std::size_t> p(
      c, [](const Timeslice& t) { return t.hit_count(); }, [&](ProcessedSlice<std::size_t>&& s) { w.add(s); },
      &ctx);
  p.start();
  zmq::socket_t push(ctx, zmq::socket_type::push);
  push.set(zmq::sockopt::linger, 100);
  push.connect("inproc://pipeline-live");
  for (std::uint32_t s = 0; s < 20; ++s) {
    const auto msg = slice_message(s, doms);
    ASSERT_TRUE(push.send(zmq::buffer(msg), zmq::send_flags::none));
  }
  ASSERT_TRUE(w.wait_count(20));
  EXPECT_TRUE(p.stop(5s).drained);
  ASSERT_EQ(w.frames.size(), 20u);
  for (std::uint32_t i = 0; i < 20; ++i) EXPECT_EQ(w.frames[i], i + 1);
  const PipelineStats st = p.stats();
  EXPECT_EQ(st.ingest.datagrams, 40u);
  EXPECT_EQ(st.builder.datagrams_accepted, 40u);
  EXPECT_EQ(st.ingest_stage.in, 20u);
}

// Back-pressure: with every queue tiny and the writer held, a live feed far larger than the queues
// loses nothing; the ingest stops reading and the sender waits. Then stop drains it all.
TEST(Pipeline, LosslessLiveIngestMakesTheSenderWaitInsteadOfDropping) {
  zmq::context_t ctx;
  const std::vector<std::uint32_t> doms = {7, 8};
  auto c = config(doms, 1);
  c.lossless = true;
  c.message_queue_capacity = 2;
  c.slice_queue_capacity = 1;
  c.reorder_window_slices = 1;
  ZmqIngestConfig ic;
  IngestEndpoint ep;
  ep.address = "inproc://pipeline-backpressure";
  ic.endpoints.push_back(ep);
  ic.receive_hwm = 2;
  c.ingest = ic;
  Gate gate;
  Written w;
  Pipeline<std::size_t> p(
      c, [](const Timeslice& t) { return t.hit_count(); },
      [&](ProcessedSlice<std::size_t>&& s) {
        gate.pass();
        w.add(s);
      },
      &ctx);
  p.start();
  zmq::socket_t push(ctx, zmq::socket_type::push);
  push.set(zmq::sockopt::linger, 100);
  push.set(zmq::sockopt::sndhwm, 2);
  push.set(zmq::sockopt::sndtimeo, 50);
  push.connect("inproc://pipeline-backpressure");
  ASSERT_TRUE(push.send(zmq::buffer(slice_message(0, doms)), zmq::send_flags::none));
  ASSERT_TRUE(gate.wait_entered());
  // The writer is held: the queues fill, the ingest stops reading and the sender must wait.
  std::uint32_t sent = 1;
  bool refused = false;
  for (; sent < 200 && !refused; ++sent) {
    if (!push.send(zmq::buffer(slice_message(sent, doms)), zmq::send_flags::none)) refused = true;
  }
  EXPECT_TRUE(refused) << "the sender never had to wait: nothing pushed back";
  const std::uint32_t accepted = refused ? sent - 1 : sent;
  gate.release();
  ASSERT_TRUE(w.wait_count(accepted - 1));  // the newest may still be open
  EXPECT_TRUE(p.stop(10s).drained);
  ASSERT_EQ(w.frames.size(), accepted);
  for (std::uint32_t i = 0; i < accepted; ++i) EXPECT_EQ(w.frames[i], i + 1);
  const PipelineStats st = p.stats();
  EXPECT_EQ(st.messages_dropped, 0u);
  EXPECT_EQ(st.slices_dropped_queue_full, 0u);
}

TEST(Pipeline, BadIngestEndpointThrowsAtStartAndStopsCleanly) {
  zmq::context_t ctx;
  auto c = config({1}, 1);
  ZmqIngestConfig ic;
  IngestEndpoint ep;
  ep.address = "bogus://";
  ic.endpoints.push_back(ep);
  c.ingest = ic;
  Pipeline<std::size_t> p(
      c, [](const Timeslice&) { return std::size_t{0}; }, [](ProcessedSlice<std::size_t>&&) {}, &ctx);
  EXPECT_THROW(p.start(), zmq::error_t);
}

TEST(Pipeline, StatsNameTheDomsThatSentImplausibleTimes) {
  const std::vector<std::uint32_t> doms = {1, 2, 3, 4};
  auto c = config(doms, 1);
  c.slice_queue_capacity = 32;  // the burst below arrives at once, not every 100 ms
  Written w;
  Pipeline<std::size_t> p(
      c, [](const Timeslice& t) { return t.hit_count(); },
      [&](ProcessedSlice<std::size_t>&& s) { w.add(s); });
  p.start();
  for (std::uint32_t s = 0; s < 5; ++s) p.feed(parsed(slice_message(s, doms)), 1s);
  // DOM 3 claims a slice an hour ahead, twice; nobody agrees.
  for (int i = 0; i < 2; ++i) p.feed(parsed(slice_message(36'000 + 5, {3})), 1s);
  for (std::uint32_t s = 5; s < 10; ++s) p.feed(parsed(slice_message(s, doms)), 1s);
  ASSERT_TRUE(w.wait_count(10));
  EXPECT_TRUE(p.stop(5s).drained);
  const PipelineStats st = p.stats();
  EXPECT_EQ(st.implausible_time_doms, (std::vector<DomCount>{{3, 2}}));
  EXPECT_EQ(st.builder.implausible_time_datagrams, 2u);
  EXPECT_EQ(st.builder.dropped_of(BuilderDropReason::TimeJump), 2u);
  EXPECT_EQ(w.frames, (std::vector<std::uint32_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
}
