#pragma once
// One run's data path, wired from the configuration: ingest -> TimesliceBuilder -> N DataFilter
// workers -> reorder -> RunWriter -> sinks, plus the DomHealthMonitor that follows the summary
// slices. Made at `start`, stopped (drained) at `stop`. It binds its ingest endpoints in start()
// but writes nothing until open(): the node records the run only once the endpoints are bound, so a
// bad endpoint never uses up a run number. The ZeroMQ endpoints feed the pipeline's own ingest; the
// CLB UDP ports (`[ingest] udp`) feed it through a drivers::UdpReceiver that never blocks.
// On a farm (`[topology]`, issue 13) the session runs only its process's roles; FarmLinks joins it to
// the others: an ingest process's workers route the built slices to the filter processes, a filter
// process's pipeline is fed merged slices and sends its results on, a writer process writes the
// results of every filter process in slice order.

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>

#include <zmq.hpp>

#include "shoredaq/formats/counter_set.hpp"
#include "shoredaq/dataflow/pipeline.hpp"
#include "shoredaq/dataflow/rate_limited_log.hpp"
#include "shoredaq/dataflow/task_pool.hpp"
#include "shoredaq/drivers/udp_receiver.hpp"
#include "shoredaq/firmware/config.hpp"
#include "shoredaq/firmware/dom_health.hpp"
#include "shoredaq/firmware/farm_links.hpp"
#include "shoredaq/firmware/node_counters.hpp"
#include "shoredaq/firmware/run_setup.hpp"
#include "shoredaq/firmware/run_writer.hpp"
#include "shoredaq/firmware/supernova_watch.hpp"

namespace shoredaq::firmware {

struct RunSessionInputs {
  const NodeConfig* config = nullptr;
  std::shared_ptr<const RunSetup> setup;
  dataflow::RunRecord record;  // as it will be stored at open()
  // The run number the CLBs put in their datagrams (the builder drops others): the operator's run
  // number, also for the runs that follow it by themselves (cycled, resumed after a restart).
  std::uint32_t clb_run = 0;
  std::vector<WriterSink> sinks;
  // The builder's TAES datagrams go here (sinks.hpp, RunSinks::acoustic); empty: not kept.
  std::function<void(const dataflow::ClbDatagram&)> acoustic;
  zmq::context_t* context = nullptr;
  dataflow::RateLimitedLog* log = nullptr;
  const std::atomic<bool>* paused = nullptr;  // the node's pause flag, read per slice
  std::function<void(zmq::socket_t&)> configure_ingest_socket;  // CURVE, when configured
  // Every built slice, on the filter workers (the raw-data ring); must not block. Empty: none.
  std::function<void(const dataflow::Timeslice&)> raw_slice;
  // The SNEWS-format message of a supernova alert, on the writer's thread (the ring's dump).
  std::function<void(const std::string&)> supernova_alert;
};

// A configured UDP port cannot be bound (in use, an address the host does not have).
class UdpOpenError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class RunSession {
 public:
  explicit RunSession(RunSessionInputs inputs);
  ~RunSession();
  RunSession(const RunSession&) = delete;
  RunSession& operator=(const RunSession&) = delete;

  // Binds the UDP ports and the ingest endpoints, then starts the threads; throws UdpOpenError on
  // a UDP port that cannot be bound, zmq::error_t on a bad endpoint (nothing left running).
  void start();
  // The run is recorded: the sinks begin their run and slices are written from now on.
  void open();
  // Drains within `deadline`; then every sink ends its run and adds its figures to `record`.
  dataflow::StopReport stop(std::chrono::milliseconds deadline, dataflow::RunRecord& record);

  // The pipeline's, the writer's and every sink's counters (thread-safe).
  void describe(dataflow::CounterSet& out) const;
  dataflow::PipelineStats stats() const { return pipeline_.stats(); }
  // The CLB UDP receiver; null when `[ingest] udp` is empty.
  const drivers::UdpReceiver* udp() const noexcept { return udp_.get(); }
  // The farm's boundaries; null when this process runs every role.
  const FarmLinks* links() const noexcept { return links_.get(); }
  const RunWriter& writer() const noexcept { return writer_; }
  RunWriter& writer() noexcept { return writer_; }
  std::shared_ptr<DomHealthMonitor> dom_health() const noexcept { return dom_health_; }
  std::shared_ptr<const SupernovaWatch> supernova() const noexcept { return supernova_; }
  const RunSetup& setup() const noexcept { return *setup_; }
  std::uint32_t run() const noexcept { return writer_.run(); }

 private:
  void wait_until_open();
  // The writer stage: DOM health, the supernova watch and the RunWriter, in slice order.
  void write_slice(dataflow::ProcessedSlice<filters::FilterResult>&& p);
  dataflow::Pipeline<filters::FilterResult>::Processor make_processor(const RunSessionInputs& in);
  dataflow::Pipeline<filters::FilterResult>::Writer make_writer();

  std::shared_ptr<const RunSetup> setup_;
  TopologySection topology_;
  const std::atomic<bool>* paused_;
  std::function<void(const std::string&)> supernova_alert_;
  std::mutex open_mutex_;
  std::condition_variable open_cv_;
  bool opened_ = false;
  RunWriter writer_;
  std::shared_ptr<DomHealthMonitor> dom_health_;  // shared: /status shows the last run's after stop
  std::shared_ptr<SupernovaWatch> supernova_;     // the same
  std::shared_ptr<dataflow::TaskPool> slice_pool_;  // helpers of the workers' per-DOM work; null: off
  // Null with every role. Before pipeline_: the workers route through it; its receivers feed the
  // pipeline, so they are stopped first (stop(), ~RunSession).
  std::unique_ptr<FarmLinks> links_;
  dataflow::Pipeline<filters::FilterResult> pipeline_;  // after slice_pool_: its workers stop first
  std::unique_ptr<drivers::UdpReceiver> udp_;  // feeds pipeline_; stopped before it drains
};

// The pipeline of a live run (the builder, queues and workers as configured).
dataflow::PipelineConfig live_pipeline_config(const NodeConfig& config, const dataflow::Detector& detector,
                                              std::uint32_t run,
                                              std::function<void(zmq::socket_t&)> configure_ingest_socket);
// The UDP receiver of a live run (`[ingest] udp`); its messages are numbered after the ZeroMQ
// endpoints' (ParsedMessage::endpoint).
drivers::UdpReceiverConfig live_udp_config(const NodeConfig& config);

}  // namespace shoredaq::firmware
