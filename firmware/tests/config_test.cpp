#include "shoredaq/firmware/config.hpp"

#include <gtest/gtest.h>

#include "config_error.hpp"

#include <cstdlib>

#include <string>

using namespace shoredaq::firmware;
using shoredaq::firmware::test_support::config_error_of;

TEST(Config, EmptyFileGivesDefaults) {
  const NodeConfig c = parse_config("");
  EXPECT_EQ(c.node.state_dir, "/var/lib/shoredaq");
  EXPECT_EQ(c.ingest.endpoints.size(), 1u);
  EXPECT_EQ(c.ingest.socket, IngestSocket::Pull);
  EXPECT_EQ(c.builder.expiry_ms, 1000u);
  EXPECT_EQ(c.metrics.port, 9560u);
  EXPECT_EQ(c.store_path(), "/var/lib/shoredaq/store");
  EXPECT_EQ(c.spool_dir(), "/var/lib/shoredaq/spool");
  EXPECT_EQ(c.control_endpoint(), "ipc:///run/shoredaq/control.sock");
  EXPECT_GE(c.worker_count(), 1u);
  EXPECT_EQ(c.trigger, shoredaq::filters::TriggerParameters{});
}

TEST(Config, ExampleFileParsesAndMatchesDefaults) {
  const NodeConfig c = load_config(SHOREDAQ_SOURCE_DIR "/firmware/shoredaq.example.toml");
  const NodeConfig d = parse_config("");
  EXPECT_EQ(c.node.state_dir, d.node.state_dir);
  EXPECT_EQ(c.node.workers, d.node.workers);
  EXPECT_EQ(c.node.slice_threads, d.node.slice_threads);
  EXPECT_EQ(c.ingest.endpoints, d.ingest.endpoints);
  EXPECT_EQ(c.ingest.rcvhwm, d.ingest.rcvhwm);
  EXPECT_EQ(c.builder.max_open_slices, d.builder.max_open_slices);
  EXPECT_EQ(c.builder.wall_clock_expiry_ms, d.builder.wall_clock_expiry_ms);
  EXPECT_EQ(c.builder.queue_slices, d.builder.queue_slices);
  EXPECT_EQ(c.store.map_size_mb, d.store.map_size_mb);
  EXPECT_EQ(c.store.map_cap_mb, d.store.map_cap_mb);
  EXPECT_EQ(c.store.disk_reserve_mb, d.store.disk_reserve_mb);
  EXPECT_EQ(c.spool.roll_size_mb, d.spool.roll_size_mb);
  EXPECT_EQ(c.alerts.sndhwm, d.alerts.sndhwm);
  EXPECT_EQ(c.control.stop_timeout_ms, d.control.stop_timeout_ms);
  EXPECT_EQ(c.metrics.listen_address, d.metrics.listen_address);
  EXPECT_EQ(c.ingest.curve, d.ingest.curve);
  EXPECT_EQ(c.alerts.curve, d.alerts.curve);
  EXPECT_EQ(c.control.curve_allowed_keys, d.control.curve_allowed_keys);
  EXPECT_EQ(c.security.server_secret_key_file, d.security.server_secret_key_file);
  EXPECT_FALSE(c.uses_curve());
  // The one deliberate difference: the installed file opens the ControlHost port on loopback.
  EXPECT_FALSE(d.dispatcher.enabled);
  EXPECT_TRUE(c.dispatcher.enabled);
  EXPECT_EQ(c.dispatcher.port, 5553u);
  EXPECT_EQ(c.dispatcher.address, d.dispatcher.address);
  EXPECT_EQ(c.acoustic.spool, d.acoustic.spool);
  EXPECT_EQ(c.acoustic.publish_endpoint, d.acoustic.publish_endpoint);
}

TEST(Config, DispatcherAndAcousticSectionsAreReadAndChecked) {
  const NodeConfig c = parse_config(R"(
[dispatcher]
enabled = true
address = "0.0.0.0"
port = 0
allowed_networks = ["10.1.0.0/16", "::1"]
disconnect_slow_all_clients = true
publish_log = false
[acoustic]
spool = false
publish_endpoint = "tcp://127.0.0.1:9571"
sndhwm = 50
)");
  EXPECT_TRUE(c.dispatcher.enabled);
  EXPECT_EQ(c.dispatcher.port, 0u);
  EXPECT_EQ(c.dispatcher.allowed_networks.size(), 2u);
  EXPECT_TRUE(c.dispatcher.disconnect_slow_all_clients);
  EXPECT_FALSE(c.dispatcher.publish_log);
  EXPECT_FALSE(c.acoustic.spool);
  EXPECT_EQ(c.acoustic.publish_endpoint, "tcp://127.0.0.1:9571");
  EXPECT_EQ(c.acoustic.sndhwm, 50);
  const auto refused = [](const char* text, const char* key) {
    try {
      parse_config(text);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  };
  refused("[dispatcher]\nenabled = true\naddress = \"0.0.0.0\"\n", "dispatcher.allowed_networks");
  refused("[dispatcher]\nallowed_networks = [\"10.1.0.0/99\"]\n", "dispatcher.allowed_networks");
  refused("[dispatcher]\naddress = \"localhost\"\n", "dispatcher.address");
  refused("[dispatcher]\nport = 70000\n", "dispatcher.port");
  refused("[acoustic]\npublish_endpoint = \"udp://x\"\n", "acoustic.publish_endpoint");
  refused("[acoustic]\nspoool = true\n", "acoustic.spoool");
  refused("[builder]\nbackpressure = true\n[ingest]\nendpoints = []\nudp = [\"optical@127.0.0.1:0\"]\n", "builder.backpressure");
  EXPECT_TRUE(parse_config("[builder]\nbackpressure = true\n").builder.backpressure);
}

TEST(Config, ValuesAreRead) {
  const NodeConfig c = parse_config(R"(
[node]
state_dir = "/tmp/x"
workers = 3
slice_threads = 4
[ingest]
endpoints = ["tcp://127.0.0.1:7000", "ipc:///tmp/a"]
socket = "sub"
bind = false
header_layout = "28"
[store]
durability = "nosync"
map_size_mb = 2
map_cap_mb = 4
[alerts]
endpoint = "tcp://127.0.0.1:7001"
trigger_mask = 16
dom_ids = [808447066, 808447067]
[control]
endpoint = "ipc:///tmp/ctl"
[trigger]
snapshot_window_ns = 800
[trigger.muon3d]
number_of_hits = 5
)");
  EXPECT_EQ(c.node.state_dir, "/tmp/x");
  EXPECT_EQ(c.worker_count(), 3u);
  EXPECT_EQ(c.slice_thread_count(), 4u);
  EXPECT_GE(parse_config("").slice_thread_count(), 1u);  // 0: the cores
  EXPECT_EQ(c.ingest.endpoints.size(), 2u);
  EXPECT_EQ(c.ingest.socket, IngestSocket::Sub);
  EXPECT_FALSE(c.ingest.bind);
  EXPECT_EQ(c.ingest.header_layout, HeaderLayoutSetting::Legacy28);
  EXPECT_EQ(c.store.durability, Durability::NoSync);
  EXPECT_EQ(c.store_path(), "/tmp/x/store");
  EXPECT_EQ(c.alerts.trigger_mask, 16u);
  EXPECT_EQ(c.alerts.dom_ids, (std::vector<std::uint32_t>{808447066, 808447067}));
  EXPECT_EQ(c.control_endpoint(), "ipc:///tmp/ctl");
  // The [trigger] section is read into typed parameters (nested tables included).
  EXPECT_EQ(c.trigger.snapshot_window_ns, 800.0);
  EXPECT_EQ(c.trigger.muon3d.number_of_hits, 5);
}

TEST(Config, TypoedKeyIsNamed) {
  const std::string e = config_error_of("[builder]\nexpiry_sm = 10\n");
  EXPECT_NE(e.find("builder.expiry_sm"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown key"), std::string::npos) << e;
  EXPECT_NE(e.find("expiry_ms"), std::string::npos) << "the known keys are listed: " << e;
}

TEST(Config, UnknownSectionIsNamed) {
  const std::string e = config_error_of("[stroe]\npath = \"x\"\n");
  EXPECT_NE(e.find("stroe"), std::string::npos) << e;
}

TEST(Config, OutOfRangeValueNamesKeyAndRange) {
  const std::string e = config_error_of("[builder]\nexpiry_ms = 5\n");
  EXPECT_NE(e.find("builder.expiry_ms"), std::string::npos) << e;
  EXPECT_NE(e.find("[100, 600000]"), std::string::npos) << e;
  EXPECT_NE(e.find("5 is out of range"), std::string::npos) << e;
  const std::string p = config_error_of("[metrics]\nport = 70000\n");
  EXPECT_NE(p.find("metrics.port"), std::string::npos) << p;
  EXPECT_NE(p.find("65535"), std::string::npos) << p;
  const std::string n = config_error_of("[node]\nworkers = -1\n");
  EXPECT_NE(n.find("node.workers"), std::string::npos) << n;
}

TEST(Config, WrongTypesAndChoices) {
  EXPECT_NE(config_error_of("[ingest]\nrcvhwm = \"10\"\n").find("ingest.rcvhwm: expected an integer"), std::string::npos);
  EXPECT_NE(config_error_of("[ingest]\nsocket = \"push\"\n").find("ingest.socket"), std::string::npos);
  EXPECT_NE(config_error_of("[ingest]\nheader_layout = \"32\"\n").find("\"40\""), std::string::npos);
  EXPECT_NE(config_error_of("[ingest]\nendpoints = []\n").find("ingest.endpoints"), std::string::npos);
  EXPECT_NE(config_error_of("[ingest]\nendpoints = [\"udp://x\"]\n").find("not a ZeroMQ endpoint"), std::string::npos);
  EXPECT_NE(config_error_of("[spool]\nenabled = 1\n").find("spool.enabled: expected true or false"), std::string::npos);
  EXPECT_NE(config_error_of("[node]\nlog_level = \"loud\"\n").find("node.log_level"), std::string::npos);
  EXPECT_NE(config_error_of("node = 3\n").find("node: expected a table"), std::string::npos);
  EXPECT_NE(config_error_of("[store]\nmap_size_mb = 100\nmap_cap_mb = 10\n").find("store.map_cap_mb"), std::string::npos);
  EXPECT_NE(config_error_of("[alerts]\ndom_ids = [0]\n").find("alerts.dom_ids: 0 is out of range"), std::string::npos);
  EXPECT_NE(config_error_of("[alerts]\ndom_ids = [\"a\"]\n").find("alerts.dom_ids"), std::string::npos);
  EXPECT_NE(config_error_of("[metrics]\nlisten_address = \"\"\n").find("metrics.listen_address"), std::string::npos);
}

TEST(Config, SyntaxErrorHasLine) {
  const std::string e = config_error_of("[node]\nworkers = = 3\n");
  EXPECT_NE(e.find("line 2"), std::string::npos) << e;
}

TEST(Config, MissingFileIsAnError) {
  EXPECT_THROW(load_config("/nonexistent/shoredaq.toml"), ConfigError);
}

TEST(Config, RunSetupIsReadIntoTypedParameters) {
  EXPECT_EQ(parse_trigger_setup(""), shoredaq::filters::TriggerParameters{});
  EXPECT_EQ(parse_trigger_setup("[trigger.l1]\nwindow_ns = 12\n").l1_window_ns, 12.0);
  EXPECT_THROW(parse_trigger_setup("[trigga]\nx = 1\n"), ConfigError);
  EXPECT_THROW(parse_trigger_setup("[trigger\n"), ConfigError);
  EXPECT_THROW(parse_trigger_setup("[trigger]\nTMaxLocal_ns = 12\n"), ConfigError);
}

// systemd's StateDirectory=/RuntimeDirectory= replace the built-in defaults, never explicit values.
TEST(Config, SystemdDirectoriesReplaceDefaultDirectories) {
  ::setenv("STATE_DIRECTORY", "/var/lib/shoredaq/east:/var/lib/other", 1);
  ::setenv("RUNTIME_DIRECTORY", "/run/shoredaq/east", 1);
  const auto defaults = parse_config("");
  const auto explicit_dirs = parse_config("[node]\nstate_dir = \"/srv/daq\"\nruntime_dir = \"/srv/run\"\n");
  const auto same_as_default = parse_config("[node]\nstate_dir = \"/var/lib/shoredaq\"\n");
  ::unsetenv("STATE_DIRECTORY");
  ::unsetenv("RUNTIME_DIRECTORY");
  EXPECT_EQ(defaults.node.state_dir, "/var/lib/shoredaq/east");
  EXPECT_EQ(defaults.node.runtime_dir, "/run/shoredaq/east");
  EXPECT_EQ(defaults.store_path(), "/var/lib/shoredaq/east/store");
  EXPECT_EQ(defaults.control_endpoint(), "ipc:///run/shoredaq/east/control.sock");
  EXPECT_EQ(explicit_dirs.node.state_dir, "/srv/daq");
  EXPECT_EQ(explicit_dirs.node.runtime_dir, "/srv/run");
  EXPECT_EQ(same_as_default.node.state_dir, "/var/lib/shoredaq/east");
  EXPECT_EQ(parse_config("").node.state_dir, "/var/lib/shoredaq");  // unset again
}

TEST(ConfigCurve, TcpControlEndpointNeedsCurve) {
  const std::string e = config_error_of("[control]\nendpoint = \"tcp://0.0.0.0:9561\"\n");
  EXPECT_NE(e.find("control.endpoint"), std::string::npos) << e;
  EXPECT_NE(e.find("CURVE"), std::string::npos) << e;
  EXPECT_NE(e.find("control.curve_allowed_keys"), std::string::npos) << e;
  // The default ipc:// endpoint needs nothing.
  EXPECT_FALSE(parse_config("[control]\nendpoint = \"ipc:///tmp/x.sock\"\n").control_curve());
}

TEST(ConfigCurve, CurveNeedsServerKeyAndAllowList) {
  // Control allow-list without the node's key pair.
  std::string e = config_error_of("[control]\nendpoint = \"tcp://127.0.0.1:9561\"\ncurve_allowed_keys = \"/etc/k\"\n");
  EXPECT_NE(e.find("security.server_secret_key_file"), std::string::npos) << e;
  // Ingest CURVE without an allow-list / without a key file.
  e = config_error_of("[ingest]\ncurve = true\n[security]\nserver_secret_key_file = \"/etc/n.secret\"\n");
  EXPECT_NE(e.find("ingest.curve_allowed_keys"), std::string::npos) << e;
  e = config_error_of("[ingest]\ncurve = true\ncurve_allowed_keys = \"/etc/dus\"\n");
  EXPECT_NE(e.find("security.server_secret_key_file"), std::string::npos) << e;
  // Alerts CURVE without an allow-list, and without an alert stream at all.
  e = config_error_of("[alerts]\nendpoint = \"tcp://127.0.0.1:9570\"\ncurve = true\n[security]\nserver_secret_key_file = \"/k\"\n");
  EXPECT_NE(e.find("alerts.curve_allowed_keys"), std::string::npos) << e;
  e = config_error_of("[alerts]\ncurve = true\ncurve_allowed_keys = \"/a\"\n[security]\nserver_secret_key_file = \"/k\"\n");
  EXPECT_NE(e.find("alerts.curve"), std::string::npos) << e;
  EXPECT_NE(e.find("alerts.endpoint"), std::string::npos) << e;
  // An allow-list that would do nothing is a mistake too.
  e = config_error_of("[ingest]\ncurve_allowed_keys = \"/etc/dus\"\n");
  EXPECT_NE(e.find("ingest.curve_allowed_keys"), std::string::npos) << e;
  // inproc:// has no handshake: CURVE there is refused instead of silently doing nothing.
  e = config_error_of("[ingest]\nendpoints = [\"inproc://du\"]\ncurve = true\ncurve_allowed_keys = \"/d\"\n"
               "[security]\nserver_secret_key_file = \"/k\"\n");
  EXPECT_NE(e.find("ingest.endpoints"), std::string::npos) << e;
  EXPECT_NE(e.find("inproc"), std::string::npos) << e;
  e = config_error_of("[security]\nserver_secret_key_fil = \"/k\"\n");
  EXPECT_NE(e.find("security.server_secret_key_fil"), std::string::npos) << e;
}

TEST(ConfigCurve, CompleteCurveSetupIsRead) {
  const NodeConfig c = parse_config(R"(
[control]
endpoint = "tcp://127.0.0.1:9561"
curve_allowed_keys = "/etc/shoredaq/control-clients.d"
[ingest]
endpoints = ["tcp://0.0.0.0:5556", "ipc:///run/shoredaq/du.sock"]
curve = true
curve_allowed_keys = "/etc/shoredaq/dus.keys"
[alerts]
endpoint = "tcp://127.0.0.1:9570"
curve = true
curve_allowed_keys = "/etc/shoredaq/bridges.d"
[security]
server_secret_key_file = "/etc/shoredaq/node.secret"
)");
  EXPECT_TRUE(c.control_curve());
  EXPECT_TRUE(c.uses_curve());
  EXPECT_EQ(c.control.curve_allowed_keys, "/etc/shoredaq/control-clients.d");
  EXPECT_TRUE(c.ingest.curve);
  EXPECT_EQ(c.ingest.curve_allowed_keys, "/etc/shoredaq/dus.keys");
  EXPECT_TRUE(c.alerts.curve);
  EXPECT_EQ(c.alerts.curve_allowed_keys, "/etc/shoredaq/bridges.d");
  EXPECT_EQ(c.security.server_secret_key_file, "/etc/shoredaq/node.secret");
}
