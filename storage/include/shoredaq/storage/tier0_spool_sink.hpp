#pragma once
// The Tier-0 run files as a sink (dataflow/sink.hpp): every object of a slice (summary, events,
// kept timeslices, TMCH packets) goes into the run file, whole or not at all. The spool itself outlives runs (it is opened
// when the daemon starts, to seal what a crash left in open/, and answers `transferred(run)` for the
// store's retention), so the sink only borrows it. Per slice: accepted, held while the disk refuses
// writes, or lost whole (counted as drop.spool.slices_write_error); idle: the buffer is flushed
// when its interval is due, so a crash loses at most that.

#include <mutex>

#include "shoredaq/formats/sink.hpp"
#include "shoredaq/storage/tier0_manifest.hpp"
#include "shoredaq/storage/tier0_spool.hpp"

namespace shoredaq::storage {

class Tier0SpoolSink final : public dataflow::Sink {
 public:
  // `provenance`: what the run's manifests say about where the data come from (catalogue fields).
  explicit Tier0SpoolSink(Tier0Spool& spool, RunProvenance provenance = {})
      : spool_(spool), provenance_(std::move(provenance)) {}

  std::string_view name() const noexcept override { return "spool"; }
  void begin_run(const dataflow::RunRecord& run) override;
  dataflow::SinkWrite write(const dataflow::SliceProducts& slice) override;
  void idle() override;
  void end_run(dataflow::RunRecord& record) override;
  void counters(dataflow::CounterSet& out) const override;
  std::string problem() const override;

  // The counter names with given values (all zero: the shape of the node's metrics before a run).
  static void describe(const Tier0SpoolCounters& run, std::uint64_t slices_held, dataflow::CounterSet& out);

 private:
  void snapshot();  // copies the spool's counters for readers on other threads

  Tier0Spool& spool_;
  RunProvenance provenance_;
  mutable std::mutex mutex_;
  Tier0SpoolCounters run_counters_;
  Tier0SpoolCounters earlier_runs_;  // summed over the runs this sink ended (a session's cycled runs)
  std::uint64_t slices_held_ = 0;  // accepted while writes failed, written later (or lost at seal)
  std::string problem_;
};

}  // namespace shoredaq::storage
