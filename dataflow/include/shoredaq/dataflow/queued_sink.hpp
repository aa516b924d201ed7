#pragma once
// QueuedSink: runs another sink on a thread of its own behind a bounded queue of whole slices, so
// a sink that blocks (a full disk, a network peer) never stalls the writer, the other sinks or the
// pipeline. When the queue is full the oldest waiting slice is dropped and counted
// (drop.<sink>.slices_queue_full, a sink loss for health). end_run waits (bounded) until the queue
// is empty, then ends the inner sink's run on the caller's thread; a sink stuck in a write for the
// whole drain time is left behind (its slices counted as dropped), so stop never hangs on it.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "shoredaq/formats/sink.hpp"

namespace shoredaq::dataflow {

class QueuedSink final : public Sink {
 public:
  QueuedSink(std::unique_ptr<Sink> inner, std::size_t capacity_slices,
             std::chrono::milliseconds drain_timeout = std::chrono::seconds(30));
  ~QueuedSink() override;
  QueuedSink(const QueuedSink&) = delete;
  QueuedSink& operator=(const QueuedSink&) = delete;

  std::string_view name() const noexcept override { return inner_->name(); }
  void begin_run(const RunRecord& run) override;
  SinkWrite write(const SliceProducts& slice) override;  // copies; prefer write_shared
  SinkWrite write_shared(const std::shared_ptr<const SliceProducts>& slice) override;
  void end_run(RunRecord& record) override;
  void counters(CounterSet& out) const override;
  std::string problem() const override;

  std::size_t depth() const;

 private:
  void run();

  std::unique_ptr<Sink> inner_;
  const std::size_t capacity_;
  const std::chrono::milliseconds drain_timeout_;
  mutable std::mutex mutex_;  // guards the queue, the flags and the counters below
  std::condition_variable wake_, drained_;
  std::deque<std::shared_ptr<const SliceProducts>> queue_;
  bool busy_ = false;  // the worker is inside the inner sink's write
  bool stopping_ = false;
  std::uint64_t dropped_queue_full_ = 0, not_drained_ = 0;
  // The inner sink is used by one thread at a time. A flag under a mutex rather than a
  // std::timed_mutex: end_run waits for it with a deadline, and ThreadSanitizer does not see a
  // timed_mutex's timed lock (pthread_mutex_clocklock), so it reported every later unlock.
  class InnerGate {
   public:
    void enter();
    bool try_enter();
    bool enter_until(std::chrono::steady_clock::time_point deadline);
    void leave();

   private:
    std::mutex mutex_;
    std::condition_variable free_;
    bool busy_ = false;
  };
  // Leaves the gate when it goes out of scope (if it entered).
  struct InnerLease {
    InnerGate* gate = nullptr;
    ~InnerLease() {
      if (gate != nullptr) gate->leave();
    }
  };
  InnerGate inner_gate_;
  std::thread worker_;
};

}  // namespace shoredaq::dataflow
