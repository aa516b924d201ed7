#pragma once
// The supernova-like burst of the DU simulator (SupernovaBurstConfig in du_simulator.hpp for the
// model): its time profile, its multiplicity spectrum, and the coincidences of one DOM in one slice.
// Private to drivers/; du_simulator.cpp turns the coincidences into hits.

#include <array>
#include <cstdint>
#include <vector>

#include "shoredaq/drivers/du_simulator.hpp"
#include "sim_random.hpp"

namespace shoredaq::drivers::detail {

// One injected coincidence: a true time and its distinct PMTs, each photon with its time offset.
struct SupernovaCoincidence {
  double time_ns = 0;  // true time since the slice start
  unsigned multiplicity = 0;
  std::array<std::uint8_t, kSupernovaMaxMultiplicity> channels{};
  std::array<double, kSupernovaMaxMultiplicity> jitter_ns{};
};

// neighbours[i][j]: cumulative weight over j of choosing PMT j after PMT i (the 40K preference).
using NeighbourCdf = std::array<std::array<float, dataflow::kPmtsPerDom>, dataflow::kPmtsPerDom>;

class SupernovaBurstModel {
 public:
  // Throws std::invalid_argument on a bad configuration (negative or non-finite numbers, zero
  // length or rise). `run_start_unix_ns`: the start of the run's first slice.
  SupernovaBurstModel(const SupernovaBurstConfig& config, std::uint64_t run_start_unix_ns);

  bool enabled() const noexcept { return enabled_; }
  // Whether the 100 ms slice starting at `slice_start_unix_ns` overlaps the burst.
  bool overlaps(std::uint64_t slice_start_unix_ns) const noexcept;
  // Mean coincidences per DOM in [from_s, to_s) (seconds after the burst start).
  double expected_per_dom(double from_s, double to_s) const noexcept;
  // Seconds after the burst start of a time `ns_in_slice` into the slice starting at `slice_start_unix_ns`.
  double burst_time_s(std::uint64_t slice_start_unix_ns, double ns_in_slice) const noexcept;

  // Appends one DOM's coincidences of the slice: times in [lo_ns, hi_ns) of the slice (the caller
  // keeps every photon's raw time inside the slice), PMTs among the first `n_pmts` (multiplicity
  // capped at n_pmts), photon offsets within +-3 jitter sigmas.
  void draw(SimRng& rng, std::uint64_t slice_start_unix_ns, double lo_ns, double hi_ns, unsigned n_pmts,
            const NeighbourCdf& neighbours, std::vector<SupernovaCoincidence>& out) const;

  SupernovaBurstTruth truth(std::uint32_t doms) const;

 private:
  double profile(double tau_s) const noexcept;            // g(tau), unnormalised
  double profile_integral(double a_s, double b_s) const noexcept;  // of g over [a, b] within the burst

  SupernovaBurstConfig config_;
  bool enabled_ = false;
  std::uint64_t start_unix_ns_ = 0;
  double tau_rise_s_ = 0, tau_decay_s_ = 0, tau_both_s_ = 0;  // tau_both: 1 / (1/rise + 1/decay)
  double peak_tau_s_ = 0;
  double rate_per_profile_ = 0;  // Hz per unit of g: scale * peak rate / max(g)
  std::array<double, kSupernovaMaxMultiplicity + 1> multiplicity_cdf_{};
};

}  // namespace shoredaq::drivers::detail
