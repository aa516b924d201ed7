#pragma once
// `shoredaq replay`: the node's data path offline. A recorded or simulated feed (.dqd records)
// goes through the same IngestParser, TimesliceBuilder (data-time expiry only), DataFilter workers
// and RunWriter as the live node, in lossless mode, into an EventStore; the summary says what came
// out (slices, hits, L1 hits, events per trigger, reduction factor, hits/s).

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "shoredaq/formats/counter_set.hpp"
#include "shoredaq/dataflow/pipeline.hpp"
#include "shoredaq/firmware/config.hpp"
#include "shoredaq/firmware/run_writer.hpp"

namespace shoredaq::firmware {

struct ReplayOptions {
  std::filesystem::path detector_file;
  std::filesystem::path run_setup;   // TOML with [trigger]; empty = filter defaults
  std::filesystem::path input;       // .dqd
  std::filesystem::path store;       // EventStore directory; empty = count only
  unsigned workers = 1;              // filter threads; 0 = all in the calling thread
  std::optional<std::uint32_t> run;  // default: the run number of the first datagram
  HeaderLayoutSetting header_layout = HeaderLayoutSetting::Auto;
  std::uint32_t expiry_lag_slices = 10;
};

struct ReplaySummary {
  std::uint32_t run = 0;
  dataflow::IngestCounters ingest;
  dataflow::PipelineStats pipeline;
  RunWriterCounters writer;
  dataflow::CounterSet counters;  // the run's counters as the live node names them (run record, --json)
  double wall_seconds = 0;
  bool drained = false;

  std::uint64_t slices() const noexcept { return pipeline.builder.slices_complete + pipeline.builder.slices_expired; }
  // Input hit bytes (6 per hit) / online-format event bytes; 0 when no event was written.
  double reduction_factor() const noexcept;
  double hits_per_second() const noexcept;
};

// Throws std::runtime_error (with the file and the cause) on a bad detector, setup, input or store.
ReplaySummary run_replay(const ReplayOptions& options);

// The human summary `shoredaq replay` prints.
std::string format_replay_summary(const ReplaySummary& summary);

}  // namespace shoredaq::firmware
