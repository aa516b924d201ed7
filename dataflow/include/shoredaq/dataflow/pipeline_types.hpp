#pragma once
// The plain data around the Pipeline (pipeline.hpp): its configuration, the per-stage counters and
// statistics, what the writer learns about each slice, and why a slice can be dropped.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "shoredaq/dataflow/queue.hpp"
#include "shoredaq/dataflow/timeslice_builder.hpp"
#include "shoredaq/dataflow/zmq_ingest.hpp"
#include "shoredaq/formats/timeslice.hpp"

namespace shoredaq::dataflow {

// Default number of filter workers: cores - 1, at least 1.
std::size_t default_worker_count() noexcept;

// Per stage: items in/out/dropped and when it last made progress (for the watchdog) or woke up.
struct StageCounters {
  std::uint64_t in = 0;
  std::uint64_t out = 0;
  std::uint64_t dropped = 0;
  std::uint64_t last_progress_unix_ns = 0;  // last time an item went through
  std::uint64_t last_wakeup_unix_ns = 0;    // last time the thread ran its loop (alive, maybe idle)
};

class StageStats {
 public:
  void add_in(std::uint64_t n = 1) noexcept { in_.fetch_add(n, std::memory_order_relaxed); }
  void add_out(std::uint64_t n, std::uint64_t now_ns) noexcept {
    out_.fetch_add(n, std::memory_order_relaxed);
    last_progress_.store(now_ns, std::memory_order_relaxed);
  }
  void add_dropped(std::uint64_t n = 1) noexcept { dropped_.fetch_add(n, std::memory_order_relaxed); }
  void wakeup(std::uint64_t now_ns) noexcept { last_wakeup_.store(now_ns, std::memory_order_relaxed); }
  StageCounters snapshot() const noexcept;

 private:
  std::atomic<std::uint64_t> in_{0}, out_{0}, dropped_{0}, last_progress_{0}, last_wakeup_{0};
};

// What the writer (and the drop observer) learn about a slice besides the processing result.
struct SliceInfo {
  SliceHeader header;
  SliceStamps stamps;
  std::uint64_t sequence = 0;    // emission order within this pipeline, from 0
  std::size_t hits = 0;
  std::size_t frames = 0;
  std::size_t frames_complete = 0;
  bool complete() const noexcept { return frames_complete == frames; }
  static SliceInfo of(const Timeslice& slice, std::uint64_t sequence);
};

template <class Result>
struct ProcessedSlice {
  SliceInfo info;
  Result result{};
  std::uint64_t processed_unix_ns = 0;
  std::vector<RawMonitoring> monitoring;  // the slice's TMCH packets, passed by (not to) the processor
};

enum class SliceDropCause : std::uint8_t {
  SliceQueueFull,   // the oldest whole slice made room for a newer one
  ProcessorError,   // the processor threw
  Aborted,          // stop() deadline passed before the slice was written
};
std::string_view to_string(SliceDropCause cause) noexcept;

struct PipelineConfig {
  TimesliceBuilderConfig builder;
  std::optional<ZmqIngestConfig> ingest;  // none: data only through feed()
  std::size_t workers = 0;                // 0 = default_worker_count()
  std::size_t message_queue_capacity = 4096;  // ingest -> builder, messages
  std::size_t slice_queue_capacity = 8;       // builder -> workers, whole slices
  std::size_t reorder_window_slices = 16;     // results waiting for the writer
  std::chrono::milliseconds tick{10};         // the longest any stage waits before re-checking
  // Block instead of dropping (offline replay; a live node with back-pressure: the ingest thread
  // waits for room, ZeroMQ PUSH senders wait on it).
  bool lossless = false;
};

struct PipelineStats {
  IngestCounters ingest;
  TimesliceBuilderCounters builder;
  StageCounters ingest_stage, builder_stage, worker_stage, writer_stage;
  QueueCounters message_queue, slice_queue;
  std::uint64_t messages_dropped = 0;   // whole messages dropped from the full message queue
  std::uint64_t datagrams_dropped = 0;  // the datagrams in them
  std::uint64_t slices_dropped_queue_full = 0;
  std::uint64_t processor_errors = 0;
  std::uint64_t slices_aborted = 0;         // built, not written: stop() deadline passed
  std::uint64_t messages_discarded = 0;     // still queued for the builder at an aborted stop
  std::uint64_t datagrams_discarded = 0;
  std::uint64_t open_slices_discarded = 0;  // still open in the builder at an aborted stop
  std::uint64_t messages_after_stop = 0;    // fed after stop() began: refused
  std::size_t reorder_pending = 0;
  // DOMs that sent datagrams with an implausible slice time (TimesliceBuilder::implausible_time_doms()).
  std::vector<DomCount> implausible_time_doms;
};

struct StopReport {
  bool drained = false;       // everything received before stop() reached the writer
  std::chrono::nanoseconds took{0};
};

}  // namespace shoredaq::dataflow
