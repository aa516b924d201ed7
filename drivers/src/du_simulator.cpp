// The DU simulator (see du_simulator.hpp for the model and its determinism rules).

#include "du_simulator_impl.hpp"

namespace shoredaq::drivers {


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
  if (config.muon.depth_m > 0) {
    const MuonCan can{can_radius, can_zmax - can_zmin, config.muon.depth_m - 0.5 * (can_zmax - can_zmin)};
    if (can.top_depth_m < 0)
      throw std::invalid_argument("du-sim: muon depth " + std::to_string(std::lround(config.muon.depth_m)) +
                                  " m puts the top of the can (" + std::to_string(std::lround(can.height_m)) +
                                  " m high) above the sea");
    const MuonFluxModel model;
    config.muon.rate_hz = muon_rate_through_can_hz(model, can);
    muon_zenith.emplace(model, can);
  }

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
