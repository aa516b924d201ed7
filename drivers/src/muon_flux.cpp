// The depth-intensity relation and the rate of muons through a can (muon_flux.hpp).
#include "shoredaq/drivers/muon_flux.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>

namespace shoredaq::drivers {

namespace {

constexpr int kZenithSteps = 4000;  // midpoint rule in cos(zenith); the integrand is smooth

double cos_min_of(const MuonFluxModel& model) { return std::cos(model.max_zenith_deg * std::numbers::pi / 180.0); }

// Muons per second per unit cos(zenith) entering the can: top disk at the top depth, plus the side
// wall (projected width 2 r sin(theta) per metre of height) integrated over its depth range.
double rate_density(const MuonFluxModel& model, const MuonCan& can, double c) {
  const double s = std::sqrt(std::max(0.0, 1.0 - c * c));
  const double i_top = muon_intensity_per_m2_s_sr(model, can.top_depth_m, c);
  // Over the wall's height the intensity falls as exp(-rho z sec / lambda): integrate exactly.
  const double k = model.sea_water_density / (model.attenuation_mwe * c);  // per metre
  const double wall = k * can.height_m < 1e-9 ? can.height_m : (1.0 - std::exp(-k * can.height_m)) / k;
  const double area_top = std::numbers::pi * can.radius_m * can.radius_m * c;
  return 2.0 * std::numbers::pi * i_top * (area_top + 2.0 * can.radius_m * s * wall);
}

}  // namespace

double muon_intensity_per_m2_s_sr(const MuonFluxModel& model, double depth_m, double cos_zenith) {
  if (cos_zenith <= 0.0 || depth_m < 0.0) return 0.0;
  const double sec = 1.0 / cos_zenith;
  const double slant_mwe = depth_m * model.sea_water_density * sec;
  return model.vertical_intensity_per_cm2_s_sr * 1e4 * std::exp(-slant_mwe / model.attenuation_mwe) * sec;
}

double muon_rate_through_can_hz(const MuonFluxModel& model, const MuonCan& can) {
  const double c_min = cos_min_of(model);
  const double step = (1.0 - c_min) / kZenithSteps;
  double rate = 0;
  for (int i = 0; i < kZenithSteps; ++i) rate += rate_density(model, can, c_min + (i + 0.5) * step) * step;
  return rate;
}

MuonZenithSampler::MuonZenithSampler(const MuonFluxModel& model, const MuonCan& can)
    : model_(model), cos_min_(cos_min_of(model)) {
  if (can.radius_m <= 0 || can.height_m < 0 || can.top_depth_m < 0)
    throw std::invalid_argument("muon can: radius must be > 0, height and depth >= 0");
  const double step = (1.0 - cos_min_) / kZenithSteps;
  // The proposal: intensity at the top depth times the whole can's projected area.
  cdf_.resize(kZenithSteps);
  double sum = 0, rate = 0, rate_cos = 0;
  for (int i = 0; i < kZenithSteps; ++i) {
    const double c = cos_min_ + (i + 0.5) * step;
    const double s = std::sqrt(std::max(0.0, 1.0 - c * c));
    const double projected = std::numbers::pi * can.radius_m * can.radius_m * c + 2.0 * can.radius_m * can.height_m * s;
    sum += muon_intensity_per_m2_s_sr(model, can.top_depth_m, c) * projected * step;
    cdf_[i] = sum;
    const double r = rate_density(model, can, c) * step;
    rate += r;
    rate_cos += r * c;
  }
  if (!(sum > 0)) throw std::invalid_argument("muon can: no muons reach it (depth too large?)");
  for (double& v : cdf_) v /= sum;
  mean_cos_zenith_ = rate_cos / rate;
}

double MuonZenithSampler::cos_zenith(double u) const {
  const auto it = std::lower_bound(cdf_.begin(), cdf_.end(), u);
  const auto i = static_cast<std::size_t>(std::min<std::ptrdiff_t>(it - cdf_.begin(), static_cast<std::ptrdiff_t>(cdf_.size()) - 1));
  const double step = (1.0 - cos_min_) / static_cast<double>(cdf_.size());
  // Linear within the bin.
  const double lo = i == 0 ? 0.0 : cdf_[i - 1];
  const double f = cdf_[i] > lo ? (u - lo) / (cdf_[i] - lo) : 0.5;
  return cos_min_ + (static_cast<double>(i) + std::clamp(f, 0.0, 1.0)) * step;
}

double MuonZenithSampler::acceptance(double cos_zenith, double below_top_m) const {
  if (cos_zenith <= 0) return 0.0;
  return std::exp(-std::max(0.0, below_top_m) * model_.sea_water_density / (model_.attenuation_mwe * cos_zenith));
}

}  // namespace shoredaq::drivers
