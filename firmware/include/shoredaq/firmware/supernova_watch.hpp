#pragma once
// The supernova search of a live run (issue 12): the filters' per-slice SN figure
// (FilterResult::supernova) fed in frame order into filters::SupernovaMonitor on the writer's
// thread, its latest step and alerts kept for /status, its counters for /metrics. An alert is
// logged as a warning, so it also reaches the ControlHost MSG stream.

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
  explicit SupernovaWatch(const filters::SupernovaSettings& settings) : monitor_(settings) {}

  // Writer thread: every slice in frame order, also while paused (the sea does not pause).
  void observe(const filters::FilterResult& result);

  // {"settings":..., "step": the latest step, "alerts": the last few, "max_significance_sigma"}.
  nlohmann::json to_json() const;
  void describe(dataflow::CounterSet& out) const;

 private:
  static constexpr std::size_t kAlertsKept = 10;
  mutable std::mutex mutex_;
  filters::SupernovaMonitor monitor_;
  std::optional<filters::SupernovaStep> last_;
  std::deque<filters::SupernovaAlert> alerts_;
  double max_significance_sigma_ = 0;
};

}  // namespace shoredaq::firmware
