#include "shoredaq/firmware/sinks.hpp"

#include "shoredaq/dataflow/queued_sink.hpp"
#include "shoredaq/firmware/snews_hook.hpp"
#include "shoredaq/storage/acoustic_sink.hpp"
#include "shoredaq/storage/alert_sink.hpp"
#include "shoredaq/storage/dispatcher_sink.hpp"
#include "shoredaq/storage/event_store_sink.hpp"
#include "shoredaq/storage/tier0_spool_sink.hpp"

namespace shoredaq::firmware {

RunSinks make_run_sinks(const NodeConfig& config, const SinkResources& r) {
  RunSinks out;
  auto& sinks = out.sinks;
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
  // The ControlHost dispatcher never blocks either: a slow client misses messages, counted.
  if (r.dispatcher != nullptr) sinks.push_back({std::make_unique<storage::DispatcherSink>(*r.dispatcher), false});
  // The SNEWS hook never blocks: a command runs on its own thread behind a bounded queue.
  if (!config.snews.hook_command.empty() || !config.snews.hook_endpoint.empty()) {
    SnewsHookConfig hc;
    hc.command = config.snews.hook_command;
    hc.endpoint = config.snews.hook_endpoint;
    hc.timeout = std::chrono::milliseconds(config.snews.hook_timeout_ms);
    hc.queue_messages = config.snews.hook_queue_messages;
    hc.send_hwm = config.snews.hook_sndhwm;
    hc.linger_ms = static_cast<int>(config.snews.hook_linger_ms);
    hc.test_messages = config.snews.hook_test_messages;
    sinks.push_back({std::make_unique<SnewsHookSink>(std::make_unique<SnewsHook>(r.context, hc),
                                                     hc.timeout + std::chrono::seconds(1)),
                     false});
  }
  // Acoustic data: fed by the builder, not by the slices; the writer's calls give it its runs and
  // write its batch when due (a full disk fails at once and is counted, it does not block).
  std::unique_ptr<storage::AcousticPublisher> acoustic_publisher;
  if (!config.acoustic.publish_endpoint.empty()) {
    storage::AcousticPublisherConfig pc;
    pc.endpoints = {config.acoustic.publish_endpoint};
    pc.detector_id = r.detector_id;
    pc.send_hwm = config.acoustic.sndhwm;
    acoustic_publisher = std::make_unique<storage::AcousticPublisher>(*r.context, pc);
  }
  if (r.acoustic_spool != nullptr || acoustic_publisher) {
    auto acoustic = std::make_unique<storage::AcousticSink>(r.acoustic_spool, std::move(acoustic_publisher), r.provenance);
    out.acoustic = [sink = acoustic.get()](const dataflow::ClbDatagram& d) { sink->on_datagram(d); };
    sinks.push_back({std::move(acoustic), false});
  }
  return out;
}

void describe_configured_sinks(const NodeConfig& config, dataflow::CounterSet& out) {
  storage::EventStoreSink::describe({}, out);
  if (config.spool.enabled) {
    storage::Tier0SpoolSink::describe({}, 0, out);
    out.drop("spool", "slices_queue_full", 0, dataflow::LossUnit::SinkSlices);
  }
  // Always described (zero without an alert endpoint), so the series of /metrics do not depend on it.
  storage::AlertSink::describe({}, out);
  if (config.dispatcher.enabled) storage::DispatcherSink::describe({}, out);
  if (!config.snews.hook_command.empty() || !config.snews.hook_endpoint.empty()) SnewsHookSink::describe({}, out);
  if ((config.acoustic.spool && config.spool.enabled) || !config.acoustic.publish_endpoint.empty())
    storage::AcousticSink::describe_empty(out);
}

}  // namespace shoredaq::firmware
