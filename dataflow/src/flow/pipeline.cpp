#include "shoredaq/dataflow/pipeline.hpp"

namespace shoredaq::dataflow {

std::size_t default_worker_count() noexcept {
  const unsigned cores = std::thread::hardware_concurrency();
  return cores > 1 ? cores - 1 : 1;
}

StageCounters StageStats::snapshot() const noexcept {
  StageCounters c;
  c.in = in_.load(std::memory_order_relaxed);
  c.out = out_.load(std::memory_order_relaxed);
  c.dropped = dropped_.load(std::memory_order_relaxed);
  c.last_progress_unix_ns = last_progress_.load(std::memory_order_relaxed);
  c.last_wakeup_unix_ns = last_wakeup_.load(std::memory_order_relaxed);
  return c;
}

SliceInfo SliceInfo::of(const Timeslice& slice, std::uint64_t sequence) {
  SliceInfo i;
  i.header = slice.header;
  i.stamps = slice.stamps;
  i.sequence = sequence;
  i.hits = slice.hit_count();
  i.frames = slice.frames.size();
  i.frames_complete = static_cast<std::size_t>(
      std::count_if(slice.frames.begin(), slice.frames.end(), [](const DomFrame& f) { return f.status.complete(); }));
  return i;
}

std::string_view to_string(SliceDropCause cause) noexcept {
  switch (cause) {
    case SliceDropCause::SliceQueueFull: return "slice_queue_full";
    case SliceDropCause::ProcessorError: return "processor_error";
    case SliceDropCause::Aborted: return "aborted";
  }
  return "unknown";
}

}  // namespace shoredaq::dataflow
