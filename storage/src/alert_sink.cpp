#include "shoredaq/storage/alert_sink.hpp"

namespace shoredaq::storage {

dataflow::SinkWrite AlertSink::write(const dataflow::SliceProducts& slice) {
  for (const auto& e : slice.events) publisher_->publish_event(e);
  publisher_->publish_summary(slice.summary);
  for (const auto& a : slice.supernova_alerts) publisher_->publish_supernova(a);
  std::lock_guard lock(mutex_);
  counters_ = publisher_->counters();
  return {};
}

void AlertSink::snews(const dataflow::SnewsMessage& message) {
  if (message.kind == dataflow::SnewsMessage::Kind::Heartbeat) publisher_->publish_heartbeat(message.json);
  else publisher_->publish_supernova(message.json);
  std::lock_guard lock(mutex_);
  counters_ = publisher_->counters();
}

void AlertSink::counters(dataflow::CounterSet& out) const {
  std::lock_guard lock(mutex_);
  describe(counters_, out);
}

void AlertSink::describe(const AlertPublisherCounters& c, dataflow::CounterSet& out) {
  out.total("alerts", "events_sent", c.events_sent);
  out.total("alerts", "events_not_selected", c.events_not_selected);
  out.total("alerts", "summaries_sent", c.summaries_sent);
  out.total("alerts", "supernova_alerts_sent", c.supernova_alerts_sent);
  out.total("alerts", "snews_heartbeats_sent", c.snews_heartbeats_sent);
  // A subscriber too slow for the PUB high-water mark misses messages; the store has them all.
  out.drop("alerts", "events_hwm", c.events_dropped, dataflow::LossUnit::NotLoss);
  out.drop("alerts", "summaries_hwm", c.summaries_dropped, dataflow::LossUnit::NotLoss);
  out.drop("alerts", "supernova_alerts_hwm", c.supernova_alerts_dropped, dataflow::LossUnit::NotLoss);
  out.drop("alerts", "snews_heartbeats_hwm", c.snews_heartbeats_dropped, dataflow::LossUnit::NotLoss);
  out.drop("alerts", "send_errors", c.send_errors, dataflow::LossUnit::NotLoss);
}

}  // namespace shoredaq::storage
