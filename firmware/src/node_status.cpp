// What the node says about itself: /status JSON, /metrics series, /healthz and the watchdog's
// verdict. All of it is derived from the one counter list (counter_set.hpp) of the finished runs
// plus the current one.
#include <spdlog/spdlog.h>

#include <filesystem>

#include "node_impl.hpp"
#include "shoredaq/firmware/logging.hpp"
#include "shoredaq/firmware/node_counters.hpp"
#include "shoredaq/firmware/sinks.hpp"

namespace shoredaq::firmware {
namespace {

std::string prometheus_name(const dataflow::CounterEntry& e) {
  std::string name = "shoredaq_" + e.key();
  for (auto& ch : name) {
    if (ch == '.') ch = '_';
  }
  return name + "_total";
}

nlohmann::json counters_json(const dataflow::CounterSet& counters) {
  nlohmann::json c = nlohmann::json::object(), drops = nlohmann::json::object();
  for (const auto& e : counters.entries()) (e.drop ? drops : c)[e.key()] = e.value;
  return nlohmann::json{{"counters", std::move(c)}, {"drops", std::move(drops)}};
}

}  // namespace

dataflow::CounterSet Node::Impl::totals() {
  std::lock_guard lock(mutex);
  // One scrape reads many series: cached briefly.
  const auto now = std::chrono::steady_clock::now();
  if (now - totals_cached_at < std::chrono::milliseconds(200)) return totals_cache;
  dataflow::CounterSet t = lifetime;
  if (const RunSession* current = session ? session.get() : draining) {
    dataflow::CounterSet run;
    current->describe(run);
    t.add(run);
  }
  totals_cache = t;
  totals_cached_at = now;
  return t;
}

// Samples the loss counters and returns the current verdict; logs when an alarm is raised or cleared.
LossVerdict Node::Impl::sample_loss() {
  const dataflow::CounterSet t = totals();
  std::vector<dataflow::DomCount> implausible;
  {
    std::lock_guard lock(mutex);
    if (const RunSession* current = session ? session.get() : draining) implausible = current->stats().implausible_time_doms;
  }
  const auto loss = loss_totals(t, implausible);
  const std::uint64_t now = dataflow::unix_now_ns();
  std::lock_guard lock(loss_mutex);
  loss_monitor.observe(now, loss);
  LossVerdict v = loss_monitor.verdict();
  if (v.losing && !loss_alarm_raised) spdlog::error("ALARM: {}", v.reason);
  if (!v.losing && loss_alarm_raised) spdlog::warn("alarm cleared: no data lost in the last {} s", config.health.loss_window_s);
  loss_alarm_raised = v.losing;
  return v;
}

// Damage in the store, found by the scrub or refused by a query; "" when none.
std::string Node::Impl::store_alarm() {
  std::lock_guard lock(mutex);
  if (!store) return {};
  if (scrub) {
    const auto st = scrub->status();
    if (st.damaged()) {
      const auto& list = st.pass_damaged_count != 0 ? st.pass_damaged : st.last_pass_damaged;
      return "store damaged: " + std::to_string(std::max(st.pass_damaged_count, st.last_pass_damaged_count)) +
             " damaged records found by the scrub" + (list.empty() ? "" : " (first: " + list.front().describe() + ")") +
             "; run `shore-events verify --deep`";
    }
  }
  const auto integrity = store->integrity();
  if (integrity.damaged_records_refused > 0)
    return "store damaged: " + std::to_string(integrity.damaged_records_refused) + " damaged records refused by queries" +
           (integrity.last_damaged ? " (last: " + integrity.last_damaged->describe() + ")" : "");
  return {};
}

nlohmann::json Node::Impl::status() {
  const LossVerdict loss = sample_loss();
  const std::string damage = store_alarm();
  const dataflow::CounterSet t = totals();
  std::lock_guard lock(mutex);
  nlohmann::json s = nlohmann::json::object();
  // Counters of the current run, or of the last one until the next starts.
  if (session) {
    dataflow::CounterSet run;
    session->describe(run);
    s = counters_json(run);
    const auto st = session->stats();
    const auto& lat = session->writer().commit_latency();
    s["counters"]["queue.messages_depth"] = st.message_queue.depth;
    s["counters"]["queue.slices_depth"] = st.slice_queue.depth;
    s["counters"]["queue.reorder_pending"] = st.reorder_pending;
    s["counters"]["commit_latency_ms.p50"] = lat.quantile(0.5) * 1e3;
    s["counters"]["commit_latency_ms.p99"] = lat.quantile(0.99) * 1e3;
    s["counters"]["commit_latency_ms.max"] = lat.snapshot().max * 1e3;
    session->dom_health()->note_implausible_times(st.implausible_time_doms);
    s["detector_health"] = session->dom_health()->to_json();
    s["supernova"] = session->supernova()->to_json();
    if (const auto e = session->writer().counters().last_sink_error; !e.empty()) s["last_sink_error"] = e;
    if (const auto p = session->writer().problems(); !p.empty()) s["sink_problems"] = p;
  } else if (last_run) {
    s = counters_json(last_run->counters);
    s["counters"]["queue.messages_depth"] = last_run->stats.message_queue.depth;
    s["counters"]["queue.slices_depth"] = last_run->stats.slice_queue.depth;
    s["counters"]["queue.reorder_pending"] = last_run->stats.reorder_pending;
    s["counters"]["commit_latency_ms.p50"] = last_run->p50 * 1e3;
    s["counters"]["commit_latency_ms.p99"] = last_run->p99 * 1e3;
    s["counters"]["commit_latency_ms.max"] = last_run->max * 1e3;
    s["drained"] = last_run->drained;
    s["detector_health"] = last_run->dom_health;
    s["supernova"] = last_run->supernova;
    if (!last_run->last_sink_error.empty()) s["last_sink_error"] = last_run->last_sink_error;
  }
  if (!config.ingest.udp.empty()) s["ingest"]["udp"] = udp_status();
  s["paused"] = paused.load();
  if (resuming.load()) s["resuming"] = true;
  s["uptime_s"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at).count();
  s["started_unix_ns"] = started_unix_ns;
  if (const auto e = last_logged_error()) {
    s["last_error"] = {{"message", e->message}, {"level", e->level}, {"unix_ns", e->unix_ns}, {"errors_total", e->errors_total}};
  } else {
    s["last_error"] = nullptr;
  }
  // What a farm's check (shorectl --farm check) compares across processes.
  const TopologySection& topo = config.topology;
  s["topology"] = {{"roles", topo.roles_text()},
                   {"dus", topo.dus},
                   {"filter_endpoints", topo.filter_endpoints},
                   {"slices_endpoint", topo.slices_endpoint},
                   {"results_endpoint", topo.results_endpoint},
                   {"ingest_processes", topo.ingest_processes},
                   {"merge_timeout_ms", topo.merge_timeout_ms},
                   {"gap_timeout_ms", topo.gap_timeout_ms}};
  if (setup) {
    s["detector_file"] = setup->detector_file;
    s["detector_id"] = setup->detector->id();
    s["detector_dus"] = setup->detector->du_ids();
  }
  if (store) {
    const auto st = store->stats();
    const auto& sc = store->counters();
    s["store"] = {{"path", config.store_path().string()}, {"map_bytes", st.map_bytes}, {"max_map_bytes", st.max_map_bytes},
                  {"used_bytes", st.used_bytes}, {"disk_free_bytes", st.disk_free_bytes}, {"events", st.events},
                  {"runs", st.runs}, {"refused_cap", sc.slices_refused_cap},
                  {"refused_disk_reserve", sc.slices_refused_disk_reserve}, {"map_growths", sc.map_growths},
                  {"damaged_records_refused", store->integrity().damaged_records_refused}};
    if (scrub) {
      const auto sst = scrub->status();
      s["store"]["scrub"] = {{"bytes_per_s", config.store.scrub_bytes_per_s}, {"passes_completed", sst.passes_completed},
                             {"pass_fraction", sst.pass_fraction()}, {"records_checked", sst.records_checked},
                             {"bytes_checked", sst.bytes_checked}, {"damaged_found", sst.damaged_found},
                             {"last_pass_damaged", sst.last_pass_damaged_count}, {"position", sst.position}};
    }
  }
  if (dispatcher) {
    // Since start-up; per run they are in the counters (dispatcher.*).
    const auto d = dispatcher->snapshot();
    nlohmann::json tags = nlohmann::json::object();
    for (std::size_t i = 0; i + 1 < storage::kDispatchTags; ++i)
      tags[std::string(storage::controlhost_tag(static_cast<storage::DispatchTag>(i)))] = d.published_per_tag[i];
    s["dispatcher"] = {{"address", config.dispatcher.address}, {"port", dispatcher->port()},
                       {"clients_connected", d.clients_connected}, {"clients_accepted", d.clients_accepted},
                       {"subscriptions", d.subscriptions},
                       {"clients_refused", d.clients_refused + d.clients_refused_network},
                       {"clients_disconnected_slow", d.clients_disconnected_slow},
                       {"messages_dropped_slow_client", d.messages_dropped + d.messages_dropped_backlog},
                       {"bytes_sent", d.bytes_sent}, {"published", tags}};
  }
  if (spool) {
    // Since the daemon started: every run's spool counters (the spool itself belongs to the
    // writer's thread while a run goes on).
    s["spool"] = {{"dir", config.spool_dir().string()},
                  {"parts_sealed", t.value("spool.parts_sealed")},
                  {"bytes_written", t.value("spool.bytes_written")},
                  {"events_written", t.value("spool.events_written")},
                  {"summaries_written", t.value("spool.summaries_written")},
                  {"slices_lost", t.value("spool.slices_write_error", true)},
                  {"write_errors", t.value("spool.write_errors")},
                  {"parts_recovered", spool_at_open.parts_recovered}};
  }
  if (ring) s["ring"] = ring->status();
  // `alarm` is what is wrong now: it clears when the cause goes away.
  if (loss.losing) {
    s["alarm"] = loss.reason;
  } else if (!damage.empty()) {
    s["alarm"] = damage;
  } else if (run_control.state() == RunState::Error) {
    s["alarm"] = "run control in Error: " + run_control.last_error();
  }
  s["loss"] = {{"datagram_fraction", loss.datagram_loss_fraction}, {"slice_fraction", loss.slice_loss_fraction},
               {"window_s", config.health.loss_window_s}};
  s["run_schedule"] = run_schedule();
  return s;
}

// For the watchdog: the node is alive (its threads run; no stage holds work without advancing is
// judged by watchdog_healthy). Losing data or a damaged store is an alarm, never a reason for
// systemd to restart the node (which would not bring the disk space back).
HealthReport Node::Impl::liveness() {
  if (run_control.state() == RunState::Error) return {false, "run control in Error: " + run_control.last_error()};
  std::lock_guard lock(mutex);
  if (session) {
    const auto st = session->stats();
    const std::uint64_t now = dataflow::unix_now_ns();
    for (const auto& [name, stage] : {std::pair<const char*, const dataflow::StageCounters&>{"builder", st.builder_stage},
                                      {"writer", st.writer_stage}}) {
      if (stage.last_wakeup_unix_ns != 0 && now > stage.last_wakeup_unix_ns + 5'000'000'000ull)
        return {false, std::string(name) + " thread has not run for more than 5 s"};
    }
    // A farm process's receivers (partial slices in, filtered slices in) loop every 20 ms, fed or not.
    if (const auto* links = session->links(); links != nullptr) {
      const std::uint64_t looped = links->receivers_last_wakeup_unix_ns();
      if (looped != 0 && now > looped + 5'000'000'000ull) return {false, "farm receiver thread has not run for more than 5 s"};
    }
    // The UDP receiver polls every 100 ms whether or not the CLBs send: silence means it is stuck.
    if (const auto* udp = session->udp(); udp != nullptr && udp->running()) {
      const std::uint64_t polled = udp->last_poll_unix_ns();
      if (polled != 0 && now > polled + 5'000'000'000ull) return {false, "udp receiver thread has not run for more than 5 s"};
    }
  }
  return {};
}

HealthReport Node::Impl::health() {
  if (auto alive = liveness(); !alive.healthy) return alive;
  if (const auto loss = sample_loss(); loss.losing) return {false, loss.reason};
  if (auto damage = store_alarm(); !damage.empty()) return {false, damage};
  return {};
}

// The watchdog's predicate: true while the node is alive and no pipeline stage is stuck.
// Progress is judged per stage (StallDetector): a stage is stuck when it held work at two
// consecutive checks and took in / passed on / dropped nothing in between. During a stop's drain
// the session is owned by the drain, which systemd covers with EXTEND_TIMEOUT_USEC.
bool Node::Impl::watchdog_healthy() {
  const auto h = liveness();
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
    const auto st = session->stats();
    const auto progress = [](const dataflow::StageCounters& c) { return c.in + c.out + c.dropped; };
    const auto held = [](const dataflow::StageCounters& c) {
      return c.in > c.out + c.dropped ? c.in - c.out - c.dropped : std::uint64_t{0};
    };
    // The builder legitimately holds open slices (they complete or expire by time), so only the
    // messages queued in front of it count as its pending work.
    samples = {{"builder", progress(st.builder_stage), st.message_queue.depth},
               {"workers", progress(st.worker_stage), st.slice_queue.depth + held(st.worker_stage)},
               {"writer", progress(st.writer_stage), st.reorder_pending + held(st.writer_stage)}};
  }
  const std::string stuck = stall_detector.check(samples);
  if (!stuck.empty() && stuck != last_stall) spdlog::error("watchdog: pipeline stage '{}' holds work and does not advance", stuck);
  last_stall = stuck;
  return stuck.empty();
}

// Per-DU series of the latest slice of the current (or last) run, registered when a run starts
// (the DUs come with the detector); a re-registration only rebinds the callback.
void Node::Impl::register_du_metrics(const dataflow::Detector& detector) {
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
    registry.gauge_callback("shoredaq_du_rate_hz", "Sum of the PMT single rates of a DU in the latest summary slice", labels,
                            read(du, [](const DuRates& r) { return r.rate_hz; }));
    registry.gauge_callback("shoredaq_du_doms_reporting", "DOMs of a DU with data in the latest slice", labels,
                            read(du, [](const DuRates& r) { return double(r.doms_reporting); }));
    registry.gauge_callback("shoredaq_du_doms_expected", "Optical modules of a DU in the detector model", labels,
                            read(du, [](const DuRates& r) { return double(r.doms_expected); }));
    registry.gauge_callback("shoredaq_du_doms_monitoring", "DOMs of a DU that sent a TMCH monitoring packet", labels,
                            read(du, [](const DuRates& r) { return double(r.doms_monitoring); }));
    for (const auto& [stat, mean] : {std::pair<const char*, bool>{"mean", true}, {"max", false}}) {
      MetricLabels with_stat = labels;
      with_stat.emplace_back("stat", stat);
      registry.gauge_callback("shoredaq_du_temperature_celsius", "Temperature inside the DU's DOMs (TMCH), mean or max",
                              with_stat,
                              mean ? read(du, [](const DuRates& r) { return r.temperature_c_mean; })
                                   : read(du, [](const DuRates& r) { return r.temperature_c_max; }));
    }
    registry.gauge_callback("shoredaq_du_humidity_percent", "Largest relative humidity inside the DU's DOMs (TMCH)", labels,
                            read(du, [](const DuRates& r) { return r.humidity_pct_max; }));
  }
}

drivers::UdpSocketCounters Node::Impl::udp_socket_counters(std::size_t socket) const {
  if (const RunSession* current = session ? session.get() : draining; current != nullptr && current->udp() != nullptr)
    return current->udp()->counters(socket);
  if (last_run && socket < last_run->udp_counters.size()) return last_run->udp_counters[socket];
  return {};
}

// Per socket, in the order of `[ingest] udp`: what was bound, the receive buffer the kernel
// granted, and what arrived and was lost there (current run, else the last one).
nlohmann::json Node::Impl::udp_status() const {
  std::vector<drivers::UdpSocketInfo> sockets;
  if (const RunSession* current = session ? session.get() : draining; current != nullptr && current->udp() != nullptr) {
    sockets = current->udp()->sockets();
  } else if (last_run) {
    sockets = last_run->udp_sockets;
  }
  nlohmann::json out = nlohmann::json::array();
  for (std::size_t i = 0; i < config.ingest.udp.size(); ++i) {
    const auto& configured = config.ingest.udp[i];
    nlohmann::json j = {{"type", std::string(drivers::data_type_name(configured.data_type))},
                        {"configured", to_string(configured)}};
    if (i < sockets.size()) {
      const auto& info = sockets[i];
      const auto c = udp_socket_counters(i);
      j["address"] = info.bound.host;
      j["port"] = info.bound.port;
      j["receive_buffer_requested_bytes"] = info.receive_buffer_requested;
      j["receive_buffer_granted_bytes"] = info.receive_buffer_granted;
      j["receive_buffer_forced"] = info.receive_buffer_forced;
      j["datagrams"] = c.datagrams;
      j["bytes"] = c.bytes;
      j["kernel_drops"] = c.kernel_drops();
      j["truncated_datagrams"] = c.truncated_datagrams;
      j["other_data_type"] = c.other_data_type;
      std::uint64_t rejected = 0;
      for (const auto n : c.ingest.rejected_records) rejected += n;
      j["rejected_datagrams"] = rejected;
      j["kernel_queue_bytes"] = c.kernel_queue_bytes;
    }
    out.push_back(std::move(j));
  }
  return out;
}

// Per UDP socket, labelled with the port actually bound and the data type; registered when a run
// starts (port 0 binds a new port each run). The caller holds `mutex`, as for register_du_metrics.
void Node::Impl::register_udp_metrics() {
  std::vector<drivers::UdpSocketInfo> sockets;
  if (session && session->udp()) sockets = session->udp()->sockets();
  const auto read = [this](std::size_t i, std::uint64_t (*value)(const drivers::UdpSocketCounters&)) {
    return [this, i, value] {
      std::lock_guard lock(mutex);
      return value(udp_socket_counters(i));
    };
  };
  for (std::size_t i = 0; i < sockets.size(); ++i) {
    const MetricLabels labels{{"port", std::to_string(sockets[i].bound.port)},
                              {"type", std::string(drivers::data_type_name(sockets[i].data_type))}};
    registry.counter_callback("shoredaq_udp_datagrams_total", "Datagrams received on a CLB UDP socket (current or last run)",
                              labels, read(i, [](const drivers::UdpSocketCounters& c) { return c.datagrams; }));
    registry.counter_callback("shoredaq_udp_bytes_total", "Payload bytes received on a CLB UDP socket (current or last run)",
                              labels, read(i, [](const drivers::UdpSocketCounters& c) { return c.bytes; }));
    registry.counter_callback("shoredaq_udp_kernel_drops_total",
                              "Datagrams the kernel dropped on a CLB UDP socket, receive buffer full (current or last run)",
                              labels, read(i, [](const drivers::UdpSocketCounters& c) { return c.kernel_drops(); }));
    registry.gauge_callback("shoredaq_udp_receive_buffer_granted_bytes", "Receive buffer the kernel granted a CLB UDP socket",
                            labels, [granted = sockets[i].receive_buffer_granted] { return double(granted); });
    auto queue_bytes = read(i, [](const drivers::UdpSocketCounters& c) { return c.kernel_queue_bytes; });
    registry.gauge_callback("shoredaq_udp_kernel_queue_bytes", "Bytes waiting in a CLB UDP socket's kernel buffer (last read)",
                            labels, [queue_bytes] { return double(queue_bytes()); });
  }
}

void Node::Impl::register_metrics() {
  // Every series the node will ever have, registered before the first scrape: the counters of the
  // pipeline, the writer and every configured sink, all zero until a run moves them.
  dataflow::CounterSet shape;
  describe_pipeline({}, shape);
  describe_writer({}, shape);
  describe_configured_sinks(config, shape);
  if (!config.ingest.udp.empty()) describe_udp({}, shape);
  for (const auto& e : shape.entries()) {
    auto read = [this, key = e.key(), drop = e.drop] { return totals().value(key, drop); };
    // The UDP datagrams and bytes are series per socket (register_udp_metrics), not one sum.
    if (!e.drop && e.stage == "udp" && (e.name == "datagrams" || e.name == "bytes")) continue;
    if (e.drop) {
      registry.counter_callback("shoredaq_dropped_total", "Data dropped, by stage and cause (records, bytes, slices, events)",
                                {{"stage", e.stage}, {"cause", e.name}}, read);
    } else {
      registry.counter_callback(prometheus_name(e), "Node counter " + e.key() + " (all runs since start)", {}, read);
    }
  }
  const auto queue_depth = [this](std::size_t (*depth)(const dataflow::PipelineStats&)) {
    return [this, depth] {
      std::lock_guard lock(mutex);
      return session ? static_cast<double>(depth(session->stats())) : 0.0;
    };
  };
  registry.gauge_callback("shoredaq_queue_depth", "Items waiting between pipeline stages", {{"queue", "messages"}},
                          queue_depth([](const dataflow::PipelineStats& s) { return s.message_queue.depth; }));
  registry.gauge_callback("shoredaq_queue_depth", "Items waiting between pipeline stages", {{"queue", "slices"}},
                          queue_depth([](const dataflow::PipelineStats& s) { return s.slice_queue.depth; }));
  registry.gauge_callback("shoredaq_queue_depth", "Items waiting between pipeline stages", {{"queue", "reorder"}},
                          queue_depth([](const dataflow::PipelineStats& s) { return s.reorder_pending; }));
  for (const auto& [label, q] : {std::pair<const char*, double>{"0.5", 0.5}, {"0.99", 0.99}, {"1", 1.0}}) {
    registry.gauge_callback("shoredaq_commit_latency_seconds", "Slice complete -> committed latency of the current run",
                            {{"quantile", label}}, [this, q = q] {
                              std::lock_guard lock(mutex);
                              if (!session) return 0.0;
                              const auto& h = session->writer().commit_latency();
                              return q >= 1.0 ? h.snapshot().max : h.quantile(q);
                            });
  }
  if (ring) ring->register_metrics(registry);
  register_supernova_metrics(registry, [this]() -> std::optional<filters::SupernovaStep> {
    std::lock_guard lock(mutex);
    const RunSession* current = session ? session.get() : draining;
    return current ? current->supernova()->latest() : std::nullopt;
  });
  registry.gauge_callback("shoredaq_store_used_bytes", "Pages in use in the event store", {}, [this] {
    std::lock_guard lock(mutex);
    return store ? static_cast<double>(store->stats().used_bytes) : 0.0;
  });
  // Free space where the node writes, read at each scrape: the store refuses slices below the
  // reserve, and a run is refused at start below it (check_disk_space_for_a_run).
  const auto disk_free = [](std::filesystem::path where) {
    return [where = std::move(where)] {
      std::error_code ec;
      const auto space = std::filesystem::space(where, ec);
      return ec ? 0.0 : static_cast<double>(space.available);
    };
  };
  registry.gauge_callback("shoredaq_disk_free_bytes", "Disk space available to the node (statvfs f_bavail), by area",
                          {{"area", "store"}}, disk_free(config.store_path()));
  if (config.spool.enabled)
    registry.gauge_callback("shoredaq_disk_free_bytes", "Disk space available to the node (statvfs f_bavail), by area",
                            {{"area", "spool"}}, disk_free(config.spool_dir()));
  registry.gauge_callback("shoredaq_disk_reserve_bytes",
                          "Free space the store keeps (store.disk_reserve_mb): below it slices are refused", {},
                          [reserve = config.store.disk_reserve_mb << 20] { return static_cast<double>(reserve); });
  registry.counter_callback("shoredaq_store_damaged_records_refused_total",
                            "Stored records a query refused because their checksum does not match", {}, [this] {
                              std::lock_guard lock(mutex);
                              return store ? store->integrity().damaged_records_refused : std::uint64_t{0};
                            });
  const auto scrub_value = [this](std::uint64_t (*value)(const storage::ScrubStatus&)) {
    return [this, value] {
      std::lock_guard lock(mutex);
      return scrub ? value(scrub->status()) : std::uint64_t{0};
    };
  };
  registry.counter_callback("shoredaq_store_scrub_bytes_total", "Bytes the background scrub re-read and checked", {},
                            scrub_value([](const storage::ScrubStatus& s) { return s.bytes_checked; }));
  registry.counter_callback("shoredaq_store_scrub_passes_total", "Complete passes of the background scrub over the store", {},
                            scrub_value([](const storage::ScrubStatus& s) { return s.passes_completed; }));
  registry.counter_callback("shoredaq_store_scrub_damaged_total", "Damaged records the background scrub met (every pass)", {},
                            scrub_value([](const storage::ScrubStatus& s) { return s.damaged_found; }));
  registry.gauge_callback("shoredaq_alarm", "1 while the node raises an alarm (data lost, a sink refusing, store damage)", {},
                          [this] { return sample_loss().losing || !store_alarm().empty() ? 1.0 : 0.0; });
  registry.gauge_callback("shoredaq_run_number", "Current (or last) run number", {}, [this] {
    auto r = run_control.run();
    return r ? static_cast<double>(*r) : 0.0;
  });
  registry.gauge_callback("shoredaq_running", "1 while a run is Running or Paused", {}, [this] {
    const auto s = run_control.state();
    return s == RunState::Running || s == RunState::Paused ? 1.0 : 0.0;
  });
}

}  // namespace shoredaq::firmware
