#pragma once
// The ControlHost dispatcher as a sink (dataflow/sink.hpp): per slice, every event (IO_EVT), the
// summary slice (IO_SUM), each kept timeslice by its stream (IO_TSL0/IO_TSL1/IO_TSL2/IO_TSSN; the
// error stream has no tag and is not published) and each TMCH packet as received (IO_MONIT), in
// the collaboration's online format. A tag nobody subscribes to is not even encoded. Publishing
// never blocks (dispatcher.hpp): what a slow client misses is counted
// (drop.dispatcher.messages_slow_client) and is no data loss, since the store and the run files
// keep everything. The dispatcher outlives runs (the daemon starts it, clients stay connected),
// so the sink only borrows it; its counters are the dispatcher's since the run began.

#include <mutex>

#include "shoredaq/formats/sink.hpp"
#include "shoredaq/storage/dispatcher.hpp"

namespace shoredaq::storage {

// The ControlHost tag of the node's supernova alerts (a SNEWS 2.0-style JSON text per alert); not a
// tag of the collaboration's reference files.
inline constexpr std::string_view kSupernovaAlertTag = "IO_SN";

class DispatcherSink final : public dataflow::Sink {
 public:
  explicit DispatcherSink(Dispatcher& dispatcher) : dispatcher_(dispatcher), baseline_(dispatcher.snapshot()) {}

  std::string_view name() const noexcept override { return "dispatcher"; }
  void begin_run(const dataflow::RunRecord& run) override;
  dataflow::SinkWrite write(const dataflow::SliceProducts& slice) override;
  void end_run(dataflow::RunRecord&) override {}
  // An alert raised while the run is paused goes out as IO_SN too; heartbeats are not on ControlHost.
  void snews(const dataflow::SnewsMessage& message) override;
  void counters(dataflow::CounterSet& out) const override;

  // The counter names with given values (all zero: the shape of the node's metrics before a run).
  // `run` is the difference of two snapshots (what happened during the run).
  static void describe(const DispatcherSnapshot& run, dataflow::CounterSet& out);

 private:
  Dispatcher& dispatcher_;
  mutable std::mutex mutex_;
  DispatcherSnapshot baseline_;  // at begin_run
};

// What happened between two snapshots (clients_connected: the later one's, a level).
DispatcherSnapshot operator-(const DispatcherSnapshot& later, const DispatcherSnapshot& earlier) noexcept;

}  // namespace shoredaq::storage
