// The DU simulator (see du_simulator.hpp for the model and its determinism rules).

#include "shoredaq/drivers/du_simulator.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <numeric>
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

namespace {

constexpr double kSpeedOfLightMPerNs = 0.299792458;
constexpr double kRefractiveIndex = 1.3800851282;
constexpr double kCosCherenkov = 1.0 / kRefractiveIndex;
const double kSinCherenkov = std::sqrt(1.0 - kCosCherenkov * kCosCherenkov);
const double kTanCherenkov = kSinCherenkov / kCosCherenkov;
constexpr double kSliceNs = static_cast<double>(dataflow::kSliceDurationNs);
constexpr double kSliceSeconds = 0.1;
constexpr double kL1WindowNs = 10.0;
// Particles are placed this far from the slice edges (in calibrated time) so their light stays
// inside the slice: light crosses a 1 km detector in ~5 us.
constexpr double kParticleEdgeMarginNs = 20'000.0;
constexpr unsigned kMaxPhotonsSampled = 64;  // the earliest of n photons: sampling more changes nothing

// Internal hit: raw time, ToT, where it came from (0 singles, 1 40K/bursts, 2+k particle k).
struct SimHit {
  std::uint32_t time_ns;
  std::uint8_t tot_ns;
  std::uint16_t source;
  std::uint16_t photo_electrons;
};
constexpr std::uint16_t kSourceBackground = 0;
constexpr std::uint16_t kSourceCorrelated = 1;
constexpr std::uint16_t kSourceParticleBase = 2;

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

Vec3 normalized(Vec3 v) {
  const double n = v.norm();
  return n > 0 ? (1.0 / n) * v : Vec3{0, 0, 1};
}
Vec3 cross(Vec3 a, Vec3 b) { return {a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x}; }

double power_law(SimRng& rng, double lo, double hi, double index) {
  if (hi <= lo) return lo;
  const double g = 1.0 - index;
  const double a = std::pow(lo, g), b = std::pow(hi, g);
  return std::pow(a + rng.uniform() * (b - a), 1.0 / g);
}

double pmt_acceptance(double cos_incidence) {
  const double a = (cos_incidence + 0.3) / 1.3;
  return a > 0 ? a * a : 0.0;
}

}  // namespace

std::string_view to_string(ParticleType t) noexcept {
  return t == ParticleType::Muon ? "muon" : "shower";
}

std::string_view to_string(DatagramFault f) noexcept {
  switch (f) {
    case DatagramFault::None: return "none";
    case DatagramFault::Truncated: return "truncated";
    case DatagramFault::BadChannel: return "bad_channel";
    case DatagramFault::BadLengthRecord: return "bad_length_record";
    case DatagramFault::Duplicate: return "duplicate";
    case DatagramFault::Late: return "late";
    case DatagramFault::BadTime: return "bad_time";
  }
  return "?";
}

std::string truth_json_line(const TruthParticle& p) {
  std::string s;
  s.reserve(256 + p.hits.size() * 32);
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "{\"type\":\"%s\",\"id\":%llu,\"frame_index\":%u,\"time_unix_ns\":%llu,"
                "\"time_in_slice_ns\":%.3f,\"vertex_m\":[%.3f,%.3f,%.3f],\"direction\":[%.6f,%.6f,%.6f],"
                "\"energy_gev\":%.3f,\"n_hits\":%zu,\"hit_doms\":%u,\"l1_doms\":%u,\"hits\":[",
                std::string(to_string(p.type)).c_str(), static_cast<unsigned long long>(p.id), p.frame_index,
                static_cast<unsigned long long>(p.time_unix_ns), p.time_in_slice_ns, p.vertex_m.x, p.vertex_m.y,
                p.vertex_m.z, p.direction.x, p.direction.y, p.direction.z, p.energy_gev, p.hits.size(), p.hit_doms,
                p.l1_doms);
  s += buf;
  bool first = true;
  for (const auto& h : p.hits) {
    // [dom, channel, raw time ns, ToT ns, photo-electrons]
    std::snprintf(buf, sizeof buf, "%s[%u,%u,%u,%u,%u]", first ? "" : ",", h.dom_id, unsigned{h.channel}, h.time_ns,
                  unsigned{h.tot_ns}, unsigned{h.photo_electrons});
    s += buf;
    first = false;
  }
  s += "]}";
  return s;
}

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
  bool line_hits_can(Vec3 q, Vec3 d) const;
};

DuSimulator::Impl::Impl(DuSimConfig cfg) : config(std::move(cfg)) {
  if (!config.detector) throw std::invalid_argument("du-sim: no detector");
  const auto& det = *config.detector;
  std::vector<int> dus = config.dus.empty() ? det.du_ids() : config.dus;
  std::sort(dus.begin(), dus.end());
  for (int du : dus) {
    bool found = false;
    for (const Module* m : det.modules_of_du(du)) {
      found = true;
      if (!m->is_base()) modules.push_back(m);
    }
    if (!found) throw std::invalid_argument("du-sim: DU " + std::to_string(du) + " is not in the detector");
  }
  std::sort(modules.begin(), modules.end(), [](const Module* a, const Module* b) { return a->id < b->id; });
  modules.erase(std::unique(modules.begin(), modules.end()), modules.end());
  if (modules.empty()) throw std::invalid_argument("du-sim: the selection has no optical modules");

  header_bytes = config.header_layout == dataflow::HeaderLayout::Legacy28 ? dataflow::kLegacyClbHeaderBytes
                                                                           : dataflow::kClbHeaderBytes;
  if (config.mtu_bytes < header_bytes + dataflow::kHitBytes || config.mtu_bytes > 65507)
    throw std::invalid_argument("du-sim: MTU must hold the header and at least one hit (and be <= 65507)");
  hits_per_datagram = (config.mtu_bytes - header_bytes) / dataflow::kHitBytes;
  if (config.readout_block_ns == 0) throw std::invalid_argument("du-sim: readout block must be > 0 ns");
  if (config.background.singles_rate_hz < 0 || config.hrv_threshold_hz <= 0)
    throw std::invalid_argument("du-sim: rates must be >= 0 and the HRV threshold > 0");
  if (config.acoustic.enabled) {
    const auto& a = config.acoustic;
    if (!(a.datagrams_per_s >= 0) || !(a.sample_rate_hz > 0) || a.samples_per_datagram == 0)
      throw std::invalid_argument("du-sim: acoustic rate must be >= 0, sample rate > 0 and samples per datagram > 0");
    if (header_bytes + std::size_t{a.samples_per_datagram} * kAcousticSampleBytes > config.mtu_bytes)
      throw std::invalid_argument("du-sim: an acoustic datagram (header + 3 bytes per sample) must fit in the MTU");
  }

  // Uncorrelated singles: the configured total minus the hits of the coincidences, per PMT.
  const auto& bg = config.background;
  const double coincidence_hits_per_dom = 2 * bg.k40_twofold_hz + 3 * bg.k40_threefold_hz + 4 * bg.k40_fourfold_hz;
  uncorrelated_rate_hz = std::max(0.0, bg.singles_rate_hz - coincidence_hits_per_dom / dataflow::kPmtsPerDom);

  build_tot_table();

  double t0_min = 1e300, t0_max = -1e300;
  double xmin = 1e300, xmax = -1e300, ymin = 1e300, ymax = -1e300, zmin = 1e300, zmax = -1e300;
  doms.resize(modules.size());
  for (std::size_t i = 0; i < modules.size(); ++i) {
    DomModel& d = doms[i];
    d.module = modules[i];
    d.n_pmts = static_cast<unsigned>(std::min<std::size_t>(d.module->pmts.size(), dataflow::kPmtsPerDom));
    double sum = 0;
    for (unsigned c = 0; c < d.n_pmts; ++c) {
      d.t0_ns[c] = d.module->pmts[c].t0_ns;
      sum += d.t0_ns[c];
      t0_min = std::min(t0_min, d.t0_ns[c]);
      t0_max = std::max(t0_max, d.t0_ns[c]);
    }
    d.t0_mean_ns = d.n_pmts ? sum / d.n_pmts : 0.0;
    for (unsigned a = 0; a < d.n_pmts; ++a) {
      double cumulative = 0;
      const Vec3 da = normalized(d.module->pmts[a].direction);
      for (unsigned b = 0; b < d.n_pmts; ++b) {
        if (b != a) {
          const double cosang = std::clamp(da.dot(normalized(d.module->pmts[b].direction)), -1.0, 1.0);
          cumulative += std::exp(-std::acos(cosang) / std::max(1e-3, bg.k40_neighbour_angle_rad));
        }
        d.neighbour_cdf[a][b] = static_cast<float>(cumulative);
      }
      for (unsigned b = 0; b < d.n_pmts; ++b) d.neighbour_cdf[a][b] /= static_cast<float>(cumulative);
    }
    const Vec3 p = d.module->position_m;
    xmin = std::min(xmin, p.x), xmax = std::max(xmax, p.x);
    ymin = std::min(ymin, p.y), ymax = std::max(ymax, p.y);
    zmin = std::min(zmin, p.z), zmax = std::max(zmax, p.z);
  }
  can_cx = 0.5 * (xmin + xmax);
  can_cy = 0.5 * (ymin + ymax);
  double r = 0;
  for (const DomModel& d : doms)
    r = std::max(r, std::hypot(d.module->position_m.x - can_cx, d.module->position_m.y - can_cy));
  can_radius = r + config.muon.can_margin_m;
  can_zmin = zmin - config.muon.can_margin_m;
  can_zmax = zmax + config.muon.can_margin_m;
  sphere_centre = {can_cx, can_cy, 0.5 * (can_zmin + can_zmax)};
  sphere_radius = std::hypot(can_radius, 0.5 * (can_zmax - can_zmin));

  // Place particles so that raw = calibrated - t0 stays inside [0, 1e8) for every PMT.
  particle_t_lo = std::max(0.0, t0_max) + kParticleEdgeMarginNs;
  particle_t_hi = kSliceNs + std::min(0.0, t0_min) - kParticleEdgeMarginNs;
  if (particle_t_hi <= particle_t_lo) {  // absurd t0 spread: fall back to the whole slice
    particle_t_lo = kParticleEdgeMarginNs;
    particle_t_hi = kSliceNs - kParticleEdgeMarginNs;
  }

  const std::uint64_t slice_ns = dataflow::kSliceDurationNs;
  const std::uint64_t start = config.start_unix_ns
                                  ? *config.start_unix_ns
                                  : static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                                   std::chrono::system_clock::now().time_since_epoch())
                                                                   .count());
  start_ns = start / slice_ns * slice_ns;
  supernova = detail::SupernovaBurstModel(config.supernova, start_ns);
}

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

bool DuSimulator::Impl::line_hits_can(Vec3 q, Vec3 d) const {
  // Interval of the line parameter s inside the infinite vertical cylinder, then the z overlap.
  const double qx = q.x - can_cx, qy = q.y - can_cy;
  const double a = d.x * d.x + d.y * d.y;
  double s_lo = -1e12, s_hi = 1e12;
  if (a < 1e-12) {
    if (qx * qx + qy * qy > can_radius * can_radius) return false;
  } else {
    const double b = qx * d.x + qy * d.y;
    const double c = qx * qx + qy * qy - can_radius * can_radius;
    const double disc = b * b - a * c;
    if (disc < 0) return false;
    const double root = std::sqrt(disc);
    s_lo = (-b - root) / a;
    s_hi = (-b + root) / a;
  }
  const double z1 = q.z + s_lo * d.z, z2 = q.z + s_hi * d.z;
  return std::max(z1, z2) >= can_zmin && std::min(z1, z2) <= can_zmax;
}

std::vector<Particle> DuSimulator::Impl::make_particles(std::uint32_t frame) const {
  std::vector<Particle> out;
  SimRng rng(config.seed, Stream::Particles, {frame});
  const unsigned n_muons = rng.poisson(config.muon.rate_hz * kSliceSeconds);
  for (unsigned i = 0; i < n_muons; ++i) {
    Particle p{};
    p.type = ParticleType::Muon;
    p.time_ns = rng.uniform(particle_t_lo, particle_t_hi);
    const double cos_zenith = std::cbrt(rng.uniform_open0());  // density ~ cos^2 on the downgoing side
    const double sin_zenith = std::sqrt(std::max(0.0, 1.0 - cos_zenith * cos_zenith));
    const double phi = rng.uniform(0, 6.283185307179586);
    p.direction = {sin_zenith * std::cos(phi), sin_zenith * std::sin(phi), -cos_zenith};
    // Uniform flux through a disk perpendicular to the track, kept if the track crosses the can.
    const Vec3 helper = std::abs(p.direction.z) < 0.9 ? Vec3{0, 0, 1} : Vec3{1, 0, 0};
    const Vec3 e1 = normalized(cross(p.direction, helper));
    const Vec3 e2 = cross(p.direction, e1);
    Vec3 q = sphere_centre;
    for (int attempt = 0; attempt < 100'000; ++attempt) {
      const double r = sphere_radius * std::sqrt(rng.uniform());
      const double psi = rng.uniform(0, 6.283185307179586);
      q = sphere_centre + (r * std::cos(psi)) * e1 + (r * std::sin(psi)) * e2;
      if (line_hits_can(q, p.direction)) break;
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

DomOutput DuSimulator::Impl::generate_dom(std::size_t index, std::uint32_t frame,
                                          const std::vector<Particle>& particles) const {
  const DomModel& dom = doms[index];
  const std::uint32_t dom_id = dom.module->id;
  const BackgroundConfig& bg = config.background;
  DomOutput out;
  std::array<std::vector<SimHit>, dataflow::kPmtsPerDom> extra;

  // 40K coincidences: one decay time (calibrated), photons on a first PMT and its neighbours.
  if (dom.n_pmts >= 4) {
    SimRng rng(config.seed, Stream::K40, {frame, dom_id});
    const double rates[3] = {bg.k40_twofold_hz, bg.k40_threefold_hz, bg.k40_fourfold_hz};
    for (unsigned fold_index = 0; fold_index < 3; ++fold_index) {
      const unsigned fold = fold_index + 2;
      const unsigned n_events = rng.poisson(rates[fold_index] * kSliceSeconds);
      out.k40[fold_index] = n_events;
      for (unsigned e = 0; e < n_events; ++e) {
        const double t = rng.uniform(0, kSliceNs);
        std::array<unsigned, 4> chosen{};
        chosen[0] = rng.below(dom.n_pmts);
        for (unsigned j = 1; j < fold; ++j) {
          for (;;) {
            const auto& cdf = dom.neighbour_cdf[chosen[0]];
            const float u = static_cast<float>(rng.uniform());
            unsigned pick = static_cast<unsigned>(std::upper_bound(cdf.begin(), cdf.begin() + dom.n_pmts, u) - cdf.begin());
            pick = std::min(pick, dom.n_pmts - 1);
            if (pick != chosen[0] && std::find(chosen.begin() + 1, chosen.begin() + j, pick) == chosen.begin() + j) {
              chosen[j] = pick;
              break;
            }
          }
        }
        for (unsigned j = 0; j < fold; ++j) {
          const unsigned c = chosen[j];
          const double raw = std::round(t + bg.k40_jitter_ns * rng.normal() - (dom.t0_ns[c] - dom.t0_mean_ns));
          if (raw < 0 || raw >= kSliceNs) continue;
          extra[c].push_back(SimHit{static_cast<std::uint32_t>(raw), tot_one_pe(rng), kSourceCorrelated, 1});
        }
      }
    }
  }

  // Bioluminescence bursts: a few neighbouring PMTs see a high rate for a while.
  if (bg.burst_rate_hz_per_dom > 0 && dom.n_pmts > 0) {
    SimRng rng(config.seed, Stream::Burst, {frame, dom_id});
    const unsigned n_bursts = rng.poisson(bg.burst_rate_hz_per_dom * kSliceSeconds);
    out.bursts = n_bursts;
    for (unsigned b = 0; b < n_bursts; ++b) {
      const double start = rng.uniform(0, kSliceNs);
      const double end = std::min(kSliceNs, start + rng.exponential(bg.burst_mean_duration_ms * 1e6));
      const unsigned first = rng.below(dom.n_pmts);
      const auto& cdf = dom.neighbour_cdf[first];
      for (unsigned j = 0; j < std::max(1u, bg.burst_pmts); ++j) {
        unsigned c = first;
        if (j > 0) {
          c = static_cast<unsigned>(std::upper_bound(cdf.begin(), cdf.begin() + dom.n_pmts,
                                                     static_cast<float>(rng.uniform())) - cdf.begin());
          c = std::min(c, dom.n_pmts - 1);
        }
        const double mean_gap = 1e9 / std::max(1.0, bg.burst_pmt_rate_hz);
        for (double t = start + rng.exponential_fast(mean_gap); t < end; t += rng.exponential_fast(mean_gap))
          extra[c].push_back(SimHit{static_cast<std::uint32_t>(t), tot_one_pe(rng), kSourceCorrelated, 1});
      }
    }
  }

  add_supernova_coincidences(dom, frame, out, extra);
  for (std::size_t k = 0; k < particles.size(); ++k) add_particle_light(dom, k, particles[k], frame, extra);

  // Singles per channel as a Poisson process in time (already ordered), merged on the fly with
  // the sorted extra hits.
  std::array<std::vector<SimHit>, dataflow::kPmtsPerDom> channels;
  std::array<std::uint32_t, dataflow::kPmtsPerDom> seen_per_channel{};  // before the veto
  std::uint32_t hrv_mask = 0;
  std::size_t total = 0;
  const auto hrv_limit = static_cast<std::size_t>(config.hrv_threshold_hz * kSliceSeconds);
  {
    SimRng rng(config.seed, Stream::Background, {frame, dom_id});
    const double mean_gap_ns = uncorrelated_rate_hz > 0 ? 1e9 / uncorrelated_rate_hz : 0.0;
    for (unsigned c = 0; c < dom.n_pmts; ++c) {
      auto& ex = extra[c];
      std::sort(ex.begin(), ex.end(), [](const SimHit& a, const SimHit& b) { return a.time_ns < b.time_ns; });
      auto& hits = channels[c];
      hits.reserve(static_cast<std::size_t>(uncorrelated_rate_hz * kSliceSeconds * 1.1) + ex.size() + 16);
      std::size_t xi = 0;
      if (mean_gap_ns > 0) {
        for (double t = rng.exponential_fast(mean_gap_ns); t < kSliceNs; t += rng.exponential_fast(mean_gap_ns)) {
          const auto time = static_cast<std::uint32_t>(t);
          while (xi < ex.size() && ex[xi].time_ns <= time) hits.push_back(ex[xi++]);
          hits.push_back(SimHit{time, tot_one_pe(rng), kSourceBackground, 1});
        }
      }
      hits.insert(hits.end(), ex.begin() + static_cast<std::ptrdiff_t>(xi), ex.end());
      seen_per_channel[c] = static_cast<std::uint32_t>(hits.size());
      if (hits.size() > hrv_limit) {  // high-rate veto: later hits of this slice are not sent
        out.hrv_vetoed += hits.size() - hrv_limit;
        hits.resize(hrv_limit);
        hrv_mask |= 1u << c;
      }
      total += hits.size();
    }
  }

  // The readout: blocks of readout_block_ns, within a block channel after channel.
  out.frame.dom_id = dom_id;
  out.frame.hits.resize(total * dataflow::kHitBytes);
  {
    std::array<std::size_t, dataflow::kPmtsPerDom> cursor{};
    std::uint8_t* w = out.frame.hits.data();
    std::size_t emitted = 0;
    for (std::uint64_t block_end = config.readout_block_ns; emitted < total; block_end += config.readout_block_ns) {
      for (unsigned c = 0; c < dom.n_pmts; ++c) {
        const auto& hits = channels[c];
        std::size_t i = cursor[c];
        while (i < hits.size() && hits[i].time_ns < block_end) {
          const SimHit& h = hits[i];
          dataflow::encode_hit(dataflow::Hit{static_cast<std::uint8_t>(c), h.time_ns, h.tot_ns}, w);
          w += dataflow::kHitBytes;
          if (h.source >= kSourceParticleBase)
            out.particle_hits.emplace_back(static_cast<std::uint16_t>(h.source - kSourceParticleBase),
                                           TruthHit{dom_id, static_cast<std::uint8_t>(c), h.time_ns, h.tot_ns,
                                                    h.photo_electrons});
          ++i;
        }
        emitted += i - cursor[c];
        cursor[c] = i;
      }
    }
  }

  // Datagrams: split at the MTU, sequence numbers from 0, trailer bit on the last.
  const std::size_t n_datagrams = std::max<std::size_t>(1, (total + hits_per_datagram - 1) / hits_per_datagram);
  dataflow::ClbHeader header;
  header.data_type = dataflow::DataType::Optical;
  header.run_number = config.run_number;
  const std::uint64_t slice_start = start_ns + std::uint64_t{frame} * dataflow::kSliceDurationNs;
  header.utc_seconds = static_cast<std::uint32_t>(slice_start / 1'000'000'000ull);
  header.ticks_16ns = static_cast<std::uint32_t>((slice_start % 1'000'000'000ull) / dataflow::kTickNs);
  header.dom_id = dom_id;
  header.status1 = dataflow::kStatus1WhiteRabbitOk | hrv_mask;
  out.datagrams.reserve(n_datagrams);
  for (std::size_t i = 0; i < n_datagrams; ++i) {
    header.udp_sequence = static_cast<std::uint32_t>(i);
    header.status2 = i + 1 == n_datagrams ? dataflow::kStatus2Trailer : 0u;
    const std::size_t first = i * hits_per_datagram;
    const std::size_t count = std::min(hits_per_datagram, total - std::min(total, first));
    SimDatagram dg;
    dg.dom_id = dom_id;
    dg.frame_index = frame;
    dg.bytes.reserve(header_bytes + count * dataflow::kHitBytes);
    dataflow::encode_clb_header(header, config.header_layout, dg.bytes);
    const auto* src = out.frame.hits.data() + first * dataflow::kHitBytes;
    dg.bytes.insert(dg.bytes.end(), src, src + count * dataflow::kHitBytes);
    out.datagrams.push_back(std::move(dg));
  }
  if (config.monitoring_packets) {
    // The CLB's monitoring packet of this slice: hit counts as seen by the TDCs (vetoed ones too).
    SimRng rng(config.seed, Stream::Monitoring, {frame, dom_id});
    dataflow::MonitoringPacket m;
    m.header = header;
    m.header.data_type = dataflow::DataType::Monitoring;
    m.header.udp_sequence = 0;
    m.header.status2 = 0;
    m.hit_counts = seen_per_channel;
    m.hrv_mask = hrv_mask;
    m.temperature_c = std::round((30.0 + 0.5 * rng.normal()) * 100) / 100;
    m.humidity_pct = std::round((17.0 + 0.3 * rng.normal()) * 100) / 100;
    m.slice_duration = 100'000;  // us
    SimDatagram dg;
    dg.dom_id = dom_id;
    dg.frame_index = frame;
    dg.bytes = dataflow::encode_monitoring_packet(m);
    out.datagrams.push_back(std::move(dg));
    out.monitoring = 1;
  }
  if (config.acoustic.enabled) {
    out.acoustic = append_acoustic_datagrams(config.acoustic, header, config.header_layout, config.seed, frame, out.datagrams);
  }
  out.frame.status.daq = dataflow::FrameStatus::make_daq(static_cast<std::uint32_t>(n_datagrams),
                                                         static_cast<std::uint32_t>(n_datagrams - 1));
  out.frame.status.status = header.status1;
  out.frame.status.fifo = dataflow::kStatus2Trailer;
  return out;
}

void DuSimulator::Impl::apply_faults(std::uint32_t frame, std::vector<SimDatagram>& list, SliceCounters& counters) const {
  const FaultConfig& f = config.faults;
  if (f.loss_pct <= 0 && f.duplicate_pct <= 0 && f.corrupt_pct <= 0 && !f.reorder) return;
  SimRng rng(config.seed, Stream::Faults, {frame});
  std::vector<SimDatagram> out;
  out.reserve(list.size() + list.size() / 8);
  for (auto& dg : list) {
    if (f.loss_pct > 0 && rng.uniform() * 100.0 < f.loss_pct) {
      ++counters.lost;
      continue;
    }
    if (f.corrupt_pct > 0 && rng.uniform() * 100.0 < f.corrupt_pct) {
      ++counters.corrupted;
      const std::size_t n_hits = dg.bytes.size() > header_bytes ? (dg.bytes.size() - header_bytes) / dataflow::kHitBytes : 0;
      unsigned kind = rng.below(3);
      const bool no_hits = dg.bytes.size() >= 4 && (std::memcmp(dg.bytes.data(), "TMCH", 4) == 0 ||
                                                     std::memcmp(dg.bytes.data(), "TAES", 4) == 0);
      if (kind == 1 && (n_hits == 0 || no_hits)) kind = 0;  // TMCH and TAES carry no hits to spoil
      if (kind == 0) {  // truncated: cut inside the header or inside a hit, never on a hit boundary
        const std::size_t size = dg.bytes.size();
        std::size_t cut = 1 + rng.below(static_cast<std::uint32_t>(size - 1));
        if (cut >= header_bytes && (cut - header_bytes) % dataflow::kHitBytes == 0) cut -= 1;
        dg.bytes.resize(cut);
        dg.fault = DatagramFault::Truncated;
      } else if (kind == 1) {  // a hit with a channel number >= 31
        const std::size_t hit = rng.below(static_cast<std::uint32_t>(n_hits));
        dg.bytes[header_bytes + hit * dataflow::kHitBytes] = static_cast<std::uint8_t>(31 + rng.below(225));
        dg.fault = DatagramFault::BadChannel;
      } else {
        dg.fault = DatagramFault::BadLengthRecord;
      }
    }
    const bool duplicate = f.duplicate_pct > 0 && rng.uniform() * 100.0 < f.duplicate_pct;
    out.push_back(std::move(dg));
    if (duplicate) {
      ++counters.duplicated;
      SimDatagram copy = out.back();
      if (copy.fault == DatagramFault::None) copy.fault = DatagramFault::Duplicate;
      out.push_back(std::move(copy));
    }
  }
  if (f.reorder)
    for (std::size_t i = out.size(); i > 1; --i) std::swap(out[i - 1], out[rng.below(static_cast<std::uint32_t>(i))]);
  list = std::move(out);
}

SimulatedSlice DuSimulator::Impl::generate(std::uint32_t frame, std::vector<SimDatagram>* late_out) const {
  SimulatedSlice slice;
  const std::vector<Particle> particles = make_particles(frame);
  std::vector<DomOutput> outputs(doms.size());
  const unsigned threads = std::clamp(config.threads, 1u, 64u);
  if (threads == 1 || doms.size() < 2) {
    for (std::size_t i = 0; i < doms.size(); ++i) outputs[i] = generate_dom(i, frame, particles);
  } else {
    std::vector<std::jthread> workers;
    for (unsigned t = 0; t < threads; ++t)
      workers.emplace_back([&, t] {
        for (std::size_t i = t; i < doms.size(); i += threads) outputs[i] = generate_dom(i, frame, particles);
      });
  }

  const std::uint64_t slice_start = start_ns + std::uint64_t{frame} * dataflow::kSliceDurationNs;
  auto& header = slice.truth.header;
  header.detector_id = config.detector->id();
  header.run = config.run_number;
  header.frame_index = frame;
  header.utc_seconds = static_cast<std::uint32_t>(slice_start / 1'000'000'000ull);  // MSB 0: WR ok
  header.ticks_16ns = static_cast<std::uint32_t>((slice_start % 1'000'000'000ull) / dataflow::kTickNs);

  slice.particles.resize(particles.size());
  for (std::size_t k = 0; k < particles.size(); ++k) {
    TruthParticle& t = slice.particles[k];
    const Particle& p = particles[k];
    t.type = p.type;
    t.id = std::uint64_t{frame} * 1000 + k;
    t.frame_index = frame;
    t.time_in_slice_ns = p.time_ns;
    t.time_unix_ns = slice_start + static_cast<std::uint64_t>(std::llround(p.time_ns));
    t.vertex_m = p.vertex;
    t.direction = p.direction;
    t.energy_gev = p.energy_gev;
    if (p.type == ParticleType::Muon) ++slice.counters.muons;
    else ++slice.counters.showers;
  }

  SliceCounters& counters = slice.counters;
  if (supernova.overlaps(slice_start)) {
    SupernovaSliceTruth& sn = slice.supernova.emplace();
    sn.frame_index = frame;
    sn.slice_start_unix_ns = slice_start;
    sn.expected_per_dom = supernova.expected_per_dom(supernova.burst_time_s(slice_start, 0.0),
                                                     supernova.burst_time_s(slice_start, kSliceNs));
    for (const DomOutput& o : outputs)
      for (unsigned m = 2; m <= kSupernovaMaxMultiplicity; ++m) {
        sn.by_multiplicity[m] += o.supernova[m];
        sn.coincidences += o.supernova[m];
      }
    counters.supernova_coincidences = sn.coincidences;
  }
  slice.truth.frames.reserve(outputs.size());
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    DomOutput& o = outputs[i];
    for (int j = 0; j < 3; ++j) counters.k40_coincidences[j] += o.k40[j];
    counters.hrv_vetoed_hits += o.hrv_vetoed;
    counters.bursts += o.bursts;
    counters.hits += o.frame.hit_count();
    counters.datagrams_generated += o.datagrams.size();
    counters.monitoring_packets += o.monitoring;
    counters.acoustic_datagrams += o.acoustic;
    for (auto& [k, hit] : o.particle_hits) slice.particles[k].hits.push_back(hit);
    const std::uint32_t dom_id = o.frame.dom_id;
    if (config.faults.silent_dom && *config.faults.silent_dom == dom_id) {
      counters.silenced += o.datagrams.size();
    } else if (late_out && config.faults.late_dom && *config.faults.late_dom == dom_id) {
      counters.delayed += o.datagrams.size();
      for (auto& dg : o.datagrams) {
        dg.fault = DatagramFault::Late;
        late_out->push_back(std::move(dg));
      }
    } else {
      for (auto& dg : o.datagrams) slice.datagrams.push_back(std::move(dg));
    }
    slice.truth.frames.push_back(std::move(o.frame));
  }

  // Per particle: hits by (DOM, channel, time); L1 DOMs from calibrated times.
  for (TruthParticle& t : slice.particles) {
    std::sort(t.hits.begin(), t.hits.end(), [](const TruthHit& a, const TruthHit& b) {
      return std::tie(a.dom_id, a.channel, a.time_ns) < std::tie(b.dom_id, b.channel, b.time_ns);
    });
    std::vector<double> times;
    for (std::size_t i = 0; i < t.hits.size();) {
      std::size_t j = i;
      times.clear();
      const Module* m = config.detector->find(t.hits[i].dom_id);
      while (j < t.hits.size() && t.hits[j].dom_id == t.hits[i].dom_id) {
        times.push_back(t.hits[j].time_ns + (m ? m->pmts[t.hits[j].channel].t0_ns : 0.0));
        ++j;
      }
      ++t.hit_doms;
      std::sort(times.begin(), times.end());
      for (std::size_t a = 1; a < times.size(); ++a)
        if (times[a] - times[a - 1] <= kL1WindowNs) {
          ++t.l1_doms;
          break;
        }
      i = j;
    }
  }

  apply_faults(frame, slice.datagrams, counters);
  inject_bad_slice_times(config.faults, frame, slice.datagrams, counters);
  return slice;
}

DuSimulator::DuSimulator(DuSimConfig config) : impl_(std::make_unique<Impl>(std::move(config))) {}
DuSimulator::~DuSimulator() = default;
DuSimulator::DuSimulator(DuSimulator&&) noexcept = default;
DuSimulator& DuSimulator::operator=(DuSimulator&&) noexcept = default;

SimulatedSlice DuSimulator::next_slice() {
  const std::uint32_t frame = impl_->next_frame++;
  std::vector<SimDatagram> late;
  SimulatedSlice slice = impl_->generate(frame, &late);
  // Datagrams held back from earlier slices arrive now, ahead of this slice's own.
  std::vector<SimDatagram> released;
  while (!impl_->late_queue.empty() && impl_->late_queue.front().first <= frame) {
    released.push_back(std::move(impl_->late_queue.front().second));
    impl_->late_queue.pop_front();
  }
  const std::uint32_t release_at = frame + std::max(1u, impl_->config.faults.late_slices);
  for (auto& dg : late) impl_->late_queue.emplace_back(release_at, std::move(dg));
  if (!released.empty()) {
    released.insert(released.end(), std::make_move_iterator(slice.datagrams.begin()),
                    std::make_move_iterator(slice.datagrams.end()));
    slice.datagrams = std::move(released);
  }
  return slice;
}

SimulatedSlice DuSimulator::make_slice(std::uint32_t frame_index) const { return impl_->generate(frame_index, nullptr); }

std::vector<SimDatagram> DuSimulator::drain_late() {
  std::vector<SimDatagram> out;
  for (auto& [release, dg] : impl_->late_queue) out.push_back(std::move(dg));
  impl_->late_queue.clear();
  return out;
}

const DuSimConfig& DuSimulator::config() const noexcept { return impl_->config; }
std::span<const Module* const> DuSimulator::modules() const noexcept { return impl_->modules; }
std::uint32_t DuSimulator::next_frame_index() const noexcept { return impl_->next_frame; }
std::uint64_t DuSimulator::slice_start_unix_ns(std::uint32_t frame_index) const noexcept {
  return impl_->start_ns + std::uint64_t{frame_index} * dataflow::kSliceDurationNs;
}
double DuSimulator::uncorrelated_rate_hz() const noexcept { return impl_->uncorrelated_rate_hz; }
std::optional<SupernovaBurstTruth> DuSimulator::supernova_burst() const {
  if (!impl_->supernova.enabled()) return std::nullopt;
  return impl_->supernova.truth(static_cast<std::uint32_t>(impl_->doms.size()));
}

}  // namespace shoredaq::drivers
