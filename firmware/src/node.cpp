#include "shoredaq/firmware/node.hpp"

#include <spdlog/spdlog.h>

#include <unistd.h>

#include "node_impl.hpp"
#include "shoredaq/firmware/logging.hpp"
#include "shoredaq/firmware/sinks.hpp"

namespace shoredaq::firmware {
namespace {

storage::SyncMode sync_mode(Durability d) {
  switch (d) {
    case Durability::Full: return storage::SyncMode::Full;
    case Durability::NoMetaSync: return storage::SyncMode::NoMetaSync;
    case Durability::NoSync: return storage::SyncMode::NoSync;
  }
  return storage::SyncMode::Full;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

}  // namespace

namespace {
std::string host_name() {
  char name[256] = {};
  return ::gethostname(name, sizeof name - 1) == 0 ? std::string(name) : std::string("unknown");
}
}  // namespace

Node::Impl::Impl(NodeConfig c, NodeOptions o)
    : config(std::move(c)),
      options(std::move(o)),
      started_unix_ns(dataflow::unix_now_ns()),
      context(1),
      host(host_name()),
      loss_monitor(config.health.loss_alarm_fraction, std::chrono::seconds(config.health.loss_window_s),
                   config.health.bad_time_alarm_datagrams),
      run_control(hooks()) {}

Node::Impl::~Impl() { shutdown(); }

// Explicit order: the run (its sinks borrow the store and the spool), the scrub (it reads the
// store), the spool and the store, then the CURVE handler, which must go before the context.
void Node::Impl::shutdown() {
  std::unique_ptr<RunSession> ending;
  {
    std::lock_guard lock(mutex);
    ending = std::move(session);
  }
  ending.reset();
  if (ring) ring->stop();  // after the run: its workers fed it
  forward_log_lines({});  // before the dispatcher goes: no log line may reach it afterwards
  std::lock_guard lock(mutex);
  dispatcher.reset();
  scrub.reset();
  acoustic_spool.reset();
  spool.reset();
  store.reset();
  zap.reset();
}

RunControlHooks Node::Impl::hooks() {
  RunControlHooks h;
  h.init = [this] { on_init(); };
  h.configure = [this](const ConfigureRequest& r) { on_configure(r); };
  h.start = [this](std::uint32_t run, const std::string& run_type) { on_start(run, run_type); };
  h.pause = [this] { paused.store(true); };
  h.resume = [this] { paused.store(false); };
  h.stop = [this] { on_stop(); };
  h.reset = [this] { on_reset(); };
  h.quit = [this] { exit_requested.store(true); };
  return h;
}

// Reads the node's key pair and the allow-lists and starts the ZAP handler, before any CURVE
// socket exists. Throws naming the file and the problem.
void Node::Impl::start_security() {
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

std::function<void(zmq::socket_t&)> Node::Impl::curve_server_hook(bool enabled, const char* zap_domain) {
  if (!enabled) return {};
  start_security();
  return [this, zap_domain](zmq::socket_t& socket) { make_curve_server(socket, *curve_keys, *zap, zap_domain); };
}

// The Tier-0 spool is opened (and what a crash left in open/ sealed) when the daemon starts, not
// at the next run's start: files a crash interrupted reach ready/ without waiting for an operator.
void Node::Impl::open_spool() {
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
  const auto c = opened->counters();
  if (c.parts_recovered > 0)
    spdlog::warn("Tier-0 spool {}: sealed {} part(s) left open by a crash ({} damaged bytes kept in damaged/)",
                 tc.directory.string(), c.parts_recovered, c.damaged_bytes);
  std::unique_ptr<storage::AcousticSpool> acoustic;
  if (config.acoustic.spool) {
    storage::AcousticSpoolConfig ac;
    ac.directory = tc.directory;
    ac.max_file_bytes = tc.max_file_bytes;
    ac.max_file_age = tc.max_file_age;
    ac.flush_interval = tc.flush_interval;
    ac.fsync = tc.fsync;
    acoustic = std::make_unique<storage::AcousticSpool>(ac);
    const auto a = acoustic->counters();
    if (a.parts_recovered > 0)
      spdlog::warn("acoustic spool {}: sealed {} part(s) left open by a crash ({} damaged bytes kept in damaged/)",
                   tc.directory.string(), a.parts_recovered, a.damaged_bytes);
  }
  {
    std::lock_guard lock(mutex);
    spool_at_open = c;
    spool = std::move(opened);
    acoustic_spool = std::move(acoustic);
  }
  open_ring();  // after the spool: its dumps go there
}

// The ControlHost dispatcher listens from start-up to quit, runs or no runs: km3mon connects once.
void Node::Impl::start_dispatcher() {
  if (dispatcher || !config.dispatcher.enabled) return;
  storage::DispatcherConfig dc;
  dc.address = config.dispatcher.address;
  dc.port = static_cast<std::uint16_t>(config.dispatcher.port);
  dc.allowed_networks = config.dispatcher.allowed_networks;
  dc.max_queue_bytes_any = static_cast<std::size_t>(config.dispatcher.client_queue_mb_any) << 20;
  dc.max_queue_bytes_all = static_cast<std::size_t>(config.dispatcher.client_queue_mb_all) << 20;
  dc.disconnect_slow_all_clients = config.dispatcher.disconnect_slow_all_clients;
  dc.max_clients = config.dispatcher.max_clients;
  auto started = std::make_unique<storage::Dispatcher>(dc);
  spdlog::info("ControlHost dispatcher on {}:{}", dc.address, started->port());
  std::lock_guard lock(mutex);
  dispatcher = std::move(started);
  if (config.dispatcher.publish_log)
    forward_log_lines([d = dispatcher.get()](std::string_view line) { d->publish_log(line); });
}

void Node::Impl::on_init() {
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
  auto opened = std::make_unique<storage::EventStore>(sc);
  const auto st = opened->stats();
  spdlog::info("store {} open: {} runs, {} events", sc.directory.string(), st.runs, st.events);
  // A run left Running by a crash is marked Aborted, so it never looks like it is still going.
  storage::ReadResult damaged;
  for (auto record : opened->reader().runs(&damaged)) {
    if (record.state == dataflow::RunOutcome::Running) {
      record.state = dataflow::RunOutcome::Aborted;
      record.stop_reason = "crash (found at init)";
      opened->put_run_record(record);
      spdlog::warn("run {} was not stopped (crash?): marked aborted", record.run);
    }
  }
  for (const auto& d : damaged.damaged_records) spdlog::error("ALARM: store: damaged record {}", d.describe());
  std::unique_ptr<StoreScrubThread> scrubber;
  if (config.store.scrub_bytes_per_s > 0) scrubber = std::make_unique<StoreScrubThread>(opened->reader(), config.store.scrub_bytes_per_s);
  std::lock_guard lock(mutex);
  store = std::move(opened);
  scrub = std::move(scrubber);
}

void Node::Impl::on_configure(const ConfigureRequest& request) {
  RunSetupRequest r{request.detector_file.empty() ? config.node.detector_file.string() : request.detector_file,
                    request.run_setup_path, request.run_setup_text};
  std::shared_ptr<const RunSetup> next;
  try {
    next = std::make_shared<const RunSetup>(load_run_setup(r, config.trigger, config.max_input_file_bytes()));
  } catch (const RunSetupError& e) {
    throw CommandRefused(e.what());
  }
  spdlog::info("configured: detector {} (id {}, {} DOMs), run setup {}", next->detector_file, next->detector->id(),
               next->detector->optical_module_count(), next->run_setup_hash);
  std::lock_guard lock(mutex);
  setup = std::move(next);
}

void Node::Impl::on_start(std::uint32_t run, const std::string& run_type) {
  if (!setup) throw CommandRefused("not configured");
  try {
    // The run numbers are the writer's: an ingest or filter process of a farm takes the farm's run,
    // again after a restart (its own record of the run is then rewritten).
    if (store && config.topology.writer && store->reader().run(run))
      throw CommandRefused("run " + std::to_string(run) + " already exists in the store; choose a new run number");
  } catch (const storage::DamagedRecordError& e) {
    throw CommandRefused("run " + std::to_string(run) + " has a damaged record in the store (" + e.what() +
                         "); choose a new run number and run `shore-events verify --deep`");
  }
  check_disk_space_for_a_run();
  paused.store(false);
  const dataflow::RunRecord record =
      new_run_record(run, run_type, start_reason_next.empty() ? std::string("operator") : start_reason_next);

  SinkResources resources{store.get(), spool.get(), acoustic_spool.get(), dispatcher.get(), &context,
                          curve_server_hook(config.alerts.curve, "alerts"), setup->detector->id(), {}};
  resources.provenance.run_setup_hash = setup->run_setup_hash;
  resources.provenance.detector_file_hash = setup->detector_hash;
  resources.provenance.run_type = record.run_type;
  RunSinks outputs;
  try {
    // Only the writer role writes: an ingest or filter process of a farm keeps no run files.
    if (config.topology.writer) outputs = make_run_sinks(config, resources);
  } catch (const zmq::error_t& e) {
    throw CommandRefused("cannot open the alert or acoustic stream (" + config.alerts.endpoint + " " +
                         config.acoustic.publish_endpoint + "): " + e.what());
  }
  if (options.extra_sinks) {
    for (auto& s : options.extra_sinks()) outputs.sinks.push_back(std::move(s));
  }
  const std::uint32_t clb = clb_run_next != 0 ? clb_run_next : run;
  RunSessionInputs inputs{&config, setup, record, clb, std::move(outputs.sinks), std::move(outputs.acoustic), &context,
                          &log, &paused, curve_server_hook(config.ingest.curve, "ingest"), {}, {}};
  attach_ring(inputs, resources.provenance);
  auto next = std::make_unique<RunSession>(std::move(inputs));
  if (config.run.max_duration_s > 0 || config.run.max_bytes > 0) {
    RunCycle cycle;
    cycle.max_duration_ns = std::uint64_t{config.run.max_duration_s} * 1'000'000'000ull;
    cycle.max_bytes = config.run.max_bytes;
    cycle.next_run = [this, s = next.get()](dataflow::RunRecord& ended) { return cycle_run(*s, ended); };
    next->writer().set_cycle(std::move(cycle));
  }
  // Binding first: an endpoint that cannot be bound refuses the start (state stays Ready) before
  // anything is recorded, so the operator fixes it and starts the same run number.
  try {
    next->start();
  } catch (const zmq::error_t& e) {
    if (!config.topology.whole_node())
      throw CommandRefused("cannot open the endpoints of this " + config.topology.roles_text() + " process: " + e.what() +
                           "; fix [ingest] endpoints or [topology] and start again");
    throw CommandRefused("cannot open the ingest endpoints (" + join(config.ingest.endpoints) + "): " + e.what() +
                         "; fix [ingest] endpoints and start again");
  } catch (const UdpOpenError& e) {
    throw CommandRefused(std::string("cannot open the UDP ports: ") + e.what() + "; fix [ingest] udp and start again");
  }
  if (store) {
    auto r = store->put_run_record(record);
    if (!r) throw std::runtime_error("cannot write the run record: " + r.message);
  }
  next->open();
  {
    std::lock_guard lock(mutex);
    clb_run = clb;
  }
  remember_order(true, run);
  std::lock_guard lock(mutex);
  run_record = record;
  run_base = {};
  session = std::move(next);
  last_run.reset();
  latest_dom_health = session->dom_health();
  register_du_metrics(*setup->detector);
  register_udp_metrics();
  spdlog::info("run {} started ({} workers, {} threads per slice)", run, config.worker_count(), config.slice_thread_count());
  notifier.status("shoredaq: Running run " + std::to_string(run));
}

// A run on a full disk would only produce refusals: refused below the store's reserve, warned
// about below twice the reserve (or below 1 GiB when no reserve is set).
void Node::Impl::check_disk_space_for_a_run() const {
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

void Node::Impl::on_stop() {
  std::unique_ptr<RunSession> ending;
  {
    std::lock_guard lock(mutex);
    ending = std::move(session);
    draining = ending.get();  // its counters stay in the totals until they move into `lifetime`
  }
  if (!ending) return;
  notifier.stopping("shoredaq: draining run " + std::to_string(run_record.run));
  notifier.extend_timeout(std::chrono::milliseconds(config.control.stop_timeout_ms) + std::chrono::seconds(5));
  const bool quitting = run_control.in_progress() == RunCommand::Quit;
  dataflow::RunRecord record;
  dataflow::CounterSet base;
  {
    std::lock_guard lock(mutex);
    record = run_record;  // the current run (a cycled session moved on from the one it started)
    base = run_base;
  }
  record.stop_reason = quitting ? "quit" : "operator";
  const auto report = ending->stop(std::chrono::milliseconds(config.control.stop_timeout_ms), record);
  dataflow::CounterSet counters;
  ending->describe(counters);
  const auto w = ending->writer().counters();
  record.state = report.drained ? dataflow::RunOutcome::Stopped : dataflow::RunOutcome::Aborted;
  record.stop_unix_ns = dataflow::unix_now_ns();
  record.first_frame = w.first_frame;
  record.last_frame = w.last_frame;
  for (const auto& [k, v] : counters.since(base).flat()) record.counters[k] = v;
  record.counters["stop.drained"] = report.drained ? 1 : 0;
  if (store) {
    auto r = store->put_run_record(record);
    if (!r) spdlog::error("ALARM: cannot write the end-of-run record of run {}: {}", record.run, r.message);
  }
  const auto stats = ending->stats();
  spdlog::info("run {} stopped ({} in {} ms): {} slices written, {} events, {} dropped", record.run,
               report.drained ? "drained" : "NOT drained", report.took.count() / 1'000'000, w.slices_written, w.events,
               stats.slices_dropped_queue_full + stats.processor_errors + stats.slices_aborted);
  ending->dom_health()->note_implausible_times(stats.implausible_time_doms);
  const auto& latency = ending->writer().commit_latency();
  {
    std::lock_guard lock(mutex);
    lifetime.add(counters);
    draining = nullptr;
    totals_cached_at = {};
    last_run = LastRun{counters, stats, report.drained, latency.quantile(0.5), latency.quantile(0.99),
                       latency.snapshot().max, ending->dom_health()->to_json(), w.last_sink_error, {}, {},
                       ending->supernova()->to_json()};
    if (const auto* udp = ending->udp()) {
      last_run->udp_sockets = udp->sockets();
      for (std::size_t i = 0; i < last_run->udp_sockets.size(); ++i) last_run->udp_counters.push_back(udp->counters(i));
    }
    setup.reset();  // stop -> Standby: each run is configured afresh
  }
  ending.reset();
  if (ring) ring->set_taking_data(false);  // a dump waiting for more slices takes what there is
  // A quit (SIGTERM from systemd too) keeps the last order: a restarted node resumes the runs.
  if (!quitting) remember_order(false);
  notifier.status("shoredaq: Standby");
  if (!report.drained) throw std::runtime_error("drain did not finish within stop_timeout_ms; run marked aborted");
}

void Node::Impl::on_reset() {
  remember_order(false);
  std::lock_guard lock(mutex);
  setup.reset();
  scrub.reset();
  store.reset();  // closed; init opens it again (the spool stays open: it holds no run now)
}

}  // namespace shoredaq::firmware
