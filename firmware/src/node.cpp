#include "shoredaq/firmware/node.hpp"

#include <pthread.h>
#include <signal.h>

#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>
#include <zmq.hpp>

#include "shoredaq/dataflow/detector.hpp"
#include "shoredaq/dataflow/rate_limited_log.hpp"
#include "shoredaq/dataflow/run_record.hpp"
#include "shoredaq/filters/event_builder.hpp"
#include "shoredaq/filters/trigger_parameters.hpp"
#include "shoredaq/firmware/control_socket.hpp"
#include "shoredaq/firmware/dom_health.hpp"
#include "shoredaq/firmware/http_server.hpp"
#include "shoredaq/firmware/input_file.hpp"
#include "shoredaq/firmware/loss_monitor.hpp"
#include "shoredaq/firmware/logging.hpp"
#include "shoredaq/firmware/notify.hpp"
#include "shoredaq/firmware/security.hpp"

namespace shoredaq::firmware {
namespace {

// Detector and run-setup files are read within this bound (a hung network file system).
constexpr std::chrono::milliseconds kInputFileReadTimeout{10'000};

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

storage::SyncMode sync_mode(Durability d) {
  switch (d) {
    case Durability::Full: return storage::SyncMode::Full;
    case Durability::NoMetaSync: return storage::SyncMode::NoMetaSync;
    case Durability::NoSync: return storage::SyncMode::NoSync;
  }
  return storage::SyncMode::Full;
}

dataflow::HeaderLayoutMode layout_mode(HeaderLayoutSetting s) {
  switch (s) {
    case HeaderLayoutSetting::Auto: return dataflow::HeaderLayoutMode::Auto;
    case HeaderLayoutSetting::Standard40: return dataflow::HeaderLayoutMode::Standard40;
    case HeaderLayoutSetting::Legacy28: return dataflow::HeaderLayoutMode::Legacy28;
  }
  return dataflow::HeaderLayoutMode::Auto;
}

// Fault hook for watchdog drills and the HIL test: while the file named by
// SHOREDAQ_FAULT_STALL_WRITER_FILE exists, the writer stage holds its slice and does not advance,
// exactly like a writer stuck on a hung disk. Unset (the default) costs one empty-string check.
void hold_while_fault_file_exists(const std::string& path) {
  if (path.empty()) return;
  bool logged = false;
  std::error_code ec;
  while (std::filesystem::exists(path, ec)) {
    if (!logged) {
      spdlog::warn("fault hook: writer stalled while {} exists", path);
      logged = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (logged) spdlog::warn("fault hook: writer released");
}

std::string fault_stall_writer_file() {
  const char* v = std::getenv("SHOREDAQ_FAULT_STALL_WRITER_FILE");
  return v == nullptr ? std::string() : std::string(v);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// RunWriter

RunWriter::RunWriter(storage::EventStore* store, std::uint32_t run, storage::Tier0Spool* spool,
                     storage::AlertPublisher* alerts)
    : store_(store), run_(run), spool_(spool), alerts_(alerts), latency_(latency_buckets_seconds()) {}

void RunWriter::write(dataflow::ProcessedSlice<filters::FilterResult>&& slice, bool paused) {
  auto& result = slice.result;
  const std::uint32_t frame = slice.info.header.frame_index;
  if (paused) {
    std::lock_guard lock(mutex_);
    ++counters_.slices_paused;
    counters_.filter += result.counters;
    return;
  }
  // Frame order is guaranteed by the pipeline's reorder stage, so the counter is continuous. It
  // numbers the run's triggers, whether or not the store could keep them.
  std::uint64_t next_counter;
  {
    std::lock_guard lock(mutex_);
    next_counter = counters_.trigger_counter;
  }
  filters::assign_trigger_counters(result.events, next_counter);

  storage::CommitResult commit;
  if (store_ != nullptr) {
    commit = store_->commit_slice(run_, frame, result.events, &result.summary);
  } else {
    commit.committed_unix_ns = dataflow::unix_now_ns();
    commit.events = result.events.size();
  }
  // A full disk is not an exception for the spool: a slice is accepted, held (pending, written
  // when space returns) or lost whole, and says so. An exception is a bug or a broken spool.
  std::optional<storage::SpoolSliceResult> spooled;
  std::string spool_error;
  storage::Tier0SpoolCounters spool_run, spool_total;
  if (spool_ != nullptr) {
    try {
      spooled = spool_->write_slice(result.events, &result.summary);
      spool_->flush_if_due();  // bounds what a crash can lose to ~flush_interval
    } catch (const std::exception& e) {
      spool_error = e.what();
    }
    spool_run = spool_->run_counters();
    spool_total = spool_->counters();
  }
  if (alerts_ != nullptr) {
    for (const auto& e : result.events) alerts_->publish_event(e);
    alerts_->publish_summary(result.summary);
  }

  std::lock_guard lock(mutex_);
  counters_.trigger_counter = next_counter;
  counters_.filter += result.counters;
  if (alerts_ != nullptr) counters_.alerts = alerts_->counters();
  const std::uint64_t now = dataflow::unix_now_ns();
  if (spool_ != nullptr) {
    counters_.spool_run = spool_run;
    counters_.spool_total = spool_total;
  }
  if (spooled && spooled->status == storage::SpoolSliceStatus::Pending) ++counters_.spool_slices_pending;
  if (spooled && spooled->status == storage::SpoolSliceStatus::Lost) spool_error = spooled->reason;
  if (!spool_error.empty()) {
    counters_.alarm = "spool: " + spool_error;
    if (now - last_alarm_log_ns_ > 10'000'000'000ull) {
      last_alarm_log_ns_ = now;
      spdlog::error("ALARM: Tier-0 spool failed on slice {} of run {}: {}", frame, run_, spool_error);
    }
  }
  if (!commit) {
    ++counters_.slices_refused[static_cast<std::size_t>(commit.status)];
    counters_.events_refused += result.events.size();
    counters_.alarm = std::string(storage::to_string(commit.status)) + ": " + commit.message;
    // Refusals repeat every slice while the cause lasts: log at most every 10 s.
    if (now - last_alarm_log_ns_ > 10'000'000'000ull) {
      last_alarm_log_ns_ = now;
      spdlog::error("ALARM: store refused slice {} of run {}: {}", frame, run_, counters_.alarm);
    }
    return;
  }
  if (counters_.slices_written == 0 || frame < counters_.first_frame) counters_.first_frame = frame;
  if (frame > counters_.last_frame) counters_.last_frame = frame;
  ++counters_.slices_written;
  counters_.events += result.events.size();
  counters_.stored_bytes += commit.bytes;
  for (const auto& e : result.events) {
    counters_.event_bytes_online += filters::online_event_bytes(e);
    if (e.trigger_mask & dataflow::trigger_bit(dataflow::kTriggerBit3DShower)) ++counters_.events_3d_shower;
    if (e.trigger_mask & dataflow::trigger_bit(dataflow::kTriggerBitMXShower)) ++counters_.events_mx_shower;
    if (e.trigger_mask & dataflow::trigger_bit(dataflow::kTriggerBit3DMuon)) ++counters_.events_3d_muon;
    if (e.trigger_mask & dataflow::trigger_bit(dataflow::kTriggerBitFactoryLimit)) ++counters_.events_factory_limit;
  }
  const std::uint64_t done = slice.info.stamps.completed_unix_ns;
  if (done != 0 && commit.committed_unix_ns >= done) latency_.observe(static_cast<double>(commit.committed_unix_ns - done) * 1e-9);
}

void RunWriter::flush_spool_if_due() {
  if (spool_ == nullptr) return;
  try {
    spool_->flush_if_due();
  } catch (const std::exception& e) {
    spdlog::error("Tier-0 spool flush failed: {}", e.what());
  }
  const auto run = spool_->run_counters();
  const auto total = spool_->counters();
  std::lock_guard lock(mutex_);
  counters_.spool_run = run;
  counters_.spool_total = total;
}

RunWriterCounters RunWriter::counters() const {
  std::lock_guard lock(mutex_);
  return counters_;
}

std::map<std::string, std::uint64_t, std::less<>> run_counter_map(const dataflow::PipelineStats& s,
                                                                  const RunWriterCounters& w) {
  std::map<std::string, std::uint64_t, std::less<>> m;
  m["ingest.messages"] = s.ingest.messages;
  m["ingest.bytes"] = s.ingest.bytes;
  m["ingest.datagrams"] = s.ingest.datagrams;
  for (std::size_t i = 0; i < dataflow::kIngestRejectCauseCount; ++i) {
    const auto cause = std::string(dataflow::to_string(static_cast<dataflow::IngestRejectCause>(i)));
    m["drop.ingest." + cause + ".records"] = s.ingest.rejected_records[i];
    m["drop.ingest." + cause + ".bytes"] = s.ingest.rejected_bytes[i];
  }
  m["builder.datagrams"] = s.builder.datagrams_accepted;
  m["builder.hits"] = s.builder.hits_accepted;
  m["builder.monitoring_datagrams"] = s.builder.monitoring_datagrams;
  m["builder.slices_complete"] = s.builder.slices_complete;
  m["builder.slices_expired"] = s.builder.slices_expired;
  m["builder.slices_evicted"] = s.builder.slices_evicted;
  m["builder.frames_incomplete"] = s.builder.frames_incomplete;
  m["builder.frames_missing"] = s.builder.frames_missing;
  m["drop.builder.acoustic_datagrams"] = s.builder.acoustic_datagrams;
  for (std::size_t i = 0; i < dataflow::kBuilderDropReasonCount; ++i)
    m["drop.builder." + std::string(dataflow::to_string(static_cast<dataflow::BuilderDropReason>(i)))] = s.builder.dropped[i];
  m["drop.pipeline.messages_queue_full"] = s.messages_dropped;
  m["drop.pipeline.datagrams_queue_full"] = s.datagrams_dropped;
  m["drop.pipeline.slices_queue_full"] = s.slices_dropped_queue_full;
  m["drop.pipeline.slices_processor_error"] = s.processor_errors;
  m["drop.pipeline.slices_aborted"] = s.slices_aborted;
  m["drop.writer.slices_paused"] = w.slices_paused;
  // Indexed by storage::CommitStatus (0 = Ok).
  static constexpr const char* kRefusal[kCommitStatusCount] = {"ok", "cap_reached", "disk_reserve", "duplicate_key",
                                                               "lmdb_error"};
  for (std::size_t i = 1; i < kCommitStatusCount; ++i) m[std::string("drop.store.slices_") + kRefusal[i]] = w.slices_refused[i];
  m["drop.store.events_refused"] = w.events_refused;
  // The spool's own count: slices refused whole while the disk was full, and slices still held
  // when a part had to be sealed before space came back.
  m["drop.spool.slices_write_error"] = w.spool_run.slices_lost;
  m["spool.slices_held_while_failing"] = w.spool_slices_pending;
  m["spool.write_errors"] = w.spool_run.write_errors;
  m["drop.alerts.events_hwm"] = w.alerts.events_dropped;
  m["drop.alerts.summaries_hwm"] = w.alerts.summaries_dropped;
  m["drop.alerts.send_errors"] = w.alerts.send_errors;
  m["spool.slices"] = w.spool_run.slices_written;  // whole in the run file
  m["alerts.events_sent"] = w.alerts.events_sent;
  m["alerts.events_not_selected"] = w.alerts.events_not_selected;
  m["alerts.summaries_sent"] = w.alerts.summaries_sent;
  m["slices"] = s.builder.slices_complete + s.builder.slices_expired;
  m["slices_written"] = w.slices_written;
  m["events"] = w.events;
  m["events.3d_shower"] = w.events_3d_shower;
  m["events.mx_shower"] = w.events_mx_shower;
  m["events.3d_muon"] = w.events_3d_muon;
  m["events.factory_limit"] = w.events_factory_limit;
  m["event_bytes_online"] = w.event_bytes_online;
  m["stored_bytes"] = w.stored_bytes;
  m["filter.hits_in"] = w.filter.hits_in;
  m["filter.l0_hits"] = w.filter.l0_hits;
  m["filter.l1_hits"] = w.filter.l1_hits;
  m["filter.l2_hits"] = w.filter.l2_hits;
  m["filter.frames_defective"] = w.filter.frames_defective;
  m["filter.frames_missing"] = w.filter.frames_missing;
  m["filter.frames_unknown_dom"] = w.filter.frames_unknown_dom;
  m["filter.hits_vetoed"] = w.filter.hits_vetoed;
  m["filter.triggers_3d_shower"] = w.filter.triggers_3d_shower;
  m["filter.triggers_mx_shower"] = w.filter.triggers_mx_shower;
  m["filter.triggers_3d_muon"] = w.filter.triggers_3d_muon;
  return m;
}

// Which counters are data lost, and in which unit (LossMonitor judges datagrams and slices apart).
// Duplicates are not lost data (the first copy was kept), nor are slices taken while paused (the
// operator's choice); acoustic datagrams have no consumer yet and are counted on their own.
LossTotals loss_totals(const std::map<std::string, std::uint64_t, std::less<>>& totals) {
  LossTotals t;
  const auto value = [&](const std::string& k) {
    const auto it = totals.find(k);
    return it == totals.end() ? std::uint64_t{0} : it->second;
  };
  t.datagrams_offered = value("ingest.datagrams");
  t.slices_built = value("slices");
  for (const auto& [key, v] : totals) {
    if (key.rfind("drop.", 0) != 0) continue;
    const std::string cause = key.substr(5);
    const auto ends_with = [&](std::string_view suffix) {
      return cause.size() >= suffix.size() && cause.compare(cause.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (cause.rfind("ingest.", 0) == 0) {
      if (ends_with(".records")) {
        t.datagrams_lost[cause.substr(0, cause.size() - 8)] = v;
        t.datagrams_offered += v;
      }
    } else if (cause.rfind("builder.", 0) == 0) {
      if (cause != "builder.duplicate" && cause != "builder.acoustic_datagrams") t.datagrams_lost[cause] = v;
    } else if (cause == "pipeline.datagrams_queue_full") {
      t.datagrams_lost[cause] = v;
    } else if (cause.rfind("pipeline.slices_", 0) == 0) {
      t.slices_lost[cause] = v;
    } else if (cause.rfind("store.slices_", 0) == 0 || cause.rfind("spool.slices_", 0) == 0) {
      t.sink_refusals[cause] = v;
    }
  }
  return t;
}

std::string text_hash_hex(std::string_view text) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// ---------------------------------------------------------------------------------------------
// Node

// What configure validated; start uses exactly this.
struct RunSetup {
  std::shared_ptr<const dataflow::Detector> detector;
  std::string detector_file;
  filters::TriggerParameters parameters;
  std::string run_setup_text;  // the complete [trigger] section in effect (recorded with the run)
};

// Settings the run's sockets get before they bind (CURVE); empty = plain sockets.
struct RunSocketHooks {
  std::function<void(zmq::socket_t&)> ingest;
  std::function<void(zmq::socket_t&)> alerts;
};

// One run's data path.
struct RunSession {
  RunSession(const NodeConfig& config, const RunSetup& setup, std::uint32_t run, storage::EventStore* store,
             storage::Tier0Spool* spool, zmq::context_t& context, dataflow::RateLimitedLog& log,
             const std::atomic<bool>& paused, const RunSocketHooks& hooks = {})
      : filter(*setup.detector, setup.parameters),
        alerts(make_alerts(config, setup, context, hooks.alerts)),
        writer(store, run, spool, alerts.get()),
        dom_health(std::make_shared<DomHealthMonitor>(setup.detector)),
        pipeline(pipeline_config(config, setup, run, hooks.ingest), [this](const dataflow::Timeslice& t) { return filter.process(t); },
                 [this, &paused, stall_file = fault_stall_writer_file()](dataflow::ProcessedSlice<filters::FilterResult>&& p) {
                   wait_until_open();
                   hold_while_fault_file_exists(stall_file);
                   dom_health->observe(p.result.summary);  // also while paused: the sea does not pause
                   writer.write(std::move(p), paused.load(std::memory_order_relaxed));
                 },
                 &context, &log) {
    // No slice arrives while the feed is quiet, yet what the spool buffered must still reach the
    // disk within its flush interval: the writer thread flushes when it has nothing else to do.
    pipeline.set_writer_idle([this] { writer.flush_spool_if_due(); });
  }

  static dataflow::PipelineConfig pipeline_config(const NodeConfig& config, const RunSetup& setup, std::uint32_t run,
                                                  std::function<void(zmq::socket_t&)> configure_ingest_socket) {
    dataflow::PipelineConfig p;
    p.builder.detector_id = setup.detector->id();
    p.builder.run_number = run;
    p.builder.expected_doms = dataflow::TimesliceBuilderConfig::expected_doms_of(*setup.detector);
    p.builder.max_open_slices = config.builder.max_open_slices;
    p.builder.expiry_lag_slices = std::max(1u, config.builder.expiry_ms / 100);
    p.builder.expiry_wall_ns = std::uint64_t{config.builder.wall_clock_expiry_ms} * 1'000'000ull;
    dataflow::ZmqIngestConfig ingest;
    for (const auto& e : config.ingest.endpoints) {
      dataflow::IngestEndpoint ep;
      ep.address = e;
      ep.kind = config.ingest.socket == IngestSocket::Sub ? dataflow::IngestSocketKind::Sub : dataflow::IngestSocketKind::Pull;
      ep.bind = config.ingest.bind;
      ep.layout = layout_mode(config.ingest.header_layout);
      ingest.endpoints.push_back(ep);
    }
    ingest.receive_hwm = config.ingest.rcvhwm;
    ingest.configure_socket = std::move(configure_ingest_socket);
    p.ingest = ingest;
    p.workers = config.worker_count();
    p.slice_queue_capacity = config.builder.queue_slices;
    p.reorder_window_slices = std::max<std::size_t>(config.builder.queue_slices, 2 * p.workers);
    return p;
  }

  static std::unique_ptr<storage::AlertPublisher> make_alerts(const NodeConfig& config, const RunSetup& setup,
                                                               zmq::context_t& context,
                                                               std::function<void(zmq::socket_t&)> configure_socket) {
    if (config.alerts.endpoint.empty()) return nullptr;
    storage::AlertPublisherConfig ac;
    ac.endpoints = {config.alerts.endpoint};
    ac.detector_id = setup.detector->id();
    ac.selection.trigger_mask = config.alerts.trigger_mask == 0 ? ~std::uint64_t{0} : config.alerts.trigger_mask;
    ac.selection.min_triggered_hits = config.alerts.min_triggered_hits;
    ac.selection.dom_ids = config.alerts.dom_ids;
    ac.publish_summaries = config.alerts.publish_summaries;
    ac.send_hwm = config.alerts.sndhwm;
    ac.configure_socket = std::move(configure_socket);
    return std::make_unique<storage::AlertPublisher>(context, ac);
  }

  // The pipeline starts (and binds its ingest endpoints) before the run is recorded, so a bad
  // endpoint refuses `start` without using up the run number; nothing is written until open().
  void open() {
    {
      std::lock_guard lock(open_mutex);
      opened = true;
    }
    open_cv.notify_all();
  }
  void wait_until_open() {
    std::unique_lock lock(open_mutex);
    open_cv.wait_for(lock, std::chrono::seconds(30), [this] { return opened; });
  }

  std::mutex open_mutex;
  std::condition_variable open_cv;
  bool opened = false;
  filters::DataFilter filter;
  std::unique_ptr<storage::AlertPublisher> alerts;  // before the writer, which points to it
  RunWriter writer;
  std::shared_ptr<DomHealthMonitor> dom_health;  // shared: /metrics shows the last run's after stop
  dataflow::Pipeline<filters::FilterResult> pipeline;
};

struct Node::Impl {
  explicit Impl(NodeConfig c) : config(std::move(c)), context(1), run_control(hooks()) {}

  RunControlHooks hooks() {
    RunControlHooks h;
    h.init = [this] { on_init(); };
    h.configure = [this](const ConfigureRequest& r) { on_configure(r); };
    h.start = [this](std::uint32_t run) { on_start(run); };
    h.pause = [this] { paused.store(true); };
    h.resume = [this] { paused.store(false); };
    h.stop = [this] { on_stop(); };
    h.reset = [this] { on_reset(); };
    h.quit = [this] { exit_requested.store(true); };
    return h;
  }

  // Reads the node's key pair and the allow-lists and starts the ZAP handler, before any CURVE
  // socket exists (serve(), or the first run when the node is driven without serve()). Throws
  // naming the file and the problem.
  void start_security() {
    if (zap || !config.uses_curve()) return;
    if (!curve_available()) throw std::runtime_error("CURVE is configured but this libzmq has no CURVE support");
    CurveKeyPair keys = read_secret_key_file(config.security.server_secret_key_file);
    auto handler = std::make_unique<ZapHandler>(context, &registry);
    const auto allow = [&handler](const char* domain, const std::filesystem::path& list) {
      const auto keys_allowed = read_allowed_keys(list);
      if (keys_allowed.empty()) spdlog::warn("CURVE allow-list {} for {} is empty: every peer will be refused", list.string(), domain);
      handler->allow(domain, keys_allowed);
      spdlog::info("CURVE on {}: {} allowed keys from {}", domain, keys_allowed.size(), list.string());
    };
    if (config.control_curve()) allow("control", config.control.curve_allowed_keys);
    if (config.ingest.curve) allow("ingest", config.ingest.curve_allowed_keys);
    if (config.alerts.curve) allow("alerts", config.alerts.curve_allowed_keys);
    curve_keys = std::move(keys);
    zap = std::move(handler);
  }

  std::function<void(zmq::socket_t&)> curve_server_hook(bool enabled, const char* zap_domain) {
    if (!enabled) return {};
    start_security();
    return [this, zap_domain](zmq::socket_t& socket) { make_curve_server(socket, *curve_keys, *zap, zap_domain); };
  }

  RunSocketHooks run_socket_hooks() {
    return RunSocketHooks{curve_server_hook(config.ingest.curve, "ingest"), curve_server_hook(config.alerts.curve, "alerts")};
  }

  // The Tier-0 spool is opened (and what a crash left in open/ sealed) when the daemon starts, not
  // at the next run's start: files a crash interrupted reach ready/ without waiting for an operator.
  void open_spool() {
    if (spool || !config.spool.enabled) return;
    std::filesystem::create_directories(config.spool_dir());
    storage::Tier0SpoolConfig tc;
    tc.directory = config.spool_dir();
    tc.max_file_bytes = config.spool.roll_size_mb << 20;
    tc.max_file_age = std::chrono::seconds(config.spool.roll_seconds);
    tc.flush_interval = std::chrono::milliseconds(config.spool.flush_interval_ms);
    tc.max_pending_bytes = static_cast<std::size_t>(config.spool.max_pending_mb) << 20;
    tc.fsync = config.store.durability != Durability::NoSync;
    auto opened = std::make_unique<storage::Tier0Spool>(tc);
    const auto& c = opened->counters();
    if (c.parts_recovered > 0)
      spdlog::warn("Tier-0 spool {}: sealed {} part(s) left open by a crash ({} damaged bytes kept in damaged/)",
                   tc.directory.string(), c.parts_recovered, c.damaged_bytes);
    std::lock_guard lock(mutex);
    spool_snapshot = opened->counters();
    spool = std::move(opened);
  }

  void on_init() {
    std::filesystem::create_directories(config.node.state_dir);
    open_spool();
    storage::EventStoreConfig sc;
    sc.directory = config.store_path();
    sc.initial_map_bytes = static_cast<std::size_t>(config.store.map_size_mb) << 20;
    sc.max_map_bytes = static_cast<std::size_t>(config.store.map_cap_mb) << 20;
    sc.disk_reserve_bytes = config.store.disk_reserve_mb << 20;
    sc.max_store_bytes = config.store.max_store_bytes;
    sc.sync = sync_mode(config.store.durability);
    // Retention may prune a run only when Tier-0 has every part of it (the manifests on disk say so).
    sc.run_transferred = [this](std::uint32_t run) { return spool != nullptr && spool->transferred(run); };
    store = std::make_unique<storage::EventStore>(sc);
    const auto st = store->stats();
    spdlog::info("store {} open: {} runs, {} events", sc.directory.string(), st.runs, st.events);
    // A run left Running by a crash is marked Aborted, so it never looks like it is still going.
    for (auto record : store->reader().runs()) {
      if (record.state == dataflow::RunState::Running) {
        record.state = dataflow::RunState::Aborted;
        store->put_run_record(record);
        spdlog::warn("run {} was not stopped (crash?): marked aborted", record.run);
      }
    }
  }

  void on_configure(const ConfigureRequest& request) {
    RunSetup next;
    next.detector_file = request.detector_file.empty() ? config.node.detector_file.string() : request.detector_file;
    if (next.detector_file.empty())
      throw CommandRefused("no detector file: give one with configure --detx or set [node] detector_file");
    try {
      const std::string text = read_input_file(next.detector_file, config.max_input_file_bytes(), kInputFileReadTimeout,
                                               "node.max_input_file_mb");
      next.detector = std::make_shared<const dataflow::Detector>(dataflow::Detector::parse(text));
    } catch (const InputFileError& e) {
      throw CommandRefused(e.what());
    } catch (const dataflow::DetxError& e) {
      throw CommandRefused(next.detector_file + ": line " + std::to_string(e.line()) + ": " + e.what());
    } catch (const std::exception& e) {
      throw CommandRefused(next.detector_file + ": " + e.what());
    }
    if (next.detector->optical_module_count() == 0) throw CommandRefused(next.detector_file + ": no optical modules");

    try {
      if (!request.run_setup_path.empty()) {
        next.parameters = load_run_setup(request.run_setup_path, config.max_input_file_bytes());
      } else if (!request.run_setup_text.empty()) {
        next.parameters = parse_run_setup(request.run_setup_text);
      } else {
        next.parameters = config.trigger;
      }
    } catch (const ConfigError& e) {
      throw CommandRefused("run setup: " + std::string(e.what()));
    }
    next.run_setup_text = filters::to_toml(next.parameters);
    // Build the filter once here so a setup the filters cannot use is refused before Running.
    try {
      filters::DataFilter probe(*next.detector, next.parameters);
    } catch (const std::exception& e) {
      throw CommandRefused("run setup: " + std::string(e.what()));
    }
    std::lock_guard lock(mutex);
    setup = std::move(next);
    spdlog::info("configured: detector {} (id {}, {} DOMs), run setup {}", setup->detector_file, setup->detector->id(),
                 setup->detector->optical_module_count(), text_hash_hex(setup->run_setup_text));
  }

  void on_start(std::uint32_t run) {
    if (!setup) throw CommandRefused("not configured");
    if (store && store->reader().run(run))
      throw CommandRefused("run " + std::to_string(run) + " already exists in the store; choose a new run number");
    check_disk_space_for_a_run();
    paused.store(false);
    dataflow::RunRecord record;
    record.run = run;
    record.detector_id = setup->detector->id();
    record.state = dataflow::RunState::Running;
    record.start_unix_ns = dataflow::unix_now_ns();
    record.run_setup = setup->run_setup_text;
    record.run_setup_hash = text_hash_hex(setup->run_setup_text);
    record.detector_file = setup->detector_file;
    if (config.spool.enabled) {
      storage::Tier0SpoolConfig tc;
    }
    auto next = std::make_unique<RunSession>(config, *setup, run, store.get(), spool.get(), context, log, paused,
                                             run_socket_hooks());
    // Binding first: an endpoint that cannot be bound refuses the start (state stays Ready) before
    // anything is recorded, so the operator fixes it and starts the same run number.
    try {
      next->pipeline.start();
    } catch (const zmq::error_t& e) {
      throw CommandRefused("cannot open the ingest endpoints (" + join(config.ingest.endpoints) + "): " + e.what() +
                           "; fix [ingest] endpoints and start again");
    }
    if (store) {
      auto r = store->put_run_record(record);
      if (!r) {
        next->pipeline.stop(std::chrono::seconds(1));
        throw std::runtime_error("cannot write the run record: " + r.message);
      }
    }
    if (spool) spool->begin_run(run, setup->detector->id());
    next->open();
    std::lock_guard lock(mutex);
    run_record = record;
    session = std::move(next);
    last_stats.reset();
    latest_dom_health = session->dom_health;
    register_du_metrics(*setup->detector);
    spdlog::info("run {} started ({} workers)", run, config.worker_count());
    notifier.status("shoredaq: Running run " + std::to_string(run));
  }

  // A run on a full disk would only produce refusals: refused below the store's reserve, warned
  // about below twice the reserve (or below 1 GiB when no reserve is set).
  void check_disk_space_for_a_run() const {
    const std::uint64_t reserve = config.store.disk_reserve_mb << 20;
    const auto check = [&](const std::filesystem::path& where, const char* what) {
      std::error_code ec;
      const auto space = std::filesystem::space(where, ec);
      if (ec) return;
      if (space.available < reserve) {
        throw CommandRefused(std::string("disk full: ") + std::to_string(space.available >> 20) + " MiB free for the " + what +
                             " (" + where.string() + "), below store.disk_reserve_mb = " +
                             std::to_string(config.store.disk_reserve_mb) + "; free space before starting a run");
      }
      const std::uint64_t low = std::max<std::uint64_t>(2 * reserve, std::uint64_t{1} << 30);
      if (space.available < low)
        spdlog::warn("disk nearly full: {} MiB free for the {} ({}); the store refuses data below {} MiB",
                     space.available >> 20, what, where.string(), reserve >> 20);
    };
    check(config.store_path(), "store");
    if (config.spool.enabled) check(config.spool_dir(), "Tier-0 spool");
  }

  void on_stop() {
    std::unique_ptr<RunSession> ending;
    {
      std::lock_guard lock(mutex);
      ending = std::move(session);
      draining = ending.get();  // its counters stay in the totals until they move into lifetime_totals
    }
    if (!ending) return;
    notifier.stopping("shoredaq: draining run " + std::to_string(run_record.run));
    notifier.extend_timeout(std::chrono::milliseconds(config.control.stop_timeout_ms) + std::chrono::seconds(5));
    const auto report = ending->pipeline.stop(std::chrono::milliseconds(config.control.stop_timeout_ms));
    const auto stats = ending->pipeline.stats();
    auto w = ending->writer.counters();
    std::string spool_error;
    if (spool) {
      try {
        spool->end_run();  // seals the last part and writes the run manifest
      } catch (const std::exception& e) {
        spool_error = e.what();
        spdlog::error("ALARM: sealing the run file of run {} failed: {}", run_record.run, spool_error);
      }
      // Sealing may still write (or, on a full disk, lose) what was held: the final word is the spool's.
      w.spool_run = spool->run_counters();
      w.spool_total = spool->counters();
    }
    dataflow::RunRecord record = run_record;
    record.state = report.drained ? dataflow::RunState::Stopped : dataflow::RunState::Aborted;
    record.stop_unix_ns = dataflow::unix_now_ns();
    record.first_frame = w.first_frame;
    record.last_frame = w.last_frame;
    for (const auto& [k, v] : run_counter_map(stats, w)) record.counters[k] = v;
    record.counters["stop.drained"] = report.drained ? 1 : 0;
    record.counters["stop.spool_sealed"] = spool && spool_error.empty() ? 1 : 0;
    if (spool) {
      record.counters["spool.slices_lost"] = w.spool_run.slices_lost;
      record.counters["spool.events_lost"] = w.spool_run.events_lost;
      record.counters["spool.summaries_lost"] = w.spool_run.summaries_lost;
    }
    if (store) {
      auto r = store->put_run_record(record);
      if (!r) spdlog::error("ALARM: cannot write the end-of-run record of run {}: {}", record.run, r.message);
    }
    spdlog::info("run {} stopped ({} in {} ms): {} slices written, {} events, {} dropped", record.run,
                 report.drained ? "drained" : "NOT drained", report.took.count() / 1'000'000, w.slices_written, w.events,
                 stats.slices_dropped_queue_full + stats.processor_errors + stats.slices_aborted);
    {
      std::lock_guard lock(mutex);
      for (const auto& [k, v] : run_counter_map(stats, w)) lifetime_totals[k] += v;
      if (spool) spool_snapshot = spool->counters();  // after end_run's seal; no writer thread now
      draining = nullptr;
      metrics_cache.clear();
      last_stats = LastRun{stats, w, report.drained, ending->writer.commit_latency().quantile(0.5),
                           ending->writer.commit_latency().quantile(0.99), ending->writer.commit_latency().snapshot().max,
                           ending->dom_health->to_json()};
      setup.reset();  // stop -> Standby: each run is configured afresh
    }
    notifier.status("shoredaq: Standby");
    if (!report.drained) throw std::runtime_error("drain did not finish within stop_timeout_ms; run marked aborted");
  }

  void on_reset() {
    std::lock_guard lock(mutex);
    setup.reset();
    store.reset();  // closed; init opens it again (the spool stays open: it holds no run now)
  }

  nlohmann::json counters_json(const dataflow::PipelineStats& stats, const RunWriterCounters& w, double p50, double p99,
                               double max) const {
    nlohmann::json c = nlohmann::json::object(), drops = nlohmann::json::object();
    for (const auto& [k, v] : run_counter_map(stats, w)) {
      if (k.rfind("drop.", 0) == 0) {
        drops[k.substr(5)] = v;
      } else {
        c[k] = v;
      }
    }
    c["queue.messages_depth"] = stats.message_queue.depth;
    c["queue.slices_depth"] = stats.slice_queue.depth;
    c["queue.reorder_pending"] = stats.reorder_pending;
    c["commit_latency_ms.p50"] = p50 * 1e3;
    c["commit_latency_ms.p99"] = p99 * 1e3;
    c["commit_latency_ms.max"] = max * 1e3;
    return nlohmann::json{{"counters", c}, {"drops", drops}, {"alarm", w.alarm}};
  }

  nlohmann::json status() {
    const LossVerdict loss = sample_loss();
    nlohmann::json s = nlohmann::json::object();
    std::lock_guard lock(mutex);
    if (session) {
      const auto& lat = session->writer.commit_latency();
      s = counters_json(session->pipeline.stats(), session->writer.counters(), lat.quantile(0.5), lat.quantile(0.99),
                        lat.snapshot().max);
    } else if (last_stats) {
      s = counters_json(last_stats->stats, last_stats->writer, last_stats->p50, last_stats->p99, last_stats->max);
      s["drained"] = last_stats->drained;
    }
    if (session) {
      s["detector_health"] = session->dom_health->to_json();
    } else if (last_stats) {
      s["detector_health"] = last_stats->dom_health;
    }
    s["paused"] = paused.load();
    s["uptime_s"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at).count();
    s["started_unix_ns"] = started_unix_ns;
    if (const auto e = last_logged_error()) {
      s["last_error"] = {{"message", e->message}, {"level", e->level}, {"unix_ns", e->unix_ns},
                         {"errors_total", e->errors_total}};
    } else {
      s["last_error"] = nullptr;
    }
    if (setup) {
      s["detector_file"] = setup->detector_file;
      s["detector_id"] = setup->detector->id();
    }
    if (store) {
      const auto st = store->stats();
      const auto& sc = store->counters();
      s["store"] = {{"path", config.store_path().string()}, {"map_bytes", st.map_bytes}, {"max_map_bytes", st.max_map_bytes},
                    {"used_bytes", st.used_bytes}, {"disk_free_bytes", st.disk_free_bytes}, {"events", st.events},
                    {"runs", st.runs}, {"refused_cap", sc.slices_refused_cap},
                    {"refused_disk_reserve", sc.slices_refused_disk_reserve}, {"map_growths", sc.map_growths}};
    }
    if (spool) {
      // The writer thread changes the spool's counters: read its copy, taken after each slice.
      const storage::Tier0SpoolCounters tc = session ? session->writer.counters().spool_total : spool_snapshot;
      s["spool"] = {{"dir", config.spool_dir().string()}, {"parts_sealed", tc.parts_sealed},
                    {"bytes_written", tc.bytes_written}, {"events_written", tc.events_written},
                    {"summaries_written", tc.summaries_written}, {"slices_lost", tc.slices_lost},
                    {"parts_recovered", tc.parts_recovered},
                    {"write_errors", tc.write_errors}};
    }
    // `alarm` is what is wrong now (it clears when the cause goes away); the writer's last sink
    // error stays readable as `last_sink_error`, the last logged error as `last_error`.
    if (s.contains("alarm")) {
      if (!s["alarm"].get<std::string>().empty()) s["last_sink_error"] = s["alarm"];
      s.erase("alarm");
    }
    if (loss.losing) {
      s["alarm"] = loss.reason;
    } else if (run_control.state() == RunState::Error) {
      s["alarm"] = "run control in Error: " + run_control.last_error();
    }
    s["loss"] = {{"datagram_fraction", loss.datagram_loss_fraction}, {"slice_fraction", loss.slice_loss_fraction},
                 {"window_s", config.health.loss_window_s}};
    return s;
  }

  // Counters since the daemon started: finished runs plus the running one (Prometheus counters
  // must not go back at a run boundary). Cached briefly: one scrape reads many series.
  std::map<std::string, std::uint64_t, std::less<>> metric_values() {
    std::lock_guard lock(mutex);
    const auto now = std::chrono::steady_clock::now();
    if (now - metrics_cached_at < std::chrono::milliseconds(200) && !metrics_cache.empty()) return metrics_cache;
    auto m = lifetime_totals;
    if (const RunSession* current = session ? session.get() : draining) {
      for (const auto& [k, v] : run_counter_map(current->pipeline.stats(), current->writer.counters())) m[k] += v;
      const auto st = current->pipeline.stats();
      m["queue.messages"] = st.message_queue.depth;
      m["queue.slices"] = st.slice_queue.depth;
      m["queue.reorder"] = st.reorder_pending;
    }
    metrics_cache = m;
    metrics_cached_at = now;
    return m;
  }

  // Per-DU series of the latest slice of the current (or last) run, registered when a run starts
  // (the DUs come with the detector); a re-registration only rebinds the callback.
  void register_du_metrics(const dataflow::Detector& detector) {
    const auto read = [this](int du, double (*value)(const DuRates&)) {
      return [this, du, value] {
        std::shared_ptr<const DomHealthMonitor> monitor;
        {
          std::lock_guard lock(mutex);
          monitor = latest_dom_health;
        }
        if (!monitor) return 0.0;
        for (const auto& r : monitor->du_rates()) {
          if (r.du == du) return value(r);
        }
        return 0.0;
      };
    };
    for (const int du : detector.du_ids()) {
      const MetricLabels labels{{"du", std::to_string(du)}};
      registry.gauge_callback("shoredaq_du_rate_hz", "Sum of the PMT single rates of a DU in the latest summary slice",
                              labels, read(du, [](const DuRates& r) { return r.rate_hz; }));
      registry.gauge_callback("shoredaq_du_doms_reporting", "DOMs of a DU with data in the latest slice", labels,
                              read(du, [](const DuRates& r) { return double(r.doms_reporting); }));
      registry.gauge_callback("shoredaq_du_doms_expected", "Optical modules of a DU in the detector model", labels,
                              read(du, [](const DuRates& r) { return double(r.doms_expected); }));
    }
  }

  void register_metrics(MetricsRegistry& registry) {
    const auto keys = run_counter_map({}, {});
    for (const auto& [key, unused] : keys) {
      (void)unused;
      auto read = [this, k = key] {
        auto m = metric_values();
        auto it = m.find(k);
        return it == m.end() ? std::uint64_t{0} : it->second;
      };
      if (key.rfind("drop.", 0) == 0) {
        const std::string rest = key.substr(5);
        const auto dot = rest.find('.');
        registry.counter_callback("shoredaq_dropped_total", "Data dropped, by stage and cause (records, bytes, slices, events)",
                                  {{"stage", rest.substr(0, dot)}, {"cause", rest.substr(dot + 1)}}, read);
      } else {
        std::string name = "shoredaq_" + key;
        for (auto& ch : name) {
          if (ch == '.') ch = '_';
        }
        registry.counter_callback(name + "_total", "Node counter " + key + " (all runs since start)", {}, read);
      }
    }
    for (const char* q : {"messages", "slices", "reorder"}) {
      registry.gauge_callback("shoredaq_queue_depth", "Items waiting between pipeline stages", {{"queue", q}},
                              [this, k = std::string("queue.") + q] {
                                auto m = metric_values();
                                auto it = m.find(k);
                                return it == m.end() ? 0.0 : static_cast<double>(it->second);
                              });
    }
    for (const auto& [label, q] : {std::pair<const char*, double>{"0.5", 0.5}, {"0.99", 0.99}, {"1", 1.0}}) {
      registry.gauge_callback("shoredaq_commit_latency_seconds", "Slice complete -> committed latency of the current run",
                              {{"quantile", label}}, [this, q = q] {
                                std::lock_guard lock(mutex);
                                if (!session) return 0.0;
                                const auto& h = session->writer.commit_latency();
                                return q >= 1.0 ? h.snapshot().max : h.quantile(q);
                              });
    }
    registry.gauge_callback("shoredaq_store_used_bytes", "Pages in use in the event store", {}, [this] {
      std::lock_guard lock(mutex);
      return store ? static_cast<double>(store->stats().used_bytes) : 0.0;
    });
    registry.gauge_callback("shoredaq_run_number", "Current (or last) run number", {}, [this] {
      auto r = run_control.run();
      return r ? static_cast<double>(*r) : 0.0;
    });
    registry.gauge_callback("shoredaq_running", "1 while a run is Running or Paused", {}, [this] {
      const auto s = run_control.state();
      return s == RunState::Running || s == RunState::Paused ? 1.0 : 0.0;
    });
  }

  // Samples the loss counters (at most every 250 ms) and returns the current verdict; logs when
  // an alarm is raised or cleared.
  LossVerdict sample_loss() {
    const auto totals = loss_totals(metric_values());
    const std::uint64_t now = dataflow::unix_now_ns();
    std::lock_guard lock(loss_mutex);
    if (now >= last_loss_sample_ns + 250'000'000ull || now < last_loss_sample_ns) {
      loss_monitor.observe(now, totals);
      last_loss_sample_ns = now;
    }
    LossVerdict v = loss_monitor.verdict();
    if (v.losing && !loss_alarm_raised) spdlog::error("ALARM: {}", v.reason);
    if (!v.losing && loss_alarm_raised) spdlog::warn("alarm cleared: no data lost in the last {} s", config.health.loss_window_s);
    loss_alarm_raised = v.losing;
    return v;
  }

  HealthReport health() {
    if (run_control.state() == RunState::Error) return {false, "run control in Error: " + run_control.last_error()};
    if (const auto loss = sample_loss(); loss.losing) return {false, loss.reason};
    std::lock_guard lock(mutex);
    if (session) {
      const auto st = session->pipeline.stats();
      const std::uint64_t now = dataflow::unix_now_ns();
      for (const auto& [name, stage] : {std::pair<const char*, const dataflow::StageCounters&>{"builder", st.builder_stage},
                                        {"writer", st.writer_stage}}) {
        if (stage.last_wakeup_unix_ns != 0 && now > stage.last_wakeup_unix_ns + 5'000'000'000ull)
          return {false, std::string(name) + " thread has not run for more than 5 s"};
      }
    }
    return {};
  }

  // The watchdog's predicate: true while the node is healthy and no pipeline stage is stuck.
  // Progress is judged per stage (StallDetector): a stage is stuck when it held work at two
  // consecutive checks and took in / passed on / dropped nothing in between. Without a run, or
  // with a Running pipeline that has no input (every stage idle), the node is healthy as long as
  // the stage threads keep waking up (health()). During a stop's drain the session is owned by the
  // drain, which systemd covers with EXTEND_TIMEOUT_USEC, so pings continue.
  bool watchdog_healthy() {
    const auto h = health();
    if (!h.healthy) {
      last_stall = h.reason;
      return false;
    }
    std::vector<StageSample> samples;
    {
      std::lock_guard lock(mutex);
      if (!session) {
        stall_detector.reset();
        last_stall.clear();
        return true;
      }
      const auto st = session->pipeline.stats();
      const auto progress = [](const dataflow::StageCounters& c) { return c.in + c.out + c.dropped; };
      const auto held = [](const dataflow::StageCounters& c) {
        return c.in > c.out + c.dropped ? c.in - c.out - c.dropped : std::uint64_t{0};
      };
      // The builder legitimately holds open slices (they complete or expire by time), so only
      // the messages queued in front of it count as its pending work.
      samples = {{"builder", progress(st.builder_stage), st.message_queue.depth},
                 {"workers", progress(st.worker_stage), st.slice_queue.depth + held(st.worker_stage)},
                 {"writer", progress(st.writer_stage), st.reorder_pending + held(st.writer_stage)}};
    }
    const std::string stuck = stall_detector.check(samples);
    if (!stuck.empty() && stuck != last_stall) spdlog::error("watchdog: pipeline stage '{}' holds work and does not advance", stuck);
    last_stall = stuck;
    return stuck.empty();
  }

  // SIGTERM/SIGINT arrive here (blocked in every other thread): a graceful stop + quit.
  void signal_loop() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    const timespec poll{0, 100'000'000};
    while (!exit_requested.load()) {
      const int sig = sigtimedwait(&set, nullptr, &poll);
      if (sig == SIGTERM || sig == SIGINT) {
        spdlog::info("{}: stopping and quitting", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        const auto r = run_control.quit();
        if (!r.ok) {
          spdlog::error("quit on signal: {}", r.error);
          exit_code = 1;
          exit_requested.store(true);
        }
      }
    }
  }

  struct LastRun {
    dataflow::PipelineStats stats;
    RunWriterCounters writer;
    bool drained = false;
    double p50 = 0, p99 = 0, max = 0;
    nlohmann::json dom_health;  // the run's last per-DU rates and worst DOMs
  };

  NodeConfig config;
  const std::chrono::steady_clock::time_point started_at = std::chrono::steady_clock::now();
  const std::uint64_t started_unix_ns = dataflow::unix_now_ns();
  zmq::context_t context;
  // CURVE ([security]): the ZAP handler of `context`, declared after it (destroyed before it) and
  // before every socket owner below (destroyed after their sockets); made by start_security().
  // The registry is here so the handler's auth counters live as long as the handler.
  MetricsRegistry registry;
  std::optional<CurveKeyPair> curve_keys;
  std::unique_ptr<ZapHandler> zap;
  dataflow::RateLimitedLog log;
  SystemdNotifier notifier;
  std::atomic<bool> paused{false};
  std::atomic<bool> exit_requested{false};
  std::atomic<int> exit_code{0};
  mutable std::mutex mutex;  // guards setup, session, last_stats against status() readers
  std::optional<RunSetup> setup;
  std::unique_ptr<storage::EventStore> store;
  std::unique_ptr<storage::Tier0Spool> spool;
  storage::Tier0SpoolCounters spool_snapshot;  // for status while no run writes to the spool
  std::unique_ptr<RunSession> session;
  const RunSession* draining = nullptr;  // the session a stop is draining (owned by on_stop)
  std::optional<LastRun> last_stats;
  std::shared_ptr<const DomHealthMonitor> latest_dom_health;  // of the current or last run
  std::map<std::string, std::uint64_t, std::less<>> lifetime_totals;
  std::map<std::string, std::uint64_t, std::less<>> metrics_cache;
  std::chrono::steady_clock::time_point metrics_cached_at{};
  dataflow::RunRecord run_record;
  // Is data being lost now? Sampled about once a second (serve()'s loop, and status/health readers).
  mutable std::mutex loss_mutex;
  LossMonitor loss_monitor{config.health.loss_alarm_fraction, std::chrono::seconds(config.health.loss_window_s)};
  std::uint64_t last_loss_sample_ns = 0;
  bool loss_alarm_raised = false;
  StallDetector stall_detector;  // used by the watchdog thread only
  std::string last_stall;
  RunControl run_control;  // last: its hooks use the members above
};

Node::Node(NodeConfig config) : impl_(std::make_unique<Impl>(std::move(config))) {}
Node::~Node() = default;

RunControl& Node::run_control() noexcept { return impl_->run_control; }

nlohmann::json Node::status() const { return impl_->status(); }

int Node::serve() {
  // Block the stop signals before any thread starts, so only the signal thread takes them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  ControlDispatcher dispatcher(impl_->run_control, [this] { return status(); });
  // Key files and allow-lists are read before anything binds: a bad key stops the start here.
  try {
    impl_->start_security();
  } catch (const std::exception& e) {
    spdlog::critical("cannot set up CURVE: {}", e.what());
    return 1;
  }
  // Seal what a crash left in the spool's open/ now; a spool that cannot open yet (e.g. its folder
  // is not there before the first init) is retried at init.
  try {
    impl_->open_spool();
  } catch (const std::exception& e) {
    spdlog::error("Tier-0 spool {} not opened at start-up (retried at init): {}", impl_->config.spool_dir().string(), e.what());
  }
  std::unique_ptr<ControlServer> server;
  try {
    ControlServerOptions options;
    if (impl_->config.control_curve()) options.curve = ControlCurveServer{*impl_->curve_keys, impl_->zap.get(), "control"};
    options.classify = classify_control_request;  // stop/quit drain on a background thread
    options.busy_reply = [&dispatcher] { return dispatcher.busy_reply(); };
    options.refuse_now = [&dispatcher](std::string_view request) { return dispatcher.refusal_for_state(request); };
    options.ipc_mode = impl_->config.control.socket_mode;
    server = std::make_unique<ControlServer>(impl_->context, impl_->config.control_endpoint(),
                                             [&dispatcher](std::string_view request) { return dispatcher.handle(request); },
                                             std::move(options));
  } catch (const std::exception& e) {
    spdlog::critical("cannot bind the control socket {}: {}", impl_->config.control_endpoint(), e.what());
    return 1;
  }
  spdlog::info("control socket on {}", server->endpoint());

  MetricsRegistry& registry = impl_->registry;
  std::unique_ptr<HttpServer> http;
  if (impl_->config.metrics.enabled) {
    impl_->register_metrics(registry);
    HttpServerOptions options;
    options.address = impl_->config.metrics.listen_address;
    options.port = static_cast<std::uint16_t>(impl_->config.metrics.port);
    options.max_connections = impl_->config.metrics.max_connections;
    options.request_timeout = std::chrono::milliseconds(impl_->config.metrics.request_timeout_ms);
    http = std::make_unique<HttpServer>(
        options, registry,
        [this] {
          auto s = status();
          s["state"] = std::string(to_string(impl_->run_control.state()));
          if (auto r = impl_->run_control.run()) s["run"] = *r;
          return s.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        },
        [this] { return impl_->health(); });
    try {
      http->start();
    } catch (const std::exception& e) {
      spdlog::critical("{}", e.what());
      return 1;
    }
    spdlog::info("metrics on {}/metrics", http->url());
  }

  std::thread signals([this] { impl_->signal_loop(); });
  // READY=1 only now: the control socket is bound (clients may connect as soon as they see it).
  impl_->notifier.ready("shoredaq: Idle");

  // The systemd watchdog is fed only while the pipeline makes progress (see watchdog_healthy).
  std::unique_ptr<Watchdog> watchdog;
  if (auto period = Watchdog::ping_period_for(impl_->notifier)) {
    watchdog = std::make_unique<Watchdog>(impl_->notifier, *period, [this] { return impl_->watchdog_healthy(); });
    watchdog->start();
  }
  // The main thread keeps the loss monitor sampled, so /healthz and `alarm` judge a fresh window.
  auto next_loss_sample = std::chrono::steady_clock::now();
  while (!impl_->exit_requested.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (std::chrono::steady_clock::now() >= next_loss_sample) {
      impl_->sample_loss();
      next_loss_sample += std::chrono::seconds(1);
    }
  }
  signals.join();
  impl_->notifier.stopping("shoredaq: quitting");
  // The quit reply was sent in the server thread's current iteration; stop() joins after it.
  server->stop();
  server.reset();
  if (watchdog) watchdog->stop();
  if (http) http->stop();
  impl_->session.reset();
  impl_->spool.reset();
  impl_->store.reset();
  spdlog::info("quit");
  return impl_->exit_code.load();
}

}  // namespace shoredaq::firmware
