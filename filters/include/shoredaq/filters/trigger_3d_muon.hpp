#pragma once
// 3D muon trigger (DOMAIN.md section 5): for trial directions on a grid over the sphere, L1 hits
// rotated so the direction is z and clustered with the 1D muon match within road_width_m; a cluster
// of >= number_of_hits L1 hits on >= number_of_modules DOMs fires.

#include <span>
#include <vector>

#include "shoredaq/formats/detector.hpp"
#include "shoredaq/filters/l1.hpp"
#include "shoredaq/filters/trigger_candidate.hpp"
#include "shoredaq/filters/trigger_parameters.hpp"

namespace shoredaq::filters {

// Unit vectors about grid_angle_deg apart covering the sphere (~4*pi/angle^2; 10 deg -> ~410).
std::vector<dataflow::Vec3> make_direction_grid(double grid_angle_deg);

class Trigger3DMuon {
 public:
  explicit Trigger3DMuon(const MuonTriggerSettings& settings);

  // `l1` sorted by time. Work goes only where it can fire: each L1 hit not yet in a firing cluster
  // seeds a window of the later hits within d_max_m * n / c + slack that pass the 3D road-width
  // match with the seed; only a window with enough hits on enough DOMs is tried along every grid
  // direction (1D match with the seed, then clique clustering), stopping at the first direction
  // that fires. Appends one TriggerCandidate per firing cluster; returns how many.
  std::size_t run(std::span<const L1Hit> l1, std::vector<TriggerCandidate>& out, TriggerScratch& scratch) const;

  std::size_t direction_count() const noexcept { return frames_.size(); }

 private:
  struct Frame {  // orthonormal basis with z along the trial direction
    dataflow::Vec3 x, y, z;
  };
  MuonTriggerSettings settings_;
  std::vector<Frame> frames_;
};

}  // namespace shoredaq::filters
