#pragma once
// Event building (DOMAIN.md section 5): firing clusters -> events with per-hit trigger masks and a
// snapshot of every L0 hit around them; overlapping events merge. An event never crosses its slice.

#include <cstdint>
#include <span>
#include <vector>

#include "shoredaq/formats/event.hpp"
#include "shoredaq/filters/l0.hpp"
#include "shoredaq/filters/trigger_candidate.hpp"

namespace shoredaq::filters {

// Which DOMs give snapshot hits. max_distance_m == 0: every DOM (DOMAIN.md section 5, the
// collaboration's definition). Otherwise only DOMs within max_distance_m of a DOM with a triggered
// hit: the all-DOM snapshot grows with the detector (~1100 background hits per event for 115 DUs at
// 7 kHz), which alone keeps a building block far from a 1e4 reduction; see the filters report.
struct SnapshotScope {
  double max_distance_m = 0.0;
  std::span<const dataflow::Vec3> module_positions;  // by module index (L0Dom::module_index)
};

// Turns the slice's trigger candidates into events, appended to `out` in time order.
// A candidate spans [first, last] of its hits' calibrated times; candidates whose windows
// [first - snapshot_window_ns, last + snapshot_window_ns] overlap merge into one event: its triggered
// hits are the union (per-hit masks OR'ed), its mask the OR, `overlays` the number of candidates
// merged into the first (0 = a single one). The snapshot is every L0 hit of every DOM in the merged
// window (see SnapshotScope). Hits carry raw times; events get event_number = index within the slice (counting from
// the first event appended) and trigger_counter = 0 (see assign_trigger_counters).
// Returns the number of events appended.
std::size_t build_events(const std::vector<TriggerCandidate>& candidates, const L0Slice& l0,
                         const dataflow::SliceHeader& header, double snapshot_window_ns,
                         std::vector<dataflow::Event>& out, const SnapshotScope& scope = {});

// Numbers the events of one slice with the run's trigger counter; the pipeline calls it on the
// slices in frame order, so the counter is continuous over the run.
void assign_trigger_counters(std::vector<dataflow::Event>& events, std::uint64_t& run_counter);

// Size of an event in the collaboration's online format (DOMAIN.md section 3): preamble, version,
// header, counter, mask, overlays, 18-byte triggered and 10-byte snapshot hits.
constexpr std::size_t online_event_bytes(std::size_t triggered_hits, std::size_t snapshot_hits) noexcept {
  return 8 + 2 + 20 + 8 + 8 + 4 + 4 + 18 * triggered_hits + 4 + 10 * snapshot_hits;
}
inline std::size_t online_event_bytes(const dataflow::Event& event) noexcept {
  return online_event_bytes(event.triggered.size(), event.snapshot.size());
}

}  // namespace shoredaq::filters
