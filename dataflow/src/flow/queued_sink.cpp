#include "shoredaq/dataflow/queued_sink.hpp"

#include <spdlog/spdlog.h>

namespace shoredaq::dataflow {

QueuedSink::QueuedSink(std::unique_ptr<Sink> inner, std::size_t capacity_slices, std::chrono::milliseconds drain_timeout)
    : inner_(std::move(inner)), capacity_(capacity_slices == 0 ? 1 : capacity_slices), drain_timeout_(drain_timeout) {
  worker_ = std::thread([this] { run(); });
}

QueuedSink::~QueuedSink() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  worker_.join();
}

void QueuedSink::InnerGate::enter() {
  std::unique_lock lock(mutex_);
  free_.wait(lock, [this] { return !busy_; });
  busy_ = true;
}

bool QueuedSink::InnerGate::try_enter() {
  std::lock_guard lock(mutex_);
  if (busy_) return false;
  busy_ = true;
  return true;
}

bool QueuedSink::InnerGate::enter_until(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  if (!free_.wait_until(lock, deadline, [this] { return !busy_; })) return false;
  busy_ = true;
  return true;
}

void QueuedSink::InnerGate::leave() {
  {
    std::lock_guard lock(mutex_);
    busy_ = false;
  }
  free_.notify_all();
}

void QueuedSink::begin_run(const RunRecord& run) {
  inner_gate_.enter();
  InnerLease lease{&inner_gate_};
  inner_->begin_run(run);
}

SinkWrite QueuedSink::write(const SliceProducts& slice) {
  return write_shared(std::make_shared<const SliceProducts>(slice));
}

SinkWrite QueuedSink::write_shared(const std::shared_ptr<const SliceProducts>& slice) {
  {
    std::lock_guard lock(mutex_);
    if (queue_.size() >= capacity_) {
      queue_.pop_front();  // the oldest whole slice makes room; never part of one
      ++dropped_queue_full_;
    }
    queue_.push_back(slice);
  }
  wake_.notify_one();
  return SinkWrite{};  // accepted into the queue; what the inner sink does is counted there
}

void QueuedSink::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    // Nothing for a while: the inner sink may flush what it buffered (e.g. the spool's interval).
    if (!wake_.wait_for(lock, std::chrono::milliseconds(100), [this] { return stopping_ || !queue_.empty(); })) {
      lock.unlock();
      if (inner_gate_.try_enter()) {
        InnerLease lease{&inner_gate_};
        inner_->idle();
      }
      lock.lock();
      continue;
    }
    if (queue_.empty() && stopping_) return;
    auto slice = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    {
      inner_gate_.enter();
      InnerLease lease{&inner_gate_};
      inner_->write(*slice);  // a refusal is counted by the inner sink itself
    }
    slice.reset();
    lock.lock();
    busy_ = false;
    if (queue_.empty()) drained_.notify_all();
  }
}

void QueuedSink::end_run(RunRecord& record) {
  const auto deadline = std::chrono::steady_clock::now() + drain_timeout_;
  {
    std::unique_lock lock(mutex_);
    if (!drained_.wait_until(lock, deadline, [this] { return queue_.empty() && !busy_; })) {
      // A sink stuck for the whole drain time: what it still holds is dropped, counted, logged.
      not_drained_ += queue_.size();
      spdlog::error("sink {}: {} slices still queued after {} ms at the end of run {}: dropped", inner_->name(),
                    queue_.size(), drain_timeout_.count(), record.run);
      queue_.clear();
    }
  }
  if (!inner_gate_.enter_until(deadline + std::chrono::seconds(1))) {
    spdlog::error("sink {}: still inside a write at the end of run {}: its run is not ended", inner_->name(), record.run);
    record.counters["stop." + std::string(inner_->name()) + "_not_ended"] = 1;
    return;
  }
  InnerLease lease{&inner_gate_};
  inner_->end_run(record);
}

void QueuedSink::counters(CounterSet& out) const {
  inner_->counters(out);
  std::lock_guard lock(mutex_);
  out.drop(inner_->name(), "slices_queue_full", dropped_queue_full_ + not_drained_, LossUnit::SinkSlices);
}

std::string QueuedSink::problem() const { return inner_->problem(); }

std::size_t QueuedSink::depth() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

}  // namespace shoredaq::dataflow
