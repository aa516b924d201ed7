#pragma once
// ThreadedFeedSink: runs another sink's writes on a thread of its own, so a sink that paces its
// output (UdpFeedSender spreading each slice over most of its 100 ms, as a CLB sends while it
// takes data) overlaps with the generation of the next slice instead of adding to it.
//
// write() copies the slice and returns at once while fewer than `max_pending_writes` writes are
// queued or running; otherwise it waits for room (back-pressure, like a ZeroMQ PUSH at its HWM),
// in steps that check `stop`: when stop is set the slice is abandoned and counted
// (dropped_on_stop). finish() waits for every pending write, then finishes the inner sink; an
// exception thrown by the inner sink is rethrown by the next write() or by finish().

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "shoredaq/drivers/feed_sink.hpp"

namespace shoredaq::drivers {

class ThreadedFeedSink final : public FeedSink {
 public:
  explicit ThreadedFeedSink(std::unique_ptr<FeedSink> inner, std::size_t max_pending_writes = 2,
                            const std::atomic<bool>* stop = nullptr);
  ~ThreadedFeedSink() override;  // finishes; errors on this path are swallowed (call finish() to see them)
  ThreadedFeedSink(const ThreadedFeedSink&) = delete;
  ThreadedFeedSink& operator=(const ThreadedFeedSink&) = delete;

  void write(std::span<const SimDatagram> datagrams) override;
  void finish() override;
  // The inner sink's counters plus what was abandoned here. Complete after finish().
  const SinkCounters& counters() const noexcept override { return counters_; }
  // The inner sink: read its own counters after finish().
  const FeedSink& inner() const noexcept { return *inner_; }

 private:
  void run();
  void rethrow_inner_error();

  std::unique_ptr<FeedSink> inner_;
  std::size_t max_pending_;
  const std::atomic<bool>* stop_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::vector<SimDatagram>> queue_;
  bool writing_ = false;   // the thread is inside inner_->write()
  bool closing_ = false;
  bool finished_ = false;
  std::exception_ptr error_;
  std::uint64_t dropped_on_stop_ = 0;
  SinkCounters counters_;
  std::thread thread_;
};

}  // namespace shoredaq::drivers
