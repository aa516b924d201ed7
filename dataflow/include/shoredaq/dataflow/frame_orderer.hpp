#pragma once
// FrameOrderer: the writer process of a farm restores slice order (DESIGN.md section 6, issue 13).
// Slices come back from several filter processes in any order; the writer must see them by slice
// index. The next expected index is released at once; a gap (a slice that a dead filter process
// held, or that no ingest process built) is waited for `gap_timeout_ns` after the first slice
// beyond it arrived, then passed over and counted. The first slice of a run is released only once
// it has waited the timeout too (an earlier one may still be on its way from a slower filter
// process): the run's first slice is then the earliest that arrived in time. Bounded: beyond
// `max_pending` waiting slices the oldest is released and its gap counted. No clock of its own;
// not thread-safe (the writer's one thread).

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <utility>

namespace shoredaq::dataflow {

struct FrameOrdererCounters {
  std::uint64_t in = 0;
  std::uint64_t out = 0;
  std::uint64_t late = 0;          // behind the last released index: dropped (its gap was counted)
  std::uint64_t duplicates = 0;    // an index already waiting: dropped
  std::uint64_t gap_slices = 0;    // indices passed over (lost with a process, or never built)
  std::uint64_t gaps = 0;          // times the orderer passed over a gap
};

template <class T>
class FrameOrderer {
 public:
  FrameOrderer(std::uint64_t gap_timeout_ns, std::size_t max_pending)
      : gap_timeout_ns_(gap_timeout_ns), max_pending_(max_pending == 0 ? 1 : max_pending) {}

  // `slice_index`: absolute (slice_index_of), the same in every process.
  void add(std::uint64_t slice_index, T&& item, std::uint64_t now_ns) {
    ++counters_.in;
    if (next_ && slice_index < *next_) {
      ++counters_.late;
      return;
    }
    if (pending_.contains(slice_index)) {
      ++counters_.duplicates;
      return;
    }
    pending_.emplace(slice_index, Entry{std::move(item), now_ns});
  }

  // Releases what is due, in order, to emit(T&&).
  template <class Emit>
  void release(std::uint64_t now_ns, Emit&& emit) {
    while (!pending_.empty()) {
      auto it = pending_.begin();
      const bool in_order = next_ && it->first == *next_;
      const bool waited = now_ns >= it->second.arrival_ns + gap_timeout_ns_;
      if (!in_order && !waited && pending_.size() <= max_pending_) return;
      pop(it, emit);
    }
  }

  // Everything waiting, in order (stop).
  template <class Emit>
  void flush(Emit&& emit) {
    while (!pending_.empty()) pop(pending_.begin(), emit);
  }

  const FrameOrdererCounters& counters() const noexcept { return counters_; }
  std::size_t pending() const noexcept { return pending_.size(); }
  // The index of the first slice released, once one was.
  std::optional<std::uint64_t> first() const noexcept { return first_; }

 private:
  struct Entry {
    T item;
    std::uint64_t arrival_ns = 0;
  };

  template <class Emit>
  void pop(typename std::map<std::uint64_t, Entry>::iterator it, Emit& emit) {
    if (next_ && it->first > *next_) {
      ++counters_.gaps;
      counters_.gap_slices += it->first - *next_;
    }
    if (!first_) first_ = it->first;
    next_ = it->first + 1;
    T item = std::move(it->second.item);
    pending_.erase(it);
    ++counters_.out;
    emit(std::move(item));
  }

  std::uint64_t gap_timeout_ns_;
  std::size_t max_pending_;
  std::optional<std::uint64_t> next_, first_;
  std::map<std::uint64_t, Entry> pending_;
  FrameOrdererCounters counters_;
};

}  // namespace shoredaq::dataflow
