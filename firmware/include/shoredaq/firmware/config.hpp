#pragma once
// The node's configuration: one TOML file (DESIGN.md section 5). Every key has a default (see
// firmware/shoredaq.example.toml, which documents each one); unknown keys and out-of-range values
// are rejected with the key path and the allowed range, so a typo never silently falls back to a
// default. The `[trigger]` section is the default run setup, read into typed trigger parameters
// here, so `shoredaq --check-config` refuses exactly what `configure` would refuse.

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "shoredaq/filters/trigger_parameters.hpp"
#include "shoredaq/formats/clb_datagram.hpp"

namespace shoredaq::firmware {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct NodeSection {
  std::filesystem::path state_dir = "/var/lib/shoredaq";  // store + spool live here by default
  std::filesystem::path runtime_dir = "/run/shoredaq";    // control socket by default
  std::filesystem::path detector_file;                    // default detector for configure
  unsigned workers = 0;                                   // filter threads; 0 = cores - 1 (at least 1)
  // Threads that share one slice's per-DOM work (its worker plus helpers); 0 = cores, 1 = off.
  unsigned slice_threads = 0;
  std::string log_level = "info";                         // trace debug info warn error critical off
  // Largest detector or run-setup file `configure` reads, MiB (a full 115-DU building block's
  // .detx is 3.7 MB; the cap keeps a mistyped path such as /dev/zero from exhausting memory).
  std::uint64_t max_input_file_mb = 16;
};

enum class IngestSocket : std::uint8_t { Pull, Sub };
enum class HeaderLayoutSetting : std::uint8_t { Auto, Standard40, Legacy28 };

// One CLB UDP port the node reads itself (`[ingest] udp`, "optical@127.0.0.1:56015").
struct UdpPortSetting {
  dataflow::DataType data_type = dataflow::DataType::Optical;  // what the CLBs send to this port
  std::string address;     // IPv4/IPv6 literal to bind ("0.0.0.0", "::", "127.0.0.1")
  std::uint16_t port = 0;  // 0 = an ephemeral port (tests; /status shows the bound one)
  friend bool operator==(const UdpPortSetting&, const UdpPortSetting&) = default;
};

// "TYPE@ADDRESS:PORT" (TYPE optical, monitoring or acoustic; an IPv6 address in brackets);
// throws ConfigError with the reason (without the key path, which the caller adds).
UdpPortSetting parse_udp_port_setting(std::string_view text);
std::string to_string(const UdpPortSetting& setting);  // the inverse
// A whole list; a bad entry or a repeated address:port (other than port 0) throws ConfigError
// naming "key[i]".
std::vector<UdpPortSetting> parse_udp_port_settings(const std::vector<std::string>& entries, const std::string& key);

struct IngestSection {
  // ZeroMQ endpoints (DUs, clb-bridge); may be empty when `udp` is set (then no ZeroMQ ingest).
  std::vector<std::string> endpoints{"tcp://127.0.0.1:5556"};
  IngestSocket socket = IngestSocket::Pull;
  bool bind = true;  // the node binds, DUs/bridges connect
  HeaderLayoutSetting header_layout = HeaderLayoutSetting::Auto;
  int rcvhwm = 10000;  // ZeroMQ messages
  bool curve = false;  // CURVE server: only DUs/bridges with an allow-listed key are admitted
  std::filesystem::path curve_allowed_keys;  // file or directory of *.pub (read_allowed_keys)
  // CLB UDP ports the node binds and reads itself, one socket each (default: none). The header
  // layout is `header_layout` above; at least one of `endpoints` and `udp` must be set.
  std::vector<UdpPortSetting> udp;
  // SO_RCVBUF asked for each UDP socket, MiB: a burst waits here while the node is busy (the
  // kernel caps it at net.core.rmem_max unless the node has CAP_NET_ADMIN).
  unsigned udp_receive_buffer_mb = 32;
};

struct BuilderSection {
  unsigned max_open_slices = 32;
  unsigned expiry_ms = 1000;          // after a later slice of every DOM has begun
  unsigned wall_clock_expiry_ms = 3000;
  unsigned queue_slices = 16;         // bounded queues between stages (whole slices)
  // The slice window moves to a new time only when this many DOMs agree on it (one DOM with a bad
  // clock cannot take the run away); clamped to the DOMs taking part.
  unsigned time_quorum_doms = 3;
  // A datagram whose slice starts further than this from the node's clock is dropped (counted per
  // DOM); 0 = off. Only for live detectors: a rig replaying recorded data must leave it off.
  unsigned max_wall_clock_offset_s = 0;
  // Back-pressure instead of drops: when the builder or the filters fall behind, the node stops
  // reading its ZeroMQ ingest sockets, so PUSH senders (bridges, du-sim, a replaying rig) wait
  // instead of data being dropped. Only for senders that can wait: a CLB's UDP cannot, so it is
  // refused with [ingest] udp. Off: a full queue drops its oldest whole message or slice, counted.
  bool backpressure = false;
};

enum class Durability : std::uint8_t { Full, NoMetaSync, NoSync };

struct StoreSection {
  std::filesystem::path path;            // empty = <state_dir>/store
  std::uint64_t map_size_mb = 64;        // initial LMDB map
  std::uint64_t map_cap_mb = 65536;      // growth stops here: new data refused with an alarm
  std::uint64_t disk_reserve_mb = 256;   // keep this much free on the file system
  std::uint64_t max_store_bytes = 0;     // retention threshold; 0 = no retention
  Durability durability = Durability::Full;
  // Background scrub: every stored record's checksum re-read at this many bytes per second; 0 = off
  // (the default: on a small or busy disk the operator chooses the rate).
  std::uint64_t scrub_bytes_per_s = 0;
};

struct SpoolSection {
  std::filesystem::path dir;          // empty = <state_dir>/spool
  std::uint64_t roll_size_mb = 1024;
  unsigned roll_seconds = 3600;
  bool enabled = true;
  // Buffered run-file data is written at least this often (no fsync: that happens when a part is
  // sealed), so a crash loses at most about this much of the open part.
  unsigned flush_interval_ms = 1000;
  // While the disk refuses writes (full), slices are held up to this much and written when space
  // returns; beyond it whole slices are refused and counted as lost.
  std::uint64_t max_pending_mb = 64;
  // The run files are written on a thread of their own behind a queue of this many whole slices, so
  // a slow disk never stalls the store or the pipeline; when full the oldest is dropped and counted.
  unsigned queue_slices = 100;
};

struct AlertsSection {
  std::string endpoint;              // empty = no alert stream
  int sndhwm = 1000;
  std::uint64_t trigger_mask = 0;    // 0 = any trigger
  unsigned min_triggered_hits = 0;
  std::vector<std::uint32_t> dom_ids;  // a triggered hit on one of these DOMs; empty = any DOM
  bool publish_summaries = true;
  bool curve = false;  // CURVE server: only allow-listed subscribers are admitted
  std::filesystem::path curve_allowed_keys;
};

struct ControlSection {
  std::string endpoint;  // empty = ipc://<runtime_dir>/control.sock
  // Set: the control socket is a CURVE server admitting these client keys. Required for tcp://.
  std::filesystem::path curve_allowed_keys;
  unsigned reply_timeout_ms = 5000;
  unsigned stop_timeout_ms = 30000;  // bound on the stop drain
  // Mode of an ipc:// control socket file, set explicitly after bind (the process umask, e.g. the
  // unit's UMask=0027, would otherwise decide): 0660 lets the operators in the service's group
  // drive the node.
  unsigned socket_mode = 0660;
};

struct MetricsSection {
  std::string listen_address = "127.0.0.1";  // an IPv4 or IPv6 address literal
  unsigned port = 9560;
  bool enabled = true;
  unsigned max_connections = 256;     // open HTTP connections; when full, the longest-idle one is closed
  unsigned request_timeout_ms = 5000;  // a connection must deliver a whole request within this
};

// The ControlHost dispatcher (the collaboration's "Ligier" protocol): km3mon subscribes to
// IO_EVT IO_SUM IO_TSSN MSG IO_MONIT, the online reconstruction to IO_EVT; storage/dispatcher.hpp.
struct DispatcherSection {
  bool enabled = false;               // the shipped /etc/shoredaq/shoredaq.toml turns it on
  std::string address = "127.0.0.1"; // listening address; a non-loopback one needs allowed_networks
  unsigned port = 5553;               // the Ligier's port; 0 = any free port (/status says which)
  std::vector<std::string> allowed_networks;  // client networks (CIDR) allowed to connect
  std::uint64_t client_queue_mb_any = 16;   // per client, " w TAG" subscriptions: beyond it dropped, counted
  std::uint64_t client_queue_mb_all = 128;  // per client, " a TAG" subscriptions
  // A client subscribed " a" whose queue is full is disconnected (so it knows it missed data)
  // instead of having messages dropped; either way counted, and the run goes on.
  bool disconnect_slow_all_clients = false;
  unsigned max_clients = 64;
  bool publish_log = true;            // MSG: the node's warning-and-worse log lines
};

// Acoustic data (TAES): not part of a timeslice, kept as a stream of their own.
struct AcousticSection {
  // Per run, the datagrams as received into acoustic parts beside the run files (sealed,
  // checksummed, transferred like them; rolled with spool.roll_size_mb / roll_seconds). Needs
  // spool.enabled; with the spool off there is nowhere to keep them.
  bool spool = true;
  std::string publish_endpoint;  // ZeroMQ PUB (topic acoustic.<detector>) for the positioning system; empty = none
  int sndhwm = 10000;            // datagrams queued per subscriber; beyond, dropped for it and counted
};

// The raw-data ring buffer (issue 12): the last `seconds` of whole L0 slices on local disk, and
// dumps of a UTC window of it into the Tier-0 spool (shorectl dump, or a supernova alert).
struct RingSection {
  bool enabled = false;          // needs spool.enabled (dumps are spool files)
  std::filesystem::path dir;     // empty = <state_dir>/ring
  unsigned seconds = 120;        // detector time kept
  std::uint64_t max_mb = 4096;   // the ring's data file, preallocated: whichever bound is hit first
  // Slices waiting for the ring's thread; when the disk falls behind, new slices are skipped
  // (counted), the pipeline never waits.
  unsigned queue_slices = 32;
  unsigned max_dump_seconds = 300;  // a longer request is cut to this, from its start
  bool sn_dump = true;              // a supernova alert dumps [alert - before, alert + after]
  unsigned sn_dump_before_s = 30;
  unsigned sn_dump_after_s = 60;
};

// When the node calls itself unhealthy (/healthz 503, `alarm` in /status) because data is lost.
struct HealthSection {
  // Over the last loss_window_s: the share of datagrams (ingest, builder, pipeline) or of slices
  // (pipeline, store, Tier-0 spool) lost above which the node raises an alarm. Any slice a sink
  // refuses (store full, disk reserve, spool write failure) raises it regardless of this share.
  double loss_alarm_fraction = 0.01;
  unsigned loss_window_s = 10;
  // A DOM with this many datagrams dropped for an implausible slice time within the window raises
  // an alarm (a bad clock), however small its share of the detector.
  unsigned bad_time_alarm_datagrams = 10;
};

// Runs that cycle themselves, their type, and unattended restarts.
struct RunSection {
  std::string type = "physics";     // recorded with every run unless `start` names another
  unsigned max_duration_s = 0;      // a run this long (in data time) ends and the next begins; 0 = off
  std::uint64_t max_bytes = 0;      // ... or once the store holds this much of it; 0 = off
  // After a restart (crash, reboot, systemctl restart) the node returns to the state the operator
  // last asked for: when that was Running, it configures and starts the next run by itself.
  bool resume_after_restart = true;
};

// SNEWS (issue 12): the supernova search's heartbeats, and the hook that hands its messages
// (alerts and heartbeats) to a SNEWS client; the hook is off unless hook_command or hook_endpoint
// is set (not both).
struct SnewsSection {
  double heartbeat_period_s = 60;  // detector time between "ON" heartbeats; 0 = none (no "OFF" either)
  std::vector<std::string> hook_command;  // program and arguments (no shell); one run per message, JSON on stdin
  std::string hook_endpoint;              // or a ZeroMQ PUSH (connects) to a SNEWS forwarder
  unsigned hook_timeout_ms = 10000;       // a command still running after this is killed (counted)
  unsigned hook_queue_messages = 64;      // messages waiting for the command; beyond, dropped (counted)
  int hook_sndhwm = 100;                  // PUSH: messages queued for the forwarder; beyond, dropped (counted)
  unsigned hook_linger_ms = 1000;         // PUSH: closing waits at most this for queued messages
  bool hook_test_messages = true;         // is_test messages (runs other than "physics") go to the hook too
};

// A building block on a farm (issue 13): which stages this process runs and the endpoints that join
// it to the processes running the others. The default, all three roles, is a whole node in one
// process (nothing below is used). Slices cross processes as FlatBuffers buffers over ZeroMQ:
//   ingest --partial Timeslice--> filter (merges the partials of a window) --FilteredSlice--> writer
struct TopologySection {
  bool ingest = true;  // roles: ingest + builder of `dus`
  bool filter = true;  // the filter workers
  bool writer = true;  // the writer and its sinks
  // ingest: the DUs whose DOMs this process builds; empty = every DU of the detector. The other
  // DUs' datagrams are passed over quietly (another ingest process builds them).
  std::vector<std::uint32_t> dus;
  // ingest without filter: the filter processes in the farm's order (connected); window N goes to
  // filter N % size, the next live one when it is gone. The same list, in the same order, on
  // every ingest process.
  std::vector<std::string> filter_endpoints;
  // filter without ingest: where the ingest processes send their partial slices (bound).
  std::string slices_endpoint;
  unsigned ingest_processes = 1;     // partials of each window this filter waits for
  unsigned merge_timeout_ms = 1000;  // then the window is filtered without the missing partials
  unsigned max_pending_slices = 64;  // windows waiting for partials
  // filter without writer: the writer process (connected); writer without filter: bound.
  std::string results_endpoint;
  // writer without filter: a missing slice is passed over (counted) this long after a later one
  // arrived; it was lost with a filter process, or no ingest process built it.
  unsigned gap_timeout_ms = 2000;
  unsigned send_hwm = 4;             // slices queued per peer before the sender waits
  unsigned send_timeout_ms = 1000;   // a live peer still at its HWM after this: dropped, counted
  bool whole_node() const noexcept { return ingest && filter && writer; }
  std::string roles_text() const;    // "ingest+filter+writer"
};

// The node's own CURVE key pair, used by every CURVE server socket (control, ingest, alerts).
struct SecuritySection {
  std::filesystem::path server_secret_key_file;  // empty = no CURVE anywhere
};

struct NodeConfig {
  NodeSection node;
  IngestSection ingest;
  BuilderSection builder;
  StoreSection store;
  SpoolSection spool;
  AlertsSection alerts;
  DispatcherSection dispatcher;
  AcousticSection acoustic;
  RingSection ring;
  ControlSection control;
  MetricsSection metrics;
  HealthSection health;
  RunSection run;
  SecuritySection security;
  SnewsSection snews;
  TopologySection topology;
  filters::TriggerParameters trigger;  // the default run setup ([trigger]; absent = filter defaults)
  std::string source_hash;  // of the configuration text (recorded with every run)

  // Derived paths/endpoints with the defaults resolved against node.state_dir/runtime_dir.
  std::filesystem::path store_path() const;
  std::filesystem::path spool_dir() const;
  std::filesystem::path ring_dir() const;
  std::string control_endpoint() const;
  unsigned worker_count() const;  // resolves workers = 0
  unsigned slice_thread_count() const;  // resolves slice_threads = 0
  bool control_curve() const { return !control.curve_allowed_keys.empty(); }
  bool uses_curve() const { return control_curve() || ingest.curve || alerts.curve; }
  std::size_t max_input_file_bytes() const { return static_cast<std::size_t>(node.max_input_file_mb) << 20; }
};

// The configuration file itself is read with this cap (its own limit cannot come from inside it).
inline constexpr std::size_t kMaxConfigFileBytes = std::size_t{4} << 20;

// Parses and validates; throws ConfigError naming the key ("builder.expiry_ms") and the reason.
NodeConfig parse_config(std::string_view toml_text);
NodeConfig load_config(const std::filesystem::path& file);

// A run setup (the TOML document `configure --setup FILE` names): only a [trigger] section, read
// into typed parameters; an empty text gives the filter defaults. Throws ConfigError naming every
// bad key ("run setup: trigger.muon3d.road_width_m = -3: out of range [1, 500]").
filters::TriggerParameters parse_trigger_setup(std::string_view run_setup_toml);
// The same from a file, read with read_input_file (regular file, at most max_bytes).
filters::TriggerParameters load_trigger_setup(const std::filesystem::path& file, std::size_t max_bytes);

}  // namespace shoredaq::firmware
