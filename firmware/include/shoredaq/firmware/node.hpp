#pragma once
// The shoredaq node: wires the configuration, the run control behind the control socket, the
// systemd notifications and (per run) the data path
//   ZmqIngest -> TimesliceBuilder -> N DataFilter workers -> reorder -> RunWriter
// where the RunWriter (one thread, frame order) numbers the events with the run's trigger counter,
// commits each slice to the EventStore in one transaction, and counts everything.
//
// Threads: the control socket's own thread answers every command (so a command is never queued
// behind data); stop and quit drain on a background thread of the control server, so `status` is
// answered during the drain (with "draining": true) and other commands are refused until it ends;
// a signal thread turns SIGTERM/SIGINT into `quit` (= stop + quit when running); the data
// path's threads are created at start and joined by stop, which drains within
// [control] stop_timeout_ms.

#include <array>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "shoredaq/dataflow/pipeline.hpp"
#include "shoredaq/filters/data_filter.hpp"
#include "shoredaq/firmware/config.hpp"
#include "shoredaq/firmware/metrics.hpp"
#include "shoredaq/firmware/run_control.hpp"
#include "shoredaq/storage/alert_publisher.hpp"
#include "shoredaq/storage/event_store.hpp"
#include "shoredaq/storage/tier0_spool.hpp"

namespace shoredaq::firmware {

inline constexpr std::size_t kCommitStatusCount = 5;  // storage::CommitStatus values

struct RunWriterCounters {
  std::uint64_t slices_written = 0;      // committed to the store (or processed, without a store)
  std::uint64_t slices_paused = 0;       // filtered but discarded while the run was paused
  std::array<std::uint64_t, kCommitStatusCount> slices_refused{};  // by storage::CommitStatus
  std::uint64_t events = 0;              // committed
  std::uint64_t events_refused = 0;
  std::uint64_t events_3d_shower = 0, events_mx_shower = 0, events_3d_muon = 0, events_factory_limit = 0;
  std::uint64_t event_bytes_online = 0;  // online-format size of the committed events
  std::uint64_t stored_bytes = 0;        // Event + SummarySlice buffers written
  std::uint64_t trigger_counter = 0;     // next trigger counter of the run
  std::uint64_t spool_slices_pending = 0;  // slices accepted while writes failed (held, written later)
  storage::Tier0SpoolCounters spool_run;    // the spool's counters of this run, after the latest slice
  storage::Tier0SpoolCounters spool_total;  // ... since the daemon opened the spool
  storage::AlertPublisherCounters alerts;
  std::uint32_t first_frame = 0, last_frame = 0;
  filters::FilterCounters filter;        // summed over the written and paused slices
  std::string alarm;                     // the latest store refusal, "" = none

  std::uint64_t slices_refused_total() const noexcept {
    std::uint64_t n = 0;
    for (auto v : slices_refused) n += v;
    return n;
  }
};

// The writer stage of one run: called by the pipeline's writer thread in frame order; shared by the
// live node and `shoredaq replay`, so both store exactly the same events. Per slice: trigger
// counters, one store transaction, the Tier-0 run file, then the alert stream (which never blocks).
// The spool and alerts get every slice even when the store refuses it (cap, disk reserve): the
// run file is the copy that leaves the site.
class RunWriter {
 public:
  // Any of the sinks may be null.
  RunWriter(storage::EventStore* store, std::uint32_t run, storage::Tier0Spool* spool = nullptr,
            storage::AlertPublisher* alerts = nullptr);

  void write(dataflow::ProcessedSlice<filters::FilterResult>&& slice, bool paused = false);

  RunWriterCounters counters() const;
  // Writes what the spool buffered if its flush interval passed; the writer thread calls it while
  // no slice comes (the spool is only ever touched by that thread while a run is going).
  void flush_spool_if_due();
  // slice complete (or expired) -> committed, seconds.
  const Histogram& commit_latency() const noexcept { return latency_; }
  std::uint32_t run() const noexcept { return run_; }

 private:
  storage::EventStore* store_;
  std::uint32_t run_;
  storage::Tier0Spool* spool_;
  storage::AlertPublisher* alerts_;
  mutable std::mutex mutex_;
  RunWriterCounters counters_;
  Histogram latency_;
  std::uint64_t last_alarm_log_ns_ = 0;
};

// Counters of a finished or running run as named counters (run record, status, replay summary).
std::map<std::string, std::uint64_t, std::less<>> run_counter_map(const dataflow::PipelineStats& stats,
                                                                  const RunWriterCounters& writer);

// FNV-1a 64 of a text, as 16 hex digits (the run setup's hash in the run record).
std::string text_hash_hex(std::string_view text);

class Node {
 public:
  explicit Node(NodeConfig config);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Binds the control socket, installs the signal handling and serves until `quit` (or a signal).
  // Returns the process exit code (0 after a clean quit).
  int serve();

  // The `status` reply's extra fields: counters per stage and per loss cause, store figures.
  nlohmann::json status() const;

  RunControl& run_control() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shoredaq::firmware
