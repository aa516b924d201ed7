#pragma once
// The alert stream as a sink (dataflow/sink.hpp): every event the pre-selection keeps and every
// summary slice go out on the AlertPublisher's PUB socket. Sends never block; what a slow
// subscriber misses is counted (drop.alerts.*), and is not data loss: the store keeps everything.

#include <memory>
#include <mutex>

#include "shoredaq/formats/sink.hpp"
#include "shoredaq/storage/alert_publisher.hpp"

namespace shoredaq::storage {

class AlertSink final : public dataflow::Sink {
 public:
  explicit AlertSink(std::unique_ptr<AlertPublisher> publisher) : publisher_(std::move(publisher)) {}

  std::string_view name() const noexcept override { return "alerts"; }
  void begin_run(const dataflow::RunRecord&) override {}
  dataflow::SinkWrite write(const dataflow::SliceProducts& slice) override;
  void end_run(dataflow::RunRecord&) override {}
  void snews(const dataflow::SnewsMessage& message) override;
  void counters(dataflow::CounterSet& out) const override;

  // The counter names with given values (all zero: the shape of the node's metrics before a run).
  static void describe(const AlertPublisherCounters& c, dataflow::CounterSet& out);

 private:
  std::unique_ptr<AlertPublisher> publisher_;
  mutable std::mutex mutex_;
  AlertPublisherCounters counters_;  // a copy for readers on other threads
};

}  // namespace shoredaq::storage
