#pragma once
// The shoredaq node: owns what lives across runs (the zmq context and its CURVE handler, the event
// store, the Tier-0 spool, the background scrub, metrics) and drives one RunSession per run
// (run_session.hpp: ingest -> builder -> filters -> writer -> sinks) from the run-control hooks.
//
// Threads: the control socket's own thread answers every command (so a command is never queued
// behind data); configure, stop and quit run on a background thread of the control server, so
// `status` is answered meanwhile (with "draining": true during a drain) and other commands are
// refused until they end; a signal thread turns SIGTERM/SIGINT into `quit` (= stop + quit when
// running); the main thread keeps the health judgement sampled; the data path's threads are
// created at start and joined by stop, which drains within [control] stop_timeout_ms.
//
// Lifetimes are explicit: the destructor tears down in order (run, scrub, spool, store, CURVE
// handler, context), whatever order the members are declared in.

#include <functional>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "shoredaq/firmware/config.hpp"
#include "shoredaq/firmware/run_control.hpp"
#include "shoredaq/firmware/run_writer.hpp"

namespace shoredaq::firmware {

struct NodeOptions {
  // Extra sinks for every run, written after the configured ones: how tests inject a slow or
  // failing output without anything in the daemon reading a fault switch.
  std::function<std::vector<WriterSink>()> extra_sinks;
};

class Node {
 public:
  explicit Node(NodeConfig config, NodeOptions options = {});
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Binds the control socket (and /metrics), installs the signal handling and serves until `quit`
  // (or a signal). Returns the process exit code (0 after a clean quit).
  int serve();

  // The `status` reply's extra fields: counters per stage and per loss cause, store figures.
  nlohmann::json status() const;

  RunControl& run_control() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shoredaq::firmware
