#pragma once
// ZeroMQ CURVE for the node's network-facing sockets (TCP control endpoint, DU ingest, alert
// stream): key pairs, key files with strict permission checks, and a ZAP handler that admits
// only allow-listed client public keys and counts everyone it refuses.
//
// Typical server side (E.g. the TCP control endpoint):
//   ZapHandler zap(context, &metrics);                       // one per zmq context, before binding
//   zap.allow("control", read_allowed_keys("/etc/shoredaq/control-clients.d"));
//   auto keys = read_secret_key_file("/etc/shoredaq/node.secret");
//   zmq::socket_t rep(context, zmq::socket_type::rep);
//   make_curve_server(rep, keys, zap, "control");            // before bind()
//   rep.bind("tcp://0.0.0.0:9561");
// Client side (shorectl):
//   make_curve_client(req, read_secret_key_file("~/.config/shoredaq/shorectl.secret"),
//                     read_public_key_file("/etc/shoredaq/node.pub"));   // before connect()
//
// Key files are text: '#' comment lines and one Z85-encoded key (40 characters).
// A secret key file must be a regular file (not a symlink) owned by the effective user with
// mode 0600 or 0400; anything else is refused with a KeyFileError saying what to fix.

#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "shoredaq/dataflow/curve_keys.hpp"

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace shoredaq::firmware {

class MetricsRegistry;
class Counter;

// Keys and key files: shoredaq/dataflow/curve_keys.hpp (du-sim uses them too).
using dataflow::curve_available;
using dataflow::curve_key_z85;
using dataflow::curve_public_key_of;
using dataflow::CurveKeyPair;
using dataflow::generate_curve_key_pair;
using dataflow::is_curve_key;
using dataflow::KeyFileError;
using dataflow::make_curve_client;
using dataflow::read_allowed_keys;
using dataflow::read_public_key_file;
using dataflow::read_secret_key_file;
using dataflow::write_curve_key_files;

// ZAP (RFC 27) handler for one zmq context: binds inproc://zeromq.zap.01 and answers on its own
// thread. Per ZAP domain it admits CURVE clients whose public key is allow-listed for that
// domain; everything else (unknown key, unknown domain, NULL/PLAIN mechanism) is refused and
// counted. Destroy it before its context.
class ZapHandler {
public:
  // With `metrics`, counts shoredaq_auth_{accepted,refused}_total{domain} there as well.
  explicit ZapHandler(zmq::context_t& context, MetricsRegistry* metrics = nullptr);
  ~ZapHandler();
  ZapHandler(const ZapHandler&) = delete;
  ZapHandler& operator=(const ZapHandler&) = delete;

  // Replaces the allow-list of `domain` (Z85 public keys; invalid keys throw std::invalid_argument).
  void allow(std::string_view domain, const std::vector<std::string>& client_public_keys);

  [[nodiscard]] std::uint64_t accepted() const { return accepted_.load(); }
  [[nodiscard]] std::uint64_t refused() const { return refused_.load(); }
  [[nodiscard]] std::uint64_t refused(std::string_view domain) const;
  // Handshakes of `domain` that failed before ZAP was asked: a plain (NULL) client on a CURVE
  // socket, a client encrypting for another server key, a broken peer. Counted in
  // shoredaq_auth_handshake_failed_total{domain}; a retrying client counts once per attempt.
  [[nodiscard]] std::uint64_t handshake_failures(std::string_view domain) const;

  // Counts the failed handshakes of `socket` (a CURVE server) under `domain` (a socket monitor
  // read on the handler's thread). Call from the socket's thread, before bind();
  // make_curve_server does it.
  void watch_handshakes(zmq::socket_t& socket, std::string_view domain) const;
  [[nodiscard]] bool running() const { return running_.load(); }

  void stop();  // joins the thread (within ~100 ms)

private:
  struct DomainState {
    std::set<std::string> allowed_z85;
    std::uint64_t refused = 0;
    std::uint64_t handshake_failed = 0;
    Counter* accepted_counter = nullptr;
    Counter* refused_counter = nullptr;
    Counter* handshake_failed_counter = nullptr;
  };
  struct WatchedSocket {
    std::string monitor_endpoint;
    std::string domain;
  };

  void run();
  void count_handshake_failure(const std::string& domain, std::uint16_t event, std::uint32_t value,
                               const std::string& endpoint);
  bool authorize(const std::string& domain, const std::string& mechanism, const std::string& credential,
                 const std::string& address, std::string& reason);
  DomainState& domain_state(const std::string& domain);  // mutex_ held

  zmq::context_t& context_;
  zmq::socket_t socket_;
  MetricsRegistry* metrics_;
  mutable std::mutex watch_mutex_;
  mutable std::vector<WatchedSocket> to_watch_;  // picked up by the handler's thread
  mutable std::uint64_t watch_count_ = 0;
  mutable std::mutex mutex_;
  std::map<std::string, DomainState, std::less<>> domains_;
  std::atomic<std::uint64_t> accepted_{0};
  std::atomic<std::uint64_t> refused_{0};
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> running_{false};
  std::thread thread_;
};

// Makes `socket` a CURVE server authenticated by `zap` under `zap_domain`. Call before bind().
// Requires a running ZapHandler of the socket's context: without one libzmq would admit every
// client that knows the server's public key.
void make_curve_server(zmq::socket_t& socket, const CurveKeyPair& server_keys, const ZapHandler& zap,
                       std::string_view zap_domain);

}  // namespace shoredaq::firmware
