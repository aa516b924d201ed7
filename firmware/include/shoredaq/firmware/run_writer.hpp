#pragma once
// The writer stage of one run (DESIGN.md section 1, "the writer -> sinks"): called by the
// pipeline's writer thread in frame order, shared by the live node and `shoredaq replay`, so both
// write exactly the same events. Per slice, in one place: the run's trigger counter numbers the
// events, their online size and per-trigger counts are taken, the filters' result becomes the plain
// SliceProducts every sink sees, and each sink gets it in the configured order. The node's source of
// truth (the event store) is the primary sink: `slices_written` counts what it accepted, and the
// slice complete -> committed latency is measured when the synchronous sinks are done. A sink that
// refuses a slice counts it under its own cause; the others still get it (the run file is the copy
// that leaves the site). While the run is paused, slices are filtered (the sea does not pause) but
// not written.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <mutex>
#include <string>
#include <vector>

#include "shoredaq/formats/counter_set.hpp"
#include "shoredaq/dataflow/pipeline.hpp"
#include "shoredaq/formats/run_record.hpp"
#include "shoredaq/formats/sink.hpp"
#include "shoredaq/filters/data_filter.hpp"
#include "shoredaq/firmware/metrics.hpp"

namespace shoredaq::firmware {

struct RunWriterCounters {
  std::uint64_t slices_written = 0;  // accepted by the primary sink (every slice without one)
  std::uint64_t slices_paused = 0;   // filtered but not written while the run was paused
  std::uint64_t slices_refused = 0;  // refused by the primary sink (counted by cause there)
  std::uint64_t events = 0;          // of the written slices
  std::uint64_t events_3d_shower = 0, events_mx_shower = 0, events_3d_muon = 0, events_factory_limit = 0;
  std::uint64_t event_bytes_online = 0;  // online-format size of the written events
  std::uint64_t stored_bytes = 0;        // what the primary sink stored (its own encoding)
  std::uint64_t trigger_counter = 0;     // the next trigger counter of the run
  std::uint32_t first_frame = 0, last_frame = 0;  // of the current run (frames of a cycled run count from 1)
  std::uint64_t runs_cycled = 0;         // runs this writer ended by itself (RunCycle)
  filters::FilterCounters filter;        // summed over the written and paused slices
  std::string last_sink_error;           // the latest refusal, "" = none
};

// Runs that cycle themselves (DESIGN.md section 5): the writer ends the run at a slice boundary and
// goes on with the next run on the very next slice, so no frame is lost between them; frames of the
// new run count from 1 and its trigger counter from 0.
struct RunCycle {
  std::uint64_t max_duration_ns = 0;  // data time since the run's first slice; 0 = off
  std::uint64_t max_bytes = 0;        // what the primary sink stored of the run; 0 = off
  // Called on the writer thread when a run must end; `ended` carries the stop reason and frame
  // range (its sinks have ended it). Returns the next run's record (number, start reason...).
  std::function<dataflow::RunRecord(dataflow::RunRecord& ended)> next_run;
};

// One output of the writer; `primary` marks the source of truth (at most one).
struct WriterSink {
  std::unique_ptr<dataflow::Sink> sink;
  bool primary = false;
};

class RunWriter {
 public:
  RunWriter(dataflow::RunRecord record, std::vector<WriterSink> sinks);

  // Before the first slice: every sink's begin_run.
  void begin_run();
  // Set before the first slice.
  void set_cycle(RunCycle cycle) { cycle_ = std::move(cycle); }
  // `supernova_alerts`: the SNEWS-format alerts raised at this slice (supernova_watch.hpp), handed
  // to every sink with the slice's products.
  void write(dataflow::ProcessedSlice<filters::FilterResult>&& slice, bool paused = false,
             std::vector<std::string> supernova_alerts = {});
  // The writer thread had nothing to do for a tick.
  void idle();
  // A SNEWS message beside the slices (a heartbeat, an alert while paused): to every sink, on the
  // writer thread or once it has stopped.
  void snews(const dataflow::SnewsMessage& message);
  // After the last slice: every sink's end_run; the sinks add their figures to `record`.
  void end_run(dataflow::RunRecord& record);

  RunWriterCounters counters() const;
  // The writer's counters and every sink's, thread-safe.
  void describe(dataflow::CounterSet& out) const;
  // Sinks that cannot work now: "spool: <why>".
  std::vector<std::string> problems() const;
  // slice complete (or expired) -> written by the synchronous sinks, seconds.
  const Histogram& commit_latency() const noexcept { return latency_; }
  std::uint32_t run() const;

 private:
  // Ends the run before `header`'s slice when the cycle says so, and begins the next.
  void cycle_if_due(const dataflow::SliceHeader& header);
  // The current run's numbering on every header of the slice.
  void renumber(dataflow::ProcessedSlice<filters::FilterResult>& slice) const;

  dataflow::RunRecord record_;
  std::vector<WriterSink> sinks_;
  mutable std::mutex mutex_;
  RunWriterCounters counters_;
  Histogram latency_;
  std::uint64_t last_error_log_ns_ = 0;
  RunCycle cycle_;
  std::optional<std::uint64_t> run_first_slice_ns_;  // writer thread only
  std::uint32_t frame_offset_ = 0;                     // writer thread only
  std::uint64_t run_stored_bytes_ = 0;                 // writer thread only
  bool run_has_frames_ = false;                        // under mutex_
};

// The writer's own counters in the node's one idiom (pipeline stages describe theirs elsewhere).
void describe_writer(const RunWriterCounters& w, dataflow::CounterSet& out);

}  // namespace shoredaq::firmware
