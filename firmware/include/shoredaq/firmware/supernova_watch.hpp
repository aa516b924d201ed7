#pragma once
// The supernova search of a live run (issue 12): the filters' per-slice SN figure
// (FilterResult::supernova) fed in frame order into filters::SupernovaMonitor on the writer's
// thread, its latest step and alerts kept for /status, its counters for /metrics. An alert is
// logged as a warning (so also ControlHost MSG) and rendered as a SNEWS 2.0-style message, which
// the writer hands to every sink with the slice (alert stream topic sn.<det>, ControlHost IO_SN).
// SNEWS heartbeats: one "ON" at the run's first observed slice and then one per heartbeat period of
// detector time (slice start times, not the wall clock: a heartbeat certifies that the search saw
// data up to then, so a stalled feed stops them and SNEWS sees the gap; replays and fast feeds stay
// deterministic), and a final "OFF" when the run stops.

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>

#include <nlohmann/json.hpp>

#include "shoredaq/filters/data_filter.hpp"
#include "shoredaq/filters/supernova_monitor.hpp"
#include "shoredaq/firmware/metrics.hpp"
#include "shoredaq/formats/counter_set.hpp"

namespace shoredaq::firmware {

class SupernovaWatch {
 public:
  // `is_test`: the run is not a physics run (SNEWS is_test); `detector_id` goes into the message's
  // meta; `heartbeat_period_s` 0 = no heartbeats.
  SupernovaWatch(const filters::SupernovaSettings& settings, std::int32_t detector_id = 0, bool is_test = true,
                 double heartbeat_period_s = 0)
      : monitor_(settings),
        detector_id_(detector_id),
        is_test_(is_test),
        heartbeat_period_ns_(static_cast<std::uint64_t>(heartbeat_period_s * 1e9)) {}

  // Writer thread: every slice in frame order, also while paused (the sea does not pause). Returns
  // the SNEWS-format message of an alert raised at this slice.
  std::optional<std::string> observe(const filters::FilterResult& result);

  // After observe(), writer thread: the "ON" heartbeat due at the slice just observed (the first,
  // then one per period of detector time); nullopt when none is due or heartbeats are off. `run`:
  // the node's run number (the writer's, after cycles).
  std::optional<std::string> heartbeat(std::uint32_t run);
  // The run stops (after the last slice): the final "OFF" heartbeat, when an "ON" one went out.
  std::optional<std::string> final_heartbeat(std::uint32_t run);

  // {"settings":..., "step": the latest step, "alerts": the last few, "max_significance_sigma",
  //  "heartbeats": period, sent, the last one's detector time}.
  nlohmann::json to_json() const;
  void describe(dataflow::CounterSet& out) const;
  // The latest step observed (a copy; nullopt before the first slice), for the /metrics gauges.
  std::optional<filters::SupernovaStep> latest() const;

 private:
  static constexpr std::size_t kAlertsKept = 10;
  mutable std::mutex mutex_;
  filters::SupernovaMonitor monitor_;
  std::optional<filters::SupernovaStep> last_;
  std::deque<filters::SupernovaAlert> alerts_;
  const std::int32_t detector_id_;
  const bool is_test_;
  const std::uint64_t heartbeat_period_ns_;
  double max_significance_sigma_ = 0;
  std::optional<std::uint64_t> next_heartbeat_ns_;  // detector time the next "ON" is due
  std::uint64_t heartbeats_on_ = 0, heartbeats_off_ = 0;
  std::uint64_t last_heartbeat_detector_ns_ = 0;
  std::string heartbeat_message(bool on, std::uint32_t run) const;  // mutex_ held
};

// The SN statistic of the latest step as /metrics gauges (shoredaq_supernova_*: ready, significance,
// window count, baseline, dispersion, effective DOMs, false-alarm rate); `latest_step` returns the
// running (or draining) run's latest step, nullopt between runs (the gauges then read 0).
void register_supernova_metrics(MetricsRegistry& registry,
                                std::function<std::optional<filters::SupernovaStep>()> latest_step);

// SNEWS 2.0-style alert message (JSON text): detector_name "KM3NeT", machine_time (when the node
// raised it), neutrino_time (the estimated start of the excess), p_val, is_test, as the SNEWS
// publishing tools name them (times ISO 8601 UTC with nanoseconds, no zone suffix), and "meta"
// with the run, frame, counts, baseline, significance, false-alarm rate and effective DOMs.
std::string snews_alert_message(const filters::SupernovaAlert& alert, std::int32_t detector_id, bool is_test,
                                std::uint64_t machine_time_unix_ns);
// SNEWS 2.0-style heartbeat: detector_name, machine_time, detector_status "ON"/"OFF", is_test, and
// "meta" (the caller's: run, detector time, effective DOMs, latest significance...).
std::string snews_heartbeat_message(bool on, bool is_test, std::uint64_t machine_time_unix_ns, nlohmann::json meta);
// "2026-11-29T19:40:00.123456789" (UTC).
std::string iso_utc_ns(std::uint64_t unix_ns);

}  // namespace shoredaq::firmware
