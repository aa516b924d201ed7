#pragma once
// The run setup's trigger parameters (TOML section [trigger]); defaults are the values of
// DOMAIN.md section 5 (the stored ORCA-prototype configuration) except where noted.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "shoredaq/filters/supernova_settings.hpp"

namespace shoredaq::filters {

// What to do with hits of PMTs the CLB flagged with its high-rate veto (status 1 bits 0-30):
// their data in the slice is truncated, so by default they take no part in L0 and the triggers.
enum class HrvPolicy : std::uint8_t { Exclude, Keep };

// Settings shared by the three physics triggers (DOMAIN.md section 5 names in brackets).
struct TriggerSettings {
  bool enabled = true;
  int number_of_hits = 3;         // [numberOfHits]
  int number_of_modules = 3;      // [numberOfModules]
  double d_max_m = 52.0;          // [DMax_m] largest distance between two hits of one cluster
  double t_max_extra_ns = 25.0;   // [TMaxExtra_ns] slack added to every causality bound
  int factory_limit = 100;        // [factoryLimit] a bigger candidate triggers directly (bit 31)
  friend bool operator==(const TriggerSettings&, const TriggerSettings&) = default;
};

struct MuonTriggerSettings : TriggerSettings {
  double road_width_m = 43.0;     // [roadWidth_m]
  double grid_angle_deg = 10.0;   // [gridAngle_deg] spacing of the trial-direction grid
  friend bool operator==(const MuonTriggerSettings&, const MuonTriggerSettings&) = default;
};

struct TriggerParameters {
  // L1: >= 2 hits on one DOM within l1_window_ns [TMaxLocal_ns]; with combine_l1, chained
  // coincidences form one L1 of higher multiplicity [combineL1].
  double l1_window_ns = 10.0;
  bool combine_l1 = true;
  // L2: an L1 with >= l2_min hits within l2_window_ns whose PMT axes all lie within
  // acos(ct_min) of the earliest hit's axis [ctMin, L2.TMaxLocal_ns, L2Min].
  double ct_min = 0.0;
  double l2_window_ns = 10.0;
  int l2_min = 2;

  TriggerSettings shower3d{true, 3, 3, 52.0, 25.0, 100};
  TriggerSettings mxshower{true, 8, 3, 47.0, 25.0, 100};
  MuonTriggerSettings muon3d{{true, 4, 4, 164.9, 25.0, 100}, 43.0, 10.0};

  // Event snapshot: every L0 hit within [first triggered - w, last triggered + w] [TMaxEvent_ns].
  double snapshot_window_ns = 1000.0;
  // 0: the snapshot takes every DOM (DOMAIN.md section 5); > 0: only DOMs within this distance of
  // a DOM with a triggered hit (an extension for large detectors, see event_builder.hpp).
  double snapshot_max_distance_m = 0.0;

  // Frame checks and vetoes.
  int max_hits_per_frame = 1'000'000;   // SIZE defect above this (a 10 MHz burst on every PMT)
  double high_rate_veto_hz = 1.0e6;     // PMTs above this single rate in the slice leave L0; 0 = off
  HrvPolicy hrv_policy = HrvPolicy::Exclude;

  // Prescaled timeslices by frame index (kept when frame_index % prescale == 0); 0 = none.
  int prescale_l0 = 0;
  int prescale_l1 = 20;
  int prescale_l2 = 0;
  int prescale_sn = 0;
  int sn_min_multiplicity = 4;  // L1 multiplicity of the hits kept in SN timeslices

  // Supernova search ([trigger.supernova]): DataFilter's per-slice figure and SupernovaMonitor.
  SupernovaSettings supernova;

  friend bool operator==(const TriggerParameters&, const TriggerParameters&) = default;
};

struct TriggerParametersResult {
  std::optional<TriggerParameters> parameters;
  // Every problem, "; "-separated, each with its key path, e.g.
  // "trigger.muon: unknown key; trigger.muon3d.road_width_m = -3: out of range [1, 500]".
  std::string error;
  bool ok() const noexcept { return parameters.has_value(); }
};

// Reads the [trigger] section of a run-setup TOML text (other top-level sections are ignored;
// a missing [trigger] gives the defaults). Unknown keys, wrong types and out-of-range values are
// rejected with the key path and the allowed range; all of them, not only the first.
TriggerParametersResult parse_trigger_parameters(std::string_view toml_text);

// The complete [trigger] section (every key, in the layout parse_trigger_parameters reads), for the
// run record: parse_trigger_parameters(to_toml(p)) gives back p.
std::string to_toml(const TriggerParameters& parameters);

}  // namespace shoredaq::filters
