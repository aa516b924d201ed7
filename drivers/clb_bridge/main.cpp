// clb-bridge: receives the CLBs' UDP datagrams (one port per data type) and forwards them, batched,
// over ZeroMQ PUSH to a shoredaq node elsewhere (drivers/include/shoredaq/drivers/udp_bridge.hpp).
// See `clb-bridge --help`. Prints JSON lines on stdout: "listening" once the ports are bound,
// "stats" every --stats-interval-s, "exit" with the final counters.

#include <signal.h>
#include <time.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "shoredaq/dataflow/curve_keys.hpp"
#include "shoredaq/dataflow/rate_limited_log.hpp"
#include "shoredaq/drivers/udp_bridge.hpp"

namespace {

using shoredaq::dataflow::IngestCounters;
using shoredaq::dataflow::IngestRejectCause;
using namespace shoredaq::drivers;

nlohmann::json rejects_json(const IngestCounters& c) {
  nlohmann::json j = nlohmann::json::object();
  for (std::size_t i = 0; i < shoredaq::dataflow::kIngestRejectCauseCount; ++i) {
    const auto cause = static_cast<IngestRejectCause>(i);
    if (c.rejected_records_of(cause) == 0) continue;
    j[std::string(to_string(cause))] = {{"records", c.rejected_records_of(cause)}, {"bytes", c.rejected_bytes_of(cause)}};
  }
  return j;
}

nlohmann::json socket_json(const UdpSocketInfo& info, const UdpSocketCounters& c) {
  return {{"type", data_type_name(info.data_type)},
          {"address", to_string(info.bound)},
          {"receive_buffer_requested", info.receive_buffer_requested},
          {"receive_buffer_granted", info.receive_buffer_granted},
          {"receive_buffer_forced", info.receive_buffer_forced},
          {"datagrams", c.datagrams},
          {"bytes", c.bytes},
          {"accepted", c.ingest.datagrams},
          {"rejected", rejects_json(c.ingest)},
          {"truncated", c.truncated_datagrams},
          {"other_data_type", c.other_data_type},
          {"other_data_type_dropped", c.other_data_type_dropped},
          {"receive_errors", c.receive_errors},
          {"kernel_drops", c.kernel_drops()},
          {"kernel_drops_rxq_ovfl", c.kernel_drops_rxq_ovfl},
          {"kernel_drops_proc", c.kernel_drops_proc},
          {"kernel_queue_bytes", c.kernel_queue_bytes}};
}

nlohmann::json stats_json(const char* event, const UdpBridge& bridge) {
  const auto info = bridge.receiver().sockets();
  nlohmann::json sockets = nlohmann::json::array();
  for (std::size_t i = 0; i < info.size(); ++i) sockets.push_back(socket_json(info[i], bridge.receiver().counters(i)));
  const UdpBridgeCounters f = bridge.counters();
  return {{"event", event},
          {"sockets", sockets},
          {"forward",
           {{"messages", f.messages_forwarded},
            {"records", f.records_forwarded},
            {"bytes", f.bytes_forwarded},
            {"reframed_messages", f.reframed_messages},
            {"hwm_blocked", f.hwm_blocked},
            {"hwm_dropped_messages", f.hwm_dropped_messages},
            {"hwm_dropped_records", f.hwm_dropped_records},
            {"send_errors", f.send_errors},
            {"send_error_records", f.send_error_records}}}};
}

void print_line(const nlohmann::json& j) {
  std::cout << j.dump() << std::endl;  // flushed: a supervisor or test reads it while we run
}

}  // namespace

int main(int argc, char** argv) {
  std::string optical = "0.0.0.0:56015", monitoring = "0.0.0.0:56017", acoustic = "off";
  std::string header = "40";
  double receive_buffer_mb = 32;
  bool no_force = false, strict_ports = false;
  std::string curve_secret, server_key;
  double stats_interval_s = 10, seconds = 0;
  UdpBridgeConfig config;
  std::size_t max_block_ms = 100;

  CLI::App app{
      "clb-bridge: receives the CLBs' UDP datagrams, one port per data type (optical TTDC, monitoring TMCH,\n"
      "acoustic TAES), checks and counts them like the node's ingest (bad ones are counted by cause and dropped\n"
      "here), and forwards each receive batch as one ZeroMQ message of records [u32 LE length][datagram] over\n"
      "PUSH to a shoredaq node's ingest. Kernel drops (SO_RXQ_OVFL and /proc/net/udp) are counted per port.\n"
      "JSON lines on stdout: 'listening' (bound ports, receive buffers granted), 'stats' every\n"
      "--stats-interval-s, 'exit' with the final counters. Runs until SIGINT/SIGTERM (or --seconds)."};
  app.option_defaults()->always_capture_default();
  app.add_option("--optical", optical, "HOST:PORT to receive optical (TTDC) datagrams on; 'off' for none");
  app.add_option("--monitoring", monitoring, "HOST:PORT to receive monitoring (TMCH) datagrams on; 'off' for none");
  app.add_option("--acoustic", acoustic,
                 "HOST:PORT to receive acoustic (TAES) datagrams on (e.g. 0.0.0.0:56016); 'off' for none (the node "
                 "does not process acoustic data yet)");
  app.add_option("--rcvbuf-mb", receive_buffer_mb, "Socket receive buffer per port, MiB (SO_RCVBUF)")
      ->check(CLI::Range(0.0, 1024.0));
  app.add_flag("--no-force-rcvbuf", no_force,
               "Do not try SO_RCVBUFFORCE (with CAP_NET_ADMIN it passes net.core.rmem_max); the buffer is then capped "
               "at rmem_max");
  app.add_option("--header", header, "CLB header layout: 40, 28 (legacy) or auto (detected per port)")
      ->check(CLI::IsMember({"40", "28", "auto"}));
  app.add_flag("--strict-ports", strict_ports,
               "Drop (instead of accept) datagrams of another data type than the port's, e.g. TMCH on the optical "
               "port; counted either way");
  app.add_option("--batch", config.receiver.batch_datagrams, "Datagrams per receive call (recvmmsg) = per forwarded message at most")
      ->check(CLI::Range(1, 1024));
  app.add_option("--max-datagram-bytes", config.receiver.max_datagram_bytes,
                 "Longest datagram accepted; longer ones are truncated by the kernel, counted and dropped")
      ->check(CLI::Range(64, 65536));
  app.add_option("--endpoint", config.endpoint, "The node's ZeroMQ ingest endpoint, e.g. tcp://daq-node:5556")->required();
  app.add_flag("--bind", config.bind, "Bind the PUSH socket instead of connecting (the node normally binds)");
  app.add_option("--hwm", config.send_hwm, "ZeroMQ send high-water mark, messages");
  app.add_option("--linger-ms", config.linger_ms, "ZeroMQ linger at exit, ms (bounded)");
  app.add_option("--max-block-ms", max_block_ms,
                 "At the high-water mark wait this long for room, then drop the batch (counted)");
  app.add_option("--curve-secret", curve_secret, "CURVE: this bridge's secret key file (for a node with [ingest] curve = true)");
  app.add_option("--server-key", server_key, "CURVE: the node's public key file");
  app.add_option("--stats-interval-s", stats_interval_s, "Print a 'stats' JSON line this often; 0: only at exit")
      ->check(CLI::Range(0.0, 86400.0));
  app.add_option("--seconds", seconds, "Exit after this long; 0: run until SIGINT/SIGTERM")->check(CLI::Range(0.0, 1e9));
  CLI11_PARSE(app, argc, argv);

  // Signals are taken with sigtimedwait in the main thread; every thread started later inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  try {
    const auto layout = shoredaq::dataflow::parse_header_layout_mode(header);
    const std::pair<std::string*, shoredaq::dataflow::DataType> ports[] = {
        {&optical, shoredaq::dataflow::DataType::Optical},
        {&monitoring, shoredaq::dataflow::DataType::Monitoring},
        {&acoustic, shoredaq::dataflow::DataType::Acoustic}};
    for (const auto& [text, type] : ports) {
      if (*text == "off" || text->empty()) continue;
      UdpPortConfig p;
      p.data_type = type;
      p.bind = parse_udp_endpoint(*text);
      p.header_layout = *layout;
      p.receive_buffer_bytes = static_cast<int>(receive_buffer_mb * 1024 * 1024);
      p.force_receive_buffer = !no_force;
      p.accept_other_data_types = !strict_ports;
      config.receiver.ports.push_back(p);
    }
    if (config.receiver.ports.empty()) throw std::invalid_argument("every port is 'off': nothing to receive");
    config.max_block = std::chrono::milliseconds(max_block_ms);
    if (!curve_secret.empty() || !server_key.empty()) {
      if (curve_secret.empty() || server_key.empty()) throw std::invalid_argument("--curve-secret and --server-key go together");
      auto keys = shoredaq::dataflow::read_secret_key_file(curve_secret);
      auto server = shoredaq::dataflow::read_public_key_file(server_key);
      config.configure_socket = [keys, server](zmq::socket_t& s) { shoredaq::dataflow::make_curve_client(s, keys, server); };
    }

    // Logs to stderr: stdout carries only the JSON lines.
    spdlog::set_default_logger(spdlog::stderr_color_mt("clb-bridge"));
    shoredaq::dataflow::RateLimitedLog log;
    zmq::context_t context(1);
    UdpBridge bridge(context, config, &log);
    bridge.start();
    print_line(stats_json("listening", bridge));

    const auto started = std::chrono::steady_clock::now();
    auto next_stats = started + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                    std::chrono::duration<double>(stats_interval_s));
    const auto end = started + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                   std::chrono::duration<double>(seconds));
    for (;;) {
      auto wake = std::chrono::steady_clock::now() + std::chrono::seconds(3600);
      if (stats_interval_s > 0) wake = std::min(wake, next_stats);
      if (seconds > 0) wake = std::min(wake, end);
      const auto wait_ns = std::max<std::int64_t>(
          0, std::chrono::duration_cast<std::chrono::nanoseconds>(wake - std::chrono::steady_clock::now()).count());
      const timespec timeout{static_cast<time_t>(wait_ns / 1'000'000'000), static_cast<long>(wait_ns % 1'000'000'000)};
      if (sigtimedwait(&signals, nullptr, &timeout) > 0) break;  // SIGINT / SIGTERM
      const auto now = std::chrono::steady_clock::now();
      if (seconds > 0 && now >= end) break;
      if (stats_interval_s > 0 && now >= next_stats) {
        print_line(stats_json("stats", bridge));
        next_stats += std::chrono::duration_cast<std::chrono::steady_clock::duration>(
            std::chrono::duration<double>(stats_interval_s));
      }
    }
    bridge.stop();
    print_line(stats_json("exit", bridge));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "clb-bridge: %s\n", e.what());
    return 1;
  }
}
