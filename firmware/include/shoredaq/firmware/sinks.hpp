#pragma once
// Where the node's outputs are configured: the one place that knows which sinks a run has, in what
// order, and which of them run behind a queue of their own. Adding an output = a Sink in storage/
// (or elsewhere) + a few lines here and its keys in config.hpp; nothing else in firmware changes.

#include <functional>
#include <vector>

#include <zmq.hpp>

#include "shoredaq/formats/counter_set.hpp"
#include "shoredaq/firmware/config.hpp"
#include "shoredaq/firmware/run_writer.hpp"
#include "shoredaq/formats/clb_datagram.hpp"
#include "shoredaq/storage/acoustic_spool.hpp"
#include "shoredaq/storage/dispatcher.hpp"
#include "shoredaq/storage/event_store.hpp"
#include "shoredaq/storage/tier0_manifest.hpp"
#include "shoredaq/storage/tier0_spool.hpp"

namespace shoredaq::firmware {

// What the node owns across runs and lends to a run's sinks.
struct SinkResources {
  storage::EventStore* store = nullptr;   // null: no store (a run without one keeps nothing)
  storage::Tier0Spool* spool = nullptr;   // null: spool disabled
  storage::AcousticSpool* acoustic_spool = nullptr;  // null: acoustic data not kept on disk
  storage::Dispatcher* dispatcher = nullptr;         // null: no ControlHost dispatcher
  zmq::context_t* context = nullptr;
  std::function<void(zmq::socket_t&)> configure_alerts_socket;  // CURVE, when configured
  std::int32_t detector_id = 0;
  storage::RunProvenance provenance;  // for the run files' manifests
};

struct RunSinks {
  std::vector<WriterSink> sinks;  // primary (the store) first
  // Where the builder hands each TAES datagram (empty: acoustic data are neither kept nor
  // published). It calls into a sink in `sinks`, so it must not be called after they are gone.
  std::function<void(const dataflow::ClbDatagram&)> acoustic;
};

// The run's sinks. Throws zmq::error_t when an output cannot be opened (e.g. the alert or
// acoustic endpoint cannot be bound): the run does not start.
RunSinks make_run_sinks(const NodeConfig& config, const SinkResources& resources);

// The counters every configured sink will have (all zero): the shape of /metrics before a run.
void describe_configured_sinks(const NodeConfig& config, dataflow::CounterSet& out);

}  // namespace shoredaq::firmware
