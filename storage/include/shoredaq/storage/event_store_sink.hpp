#pragma once
// The event store as a sink (dataflow/sink.hpp): the node's source of truth, written on the
// writer's thread, one transaction per slice (events + summary). A refusal (map cap, disk reserve,
// a slice already stored, an LMDB error) is counted under its cause and leaves what is stored
// intact. The store outlives runs (the node opens it at init), so the sink only borrows it.

#include <array>
#include <mutex>

#include "shoredaq/formats/sink.hpp"
#include "shoredaq/storage/event_store.hpp"

namespace shoredaq::storage {

struct EventStoreSinkCounters {
  std::array<std::uint64_t, kCommitStatusValues> slices_refused{};  // by CommitStatus (Ok unused)
  std::uint64_t events_refused = 0;
};

class EventStoreSink final : public dataflow::Sink {
 public:
  explicit EventStoreSink(EventStore& store) : store_(store) {}

  std::string_view name() const noexcept override { return "store"; }
  void begin_run(const dataflow::RunRecord& run) override { run_ = run.run; }
  dataflow::SinkWrite write(const dataflow::SliceProducts& slice) override;
  void end_run(dataflow::RunRecord&) override {}
  void counters(dataflow::CounterSet& out) const override;

  // The counter names with given values (all zero: the shape of the node's metrics before a run).
  static void describe(const EventStoreSinkCounters& c, dataflow::CounterSet& out);

 private:
  EventStore& store_;
  std::uint32_t run_ = 0;
  mutable std::mutex mutex_;
  EventStoreSinkCounters counters_;
};

}  // namespace shoredaq::storage
