#pragma once
// A sink: one place the writer's output goes (DESIGN.md section 1): the event store, the Tier-0 run
// files, the alert stream, the ControlHost dispatcher, ... The writer hands every sink every slice,
// in frame order, on its own thread; a sink never throws for a data problem (a full disk, a slow
// subscriber) but says what it did and counts it. Adding an output is adding a Sink and one line
// where the node's sinks are configured; the writer and the daemon do not change.
//
// Isolation: a sink that can block (disk, network) and is not the node's source of truth runs
// behind a QueuedSink (queued_sink.hpp): its own thread and a bounded queue, so it can never stall
// the others or the pipeline; what does not fit is dropped whole and counted.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "shoredaq/formats/counter_set.hpp"
#include "shoredaq/formats/run_record.hpp"
#include "shoredaq/formats/slice_products.hpp"

namespace shoredaq::dataflow {

// A SNEWS 2.0-style message (JSON text) that rides no written slice: a heartbeat (detector_status
// "ON" per period while a run takes data, "OFF" at its stop), or an alert raised while the run is
// paused (its slice is not written, so it reaches the outputs that publish, not the store).
struct SnewsMessage {
  enum class Kind : std::uint8_t { Alert, Heartbeat };
  Kind kind = Kind::Heartbeat;
  std::string json;
};

// What a sink did with one slice.
struct SinkWrite {
  bool accepted = true;
  std::string cause;    // when refused: the drop cause the sink counts it under ("slices_cap_reached")
  std::string message;  // when refused: for the log and /status ("store map cap of 8 MiB reached ...")
  std::uint64_t bytes = 0;  // what the sink stored of the slice (its own encoding)
};

class Sink {
 public:
  virtual ~Sink() = default;
  // The sink's stage name in counters and logs ("store", "spool", "alerts").
  virtual std::string_view name() const noexcept = 0;
  // A run starts (before its first slice) / ends (after its last). end_run seals and flushes, and
  // may add the sink's own figures to the run record's counters.
  virtual void begin_run(const RunRecord& run) = 0;
  virtual SinkWrite write(const SliceProducts& slice) = 0;
  virtual void end_run(RunRecord& record) = 0;
  // The writer had nothing to do for a while: write out what is buffered if that is due.
  virtual void idle() {}
  // Same thread as write() (or after the writer stopped, before end_run); never blocks. Outputs that
  // publish SNEWS messages take it; the others ignore it.
  virtual void snews(const SnewsMessage&) {}
  // Thread-safe: /status and /metrics call it while the writer runs.
  virtual void counters(CounterSet& out) const = 0;
  // Why the sink cannot work now ("" when it can), e.g. "cannot write to /var/lib/...: EIO".
  virtual std::string problem() const { return {}; }
  // Shared ownership for sinks that keep the slice beyond the call (queued); the default writes now.
  virtual SinkWrite write_shared(const std::shared_ptr<const SliceProducts>& slice) { return write(*slice); }
};

}  // namespace shoredaq::dataflow
