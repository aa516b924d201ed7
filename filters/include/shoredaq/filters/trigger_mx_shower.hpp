#pragma once
// MX shower trigger (DOMAIN.md section 5): an L1 seed plus the L0 hits causally connected to it
// within d_max_m; a clique of >= number_of_hits L0 hits on >= number_of_modules DOMs fires.

#include <cstdint>
#include <span>
#include <vector>

#include "shoredaq/formats/detector.hpp"
#include "shoredaq/filters/l0.hpp"
#include "shoredaq/filters/l1.hpp"
#include "shoredaq/filters/trigger_candidate.hpp"
#include "shoredaq/filters/trigger_parameters.hpp"

namespace shoredaq::filters {

// For every optical module, the modules (itself included) within d_max_m and their distance.
class ModuleNeighbours {
 public:
  struct Neighbour {
    std::uint32_t module_index;
    double distance_m;
  };
  ModuleNeighbours() = default;
  ModuleNeighbours(const dataflow::Detector& detector, double d_max_m);
  std::span<const Neighbour> of(std::uint32_t module_index) const noexcept {
    return {neighbours_.data() + offsets_[module_index], offsets_[module_index + 1] - offsets_[module_index]};
  }
  const dataflow::Vec3& position(std::uint32_t module_index) const noexcept { return positions_[module_index]; }

 private:
  std::vector<std::size_t> offsets_;
  std::vector<Neighbour> neighbours_;
  std::vector<dataflow::Vec3> positions_;
};

// `l1` sorted by time; `slot_of_module[m]` = the L0 DOM slot of module m, or -1 when absent. The
// DOMs' time indexes (L0Dom::time_index) make it fast; without them it is exact, only slower.
// Appends one TriggerCandidate (L0 hits) per firing cluster; returns how many.
std::size_t trigger_mx_shower(std::span<const L1Hit> l1, const L0Slice& l0,
                              std::span<const std::int32_t> slot_of_module, const ModuleNeighbours& neighbours,
                              const TriggerSettings& settings, std::vector<TriggerCandidate>& out,
                              TriggerScratch& scratch);

// The same trigger in parts, for threads. The seeds are looked at in time order, and a seed that
// the trigger's latest candidate already holds is passed over; a part looks at the seeds
// l1[first, last) as if no seed before `first` had fired. join_mx_shower_parts() then gives
// exactly what one trigger_mx_shower() gives: near the start of each part it passes over, or looks
// again at, the few seeds that the candidates before would have changed, until both runs agree.
struct MxShowerInput {
  std::span<const L1Hit> l1;  // sorted by time
  const L0Slice& l0;
  std::span<const std::int32_t> slot_of_module;
  const ModuleNeighbours& neighbours;
  const TriggerSettings& settings;
};
struct MxShowerPart {
  std::size_t first = 0, last = 0;  // seeds l1[first, last)
  std::vector<TriggerCandidate> candidates;
  std::vector<std::uint32_t> seeds;  // per candidate: the L1 hit that seeded it
  std::vector<double> end_ns;        // per candidate: the time of its latest L0 hit
  TriggerScratch scratch;
};
void trigger_mx_shower_part(const MxShowerInput& in, MxShowerPart& part);
// Appends the parts' candidates (taken from them) to `out`, as trigger_mx_shower() would; `parts`
// in seed order, covering l1 without gaps. Returns how many.
std::size_t join_mx_shower_parts(const MxShowerInput& in, std::span<MxShowerPart> parts,
                                 std::vector<TriggerCandidate>& out, TriggerScratch& scratch);

}  // namespace shoredaq::filters
