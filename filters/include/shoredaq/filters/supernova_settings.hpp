#pragma once
// Parameters of the supernova search (TOML [trigger.supernova]); see supernova.hpp and
// supernova_monitor.hpp for what they drive.

namespace shoredaq::filters {

// Parameters of the SN search (TOML [trigger.supernova]). DOMAIN.md marks them unconfirmed, so all
// are configurable. Multiplicity band source: DOMAIN.md section 5 quotes 6-10 for ORCA-like and
// 7-11 for ARCA-like detectors; the default is the ARCA-like band (the demo detector is ARCA).
struct SupernovaSettings {
  bool enabled = true;                // compute the per-slice SN figure in DataFilter
  double coincidence_window_ns = 10.0;  // hits within this of a coincidence's first hit join it
  int min_multiplicity = 7;           // distinct PMTs, inclusive (ORCA-like: 6)
  int max_multiplicity = 11;          // distinct PMTs, inclusive (ORCA-like: 10); higher is muon-like
  // Correlated-DOM veto: a kept coincidence with another coincidence of at least min_multiplicity
  // (in the band or above, on any DOM, triggered or not) within this many ns is left out. A ~10 MeV
  // supernova positron lights one DOM; an untriggered atmospheric muon lights several within ~1 us,
  // and those clusters make the background wider than Poisson. 0 = off.
  double correlated_veto_window_ns = 1000.0;
  double window_ms = 500.0;           // detector-level sliding window, stepped every 100 ms slice
  double baseline_s = 600.0;          // running background, the slices just before the window
  double min_baseline_s = 30.0;       // no significance (and no alert) before this much baseline
  double alert_threshold_sigma = 5.5; // Gaussian-equivalent significance of the on/off p-value
  double hold_off_s = 60.0;           // at most one alert per hold-off (a burst lasts ~10 s)
  // Bioluminescence: a DOM whose summed hit rate in the slice exceeds burst_rate_factor x its
  // running median (over burst_median_s, at most 300 s: 4 bytes per DOM and slice) is left out of
  // that slice's count; 0 = no burst check.
  double burst_rate_factor = 3.0;
  double burst_median_s = 30.0;
  friend bool operator==(const SupernovaSettings&, const SupernovaSettings&) = default;
};

}  // namespace shoredaq::filters
