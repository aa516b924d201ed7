#include "shoredaq/storage/event_store_sink.hpp"

namespace shoredaq::storage {
namespace {
// Drop causes by CommitStatus (Ok has none).
constexpr const char* kRefusalCause[kCommitStatusValues] = {"", "slices_cap_reached", "slices_disk_reserve",
                                                             "slices_duplicate_key", "slices_lmdb_error"};
}  // namespace

dataflow::SinkWrite EventStoreSink::write(const dataflow::SliceProducts& slice) {
  const CommitResult r =
      store_.commit_slice(run_, slice.header.frame_index, slice.events, &slice.summary, slice.supernova_alerts);
  dataflow::SinkWrite w;
  w.bytes = r.bytes;
  if (r) return w;
  w.accepted = false;
  const auto status = static_cast<std::size_t>(r.status);
  w.cause = kRefusalCause[status];
  w.message = std::string(to_string(r.status)) + ": " + r.message;
  std::lock_guard lock(mutex_);
  ++counters_.slices_refused[status];
  counters_.events_refused += slice.events.size();
  return w;
}

void EventStoreSink::counters(dataflow::CounterSet& out) const {
  std::lock_guard lock(mutex_);
  describe(counters_, out);
}

void EventStoreSink::describe(const EventStoreSinkCounters& c, dataflow::CounterSet& out) {
  for (std::size_t i = 1; i < kCommitStatusValues; ++i)
    out.drop("store", kRefusalCause[i], c.slices_refused[i], dataflow::LossUnit::SinkSlices);
  // The events of the refused slices (the slices are the loss; this says how much physics).
  out.drop("store", "events_refused", c.events_refused, dataflow::LossUnit::NotLoss);
}

}  // namespace shoredaq::storage
