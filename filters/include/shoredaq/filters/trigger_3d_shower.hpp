#pragma once
// 3D shower trigger (DOMAIN.md section 5): a clique of >= number_of_hits L1 hits on
// >= number_of_modules DOMs under the 3D match within d_max_m.

#include <span>
#include <vector>

#include "shoredaq/filters/l1.hpp"
#include "shoredaq/filters/trigger_candidate.hpp"
#include "shoredaq/filters/trigger_parameters.hpp"

namespace shoredaq::filters {

// `l1` sorted by time. Each L1 hit not yet in a firing cluster seeds a candidate of the later hits
// within the largest causal time difference that match it; candidates big enough are
// clique-clustered. Appends one TriggerCandidate per firing cluster; returns how many.
std::size_t trigger_3d_shower(std::span<const L1Hit> l1, const TriggerSettings& settings,
                              std::vector<TriggerCandidate>& out, TriggerScratch& scratch);

}  // namespace shoredaq::filters
