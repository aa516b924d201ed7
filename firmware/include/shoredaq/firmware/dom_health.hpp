#pragma once
// What a shifter asks first: "is every DU there, are the rates sane, which DOMs are sick?"
// DomHealthMonitor follows the run's summary slices (one per 100 ms slice, the rates the CLBs
// measured) against the detector model and answers with the per-DU rates of the latest slice and
// the worst DOMs since the run started: missing from slices, losing datagrams (incomplete frames),
// high-rate veto, White Rabbit not locked, dead PMTs, a rate far from its DU's median, or datagrams
// with implausible slice times (a bad clock, which the builder drops without letting it move the
// slice window).
// Fed by the writer thread, read by status requests: every call is thread-safe.

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "shoredaq/formats/detector.hpp"
#include "shoredaq/formats/clb_datagram.hpp"
#include "shoredaq/formats/summary_slice.hpp"
#include "shoredaq/dataflow/timeslice_builder.hpp"

namespace shoredaq::firmware {

struct DuRates {
  int du = 0;
  unsigned doms_expected = 0;     // optical modules of the DU in the detector model
  unsigned doms_reporting = 0;    // with a frame in the latest summary slice
  unsigned doms_incomplete = 0;   // of those, frames with lost datagrams or no trailer
  unsigned pmts_hrv = 0;          // PMTs under high-rate veto in the latest slice
  double rate_hz = 0;             // sum of all PMT rates of the DU
  double mean_pmt_rate_hz = 0;    // over the PMTs of the reporting DOMs
  // From the DOMs' TMCH monitoring packets (latest of each DOM):
  unsigned doms_monitoring = 0;   // DOMs that sent one
  double temperature_c_mean = 0, temperature_c_max = 0;
  double humidity_pct_max = 0;
};

struct DomHealth {
  std::uint32_t dom_id = 0;
  int du = 0, floor = 0;
  std::uint64_t slices = 0;             // slices observed since the run started
  std::uint64_t slices_missing = 0;     // slices without a frame of this DOM
  std::uint64_t slices_incomplete = 0;  // frames with lost datagrams or without the trailer
  std::uint64_t slices_hrv = 0;         // frames with any PMT under high-rate veto
  std::uint64_t slices_wr_not_ok = 0;   // frames whose White Rabbit bit was not set
  std::uint64_t implausible_time_datagrams = 0;  // dropped by the builder for their slice time (a bad clock?)
  unsigned dead_pmts = 0;               // PMTs at rate code 0 in the latest frame
  double rate_hz = 0;                   // sum of the PMT rates in the latest frame
  double rate_vs_du_median = 0;         // rate_hz / median rate of the DU's reporting DOMs (latest)
  std::vector<std::string> problems;    // human-readable, worst first
  double badness = 0;                   // ranking score; 0 = healthy
};

class DomHealthMonitor {
 public:
  // Rates more than this factor above or below the DU's median DOM rate are reported.
  static constexpr double kRateOutlierFactor = 2.0;

  explicit DomHealthMonitor(std::shared_ptr<const dataflow::Detector> detector);

  void observe(const dataflow::SummarySlice& summary);
  // The builder's per-DOM totals of datagrams dropped for an implausible slice time (the run's).
  void note_implausible_times(const std::vector<dataflow::DomCount>& counts);
  // The slice's TMCH packets: temperature, humidity, compass/tilt (AHRS), the CLB's own veto bits.
  void observe_monitoring(const std::vector<dataflow::RawMonitoring>& packets);

  std::vector<DuRates> du_rates() const;                   // latest slice, by DU
  std::vector<DomHealth> worst_doms(std::size_t max_count) const;  // only unhealthy DOMs, worst first
  std::uint64_t slices_observed() const;
  // The latest summary slice observed (null before the first) and the detector it is read against:
  // what /ratemap.json shows.
  std::shared_ptr<const dataflow::SummarySlice> latest_summary() const;
  const std::shared_ptr<const dataflow::Detector>& detector() const noexcept { return detector_; }
  std::uint64_t unknown_dom_frames() const;  // frames of DOMs absent from the detector model

  // {"frame_index":..., "slices":..., "dus":[...], "worst_doms":[...]} for /status.
  nlohmann::json to_json(std::size_t max_worst = 5) const;

 private:
  struct DomState {
    std::uint32_t dom_id = 0;
    int du = 0, floor = 0;
    std::size_t du_index = 0;  // into du_ids_
    std::uint64_t present = 0, incomplete = 0, hrv = 0, wr_not_ok = 0, implausible_time = 0;
    bool in_latest = false;
    bool latest_incomplete = false;
    unsigned latest_hrv_pmts = 0;
    unsigned latest_dead_pmts = 0;
    double latest_rate_hz = 0;
    std::uint64_t monitoring_packets = 0;
    dataflow::MonitoringPacket monitoring;  // the latest one (valid when monitoring_packets > 0)
  };

  const std::shared_ptr<const dataflow::Detector> detector_;
  mutable std::mutex mutex_;
  std::shared_ptr<const dataflow::SummarySlice> latest_summary_;
  std::vector<DomState> doms_;                          // optical modules, detector order
  std::unordered_map<std::uint32_t, std::size_t> index_;  // dom id -> doms_ index
  std::vector<int> du_ids_;                             // DUs with optical modules, sorted
  std::uint64_t slices_ = 0;
  std::uint64_t unknown_frames_ = 0;
  std::uint64_t bad_monitoring_ = 0;  // TMCH packets that do not parse
  std::uint32_t latest_frame_index_ = 0;
};

}  // namespace shoredaq::firmware
