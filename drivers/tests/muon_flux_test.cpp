// The depth-intensity relation and the muons du-sim draws from it (muon_flux.hpp): the rate
// through a can against independent quadratures, the sampled zenith angles against the rate
// integral, and the simulator's muons at a depth.
#include <algorithm>
#include <cmath>
#include <numbers>

#include <gtest/gtest.h>

#include "shoredaq/drivers/du_simulator.hpp"
#include "shoredaq/drivers/muon_flux.hpp"
#include "reference_detector.hpp"

using namespace shoredaq;
using namespace shoredaq::drivers;

namespace {

constexpr double kPi = std::numbers::pi;

// Integral over zenith (in theta, trapezoid: another variable and rule than the library's) of
// f(theta) * I(theta, depth) * 2 pi sin(theta).
template <class F>
double over_zenith(const MuonFluxModel& m, double depth_m, F&& f) {
  const double theta_max = m.max_zenith_deg * kPi / 180.0;
  const int n = 20000;
  const double h = theta_max / n;
  double sum = 0;
  for (int i = 0; i <= n; ++i) {
    const double t = i * h;
    const double w = (i == 0 || i == n) ? 0.5 : 1.0;
    sum += w * f(t) * muon_intensity_per_m2_s_sr(m, depth_m, std::cos(t)) * 2 * kPi * std::sin(t);
  }
  return sum * h;
}

}  // namespace

TEST(MuonFlux, IntensityFollowsTheSlantDepth) {
  const MuonFluxModel m;
  // At the surface only the sec(theta) enhancement remains.
  EXPECT_NEAR(muon_intensity_per_m2_s_sr(m, 0, 0.5) / muon_intensity_per_m2_s_sr(m, 0, 1.0), 2.0, 1e-12);
  // One attenuation length of slant depth deeper is e times fewer muons.
  const double h = m.attenuation_mwe / m.sea_water_density;
  EXPECT_NEAR(muon_intensity_per_m2_s_sr(m, 3000, 1.0) / muon_intensity_per_m2_s_sr(m, 3000 + h, 1.0), std::exp(1.0), 1e-9);
  // Inclined at depth: the same slant depth as a vertical twice as deep, times sec = 2.
  EXPECT_NEAR(muon_intensity_per_m2_s_sr(m, 1500, 0.5), 2.0 * muon_intensity_per_m2_s_sr(m, 3000, 1.0), 1e-18);
  EXPECT_EQ(muon_intensity_per_m2_s_sr(m, 3000, 0.0), 0.0);   // horizontal
  EXPECT_EQ(muon_intensity_per_m2_s_sr(m, 3000, -0.3), 0.0);  // upgoing: no atmospheric muons
  // Magnitude at 3000 m w.e. vertical: 9.8e-7 * exp(-3000/810) per cm^2 s sr (the paper's fit).
  EXPECT_NEAR(muon_intensity_per_m2_s_sr(m, 3000 / m.sea_water_density, 1.0), 9.8e-3 * std::exp(-3000.0 / 810.0), 1e-12);
}

TEST(MuonFlux, RateThroughAFlatDiskIsTheFluxThroughItsArea) {
  const MuonFluxModel m;
  const double r = 300, depth = 3000;
  const double flux = over_zenith(m, depth, [](double t) { return std::cos(t); });  // per m^2 s, horizontal surface
  EXPECT_NEAR(muon_rate_through_can_hz(m, {r, 0.0, depth}) / (kPi * r * r * flux), 1.0, 1e-4);
}

TEST(MuonFlux, RateThroughATallCanCountsTheWallAtEachDepth) {
  const MuonFluxModel m;
  const MuonCan can{100, 600, 2800};
  // Independent: top at its depth, the wall in 1 m layers, each at its own depth.
  double wall = 0;
  for (int k = 0; k < 600; ++k)
    wall += 2 * can.radius_m * over_zenith(m, can.top_depth_m + k + 0.5, [](double t) { return std::sin(t); });
  const double top = kPi * can.radius_m * can.radius_m * over_zenith(m, can.top_depth_m, [](double t) { return std::cos(t); });
  EXPECT_NEAR(muon_rate_through_can_hz(m, can) / (top + wall), 1.0, 1e-3);
  // The wall counts: more than the top alone, less than the whole wall at the top's depth.
  const double wall_at_top = 2 * can.radius_m * can.height_m * over_zenith(m, can.top_depth_m, [](double t) { return std::sin(t); });
  EXPECT_GT(muon_rate_through_can_hz(m, can), top + 0.2 * wall_at_top);
  EXPECT_LT(muon_rate_through_can_hz(m, can), top + wall_at_top);
}

TEST(MuonFlux, ABuildingBlockAtArcaDepthSeesHundredsOfMuonsPerSecond) {
  // ~1 km^2 footprint (r 560 m), 700 m high, centre at 3100 m: the order of magnitude quoted for
  // ARCA (a few hundred Hz of atmospheric muons per building block).
  const double rate = muon_rate_through_can_hz(MuonFluxModel{}, {560, 700, 2750});
  EXPECT_GT(rate, 100.0);
  EXPECT_LT(rate, 2000.0);
  // Shallower is more: ORCA-like depth, same can.
  EXPECT_GT(muon_rate_through_can_hz(MuonFluxModel{}, {560, 700, 2050}), 3 * rate);
}

TEST(MuonFlux, SampledZenithAnglesAfterAcceptanceFollowTheRateIntegral) {
  const MuonFluxModel m;
  const MuonCan can{150, 700, 2800};
  const MuonZenithSampler sampler(m, can);
  // Entry point uniform over the projected area (top or wall, then uniform depth on the wall),
  // kept with the acceptance: the kept cos(zenith) must average to the rate-weighted mean.
  std::uint64_t state = 12345;
  auto uniform = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<double>(state >> 11) * 0x1.0p-53;
  };
  double sum = 0, sum2 = 0;
  int kept = 0, drawn = 0;
  while (kept < 200000) {
    ++drawn;
    const double c = sampler.cos_zenith(uniform());
    ASSERT_GE(c, std::cos(m.max_zenith_deg * kPi / 180.0) - 1e-12);
    ASSERT_LE(c, 1.0);
    const double s = std::sqrt(1 - c * c);
    const double top = kPi * can.radius_m * can.radius_m * c, side = 2 * can.radius_m * can.height_m * s;
    const double below = uniform() * (top + side) < top ? 0.0 : uniform() * can.height_m;
    if (uniform() >= sampler.acceptance(c, below)) continue;
    ++kept;
    sum += c;
    sum2 += c * c;
  }
  const double mean = sum / kept, sigma = std::sqrt((sum2 / kept - mean * mean) / kept);
  EXPECT_NEAR(mean, sampler.mean_cos_zenith(), 4 * sigma);
  EXPECT_GT(sampler.mean_cos_zenith(), 0.7);  // deep: mostly steep tracks
  EXPECT_LT(kept, drawn);                      // the wall below the top does refuse some
}

TEST(MuonFlux, TheSimulatorTakesItsRateAndAnglesFromTheDepth) {
  DuSimConfig c;
  c.detector = test_support::detector133();
  c.dus = {5, 9};
  c.start_unix_ns = 1'700'000'000'000'000'000ull;
  c.seed = 7;
  c.background.singles_rate_hz = 0;  // light of the muons only: fast
  c.background.k40_twofold_hz = c.background.k40_threefold_hz = c.background.k40_fourfold_hz = 0;
  c.muon.depth_m = 1200;  // shallow, for statistics
  const DuSimulator sim(c);
  // The can the simulator uses: the DOMs' extent plus the margin.
  double xmin = 1e9, xmax = -1e9, ymin = 1e9, ymax = -1e9, zmin = 1e9, zmax = -1e9;
  for (const auto* mod : sim.modules()) {
    xmin = std::min(xmin, mod->position_m.x), xmax = std::max(xmax, mod->position_m.x);
    ymin = std::min(ymin, mod->position_m.y), ymax = std::max(ymax, mod->position_m.y);
    zmin = std::min(zmin, mod->position_m.z), zmax = std::max(zmax, mod->position_m.z);
  }
  double r = 0;
  for (const auto* mod : sim.modules())
    r = std::max(r, std::hypot(mod->position_m.x - 0.5 * (xmin + xmax), mod->position_m.y - 0.5 * (ymin + ymax)));
  const double margin = c.muon.can_margin_m, height = zmax - zmin + 2 * margin;
  const MuonCan can{r + margin, height, c.muon.depth_m - 0.5 * height};
  EXPECT_DOUBLE_EQ(sim.config().muon.rate_hz, muon_rate_through_can_hz(MuonFluxModel{}, can));

  double sum = 0, sum2 = 0;
  std::size_t muons = 0;
  for (std::uint32_t k = 0; k < 400 && muons < 3000; ++k) {
    for (const auto& p : sim.make_slice(k).particles) {
      ASSERT_EQ(p.type, ParticleType::Muon);
      ASSERT_LT(p.direction.z, 0.0);
      sum += -p.direction.z;
      sum2 += p.direction.z * p.direction.z;
      ++muons;
    }
  }
  ASSERT_GT(muons, 1000u);
  const double mean = sum / muons, sigma = std::sqrt((sum2 / muons - mean * mean) / muons);
  EXPECT_NEAR(mean, MuonZenithSampler(MuonFluxModel{}, can).mean_cos_zenith(), 4 * sigma);
}

TEST(MuonFlux, ACanReachingAboveTheSeaIsRefused) {
  DuSimConfig c;
  c.detector = test_support::detector133();
  c.dus = {5};
  c.muon.depth_m = 100;  // the DU is ~700 m high
  EXPECT_THROW(DuSimulator{c}, std::invalid_argument);
}
