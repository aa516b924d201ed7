#pragma once
// Test helpers: an in-memory toy detector and hand-built timeslices (hits given in calibrated time);
// the ARCA-21 reference detector (detector 133) for the tests that simulate with du-sim.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <numbers>
#include <string>
#include <tuple>
#include <vector>

#include "shoredaq/formats/detector.hpp"
#include "shoredaq/formats/timeslice.hpp"
#include "shoredaq/filters/match.hpp"

namespace shoredaq::filters::test_support {

// Detector 133 (ARCA-21) from the reference data, loaded once.
inline std::shared_ptr<const dataflow::Detector> detector133() {
  static const auto det = std::make_shared<const dataflow::Detector>(
      dataflow::Detector::load(std::string(SHOREDAQ_TESTDATA_DIR) + "/detx/KM3NeT_00000133_20221025.detx"));
  return det;
}

inline std::uint32_t toy_dom_id(int du, int floor) { return static_cast<std::uint32_t>(1000 * du + floor); }

// DUs on a square grid (spacing_m apart), `floors` DOMs each (floor_spacing_m apart from z = 0),
// 31 PMTs per DOM spread over the sphere. PMT t0 = -dom_t0_step_ns * module number + 0.37 * channel,
// so t0 differs a lot between DOMs (up to ~1e5 ns) and a little (not in whole ns) between channels.
inline dataflow::Detector make_toy_detector(int dus_per_side = 2, int floors = 18, double spacing_m = 40.0,
                                            double floor_spacing_m = 9.0, double dom_t0_step_ns = 1300.0) {
  std::vector<dataflow::Module> modules;
  int du = 0;
  std::uint32_t pmt_serial = 1;
  for (int ix = 0; ix < dus_per_side; ++ix) {
    for (int iy = 0; iy < dus_per_side; ++iy) {
      ++du;
      for (int floor = 1; floor <= floors; ++floor) {
        dataflow::Module m;
        m.id = toy_dom_id(du, floor);
        m.du = du;
        m.floor = floor;
        m.position_m = {ix * spacing_m, iy * spacing_m, floor * floor_spacing_m};
        const double module_t0 = -dom_t0_step_ns * static_cast<double>(modules.size());
        for (unsigned ch = 0; ch < dataflow::kPmtsPerDom; ++ch) {
          // Fibonacci sphere directions.
          const double z = 1.0 - 2.0 * (ch + 0.5) / dataflow::kPmtsPerDom;
          const double r = std::sqrt(1.0 - z * z);
          const double phi = ch * std::numbers::pi * (3.0 - std::sqrt(5.0));
          dataflow::Pmt p;
          p.id = pmt_serial++;
          p.direction = {r * std::cos(phi), r * std::sin(phi), z};
          p.position_m = m.position_m + 0.2 * p.direction;
          p.t0_ns = module_t0 + 0.37 * ch;
          m.pmts.push_back(p);
        }
        modules.push_back(std::move(m));
      }
    }
  }
  return dataflow::Detector(42, std::move(modules));
}

// A hit in calibrated time.
struct CalHit {
  std::uint32_t dom_id;
  std::uint8_t channel;
  double time_ns;  // calibrated
  std::uint8_t tot_ns = 26;
};

inline dataflow::FrameStatus complete_status() {
  dataflow::FrameStatus s;
  s.daq = dataflow::FrameStatus::make_daq(1, 0);
  s.status = dataflow::kStatus1WhiteRabbitOk;
  s.fifo = dataflow::kStatus2Trailer;
  return s;
}

// A slice with one complete frame per optical module of the detector, holding the given hits with
// raw = round(calibrated - t0), written per channel in time order (channels interleaved by
// channel, not by time, as the CLB does).
inline dataflow::Timeslice make_slice(const dataflow::Detector& det, const std::vector<CalHit>& hits,
                                      std::uint32_t frame_index = 0) {
  dataflow::Timeslice ts;
  ts.header.detector_id = det.id();
  ts.header.run = 7;
  ts.header.frame_index = frame_index;
  ts.header.utc_seconds = 1'700'000'000u;
  for (const auto& m : det.modules()) {
    if (m.is_base()) continue;
    dataflow::DomFrame f;
    f.dom_id = m.id;
    f.status = complete_status();
    std::vector<dataflow::Hit> raw;
    for (const auto& h : hits) {
      if (h.dom_id != m.id) continue;
      const double t = h.time_ns - m.pmts[h.channel].t0_ns;
      raw.push_back({h.channel, static_cast<std::uint32_t>(std::lround(t)), h.tot_ns});
    }
    std::sort(raw.begin(), raw.end(), [](const dataflow::Hit& a, const dataflow::Hit& b) {
      return std::tie(a.channel, a.time_ns) < std::tie(b.channel, b.time_ns);
    });
    f.hits.resize(raw.size() * dataflow::kHitBytes);
    for (std::size_t i = 0; i < raw.size(); ++i) dataflow::encode_hit(raw[i], f.hits.data() + i * dataflow::kHitBytes);
    ts.frames.push_back(std::move(f));
  }
  std::sort(ts.frames.begin(), ts.frames.end(),
            [](const dataflow::DomFrame& a, const dataflow::DomFrame& b) { return a.dom_id < b.dom_id; });
  return ts;
}

// Calibrated arrival time of Cherenkov light from a muon (through `point` at `t0_ns`, along unit
// `direction`) at `position`: t0 + (z + rho * tan(theta_c)) / c, z along the track, rho the distance.
inline double muon_light_time_ns(const dataflow::Vec3& point, const dataflow::Vec3& direction, double t0_ns,
                                 const dataflow::Vec3& position, double* rho_m = nullptr) {
  const dataflow::Vec3 d = position - point;
  const double z = d.dot(direction);
  const dataflow::Vec3 perp = d - z * direction;
  const double rho = perp.norm();
  if (rho_m) *rho_m = rho;
  return t0_ns + (z + rho * kTanCherenkov) / kSpeedOfLightMPerNs;
}

// Two-hit L1 coincidences on every DOM within `max_rho_m` of the muon track.
inline std::vector<CalHit> muon_hits(const dataflow::Detector& det, const dataflow::Vec3& point,
                                     const dataflow::Vec3& direction, double t0_ns, double max_rho_m) {
  std::vector<CalHit> hits;
  for (const auto& m : det.modules()) {
    if (m.is_base()) continue;
    double rho = 0;
    const double t = muon_light_time_ns(point, direction, t0_ns, m.position_m, &rho);
    if (rho > max_rho_m) continue;
    hits.push_back({m.id, 3, t, 30});
    hits.push_back({m.id, 11, t + 2.5, 28});
  }
  return hits;
}

}  // namespace shoredaq::filters::test_support
