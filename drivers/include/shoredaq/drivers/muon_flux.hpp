#pragma once
// Atmospheric muons deep under the sea: how many cross a detector's can, and from which zenith
// angles, as a function of depth. du-sim's `--depth-m` uses this instead of a fixed muon rate, so
// 1, 10, 21 and 115 DUs each get the rate their own can sees.
//
// Source: the depth-intensity relation of Menon et al., "Muon intensities and angular distributions
// deep underground", Proc. Phys. Soc. 90 (1967) 649, fitted to measurements below ~3000 m.w.e.:
//   vertical intensity  I(0, h) = 9.8e-7 exp(-h / 810 m.w.e.)  cm^-2 s^-1 sr^-1,
//   at zenith theta     I(theta, h) = I(0, h sec(theta)) sec(theta)
// (a flat sea: the slant depth is h sec(theta); sec(theta) is the angular enhancement of the
// high-energy muons at sea level). Depth in metres of sea water is converted to metres water
// equivalent with a mean density of 1.03. At ARCA's depth (~3000-3500 m) this is within the
// relation's range; at ORCA's (~2400 m) it is slightly above it. The intensity counts muons, not
// bundles: a bundle is simulated as one muon.
#include <vector>

namespace shoredaq::drivers {

struct MuonFluxModel {
  double vertical_intensity_per_cm2_s_sr = 9.8e-7;  // at h = 0 of the exponential fit
  double attenuation_mwe = 810.0;                   // lambda, metres water equivalent
  double sea_water_density = 1.03;                  // g/cm^3: m of sea water -> m.w.e.
  double max_zenith_deg = 85.0;                     // flat-sea approximation beyond this is poor
};

// Muons per m^2 per s per sr arriving at `depth_m` of sea water from zenith angle acos(cos_zenith).
double muon_intensity_per_m2_s_sr(const MuonFluxModel& model, double depth_m, double cos_zenith);

// A vertical cylinder whose top is at `top_depth_m` below the sea surface.
struct MuonCan {
  double radius_m = 0;
  double height_m = 0;
  double top_depth_m = 0;
};

// Downgoing muons entering the can per second: through the top at its depth, and through the
// side wall at each depth along it.
double muon_rate_through_can_hz(const MuonFluxModel& model, const MuonCan& can);

// Samples the zenith angle of the muons crossing a can, for the simulator: cos(zenith) is drawn
// from the distribution of the muons that reach the can's top depth weighted by the can's area
// seen from that direction (an upper bound on the true density, since the intensity only falls
// with depth); the simulator then accepts a track with `acceptance()` at its entry depth, which
// makes the joint distribution of direction and entry point exact.
class MuonZenithSampler {
 public:
  MuonZenithSampler(const MuonFluxModel& model, const MuonCan& can);
  // cos(zenith) for a uniform `u` in [0, 1).
  double cos_zenith(double u) const;
  // Probability to keep a track of this zenith entering the can `below_top_m` below its top.
  double acceptance(double cos_zenith, double below_top_m) const;
  // Mean cos(zenith) of the muons crossing the can (from the rate integral, for tests).
  double mean_cos_zenith() const { return mean_cos_zenith_; }

 private:
  MuonFluxModel model_;
  double cos_min_ = 0;
  std::vector<double> cdf_;  // at cos_min_ + (i + 1) * step, i = 0 .. n-1
  double mean_cos_zenith_ = 0;
};

}  // namespace shoredaq::drivers
