#pragma once
// BoundedQueue: the hand-over between pipeline threads (DESIGN.md section 6). Multi-producer,
// multi-consumer, a fixed capacity, and a timeout on every blocking call so no stage can hang a
// stop. Items are whole units (a slice, a message): the drop-oldest push discards the oldest whole
// item, never part of one, and hands it back so the caller can count or account for it.
//
// Close semantics: after close(), pushes fail with Closed; pops still return the items already
// queued (drain) and report Closed only once the queue is empty.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <utility>

namespace shoredaq::dataflow {

enum class QueueStatus : std::uint8_t { Ok, Timeout, Closed };

struct QueueCounters {
  std::uint64_t pushed = 0;
  std::uint64_t popped = 0;
  std::uint64_t dropped_oldest = 0;  // removed by push_drop_oldest
  std::uint64_t push_timeouts = 0;
  std::size_t depth = 0;
  std::size_t peak_depth = 0;
};

template <class T>
class BoundedQueue {
 public:
  explicit BoundedQueue(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}
  BoundedQueue(const BoundedQueue&) = delete;
  BoundedQueue& operator=(const BoundedQueue&) = delete;

  // Waits up to `timeout` for room. On Timeout/Closed the item is left untouched in `item`.
  template <class Rep, class Period>
  QueueStatus push(T& item, std::chrono::duration<Rep, Period> timeout) {
    std::unique_lock lock(mutex_);
    if (!not_full_.wait_for(lock, timeout, [&] { return closed_ || items_.size() < capacity_; })) {
      ++counters_.push_timeouts;
      return QueueStatus::Timeout;
    }
    if (closed_) return QueueStatus::Closed;
    enqueue(std::move(item));
    lock.unlock();
    not_empty_.notify_one();
    return QueueStatus::Ok;
  }
  template <class Rep, class Period>
  QueueStatus push(T&& item, std::chrono::duration<Rep, Period> timeout) {
    return push(item, timeout);
  }

  // Never blocks: when full, removes the oldest item and returns it (nullopt if nothing dropped).
  // On a closed queue the item is not queued; it is returned (as if dropped) and not counted.
  struct DropResult {
    QueueStatus status = QueueStatus::Ok;
    std::optional<T> dropped;  // the oldest item, removed to make room (or the rejected item if Closed)
  };
  DropResult push_drop_oldest(T item) {
    DropResult r;
    {
      std::lock_guard lock(mutex_);
      if (closed_) {
        r.status = QueueStatus::Closed;
        r.dropped.emplace(std::move(item));
        return r;
      }
      if (items_.size() >= capacity_) {
        r.dropped.emplace(std::move(items_.front()));
        items_.pop_front();
        ++counters_.dropped_oldest;
      }
      enqueue(std::move(item));
    }
    not_empty_.notify_one();
    return r;
  }

  // Waits up to `timeout` for an item. Closed only when closed AND empty (fully drained).
  template <class Rep, class Period>
  QueueStatus pop(T& out, std::chrono::duration<Rep, Period> timeout) {
    std::unique_lock lock(mutex_);
    if (!not_empty_.wait_for(lock, timeout, [&] { return closed_ || !items_.empty(); })) {
      return QueueStatus::Timeout;
    }
    if (items_.empty()) return QueueStatus::Closed;
    out = std::move(items_.front());
    items_.pop_front();
    ++counters_.popped;
    counters_.depth = items_.size();
    lock.unlock();
    not_full_.notify_one();
    return QueueStatus::Ok;
  }
  template <class Rep, class Period>
  std::optional<T> pop(std::chrono::duration<Rep, Period> timeout) {
    T out;
    if (pop(out, timeout) != QueueStatus::Ok) return std::nullopt;
    return out;
  }

  // No more pushes; consumers drain what is queued, then see Closed. Wakes every waiter.
  void close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    not_empty_.notify_all();
    not_full_.notify_all();
  }
  bool closed() const {
    std::lock_guard lock(mutex_);
    return closed_;
  }
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return items_.size();
  }
  std::size_t capacity() const noexcept { return capacity_; }
  QueueCounters counters() const {
    std::lock_guard lock(mutex_);
    return counters_;
  }

 private:
  void enqueue(T&& item) {
    items_.push_back(std::move(item));
    ++counters_.pushed;
    counters_.depth = items_.size();
    if (counters_.depth > counters_.peak_depth) counters_.peak_depth = counters_.depth;
  }

  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::deque<T> items_;
  bool closed_ = false;
  QueueCounters counters_;
};

}  // namespace shoredaq::dataflow
