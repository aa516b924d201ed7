#pragma once
// Node::Impl, shared by node.cpp (lifecycle, run-control hooks, serve) and node_status.cpp
// (status JSON, /metrics, health). Internal to the firmware library.

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <zmq.hpp>

#include "shoredaq/formats/counter_set.hpp"
#include "shoredaq/dataflow/rate_limited_log.hpp"
#include "shoredaq/formats/run_record.hpp"
#include "shoredaq/firmware/http_server.hpp"
#include "shoredaq/firmware/loss_monitor.hpp"
#include "shoredaq/firmware/metrics.hpp"
#include "shoredaq/firmware/node.hpp"
#include "shoredaq/firmware/notify.hpp"
#include "shoredaq/firmware/rate_history.hpp"
#include "shoredaq/firmware/ring_service.hpp"
#include "shoredaq/firmware/run_session.hpp"
#include "shoredaq/firmware/security.hpp"
#include "shoredaq/firmware/store_scrub.hpp"
#include "shoredaq/storage/acoustic_spool.hpp"
#include "shoredaq/storage/dispatcher.hpp"
#include "shoredaq/storage/event_store.hpp"
#include "shoredaq/storage/tier0_spool.hpp"

namespace shoredaq::firmware {

struct Node::Impl {
  Impl(NodeConfig c, NodeOptions o);
  ~Impl();

  // --- node.cpp: lifecycle and run-control hooks
  RunControlHooks hooks();
  void start_security();
  std::function<void(zmq::socket_t&)> curve_server_hook(bool enabled, const char* zap_domain);
  void open_spool();
  void start_dispatcher();
  void on_init();
  void on_configure(const ConfigureRequest& request);
  void on_start(std::uint32_t run, const std::string& run_type);
  void check_disk_space_for_a_run() const;
  void on_stop();
  void on_reset();
  void signal_loop();
  void shutdown();

  // --- node_ring.cpp: the raw-data ring buffer and its dumps
  void open_ring();
  void attach_ring(RunSessionInputs& inputs, const storage::RunProvenance& provenance);
  nlohmann::json request_dump(const nlohmann::json& request);  // {"cmd":"dump",...} -> reply

  // --- node_runs.cpp: runs that cycle themselves, provenance, the operator's last order
  dataflow::RunRecord new_run_record(std::uint32_t run, const std::string& run_type, std::string start_reason) const;
  dataflow::RunRecord cycle_run(const RunSession& session, dataflow::RunRecord& ended);
  std::uint32_t next_free_run(std::uint32_t from) const;
  void remember_order(bool running, std::uint32_t current_run = 0);  // next run: current_run + 1
  void resume_if_desired();
  nlohmann::json run_schedule() const;

  // --- node_status.cpp: what the node says about itself
  nlohmann::json status();
  // The node's counters since it started: finished runs plus the current (or draining) one.
  dataflow::CounterSet totals();
  LossVerdict sample_loss();
  HealthReport health();    // /healthz: alive and not losing data
  HealthReport liveness();  // the watchdog: alive (data loss is an alarm, not a reason to restart)
  bool watchdog_healthy();
  void register_metrics();
  void register_du_metrics(const dataflow::Detector& detector);
  void register_udp_metrics();  // the caller holds `mutex`
  nlohmann::json udp_status() const;  // /status ingest.udp; the caller holds `mutex`
  // One UDP socket's counters of the current run, else of the last one (the caller holds `mutex`).
  drivers::UdpSocketCounters udp_socket_counters(std::size_t socket) const;
  std::string store_alarm();
  // --- node_page.cpp: what the live page at / reads besides /status
  nlohmann::json rate_map();           // /ratemap.json (rate_map.hpp)
  void sample_trigger_rates();         // into trigger_history, every trigger_sample_period
  // spool/transfer.status.json as shore-transfer last wrote it; null when there is none (yet).
  nlohmann::json transfer_status() const;
  std::vector<HttpRoute> page_routes();  // /, its static files and /ratemap.json

  // What a finished run leaves for /status until the next one starts.
  struct LastRun {
    dataflow::CounterSet counters;
    dataflow::PipelineStats stats;
    bool drained = false;
    double p50 = 0, p99 = 0, max = 0;
    nlohmann::json dom_health;  // the run's last per-DU rates and worst DOMs
    std::string last_sink_error;
    // The run's UDP sockets (`[ingest] udp`) and their final counters, per socket.
    std::vector<drivers::UdpSocketInfo> udp_sockets;
    std::vector<drivers::UdpSocketCounters> udp_counters;
    nlohmann::json supernova;  // the run's last SN step and its alerts
  };

  NodeConfig config;
  NodeOptions options;
  const std::chrono::steady_clock::time_point started_at = std::chrono::steady_clock::now();
  const std::uint64_t started_unix_ns;
  zmq::context_t context;
  MetricsRegistry registry;
  std::optional<CurveKeyPair> curve_keys;
  std::unique_ptr<ZapHandler> zap;  // on `context`: torn down before it (shutdown())
  dataflow::RateLimitedLog log;
  SystemdNotifier notifier;
  std::atomic<bool> paused{false};
  std::atomic<bool> resuming{false};  // going back to the last order after a restart (status says so)
  std::atomic<bool> exit_requested{false};
  std::atomic<int> exit_code{0};

  mutable std::mutex mutex;  // guards everything below against status() readers
  std::shared_ptr<const RunSetup> setup;
  std::unique_ptr<storage::EventStore> store;
  std::unique_ptr<storage::Tier0Spool> spool;
  std::unique_ptr<storage::AcousticSpool> acoustic_spool;  // beside the run files ([acoustic] spool)
  // The ControlHost dispatcher outlives runs: consumers stay connected from one run to the next.
  std::unique_ptr<storage::Dispatcher> dispatcher;
  storage::Tier0SpoolCounters spool_at_open;  // what opening the spool found (recovered parts)
  // The raw-data ring ([ring]); stopped at shutdown but kept: /metrics reads it until the end.
  std::unique_ptr<RingService> ring;
  std::unique_ptr<StoreScrubThread> scrub;
  std::unique_ptr<RunSession> session;
  const RunSession* draining = nullptr;  // the session a stop is draining (owned by on_stop)
  std::optional<LastRun> last_run;
  std::shared_ptr<const DomHealthMonitor> latest_dom_health;  // of the current or last run
  dataflow::CounterSet lifetime;  // finished runs
  dataflow::CounterSet totals_cache;
  std::chrono::steady_clock::time_point totals_cached_at{};
  dataflow::RunRecord run_record;
  dataflow::CounterSet run_base;  // the session's counters when the current run began (cycled runs)
  std::string start_reason_next;  // set while the node resumes a run by itself
  std::uint32_t clb_run_next = 0;  // ... and the run number its CLBs still send
  std::uint32_t clb_run = 0;       // what the current run's CLBs send
  const std::string host;

  // Is data being lost now? Sampled about once a second (serve()'s loop, and status/health readers).
  std::mutex loss_mutex;
  LossMonitor loss_monitor;
  bool loss_alarm_raised = false;
  // Events per trigger type over the last 10 minutes, for the live page (RateHistory is thread-safe).
  static constexpr std::chrono::seconds trigger_sample_period{5};
  RateHistory trigger_history{{"3d_muon", "3d_shower", "mx_shower", "all"}, std::chrono::minutes(10)};
  StallDetector stall_detector;  // used by the watchdog thread only
  std::string last_stall;

  RunControl run_control;
};

}  // namespace shoredaq::firmware
