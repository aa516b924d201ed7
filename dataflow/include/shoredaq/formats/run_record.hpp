#pragma once
// What the node knows of one run (DESIGN.md sections 3 and 4): written by the run control at start
// and stop, stored in the EventStore's `runs` database, carried as a `RunRecord` FlatBuffer.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace shoredaq::dataflow {

// How a run ended, as its record says (not the node's run-control state: firmware/run_control.hpp).
enum class RunOutcome : std::uint8_t { Running = 0, Stopped = 1, Aborted = 2 };
std::string_view to_string(RunOutcome state) noexcept;

struct RunRecord {
  std::uint32_t run = 0;
  std::int32_t detector_id = 0;
  RunOutcome state = RunOutcome::Running;
  std::uint64_t start_unix_ns = 0;
  std::uint64_t stop_unix_ns = 0;  // 0 while running
  std::uint32_t first_frame = 0;
  std::uint32_t last_frame = 0;
  std::string run_setup;       // trigger parameters text, as given at configure
  std::string run_setup_hash;  // hex digest of run_setup
  std::string detector_file;
  // Provenance: where the run's data come from and why it began and ended.
  std::string software_version;
  std::string config_hash;
  std::string detector_file_hash;
  std::string host;
  std::string run_type;
  std::string start_reason;
  std::string stop_reason;
  // Named counters: "slices", "events", "hits", per trigger, per loss cause... (sorted by name).
  std::map<std::string, std::uint64_t, std::less<>> counters;
  // The supernova alerts of the run (SNEWS 2.0-style JSON each), as the event store wrote them
  // with their slices; the run control's own record leaves this empty and the store keeps its list.
  std::vector<std::string> supernova_alerts = {};

  std::uint64_t counter(std::string_view name) const noexcept {
    const auto it = counters.find(name);
    return it == counters.end() ? 0 : it->second;
  }
  friend bool operator==(const RunRecord&, const RunRecord&) = default;
};

}  // namespace shoredaq::dataflow
