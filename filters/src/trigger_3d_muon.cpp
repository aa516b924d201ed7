#include "shoredaq/filters/trigger_3d_muon.hpp"

#include <cmath>
#include <numbers>

#include "shoredaq/formats/event.hpp"
#include "shoredaq/filters/match.hpp"

namespace shoredaq::filters {
namespace {

dataflow::Vec3 cross(const dataflow::Vec3& a, const dataflow::Vec3& b) {
  return {a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x};
}

dataflow::Vec3 normalized(const dataflow::Vec3& v) { return (1.0 / v.norm()) * v; }

}  // namespace

std::vector<dataflow::Vec3> make_direction_grid(double grid_angle_deg) {
  const double step = grid_angle_deg * std::numbers::pi / 180.0;
  const int polar_steps = std::max(1, static_cast<int>(std::lround(std::numbers::pi / step)));
  std::vector<dataflow::Vec3> grid;
  for (int k = 0; k <= polar_steps; ++k) {
    const double theta = std::numbers::pi * k / polar_steps;
    const int azimuth_steps =
        std::max(1, static_cast<int>(std::lround(2.0 * std::numbers::pi * std::sin(theta) / step)));
    for (int l = 0; l < azimuth_steps; ++l) {
      // Alternate rows are offset by half a step so neighbouring rows interleave.
      const double phi = 2.0 * std::numbers::pi * (l + 0.5 * (k % 2)) / azimuth_steps;
      grid.push_back({std::sin(theta) * std::cos(phi), std::sin(theta) * std::sin(phi), std::cos(theta)});
    }
  }
  return grid;
}

Trigger3DMuon::Trigger3DMuon(const MuonTriggerSettings& settings) : settings_(settings) {
  for (const auto& z : make_direction_grid(settings.grid_angle_deg)) {
    const dataflow::Vec3 helper = std::abs(z.z) < 0.9 ? dataflow::Vec3{0, 0, 1} : dataflow::Vec3{1, 0, 0};
    const dataflow::Vec3 x = normalized(cross(helper, z));
    frames_.push_back({x, cross(z, x), z});
  }
}

std::size_t Trigger3DMuon::run(std::span<const L1Hit> l1, std::vector<TriggerCandidate>& out,
                               TriggerScratch& scratch) const {
  if (!settings_.enabled) return 0;
  const MatchRoad3D road(settings_.road_width_m, settings_.t_max_extra_ns);
  const Match1D match1d{settings_.road_width_m, settings_.t_max_extra_ns};
  const double window_ns =
      settings_.d_max_m * kIndexOfRefraction / kSpeedOfLightMPerNs + settings_.t_max_extra_ns;
  const double d_max_squared = settings_.d_max_m * settings_.d_max_m;
  const std::size_t min_hits = static_cast<std::size_t>(settings_.number_of_hits);
  const std::size_t min_doms = static_cast<std::size_t>(settings_.number_of_modules);
  const std::uint64_t bit = dataflow::trigger_bit(dataflow::kTriggerBit3DMuon);
  auto& used = scratch.used;
  used.assign(l1.size(), 0);
  auto& cands = scratch.candidates;
  auto& selected = scratch.selected;
  auto& rotated = scratch.rotated;
  std::size_t fired = 0;
  for (std::size_t i = 0; i < l1.size(); ++i) {
    if (used[i]) continue;
    const L1Hit& seed = l1[i];
    cands.clear();
    cands.push_back(static_cast<std::uint32_t>(i));
    for (std::size_t j = i + 1; j < l1.size() && l1[j].time_ns - seed.time_ns <= window_ns; ++j) {
      const dataflow::Vec3 d = l1[j].position_m - seed.position_m;
      const double d2 = d.dot(d);
      if (d2 > d_max_squared) continue;
      if (road(std::sqrt(d2), l1[j].time_ns - seed.time_ns)) cands.push_back(static_cast<std::uint32_t>(j));
    }
    if (cands.size() < min_hits || count_l1_doms(l1, cands, scratch.doms) < min_doms) continue;
    if (cands.size() > static_cast<std::size_t>(settings_.factory_limit)) {
      for (auto k : cands) used[k] = 1;
      out.push_back(candidate_from_l1(l1, cands, bit | dataflow::trigger_bit(dataflow::kTriggerBitFactoryLimit)));
      ++fired;
      continue;
    }
    rotated.resize(cands.size());
    for (const Frame& f : frames_) {
      for (std::size_t k = 0; k < cands.size(); ++k) {
        const dataflow::Vec3& p = l1[cands[k]].position_m;
        rotated[k] = RotatedPoint{p.dot(f.x), p.dot(f.y), p.dot(f.z)};
      }
      // Hits that match the seed along this direction (the seed itself first).
      selected.clear();
      selected.push_back(0);
      for (std::size_t k = 1; k < cands.size(); ++k)
        if (match1d(rotated[0], seed.time_ns, rotated[k], l1[cands[k]].time_ns))
          selected.push_back(static_cast<std::uint32_t>(k));
      if (selected.size() < min_hits) continue;
      clique_cluster(
          selected.size(),
          [&](std::size_t a, std::size_t b) {
            const std::uint32_t ka = selected[a], kb = selected[b];
            return match1d(rotated[ka], l1[cands[ka]].time_ns, rotated[kb], l1[cands[kb]].time_ns);
          },
          scratch.survivors, scratch.clique);
      if (scratch.survivors.size() < min_hits) continue;
      for (auto& s : scratch.survivors) s = cands[selected[s]];
      if (count_l1_doms(l1, scratch.survivors, scratch.doms) < min_doms) continue;
      for (auto k : scratch.survivors) used[k] = 1;
      out.push_back(candidate_from_l1(l1, scratch.survivors, bit));
      ++fired;
      break;
    }
  }
  return fired;
}

}  // namespace shoredaq::filters
