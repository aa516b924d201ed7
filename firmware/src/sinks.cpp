#include "shoredaq/firmware/sinks.hpp"

#include "shoredaq/dataflow/queued_sink.hpp"
#include "shoredaq/storage/alert_sink.hpp"
#include "shoredaq/storage/event_store_sink.hpp"
#include "shoredaq/storage/tier0_spool_sink.hpp"

namespace shoredaq::firmware {

std::vector<WriterSink> make_run_sinks(const NodeConfig& config, const SinkResources& r) {
  std::vector<WriterSink> sinks;
  // The store is the source of truth: written on the writer's thread, so `slices_written` and the
  // commit latency are its, and a store that falls behind backs up into the pipeline's counted drops.
  if (r.store != nullptr) sinks.push_back({std::make_unique<storage::EventStoreSink>(*r.store), true});
  // The run files can block on a failing disk: behind a queue of their own.
  if (r.spool != nullptr) {
    sinks.push_back({std::make_unique<dataflow::QueuedSink>(std::make_unique<storage::Tier0SpoolSink>(*r.spool, r.provenance),
                                                            config.spool.queue_slices,
                                                            std::chrono::milliseconds(config.control.stop_timeout_ms)),
                     false});
  }
  // The alert stream never blocks (PUB drops at the high-water mark, counted).
  if (!config.alerts.endpoint.empty()) {
    storage::AlertPublisherConfig ac;
    ac.endpoints = {config.alerts.endpoint};
    ac.detector_id = r.detector_id;
    ac.selection.trigger_mask = config.alerts.trigger_mask == 0 ? ~std::uint64_t{0} : config.alerts.trigger_mask;
    ac.selection.min_triggered_hits = config.alerts.min_triggered_hits;
    ac.selection.dom_ids = config.alerts.dom_ids;
    ac.publish_summaries = config.alerts.publish_summaries;
    ac.send_hwm = config.alerts.sndhwm;
    ac.configure_socket = r.configure_alerts_socket;
    sinks.push_back({std::make_unique<storage::AlertSink>(std::make_unique<storage::AlertPublisher>(*r.context, ac)), false});
  }
  return sinks;
}

void describe_configured_sinks(const NodeConfig& config, dataflow::CounterSet& out) {
  storage::EventStoreSink::describe({}, out);
  if (config.spool.enabled) {
    storage::Tier0SpoolSink::describe({}, 0, out);
    out.drop("spool", "slices_queue_full", 0, dataflow::LossUnit::SinkSlices);
  }
  // Always described (zero without an alert endpoint), so the series of /metrics do not depend on it.
  storage::AlertSink::describe({}, out);
}

}  // namespace shoredaq::firmware
