#include "shoredaq/firmware/config.hpp"

#include <toml++/toml.h>

#include <cstdlib>
#include <optional>
#include <set>
#include <thread>

#include "config_reader.hpp"
#include "shoredaq/firmware/input_file.hpp"
#include "shoredaq/firmware/run_setup.hpp"
#include "shoredaq/storage/dispatcher.hpp"

namespace shoredaq::firmware {
using namespace config_detail;

namespace {
// systemd sets $STATE_DIRECTORY etc. to a colon-separated list (one entry per configured
// directory); the first is the service's own.
std::optional<std::filesystem::path> first_directory_from_env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  std::string_view list(v);
  const auto colon = list.find(':');
  const auto first = list.substr(0, colon);
  if (first.empty()) return std::nullopt;
  return std::filesystem::path(std::string(first));
}
}  // namespace

NodeConfig parse_config(std::string_view toml_text) {
  const toml::table root = parse_toml(toml_text);
  NodeConfig c;
  c.source_hash = text_hash_hex(toml_text);

  static const std::set<std::string> kSections{"node", "ingest", "builder", "store", "spool", "alerts", "dispatcher", "acoustic",
                                               "ring", "control", "metrics", "health", "run", "security", "snews", "topology", "trigger"};
  for (const auto& [k, v] : root) {
    if (!kSections.contains(std::string(k.str())))
      fail(std::string(k.str()), "unknown section or key (sections: node, ingest, builder, store, spool, alerts, dispatcher, acoustic, ring, control, metrics, health, run, security, snews, topology, trigger)");
  }

  {
    SectionReader r(section(root, "node"), "node");
    r.file_path("state_dir", c.node.state_dir);
    r.file_path("runtime_dir", c.node.runtime_dir);
    r.file_path("detector_file", c.node.detector_file);
    r.integer("workers", c.node.workers, 0, 256);
    r.integer("slice_threads", c.node.slice_threads, 0, 256);
    r.string("log_level", c.node.log_level);
    r.integer("max_input_file_mb", c.node.max_input_file_mb, 1, 1024);
    static const std::set<std::string> kLevels{"trace", "debug", "info", "warn", "error", "critical", "off"};
    if (!kLevels.contains(c.node.log_level))
      fail("node.log_level", "\"" + c.node.log_level + "\" is not allowed; expected trace, debug, info, warn, error, critical or off");
    // Under systemd (StateDirectory=/RuntimeDirectory=, e.g. per instance of shoredaq@.service)
    // the manager names the directories in the environment; they win over the built-in defaults
    // but never over a value the file sets to something else.
    const NodeConfig defaults;
    if (c.node.state_dir == defaults.node.state_dir) {
      if (auto d = first_directory_from_env("STATE_DIRECTORY")) c.node.state_dir = *d;
    }
    if (c.node.runtime_dir == defaults.node.runtime_dir) {
      if (auto d = first_directory_from_env("RUNTIME_DIRECTORY")) c.node.runtime_dir = *d;
    }
    if (c.node.state_dir.empty()) fail("node.state_dir", "must not be empty");
    if (c.node.runtime_dir.empty()) fail("node.runtime_dir", "must not be empty");
    r.reject_unknown();
  }
  {
    SectionReader r(section(root, "ingest"), "ingest");
    r.string_list("endpoints", c.ingest.endpoints);
    for (const auto& e : c.ingest.endpoints) check_endpoint("ingest.endpoints", e);
    std::vector<std::string> udp;  // the node's own CLB UDP ports: typed once here, so start() only binds
    r.string_list("udp", udp);
    c.ingest.udp = parse_udp_port_settings(udp, "ingest.udp");
    r.integer("udp_receive_buffer_mb", c.ingest.udp_receive_buffer_mb, 1, 1024);
    if (c.ingest.endpoints.empty() && c.ingest.udp.empty())
      fail("ingest.endpoints", "at least one endpoint (or an ingest.udp port) is required");
    r.choice("socket", c.ingest.socket, {{"pull", IngestSocket::Pull}, {"sub", IngestSocket::Sub}});
    r.boolean("bind", c.ingest.bind);
    r.choice("header_layout", c.ingest.header_layout,
             {{"auto", HeaderLayoutSetting::Auto}, {"40", HeaderLayoutSetting::Standard40}, {"28", HeaderLayoutSetting::Legacy28}});
    r.integer("rcvhwm", c.ingest.rcvhwm, 1, 10'000'000);
    r.boolean("curve", c.ingest.curve);
    r.file_path("curve_allowed_keys", c.ingest.curve_allowed_keys);
    r.reject_unknown();
  }
  {
    SectionReader r(section(root, "builder"), "builder");
    r.integer("max_open_slices", c.builder.max_open_slices, 2, 4096);
    r.integer("expiry_ms", c.builder.expiry_ms, 100, 600'000);
    r.integer("wall_clock_expiry_ms", c.builder.wall_clock_expiry_ms, 100, 3'600'000);
    r.integer("queue_slices", c.builder.queue_slices, 1, 4096);
    r.integer("time_quorum_doms", c.builder.time_quorum_doms, 1, 100'000);
    r.integer("max_wall_clock_offset_s", c.builder.max_wall_clock_offset_s, 0, 10 * 365 * 86'400);
    r.boolean("backpressure", c.builder.backpressure);
    r.reject_unknown();
  }
  {
    SectionReader r(section(root, "store"), "store");
    r.file_path("path", c.store.path);
    r.integer("map_size_mb", c.store.map_size_mb, 1, 16'777'216);
    r.integer("map_cap_mb", c.store.map_cap_mb, 1, 16'777'216);
    r.integer("disk_reserve_mb", c.store.disk_reserve_mb, 0, 16'777'216);
    r.integer("max_store_bytes", c.store.max_store_bytes, 0, kMaxI64);
    r.choice("durability", c.store.durability,
             {{"full", Durability::Full}, {"nometasync", Durability::NoMetaSync}, {"nosync", Durability::NoSync}});
    r.integer("scrub_bytes_per_s", c.store.scrub_bytes_per_s, 0, kMaxI64);
    if (c.store.map_cap_mb < c.store.map_size_mb)
      fail("store.map_cap_mb", std::to_string(c.store.map_cap_mb) + " is below store.map_size_mb = " + std::to_string(c.store.map_size_mb));
    r.reject_unknown();
  }
  {
    SectionReader r(section(root, "spool"), "spool");
    r.file_path("dir", c.spool.dir);
    r.integer("roll_size_mb", c.spool.roll_size_mb, 1, 1'048'576);
    r.integer("roll_seconds", c.spool.roll_seconds, 1, 86'400 * 7);
    r.boolean("enabled", c.spool.enabled);
    r.integer("flush_interval_ms", c.spool.flush_interval_ms, 10, 600'000);
    r.integer("max_pending_mb", c.spool.max_pending_mb, 1, 65'536);
    r.integer("queue_slices", c.spool.queue_slices, 1, 100'000);
    r.reject_unknown();
  }
  {
    SectionReader r(section(root, "alerts"), "alerts");
    r.string("endpoint", c.alerts.endpoint);
    if (!c.alerts.endpoint.empty()) check_endpoint("alerts.endpoint", c.alerts.endpoint);
    r.integer("sndhwm", c.alerts.sndhwm, 1, 10'000'000);
    r.integer("trigger_mask", c.alerts.trigger_mask, 0, kMaxI64);
    r.integer("min_triggered_hits", c.alerts.min_triggered_hits, 0, 1'000'000);
    r.integer_list("dom_ids", c.alerts.dom_ids, 1, 0xffffffffll);
    r.boolean("publish_summaries", c.alerts.publish_summaries);
    r.boolean("curve", c.alerts.curve);
    r.file_path("curve_allowed_keys", c.alerts.curve_allowed_keys);
    r.reject_unknown();
  }
  {
    SectionReader r(section(root, "dispatcher"), "dispatcher");
    r.boolean("enabled", c.dispatcher.enabled);
    r.string("address", c.dispatcher.address, false);
    if (!is_ip_literal(c.dispatcher.address))
      fail("dispatcher.address", "\"" + c.dispatcher.address + "\" is not an IPv4 or IPv6 address");
    r.integer("port", c.dispatcher.port, 0, 65535);
    r.string_list("allowed_networks", c.dispatcher.allowed_networks);
    for (const auto& n : c.dispatcher.allowed_networks) {
      if (!storage::ClientNetwork::parse(n))
        fail("dispatcher.allowed_networks", "\"" + n + "\" is not a network (10.1.0.0/16, 2001:db8::/32 or an address)");
    }
    r.integer("client_queue_mb_any", c.dispatcher.client_queue_mb_any, 1, 65'536);
    r.integer("client_queue_mb_all", c.dispatcher.client_queue_mb_all, 1, 65'536);
    r.boolean("disconnect_slow_all_clients", c.dispatcher.disconnect_slow_all_clients);
    r.integer("max_clients", c.dispatcher.max_clients, 1, 10'000);
    r.boolean("publish_log", c.dispatcher.publish_log);
    r.reject_unknown();
    const bool loopback = c.dispatcher.address.rfind("127.", 0) == 0 || c.dispatcher.address == "::1";
    if (c.dispatcher.enabled && !loopback && c.dispatcher.allowed_networks.empty())
      fail("dispatcher.allowed_networks", "the dispatcher listens on " + c.dispatcher.address +
                                              ", beyond loopback: list the client networks allowed to connect (CIDR)");
  }
  {
    SectionReader r(section(root, "acoustic"), "acoustic");
    r.boolean("spool", c.acoustic.spool);
    r.string("publish_endpoint", c.acoustic.publish_endpoint);
    if (!c.acoustic.publish_endpoint.empty()) check_endpoint("acoustic.publish_endpoint", c.acoustic.publish_endpoint);
    r.integer("sndhwm", c.acoustic.sndhwm, 1, 10'000'000);
    r.reject_unknown();
  }
  read_ring_section(root, c);  // config_ring.cpp
  read_topology_section(root, c);
  {
    SectionReader r(section(root, "control"), "control");
    r.string("endpoint", c.control.endpoint);
    if (!c.control.endpoint.empty()) check_endpoint("control.endpoint", c.control.endpoint);
    r.integer("reply_timeout_ms", c.control.reply_timeout_ms, 10, 600'000);
    r.integer("stop_timeout_ms", c.control.stop_timeout_ms, 100, 3'600'000);
    r.file_path("curve_allowed_keys", c.control.curve_allowed_keys);
    r.file_mode("socket_mode", c.control.socket_mode);
    r.reject_unknown();
  }
  {
    SectionReader r(section(root, "metrics"), "metrics");
    r.string("listen_address", c.metrics.listen_address, false);
    if (!is_ip_literal(c.metrics.listen_address))
      fail("metrics.listen_address", "\"" + c.metrics.listen_address + "\" is not an IPv4 or IPv6 address");
    r.integer("port", c.metrics.port, 0, 65535);
    r.boolean("enabled", c.metrics.enabled);
    r.integer("max_connections", c.metrics.max_connections, 4, 65536);
    r.integer("request_timeout_ms", c.metrics.request_timeout_ms, 100, 600'000);
    r.reject_unknown();
  }
  {
    SectionReader r(section(root, "health"), "health");
    r.real("loss_alarm_fraction", c.health.loss_alarm_fraction, 0.0, 1.0);
    r.integer("loss_window_s", c.health.loss_window_s, 1, 3600);
    r.integer("bad_time_alarm_datagrams", c.health.bad_time_alarm_datagrams, 1, 1'000'000'000);
    r.reject_unknown();
  }
  {
    SectionReader r(section(root, "run"), "run");
    r.string("type", c.run.type, false);
    if (c.run.type.size() > 64 || c.run.type.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") != std::string::npos)
      fail("run.type", "\"" + c.run.type + "\": at most 64 letters, digits, '_', '-', '.'");
    r.integer("max_duration_s", c.run.max_duration_s, 0, 30 * 86'400);
    r.integer("max_bytes", c.run.max_bytes, 0, kMaxI64);
    r.boolean("resume_after_restart", c.run.resume_after_restart);
    r.reject_unknown();
    // The writer ends a run and numbers the next; the farm's other processes follow the slices'
    // run (and go back into it after a restart), so they must not cycle on their own.
    if (!c.topology.writer && (c.run.max_duration_s > 0 || c.run.max_bytes > 0))
      fail(c.run.max_duration_s > 0 ? "run.max_duration_s" : "run.max_bytes",
           "only a process with the writer role ends runs on a schedule; set it in the writer's file");
  }
  {
    SectionReader r(section(root, "security"), "security");
    r.file_path("server_secret_key_file", c.security.server_secret_key_file);
    r.reject_unknown();
  }
  {
    SectionReader r(section(root, "snews"), "snews");
    r.real("heartbeat_period_s", c.snews.heartbeat_period_s, 0.0, 86'400.0);
    if (c.snews.heartbeat_period_s > 0 && c.snews.heartbeat_period_s < 0.1)
      fail("snews.heartbeat_period_s", "below one slice (0.1 s); 0 turns heartbeats off");
    r.string_list("hook_command", c.snews.hook_command);
    if (!c.snews.hook_command.empty() && !c.snews.hook_command.front().starts_with("/"))
      fail("snews.hook_command", "the program must be an absolute path (no shell, no PATH search)");
    r.string("hook_endpoint", c.snews.hook_endpoint);
    if (!c.snews.hook_endpoint.empty()) check_endpoint("snews.hook_endpoint", c.snews.hook_endpoint);
    if (!c.snews.hook_command.empty() && !c.snews.hook_endpoint.empty())
      fail("snews.hook_endpoint", "set together with snews.hook_command: choose one hook");
    r.integer("hook_timeout_ms", c.snews.hook_timeout_ms, 10, 600'000);
    r.integer("hook_queue_messages", c.snews.hook_queue_messages, 1, 100'000);
    r.integer("hook_sndhwm", c.snews.hook_sndhwm, 1, 1'000'000);
    r.integer("hook_linger_ms", c.snews.hook_linger_ms, 0, 60'000);
    r.boolean("hook_test_messages", c.snews.hook_test_messages);
    r.reject_unknown();
  }
  // Cross-section rules, once every section is read. The control socket drives the whole node:
  // over TCP it is reachable from the network, so it is accepted only with CURVE and an allow-list.
  if (c.control_endpoint().rfind("tcp://", 0) == 0 && !c.control_curve())
    fail("control.endpoint", "a tcp:// control endpoint (\"" + c.control.endpoint +
                                 "\") needs CURVE: set control.curve_allowed_keys and security.server_secret_key_file");
  if (c.control_curve()) check_curve(c, "control", {c.control_endpoint()}, c.control.curve_allowed_keys);
  if (c.ingest.curve) check_curve(c, "ingest", c.ingest.endpoints, c.ingest.curve_allowed_keys);
  if (c.ingest.curve && c.ingest.endpoints.empty())
    fail("ingest.curve", "true, but ingest.endpoints is empty (CURVE protects ZeroMQ endpoints, not the UDP ports)");
  if (!c.ingest.curve && !c.ingest.curve_allowed_keys.empty())
    fail("ingest.curve_allowed_keys", "set, but ingest.curve = false: set ingest.curve = true or remove the allow-list");
  if (c.alerts.curve) {
    if (c.alerts.endpoint.empty()) fail("alerts.curve", "true, but alerts.endpoint is empty (no alert stream)");
    check_curve(c, "alerts", {c.alerts.endpoint}, c.alerts.curve_allowed_keys);
  }
  if (!c.alerts.curve && !c.alerts.curve_allowed_keys.empty())
    fail("alerts.curve_allowed_keys", "set, but alerts.curve = false: set alerts.curve = true or remove the allow-list");
  if (c.builder.backpressure && !c.ingest.udp.empty())
    fail("builder.backpressure", "true, but ingest.udp is set: UDP senders cannot wait (their datagrams would be lost "
                                 "uncounted in the kernel); use back-pressure with ZeroMQ ingest only");
    // The default run setup, typed now: a value `configure` would refuse is refused here.
  if (section(root, "trigger") != nullptr) {
    auto parsed = filters::parse_trigger_parameters(toml_text);
    if (!parsed.ok()) throw ConfigError(parsed.error);
    c.trigger = *parsed.parameters;
  }
  return c;
}

NodeConfig load_config(const std::filesystem::path& file) {
  std::string text;
  try {
    text = read_input_file(file, kMaxConfigFileBytes, std::chrono::seconds(10));
  } catch (const InputFileError& e) {
    throw ConfigError(e.what());
  }
  try {
    return parse_config(text);
  } catch (const ConfigError& e) {
    throw ConfigError(file.string() + ": " + e.what());
  }
}

filters::TriggerParameters parse_trigger_setup(std::string_view run_setup_toml) {
  const toml::table root = parse_toml(run_setup_toml);
  for (const auto& [k, v] : root) {
    if (k.str() != "trigger") fail(std::string(k.str()), "unknown section in run setup (expected [trigger])");
  }
  auto parsed = filters::parse_trigger_parameters(run_setup_toml);
  if (!parsed.ok()) throw ConfigError(parsed.error);
  return *parsed.parameters;
}

filters::TriggerParameters load_trigger_setup(const std::filesystem::path& file, std::size_t max_bytes) {
  std::string text;
  try {
    text = read_input_file(file, max_bytes, std::chrono::seconds(10), "node.max_input_file_mb");
  } catch (const InputFileError& e) {
    throw ConfigError(e.what());
  }
  try {
    return parse_trigger_setup(text);
  } catch (const ConfigError& e) {
    throw ConfigError(file.string() + ": " + e.what());
  }
}

std::filesystem::path NodeConfig::store_path() const { return store.path.empty() ? node.state_dir / "store" : store.path; }
std::filesystem::path NodeConfig::spool_dir() const { return spool.dir.empty() ? node.state_dir / "spool" : spool.dir; }
std::filesystem::path NodeConfig::ring_dir() const { return ring.dir.empty() ? node.state_dir / "ring" : ring.dir; }
std::string NodeConfig::control_endpoint() const {
  return control.endpoint.empty() ? "ipc://" + (node.runtime_dir / "control.sock").string() : control.endpoint;
}
unsigned NodeConfig::slice_thread_count() const {
  if (node.slice_threads > 0) return node.slice_threads;
  return std::max(1u, std::thread::hardware_concurrency());
}
unsigned NodeConfig::worker_count() const {
  if (node.workers > 0) return node.workers;
  const unsigned cores = std::thread::hardware_concurrency();
  return cores > 1 ? cores - 1 : 1;
}

}  // namespace shoredaq::firmware
