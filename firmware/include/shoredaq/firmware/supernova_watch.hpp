#pragma once
// The supernova search of a live run (issue 12): the filters' per-slice SN figure
// (FilterResult::supernova) fed in frame order into filters::SupernovaMonitor on the writer's
// thread, its latest step and alerts kept for /status, its counters for /metrics. An alert is
// logged as a warning (so also ControlHost MSG) and rendered as a SNEWS 2.0-style message, which
// the writer hands to every sink with the slice (alert stream topic sn.<det>, ControlHost IO_SN).

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>

#include <nlohmann/json.hpp>

#include "shoredaq/filters/data_filter.hpp"
#include "shoredaq/filters/supernova_monitor.hpp"
#include "shoredaq/formats/counter_set.hpp"

namespace shoredaq::firmware {

class SupernovaWatch {
 public:
  // `is_test`: the run is not a physics run (SNEWS is_test); `detector_id` goes into the message's meta.
  SupernovaWatch(const filters::SupernovaSettings& settings, std::int32_t detector_id = 0, bool is_test = true)
      : monitor_(settings), detector_id_(detector_id), is_test_(is_test) {}

  // Writer thread: every slice in frame order, also while paused (the sea does not pause). Returns
  // the SNEWS-format message of an alert raised at this slice.
  std::optional<std::string> observe(const filters::FilterResult& result);

  // {"settings":..., "step": the latest step, "alerts": the last few, "max_significance_sigma"}.
  nlohmann::json to_json() const;
  void describe(dataflow::CounterSet& out) const;

 private:
  static constexpr std::size_t kAlertsKept = 10;
  mutable std::mutex mutex_;
  filters::SupernovaMonitor monitor_;
  std::optional<filters::SupernovaStep> last_;
  std::deque<filters::SupernovaAlert> alerts_;
  const std::int32_t detector_id_;
  const bool is_test_;
  double max_significance_sigma_ = 0;
};

// SNEWS 2.0-style alert message (JSON text): detector_name "KM3NeT", machine_time (when the node
// raised it), neutrino_time (the estimated start of the excess), p_val, is_test, as the SNEWS
// publishing tools name them (times ISO 8601 UTC with nanoseconds, no zone suffix), and "meta"
// with the run, frame, counts, baseline, significance, false-alarm rate and effective DOMs.
std::string snews_alert_message(const filters::SupernovaAlert& alert, std::int32_t detector_id, bool is_test,
                                std::uint64_t machine_time_unix_ns);
// "2026-11-29T19:40:00.123456789" (UTC).
std::string iso_utc_ns(std::uint64_t unix_ns);

}  // namespace shoredaq::firmware
