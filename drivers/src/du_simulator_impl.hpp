#pragma once
// The DU simulator's internals, shared by its translation units (du_simulator.cpp: set-up, slices,
// faults; du_sim_light.cpp: particles and their light; du_sim_dom.cpp: one DOM's hits and datagrams).
// Private to drivers/src.

#include "shoredaq/drivers/du_simulator.hpp"
#include "shoredaq/drivers/muon_flux.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <thread>
#include <tuple>

#include "acoustic_feed.hpp"
#include "bad_time_fault.hpp"
#include "sim_random.hpp"
#include "supernova_burst.hpp"

namespace shoredaq::drivers {

using dataflow::Module;
using dataflow::Vec3;
using detail::SimRng;
using detail::Stream;

namespace du_sim {

inline constexpr double kSpeedOfLightMPerNs = 0.299792458;
inline constexpr double kRefractiveIndex = 1.3800851282;
inline constexpr double kCosCherenkov = 1.0 / kRefractiveIndex;
inline const double kSinCherenkov = std::sqrt(1.0 - kCosCherenkov * kCosCherenkov);
inline const double kTanCherenkov = kSinCherenkov / kCosCherenkov;
inline constexpr double kSliceNs = static_cast<double>(dataflow::kSliceDurationNs);
inline constexpr double kSliceSeconds = 0.1;
inline constexpr double kL1WindowNs = 10.0;
// Particles are placed this far from the slice edges (in calibrated time) so their light stays
// inside the slice: light crosses a 1 km detector in ~5 us.
inline constexpr double kParticleEdgeMarginNs = 20'000.0;
inline constexpr unsigned kMaxPhotonsSampled = 64;  // the earliest of n photons: sampling more changes nothing

// Internal hit: raw time, ToT, where it came from (0 singles, 1 40K/bursts, 2+k particle k).
struct SimHit {
  std::uint32_t time_ns;
  std::uint8_t tot_ns;
  std::uint16_t source;
  std::uint16_t photo_electrons;
};
inline constexpr std::uint16_t kSourceBackground = 0;
inline constexpr std::uint16_t kSourceCorrelated = 1;
inline constexpr std::uint16_t kSourceParticleBase = 2;

struct Particle {
  ParticleType type;
  double time_ns;  // calibrated, since the slice start
  Vec3 vertex;
  Vec3 direction;
  double energy_gev;
  double light_scale;  // multiplies the configured yield
};

struct DomModel {
  const Module* module = nullptr;
  unsigned n_pmts = 0;
  std::array<double, dataflow::kPmtsPerDom> t0_ns{};
  double t0_mean_ns = 0;
  // neighbour_cdf[i][j]: cumulative weight over j of choosing PMT j after PMT i (j != i).
  std::array<std::array<float, dataflow::kPmtsPerDom>, dataflow::kPmtsPerDom> neighbour_cdf{};
};

struct DomOutput {
  dataflow::DomFrame frame;
  std::vector<SimDatagram> datagrams;
  std::vector<std::pair<std::uint16_t, TruthHit>> particle_hits;
  std::uint64_t k40[3] = {0, 0, 0};
  std::uint64_t hrv_vetoed = 0;
  std::uint64_t bursts = 0;
  std::uint64_t monitoring = 0;
  std::uint64_t acoustic = 0;
  std::array<std::uint64_t, kSupernovaMaxMultiplicity + 1> supernova{};  // injected, by multiplicity
};

inline Vec3 normalized(Vec3 v) {
  const double n = v.norm();
  return n > 0 ? (1.0 / n) * v : Vec3{0, 0, 1};
}
inline Vec3 cross(Vec3 a, Vec3 b) { return {a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x}; }

inline double power_law(SimRng& rng, double lo, double hi, double index) {
  if (hi <= lo) return lo;
  const double g = 1.0 - index;
  const double a = std::pow(lo, g), b = std::pow(hi, g);
  return std::pow(a + rng.uniform() * (b - a), 1.0 / g);
}

inline double pmt_acceptance(double cos_incidence) {
  const double a = (cos_incidence + 0.3) / 1.3;
  return a > 0 ? a * a : 0.0;
}

}  // namespace du_sim

using namespace du_sim;  // private header: the three simulator files share these names

struct DuSimulator::Impl {
  DuSimConfig config;
  std::vector<const Module*> modules;
  std::vector<DomModel> doms;
  std::array<std::uint8_t, 65536> tot_table{};
  double uncorrelated_rate_hz = 0;
  std::uint64_t start_ns = 0;
  std::uint32_t next_frame = 0;
  // The can around the simulated DOMs.
  double can_cx = 0, can_cy = 0, can_radius = 0, can_zmin = 0, can_zmax = 0;
  Vec3 sphere_centre;
  double sphere_radius = 0;
  std::optional<MuonZenithSampler> muon_zenith;  // with MuonConfig::depth_m
  double particle_t_lo = 0, particle_t_hi = 0;  // calibrated time window for particles
  std::size_t hits_per_datagram = 0;
  std::size_t header_bytes = 0;
  std::deque<std::pair<std::uint32_t, SimDatagram>> late_queue;  // (release frame, datagram)
  detail::SupernovaBurstModel supernova{SupernovaBurstConfig{}, 0};  // set once start_ns is known

  explicit Impl(DuSimConfig cfg);
  void build_tot_table();
  std::uint8_t tot_one_pe(SimRng& rng) const { return tot_table[rng.next() >> 48]; }
  std::uint8_t tot_n_pe(SimRng& rng, unsigned n) const;
  std::vector<Particle> make_particles(std::uint32_t frame) const;
  void add_particle_light(const DomModel& dom, std::size_t k, const Particle& p, std::uint32_t frame,
                          std::array<std::vector<SimHit>, dataflow::kPmtsPerDom>& extra) const;
  void add_supernova_coincidences(const DomModel& dom, std::uint32_t frame, DomOutput& out,
                                  std::array<std::vector<SimHit>, dataflow::kPmtsPerDom>& extra) const;
  DomOutput generate_dom(std::size_t index, std::uint32_t frame, const std::vector<Particle>& particles) const;
  SimulatedSlice generate(std::uint32_t frame, std::vector<SimDatagram>* late_out) const;
  void apply_faults(std::uint32_t frame, std::vector<SimDatagram>& list, SliceCounters& counters) const;
  // The highest point (z) of the line q + s d inside the can: where a downgoing track enters it.
  std::optional<double> can_entry_z(Vec3 q, Vec3 d) const;
  bool line_hits_can(Vec3 q, Vec3 d) const { return can_entry_z(q, d).has_value(); }
  Vec3 muon_direction(SimRng& rng) const;
};

}  // namespace shoredaq::drivers
