#pragma once
// The run-control socket (DESIGN.md section 5): ZeroMQ REP, one JSON object per request and reply.
//   {"cmd":"start","run":42}                      -> {"ok":true,"state":"Running","run":42}
//   {"cmd":"configure","detx":"F","setup":"S.toml"} (both optional)
//   {"cmd":"status"}                              -> {"ok":true,"state":...,"run":...,"counters":{...}}
//   {"cmd":"dump","from":"2026-12-06T08:15:00Z","to":"1765008960","reason":"GRB"}
//                                                 -> {"ok":true,"dump":{"id":...,"state":"STARTED",...}}
//   refused                                       -> {"ok":false,"state":"Ready","error":"..."}
// The server has its own thread, so commands are never queued behind data. Long commands (configure
// reads files; stop and quit drain the pipeline) run on a background thread: while one runs,
// `status` is still answered at once (with "draining": true during a drain) and any other command
// is refused with the current state. A command the current state does not allow is refused at once,
// before it could take the background slot. The client of a long command gets its reply when the
// command is done. A client gives up after a timeout with a clear message instead of hanging on a
// dead daemon. Requests are JSON objects with unique keys (a duplicate key is refused, never "the
// last one wins"); requests over 64 KiB are answered with an error.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

#include <optional>

#include <nlohmann/json.hpp>

#include "shoredaq/firmware/run_control.hpp"
#include "shoredaq/firmware/security.hpp"

namespace zmq {
class context_t;
}

namespace shoredaq::firmware {

inline constexpr std::size_t kMaxControlRequestBytes = 64 * 1024;
// Larger messages are cut off by ZeroMQ (the peer is disconnected, no reply possible); between the
// two limits a request is received and answered with an error.
inline constexpr std::size_t kMaxControlMessageBytes = std::size_t{16} << 20;

// Turns one request text into one reply, driving `run_control`; `status` fills in the "status"
// reply's extra fields (counters...). Never throws: malformed requests get {"ok":false,...}.
class ControlDispatcher {
 public:
  using StatusFn = std::function<nlohmann::json()>;
  // {"cmd":"dump","from":...,"to":...,"reason":...} -> the whole reply (raw-data ring, any state).
  using DumpFn = std::function<nlohmann::json(const nlohmann::json&)>;
  ControlDispatcher(RunControl& run_control, StatusFn status = {}, DumpFn dump = {});
  std::string handle(std::string_view request_text) const;
  nlohmann::json handle(const nlohmann::json& request) const;
  // The reply to a command that arrives while a long command is still running.
  std::string busy_reply() const;
  // The refusal of a run-control command the current state does not allow (nullopt otherwise), so
  // the server refuses it without taking the background slot.
  std::optional<std::string> refusal_for_state(std::string_view request_text) const;

 private:
  nlohmann::json reply(const CommandResult& result) const;
  RunControl& run_control_;
  StatusFn status_;
  DumpFn dump_;
};

// How the server runs one request (see classify_control_request).
enum class ControlRequestKind : std::uint8_t {
  Immediate,   // answered on the server thread even while a long command runs (status, malformed)
  Exclusive,   // on the server thread; refused while a long command runs
  Background,  // long (stop, quit): on a background thread, one at a time; replied when done
};
// status, dump (it only queues the dump) and requests that are not valid commands -> Immediate, configure/stop/quit -> Background,
// the rest -> Exclusive.
ControlRequestKind classify_control_request(std::string_view request_text);

// A ROUTER socket (REQ clients) served from its own thread until stop(); `handler` maps request ->
// reply text. Without a classifier every request is Exclusive (handled in order on that thread).
// A CURVE server control socket (required for a tcp:// endpoint): only clients whose public key
// `zap` allow-lists under `zap_domain` get through the handshake; the rest never reach the handler.
struct ControlCurveServer {
  CurveKeyPair server_keys;
  const ZapHandler* zap = nullptr;  // running on the server's context; must outlive the server
  std::string zap_domain = "control";
};

struct ControlServerOptions {
  std::function<ControlRequestKind(std::string_view)> classify;
  std::function<std::string()> busy_reply;  // reply to an Exclusive/Background request while busy
  // Asked before an Exclusive/Background request is run or queued: a reply here refuses it at once.
  std::function<std::optional<std::string>(std::string_view)> refuse_now;
  std::optional<ControlCurveServer> curve;  // applied before bind; none = no authentication
  // An ipc:// socket file gets this mode after bind (the umask would decide otherwise).
  std::optional<unsigned> ipc_mode;
};

class ControlServer {
 public:
  using Handler = std::function<std::string(std::string_view)>;
  // Binds immediately (throws zmq::error_t / std::runtime_error when the endpoint is unusable); for
  // ipc:// the socket's directory is created.
  ControlServer(zmq::context_t& context, std::string endpoint, Handler handler, ControlServerOptions options = {});
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  const std::string& endpoint() const noexcept { return endpoint_; }  // resolved (tcp port 0 -> real)
  void stop();
  std::uint64_t requests_served() const noexcept { return served_.load(); }
  std::uint64_t requests_refused_busy() const noexcept { return refused_busy_.load(); }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string endpoint_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> served_{0};
  std::atomic<std::uint64_t> refused_busy_{0};
  void serve_loop();
  std::thread thread_;
};

class ControlTimeout : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The ipc:// socket file exists but this user may not use it (or its folder): known before any
// request is sent ("permission denied", never "is the daemon running?"). A kind of "no answer".
class ControlUnreachable : public ControlTimeout {
 public:
  using ControlTimeout::ControlTimeout;
};

// For an ipc:// endpoint: why this process cannot reach it (missing file, permission denied,
// naming owner, group and mode), or nullopt when it can (or the endpoint is not ipc://).
std::optional<std::string> ipc_endpoint_problem(const std::string& endpoint);

// The client side of a CURVE control socket: the client's key pair and the node's public key.
struct ControlCurveClient {
  CurveKeyPair client_keys;
  std::string server_public_key;
};

// One request, one reply; a fresh REQ socket per call so a timed-out request never poisons the
// next one. Throws ControlUnreachable when an ipc:// socket is not accessible, ControlTimeout when
// no reply arrives in time (naming a missing ipc:// socket file), std::runtime_error on a bad reply.
// A CURVE server that refuses the client's key never answers, so that ends in ControlTimeout too.
nlohmann::json control_request(const std::string& endpoint, const nlohmann::json& request,
                               std::chrono::milliseconds timeout,
                               const std::optional<ControlCurveClient>& curve = std::nullopt);

}  // namespace shoredaq::firmware
