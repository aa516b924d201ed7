#pragma once
// ReorderBuffer: results of parallel workers back into sequence (frame) order for the one writer
// (pipeline.hpp). Bounded by a window of sequence numbers.

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <utility>

#include "shoredaq/dataflow/queue.hpp"

namespace shoredaq::dataflow {

// Results back into sequence order. Workers put(); dropped slices are skip()ped so the writer does
// not wait for them; the writer take()s strictly in sequence. A put() outside the window waits
// (bounded memory); the next sequence is always inside the window, so this cannot deadlock.
template <class T>
class ReorderBuffer {
 public:
  explicit ReorderBuffer(std::size_t window) : window_(std::max<std::size_t>(window, 1)) {}

  template <class Rep, class Period>
  QueueStatus put(std::uint64_t sequence, T&& value, std::chrono::duration<Rep, Period> timeout) {
    std::unique_lock lock(mutex_);
    if (!space_.wait_for(lock, timeout, [&] { return closed_ || sequence < next_ + window_; })) {
      return QueueStatus::Timeout;
    }
    if (closed_ || sequence < next_) return QueueStatus::Closed;  // aborted / already passed
    pending_.insert_or_assign(sequence, std::optional<T>(std::move(value)));
    lock.unlock();
    ready_.notify_all();
    return QueueStatus::Ok;
  }
  // Never waits: the writer passes over this sequence.
  void skip(std::uint64_t sequence) {
    {
      std::lock_guard lock(mutex_);
      if (sequence < next_) return;
      pending_.insert_or_assign(sequence, std::nullopt);
    }
    ready_.notify_all();
  }
  // The next result in sequence. After close(): what is pending, in order (gaps passed over), then
  // Closed.
  template <class Rep, class Period>
  QueueStatus take(T& out, std::chrono::duration<Rep, Period> timeout) {
    std::unique_lock lock(mutex_);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      while (!pending_.empty() && (pending_.begin()->first == next_ || closed_)) {
        // extract(): the value moves straight out of the map node (GCC 12 also warns falsely
        // about a moved-from std::optional temporary here).
        auto node = pending_.extract(pending_.begin());
        next_ = node.key() + 1;
        if (node.mapped()) {
          out = std::move(*node.mapped());
          lock.unlock();
          space_.notify_all();
          return QueueStatus::Ok;
        }
        space_.notify_all();
      }
      if (closed_) return QueueStatus::Closed;
      if (ready_.wait_until(lock, deadline) == std::cv_status::timeout) {
        if (!pending_.empty() && pending_.begin()->first == next_) continue;
        return QueueStatus::Timeout;
      }
    }
  }
  void close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    ready_.notify_all();
    space_.notify_all();
  }
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return pending_.size();
  }
  std::uint64_t next_sequence() const {
    std::lock_guard lock(mutex_);
    return next_;
  }

 private:
  const std::size_t window_;
  mutable std::mutex mutex_;
  std::condition_variable ready_, space_;
  std::map<std::uint64_t, std::optional<T>> pending_;
  std::uint64_t next_ = 0;
  bool closed_ = false;
};

}  // namespace shoredaq::dataflow
