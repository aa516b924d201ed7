// The DU simulator: the tables of ToT, the particles of a slice and the Cherenkov light they leave
// on a DOM; the supernova-like coincidences of a burst.

#include "du_simulator_impl.hpp"

namespace shoredaq::drivers {

void DuSimulator::Impl::build_tot_table() {
  // Quantile table of the one-pe ToT distribution (integer ns, 1..254): 16 random bits pick an
  // entry, so drawing a ToT costs one table read.
  const double mu = config.tot.mean_ns, sigma = std::max(1e-3, config.tot.sigma_ns);
  auto cdf = [&](double x) { return 0.5 * std::erfc(-(x - mu) / (sigma * std::sqrt(2.0))); };
  std::size_t filled = 0;
  for (int k = 1; k <= 254 && filled < tot_table.size(); ++k) {
    const double upper = k == 254 ? 1.0 : cdf(k + 0.5);
    const auto end = std::min<std::size_t>(tot_table.size(), static_cast<std::size_t>(std::llround(upper * 65536.0)));
    for (; filled < end; ++filled) tot_table[filled] = static_cast<std::uint8_t>(k);
  }
  for (; filled < tot_table.size(); ++filled) tot_table[filled] = 254;
}

std::uint8_t DuSimulator::Impl::tot_n_pe(SimRng& rng, unsigned n) const {
  if (n <= 1) return tot_one_pe(rng);
  const double tot = config.tot.mean_ns + config.tot.per_ln_pe_ns * std::log(static_cast<double>(n)) +
                     config.tot.sigma_ns * rng.normal();
  if (tot >= 255.0) return 255;  // saturated
  return static_cast<std::uint8_t>(std::clamp(std::lround(tot), 1L, 254L));
}

std::optional<double> DuSimulator::Impl::can_entry_z(Vec3 q, Vec3 d) const {
  // Interval of the line parameter s inside the infinite vertical cylinder, then the z overlap.
  const double qx = q.x - can_cx, qy = q.y - can_cy;
  const double a = d.x * d.x + d.y * d.y;
  double s_lo = -1e12, s_hi = 1e12;
  if (a < 1e-12) {
    if (qx * qx + qy * qy > can_radius * can_radius) return std::nullopt;
  } else {
    const double b = qx * d.x + qy * d.y;
    const double c = qx * qx + qy * qy - can_radius * can_radius;
    const double disc = b * b - a * c;
    if (disc < 0) return std::nullopt;
    const double root = std::sqrt(disc);
    s_lo = (-b - root) / a;
    s_hi = (-b + root) / a;
  }
  const double z1 = q.z + s_lo * d.z, z2 = q.z + s_hi * d.z;
  if (std::max(z1, z2) < can_zmin || std::min(z1, z2) > can_zmax) return std::nullopt;
  return std::min(std::max(z1, z2), can_zmax);
}

Vec3 DuSimulator::Impl::muon_direction(SimRng& rng) const {
  // Without a depth: density ~ cos^2 on the downgoing side; with one: the depth-intensity relation.
  const double cos_zenith = muon_zenith ? muon_zenith->cos_zenith(rng.uniform()) : std::cbrt(rng.uniform_open0());
  const double sin_zenith = std::sqrt(std::max(0.0, 1.0 - cos_zenith * cos_zenith));
  const double phi = rng.uniform(0, 6.283185307179586);
  return {sin_zenith * std::cos(phi), sin_zenith * std::sin(phi), -cos_zenith};
}

std::vector<Particle> DuSimulator::Impl::make_particles(std::uint32_t frame) const {
  std::vector<Particle> out;
  SimRng rng(config.seed, Stream::Particles, {frame});
  const unsigned n_muons = rng.poisson(config.muon.rate_hz * kSliceSeconds);
  for (unsigned i = 0; i < n_muons; ++i) {
    Particle p{};
    p.type = ParticleType::Muon;
    p.time_ns = rng.uniform(particle_t_lo, particle_t_hi);
    // Uniform flux through a disk perpendicular to the track, kept if the track crosses the can.
    // With a depth, a track entering the can below its top is kept with the intensity's fall
    // over that depth (MuonZenithSampler); a refused one is drawn again, direction and all.
    Vec3 q = sphere_centre;
    for (bool kept = false; !kept;) {
      p.direction = muon_direction(rng);
      const Vec3 helper = std::abs(p.direction.z) < 0.9 ? Vec3{0, 0, 1} : Vec3{1, 0, 0};
      const Vec3 e1 = normalized(cross(p.direction, helper));
      const Vec3 e2 = cross(p.direction, e1);
      std::optional<double> entry_z;
      for (int attempt = 0; attempt < 100'000 && !entry_z; ++attempt) {
        const double r = sphere_radius * std::sqrt(rng.uniform());
        const double psi = rng.uniform(0, 6.283185307179586);
        q = sphere_centre + (r * std::cos(psi)) * e1 + (r * std::sin(psi)) * e2;
        entry_z = can_entry_z(q, p.direction);
      }
      kept = !muon_zenith || !entry_z ||
             rng.uniform() < muon_zenith->acceptance(-p.direction.z, can_zmax - *entry_z);
    }
    p.vertex = q;
    p.energy_gev = power_law(rng, config.muon.energy_min_gev, config.muon.energy_max_gev, 2.7);
    p.light_scale = 1.0 + p.energy_gev / 1000.0;
    out.push_back(p);
  }
  const unsigned n_showers = rng.poisson(config.shower.rate_hz * kSliceSeconds);
  for (unsigned i = 0; i < n_showers; ++i) {
    Particle p{};
    p.type = ParticleType::Shower;
    p.time_ns = rng.uniform(particle_t_lo, particle_t_hi);
    const double r = can_radius * std::sqrt(rng.uniform());
    const double psi = rng.uniform(0, 6.283185307179586);
    p.vertex = {can_cx + r * std::cos(psi), can_cy + r * std::sin(psi), rng.uniform(can_zmin, can_zmax)};
    const double cz = rng.uniform(-1.0, 1.0), sz = std::sqrt(1.0 - cz * cz);
    const double phi = rng.uniform(0, 6.283185307179586);
    p.direction = {sz * std::cos(phi), sz * std::sin(phi), cz};
    p.energy_gev = power_law(rng, config.shower.energy_min_gev, config.shower.energy_max_gev, 2.0);
    p.light_scale = p.energy_gev / 1000.0;
    out.push_back(p);
  }
  return out;
}

void DuSimulator::Impl::add_particle_light(const DomModel& dom, std::size_t k, const Particle& p, std::uint32_t frame,
                                           std::array<std::vector<SimHit>, dataflow::kPmtsPerDom>& extra) const {
  const Module& m = *dom.module;
  const LightConfig& light = config.light;
  // Cheap cut on the DOM centre first.
  {
    const Vec3 v = m.position_m - p.vertex;
    const double dist = p.type == ParticleType::Muon
                            ? std::sqrt(std::max(0.0, v.dot(v) - std::pow(v.dot(p.direction), 2)))
                            : v.norm();
    if (dist > light.max_distance_m) return;
  }
  SimRng rng(config.seed, Stream::ParticleLight, {frame, k, m.id});
  const double inv_c = 1.0 / kSpeedOfLightMPerNs;
  for (unsigned c = 0; c < dom.n_pmts; ++c) {
    const dataflow::Pmt& pmt = m.pmts[c];
    const Vec3 pmt_dir = normalized(pmt.direction);
    double t_arrival = 0, mean_pe = 0, path_m = 0;
    if (p.type == ParticleType::Muon) {
      const Vec3 v = pmt.position_m - p.vertex;
      const double along = v.dot(p.direction);
      const double rho = std::max(0.05, std::sqrt(std::max(0.0, v.dot(v) - along * along)));
      const double emit_along = along - rho / kTanCherenkov;
      path_m = rho / kSinCherenkov;
      t_arrival = p.time_ns + emit_along * inv_c + path_m * kRefractiveIndex * inv_c;
      const Vec3 photon = (1.0 / path_m) * (v - emit_along * p.direction);
      const double acceptance = pmt_acceptance(-photon.dot(pmt_dir));
      const double d = std::max(0.5, path_m);
      mean_pe = config.muon.light_yield_pe_m * p.light_scale * acceptance * std::exp(-d / light.attenuation_length_m) / d;
    } else {
      const Vec3 v = pmt.position_m - p.vertex;
      path_m = std::max(0.5, v.norm());
      const Vec3 photon = (1.0 / path_m) * v;
      t_arrival = p.time_ns + path_m * kRefractiveIndex * inv_c;
      const double cos_alpha = photon.dot(p.direction);
      const double profile = 0.1 + std::exp(-std::pow(cos_alpha - kCosCherenkov, 2) / (2 * 0.15 * 0.15));
      const double acceptance = pmt_acceptance(-photon.dot(pmt_dir));
      mean_pe = config.shower.light_yield_pe_m2_per_tev * p.light_scale * profile * acceptance *
                std::exp(-path_m / light.attenuation_length_m) / (path_m * path_m);
    }
    if (mean_pe < 1e-6) continue;
    const unsigned n = rng.poisson(std::min(mean_pe, 60000.0));
    if (n == 0) continue;
    // One hit per PMT and particle: the PMT cannot separate photons within its ToT, so the hit
    // time is the earliest photon's.
    double earliest = 1e300;
    const double scatter_mean = light.scattering_delay_ns_per_m * path_m;
    for (unsigned i = 0; i < std::min(n, kMaxPhotonsSampled); ++i) {
      const double t = t_arrival + (scatter_mean > 0 ? rng.exponential(scatter_mean) : 0.0) +
                       light.pmt_tts_sigma_ns * rng.normal();
      earliest = std::min(earliest, t);
    }
    const double raw = std::round(earliest - dom.t0_ns[c]);
    if (raw < 0 || raw >= kSliceNs) continue;
    extra[c].push_back(SimHit{static_cast<std::uint32_t>(raw), tot_n_pe(rng, n),
                              static_cast<std::uint16_t>(kSourceParticleBase + k),
                              static_cast<std::uint16_t>(std::min(n, 65535u))});
  }
}

void DuSimulator::Impl::add_supernova_coincidences(const DomModel& dom, std::uint32_t frame, DomOutput& out,
                                                   std::array<std::vector<SimHit>, dataflow::kPmtsPerDom>& extra) const {
  const std::uint64_t slice_start = start_ns + std::uint64_t{frame} * dataflow::kSliceDurationNs;
  if (!supernova.overlaps(slice_start) || dom.n_pmts < 2) return;
  // Like 40K: raw = true - (t0 - mean t0), so the photons coincide in calibrated time. The times
  // are kept where every photon's raw time stays inside the slice (the burst's whole multiplicity
  // is sent); the margin is the t0 spread plus the jitter cut.
  double offset_min = 0, offset_max = 0;
  for (unsigned c = 0; c < dom.n_pmts; ++c) {
    offset_min = std::min(offset_min, dom.t0_ns[c] - dom.t0_mean_ns);
    offset_max = std::max(offset_max, dom.t0_ns[c] - dom.t0_mean_ns);
  }
  const double margin_ns = 3.0 * config.supernova.jitter_ns + 1.0;
  SimRng rng(config.seed, Stream::Supernova, {frame, dom.module->id});
  std::vector<detail::SupernovaCoincidence> coincidences;
  supernova.draw(rng, slice_start, offset_max + margin_ns, kSliceNs + offset_min - margin_ns, dom.n_pmts,
                 dom.neighbour_cdf, coincidences);
  for (const auto& co : coincidences) {
    ++out.supernova[co.multiplicity];
    for (unsigned j = 0; j < co.multiplicity; ++j) {
      const unsigned c = co.channels[j];
      const double raw = std::round(co.time_ns + co.jitter_ns[j] - (dom.t0_ns[c] - dom.t0_mean_ns));
      extra[c].push_back(SimHit{static_cast<std::uint32_t>(raw), tot_one_pe(rng), kSourceCorrelated, 1});
    }
  }
}

}  // namespace shoredaq::drivers
