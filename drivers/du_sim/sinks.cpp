// du-sim's network sinks, built from the options.

#include <stdexcept>

#include "du_sim.hpp"
#include "shoredaq/dataflow/curve_keys.hpp"

namespace du_sim {

namespace {
// A CURVE ingest (shoredaq [ingest] curve = true) admits only allow-listed DU keys: the sender
// becomes a CURVE client with this DU's key pair and the node's public key. Keys are read here,
// at start, so a bad key file is an error before anything is sent.
std::function<void(zmq::socket_t&)> curve_client_hook(const Options& o) {
  if (o.curve_secret.empty() && o.server_key.empty()) return {};
  if (o.curve_secret.empty() || o.server_key.empty())
    throw std::runtime_error("--curve-secret and --server-key go together");
  auto keys = shoredaq::dataflow::read_secret_key_file(o.curve_secret);
  auto server = shoredaq::dataflow::read_public_key_file(o.server_key);
  return [keys, server](zmq::socket_t& socket) { shoredaq::dataflow::make_curve_client(socket, keys, server); };
}
}  // namespace

std::unique_ptr<shoredaq::drivers::ZmqFeedSender> make_zmq_sender(const Options& o) {
  if (o.endpoint.empty()) return nullptr;
  shoredaq::drivers::ZmqSenderConfig z;
  z.endpoint = o.endpoint;
  z.kind = o.socket == "pub" ? shoredaq::drivers::ZmqSenderConfig::Kind::Pub : shoredaq::drivers::ZmqSenderConfig::Kind::Push;
  z.bind = o.bind;
  z.send_hwm = o.hwm;
  z.linger_ms = o.linger_ms;
  z.batch_bytes = o.batch_bytes;
  z.configure_socket = curve_client_hook(o);
  return std::make_unique<shoredaq::drivers::ZmqFeedSender>(z, &g_stop);
}

std::unique_ptr<shoredaq::drivers::UdpFeedSender> make_udp_sender(const Options& o) {
  if (o.udp.empty() && o.udp_monitoring.empty() && o.udp_acoustic.empty()) return nullptr;
  shoredaq::drivers::UdpSenderConfig u;
  if (!o.udp.empty()) u.optical = shoredaq::drivers::parse_udp_endpoint(o.udp);
  if (!o.udp_monitoring.empty()) u.monitoring = shoredaq::drivers::parse_udp_endpoint(o.udp_monitoring);
  if (!o.udp_acoustic.empty()) u.acoustic = shoredaq::drivers::parse_udp_endpoint(o.udp_acoustic);
  u.rate_limit_datagrams_per_s = o.udp_rate_limit > 0 ? o.udp_rate_limit : (o.realtime ? 0.0 : kAutoUdpRateLimit);
  u.rate_limit_bytes_per_s = o.udp_byte_rate_limit;
  if (o.realtime) u.spread = std::chrono::nanoseconds(static_cast<std::int64_t>(o.udp_spread_ms * 1e6));
  return std::make_unique<shoredaq::drivers::UdpFeedSender>(u, &g_stop);
}

nlohmann::json udp_json(const shoredaq::drivers::UdpSendCounters& c) {
  return {{"datagrams_sent", c.datagrams_sent},
          {"bytes_sent", c.bytes_sent},
          {"send_calls", c.send_calls},
          {"enobufs", c.enobufs},
          {"refused", c.refused},
          {"other_errors", c.other_errors},
          {"datagrams_failed", c.datagrams_failed},
          {"unrouted", c.unrouted},
          {"bad_length_sent_intact", c.bad_length_sent_intact},
          {"pacing_waits", c.pacing_waits}};
}

}  // namespace du_sim
