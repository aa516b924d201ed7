#include "shoredaq/storage/alert_sink.hpp"

namespace shoredaq::storage {

dataflow::SinkWrite AlertSink::write(const dataflow::SliceProducts& slice) {
  for (const auto& e : slice.events) publisher_->publish_event(e);
  publisher_->publish_summary(slice.summary);
  std::lock_guard lock(mutex_);
  counters_ = publisher_->counters();
  return {};
}

void AlertSink::counters(dataflow::CounterSet& out) const {
  std::lock_guard lock(mutex_);
  out.total("alerts", "events_sent", counters_.events_sent);
  out.total("alerts", "events_not_selected", counters_.events_not_selected);
  out.total("alerts", "summaries_sent", counters_.summaries_sent);
  // A subscriber too slow for the PUB high-water mark misses messages; the store has them all.
  out.drop("alerts", "events_hwm", counters_.events_dropped, dataflow::LossUnit::NotLoss);
  out.drop("alerts", "summaries_hwm", counters_.summaries_dropped, dataflow::LossUnit::NotLoss);
  out.drop("alerts", "send_errors", counters_.send_errors, dataflow::LossUnit::NotLoss);
}

}  // namespace shoredaq::storage
