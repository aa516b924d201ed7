#include "shoredaq/firmware/control_socket.hpp"

#include <zmq.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <mutex>
#include <optional>
#include <set>
#include <vector>

namespace shoredaq::firmware {
namespace {

constexpr int kLingerMs = 100;

nlohmann::json refusal(RunState state, std::string error) {
  return {{"ok", false}, {"state", std::string(to_string(state))}, {"error", std::move(error)}};
}

// A request parsed strictly: a duplicate key makes it invalid. nlohmann keeps the last of two equal
// keys, so {"cmd":"status","cmd":"quit"} would quit a node whose operator asked for its status.
nlohmann::json parse_request(std::string_view text, std::string& error) {
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  const auto strict = [&](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    switch (event) {
      case nlohmann::json::parse_event_t::object_start: open_objects.emplace_back(); break;
      case nlohmann::json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case nlohmann::json::parse_event_t::key:
        if (!open_objects.empty() && parsed.is_string() && !open_objects.back().insert(parsed.get<std::string>()).second &&
            duplicate.empty()) {
          duplicate = parsed.get<std::string>();
        }
        break;
      default: break;
    }
    return true;
  };
  nlohmann::json request = nlohmann::json::parse(text, strict, /*allow_exceptions=*/false);
  if (request.is_discarded()) {
    error = "request is not valid JSON";
  } else if (!duplicate.empty()) {
    error = "request has the key \"" + duplicate + "\" more than once";
    request = nlohmann::json(nlohmann::json::value_t::discarded);
  }
  return request;
}

std::string optional_string(const nlohmann::json& request, const char* key, std::string& error) {
  auto it = request.find(key);
  if (it == request.end() || it->is_null()) return {};
  if (!it->is_string()) {
    error = std::string("\"") + key + "\" must be a string";
    return {};
  }
  return it->get<std::string>();
}

}  // namespace

ControlDispatcher::ControlDispatcher(RunControl& run_control, StatusFn status, DumpFn dump)
    : run_control_(run_control), status_(std::move(status)), dump_(std::move(dump)) {}

nlohmann::json ControlDispatcher::reply(const CommandResult& result) const {
  nlohmann::json r{{"ok", result.ok}, {"state", std::string(to_string(result.state))}};
  if (auto run = run_control_.run()) r["run"] = *run;
  if (!result.ok) r["error"] = result.error;
  return r;
}

std::string ControlDispatcher::handle(std::string_view request_text) const {
  if (request_text.size() > kMaxControlRequestBytes)
    return refusal(run_control_.state(), "request of " + std::to_string(request_text.size()) + " bytes: larger than 64 KiB").dump();
  std::string error;
  nlohmann::json request = parse_request(request_text, error);
  if (request.is_discarded()) return refusal(run_control_.state(), error).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  // Replies must be valid UTF-8 JSON even if a request smuggled invalid bytes into an error text.
  return handle(request).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

nlohmann::json ControlDispatcher::handle(const nlohmann::json& request) const {
  if (!request.is_object()) return refusal(run_control_.state(), "request must be a JSON object");
  auto cmd_it = request.find("cmd");
  if (cmd_it == request.end() || !cmd_it->is_string())
    return refusal(run_control_.state(), "request needs a string \"cmd\"");
  const std::string cmd = cmd_it->get<std::string>();

  if (cmd == "status") {
    nlohmann::json r{{"ok", true}, {"state", std::string(to_string(run_control_.state()))}};
    if (auto run = run_control_.run()) r["run"] = *run;
    if (auto e = run_control_.last_error(); !e.empty()) r["error"] = e;
    // Answered even while stop/quit drains the pipeline (the state changes when the drain ends).
    if (auto c = run_control_.in_progress(); c && (*c == RunCommand::Stop || *c == RunCommand::Quit)) r["draining"] = true;
    if (status_) {
      nlohmann::json extra = status_();
      if (extra.is_object()) {
        for (auto& [k, v] : extra.items()) {
          if (!r.contains(k)) r[k] = v;
        }
      }
    }
    return r;
  }

  if (cmd == "dump") {
    if (!dump_) return refusal(run_control_.state(), "this node has no raw-data ring");
    return dump_(request);
  }

  const auto command = parse_run_command(cmd);
  if (!command) {
    return refusal(run_control_.state(),
                   "unknown command \"" + cmd +
                       "\" (status, init, configure, start, pause, continue, stop, reset, quit, dump)");
  }
  switch (*command) {
    case RunCommand::Init: return reply(run_control_.init());
    case RunCommand::Configure: {
      std::string error;
      ConfigureRequest c;
      c.detector_file = optional_string(request, "detx", error);
      if (error.empty()) c.run_setup_path = optional_string(request, "setup", error);
      if (error.empty()) c.run_setup_text = optional_string(request, "setup_text", error);
      if (!error.empty()) return refusal(run_control_.state(), error);
      return reply(run_control_.configure(c));
    }
    case RunCommand::Start: {
      auto it = request.find("run");
      if (it == request.end() || !it->is_number_integer() || it->get<std::int64_t>() < 1 ||
          it->get<std::int64_t>() > std::numeric_limits<std::uint32_t>::max()) {
        return refusal(run_control_.state(), "start needs \"run\": an integer in [1, 4294967295]");
      }
      std::string error;
      const std::string run_type = optional_string(request, "type", error);
      if (!error.empty()) return refusal(run_control_.state(), error);
      return reply(run_control_.start(static_cast<std::uint32_t>(it->get<std::int64_t>()), run_type));
    }
    case RunCommand::Pause: return reply(run_control_.pause());
    case RunCommand::Continue: return reply(run_control_.resume());
    case RunCommand::Stop: return reply(run_control_.stop());
    case RunCommand::Reset: return reply(run_control_.reset());
    case RunCommand::Quit: return reply(run_control_.quit());
  }
  return refusal(run_control_.state(), "unhandled command");
}

std::string ControlDispatcher::busy_reply() const {
  const auto command = run_control_.in_progress();
  const bool draining = command && (*command == RunCommand::Stop || *command == RunCommand::Quit);
  nlohmann::json r = refusal(run_control_.state(),
                             draining ? std::string("busy: a stop is draining the pipeline; retry when it is done")
                                      : "busy: '" + std::string(command ? to_string(*command) : "a command") +
                                            "' is in progress; retry when it is done");
  if (command) r["busy_with"] = std::string(to_string(*command));
  if (draining) r["draining"] = true;
  return r.dump();
}

std::optional<std::string> ControlDispatcher::refusal_for_state(std::string_view request_text) const {
  if (request_text.size() > kMaxControlRequestBytes) return std::nullopt;
  std::string error;
  const nlohmann::json request = parse_request(request_text, error);
  if (!request.is_object()) return std::nullopt;
  auto it = request.find("cmd");
  if (it == request.end() || !it->is_string()) return std::nullopt;
  const auto command = parse_run_command(it->get_ref<const std::string&>());
  if (!command) return std::nullopt;
  const RunState state = run_control_.state();
  if (RunControl::allowed(state, *command)) return std::nullopt;
  return refusal(state, "command '" + std::string(to_string(*command)) + "' is not allowed in state " +
                            std::string(to_string(state)))
      .dump();
}

ControlRequestKind classify_control_request(std::string_view request_text) {
  if (request_text.size() > kMaxControlRequestBytes) return ControlRequestKind::Immediate;
  std::string error;
  const nlohmann::json request = parse_request(request_text, error);
  if (request.is_discarded() || !request.is_object()) return ControlRequestKind::Immediate;
  auto it = request.find("cmd");
  if (it == request.end() || !it->is_string()) return ControlRequestKind::Immediate;
  const auto& cmd = it->get_ref<const std::string&>();
  if (cmd == "status" || cmd == "dump") return ControlRequestKind::Immediate;
  const auto command = parse_run_command(cmd);
  if (!command) return ControlRequestKind::Immediate;
  // configure reads operator-named files; stop and quit drain: none of them may hold up `status`.
  if (*command == RunCommand::Configure || *command == RunCommand::Stop || *command == RunCommand::Quit)
    return ControlRequestKind::Background;
  return ControlRequestKind::Exclusive;
}

struct ControlServer::Impl {
  zmq::socket_t socket;
  Handler handler;
  ControlServerOptions options;
  // The running background command: its thread, its client's envelope, its reply when done.
  std::thread job;
  std::vector<zmq::message_t> job_envelope;
  std::mutex job_mutex;
  std::optional<std::string> job_reply;
  bool job_active = false;

  void send(std::vector<zmq::message_t>& envelope, const std::string& reply) {
    for (auto& part : envelope) socket.send(part, zmq::send_flags::sndmore);
    socket.send(zmq::buffer(reply), zmq::send_flags::none);
  }
};

ControlServer::ControlServer(zmq::context_t& context, std::string endpoint, Handler handler, ControlServerOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->socket = zmq::socket_t(context, zmq::socket_type::router);
  impl_->handler = std::move(handler);
  impl_->options = std::move(options);
  impl_->socket.set(zmq::sockopt::linger, kLingerMs);
  impl_->socket.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(kMaxControlMessageBytes));
  if (impl_->options.curve) {
    const ControlCurveServer& curve = *impl_->options.curve;
    if (curve.zap == nullptr) throw std::invalid_argument("control socket: CURVE needs a ZAP handler");
    make_curve_server(impl_->socket, curve.server_keys, *curve.zap, curve.zap_domain);  // before bind
  }
  if (endpoint.rfind("ipc://", 0) == 0) {
    const std::filesystem::path p = endpoint.substr(6);
    if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
  }
  impl_->socket.bind(endpoint);
  endpoint_ = impl_->socket.get(zmq::sockopt::last_endpoint);
  if (impl_->options.ipc_mode && endpoint_.rfind("ipc://", 0) == 0) {
    std::error_code ec;
    std::filesystem::permissions(endpoint_.substr(6), static_cast<std::filesystem::perms>(*impl_->options.ipc_mode),
                                 std::filesystem::perm_options::replace, ec);
    if (ec) throw std::runtime_error("cannot set the mode of " + endpoint_.substr(6) + ": " + ec.message());
  }
  thread_ = std::thread([this] { serve_loop(); });
}

void ControlServer::serve_loop() {
  auto& im = *impl_;
  zmq::pollitem_t item{static_cast<void*>(im.socket), 0, ZMQ_POLLIN, 0};
  while (true) {
    bool active;
    {
      std::lock_guard lock(im.job_mutex);
      active = im.job_active;
    }
    // Leave only once the background command (e.g. quit) has been answered.
    if (stopping_.load() && !active) break;
    try {
      if (active) {
        std::optional<std::string> done;
        {
          std::lock_guard lock(im.job_mutex);
          done.swap(im.job_reply);
        }
        if (done) {
          im.job.join();
          ++served_;  // counted before the reply: whoever has the reply sees it counted
          im.send(im.job_envelope, *done);
          im.job_envelope.clear();
          std::lock_guard lock(im.job_mutex);
          im.job_active = false;
          continue;
        }
      }
      // Short polls while a background command runs, so its reply goes out promptly.
      if (zmq::poll(&item, 1, std::chrono::milliseconds(active ? 10 : 100)) == 0) continue;
      // ROUTER frames: the client's identity, (for REQ) an empty delimiter, then the request.
      std::vector<zmq::message_t> frames;
      do {
        zmq::message_t part;
        if (!im.socket.recv(part, zmq::recv_flags::dontwait)) break;
        frames.push_back(std::move(part));
      } while (frames.back().more());
      if (frames.empty()) continue;
      std::vector<zmq::message_t> envelope;
      std::size_t body = 1;
      for (std::size_t i = 1; i < frames.size(); ++i) {
        if (frames[i].size() == 0) {
          body = i + 1;
          break;
        }
      }
      for (std::size_t i = 0; i < body && i < frames.size(); ++i) envelope.push_back(std::move(frames[i]));
      if (frames.size() != body + 1) {
        // Every request is answered once; multipart requests as errors.
        ++served_;
        im.send(envelope, R"({"ok":false,"error":"multipart request"})");
        continue;
      }
      const std::string request(frames[body].to_string_view());
      const ControlRequestKind kind =
          im.options.classify ? im.options.classify(request) : ControlRequestKind::Exclusive;
      if (kind != ControlRequestKind::Immediate && im.options.refuse_now) {
        if (auto refused = im.options.refuse_now(request)) {
          ++served_;
          im.send(envelope, *refused);
          continue;
        }
      }
      if (kind != ControlRequestKind::Immediate && active) {
        ++refused_busy_;
        ++served_;
        im.send(envelope, im.options.busy_reply ? im.options.busy_reply() : std::string(R"({"ok":false,"error":"busy"})"));
        continue;
      }
      if (kind == ControlRequestKind::Background) {
        std::lock_guard lock(im.job_mutex);
        im.job_active = true;
        im.job_envelope = std::move(envelope);
        im.job = std::thread([&im, request] {
          std::string reply = im.handler(request);
          std::lock_guard job_lock(im.job_mutex);
          im.job_reply = std::move(reply);
        });
        continue;
      }
      const std::string reply = im.handler(request);
      ++served_;
      im.send(envelope, reply);
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) break;
    }
  }
  if (im.job.joinable()) im.job.join();
}

void ControlServer::stop() {
  stopping_.store(true);
  if (thread_.joinable()) thread_.join();
}

ControlServer::~ControlServer() {
  stop();
  if (endpoint_.rfind("ipc://", 0) == 0) {
    std::error_code ec;
    std::filesystem::remove(endpoint_.substr(6), ec);
  }
}

std::optional<std::string> ipc_endpoint_problem(const std::string& endpoint) {
  if (endpoint.rfind("ipc://", 0) != 0) return std::nullopt;
  const std::string path = endpoint.substr(6);
  // access() checks with the real user and group ids, as the kernel will at connect().
  if (::access(path.c_str(), W_OK) == 0) return std::nullopt;
  const int err = errno;
  if (err == ENOENT) return "no control socket at " + path + " (is the daemon running? is this its control.endpoint?)";
  if (err == EACCES) {
    std::string detail;
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
      detail = " (owner uid " + std::to_string(st.st_uid) + ", group gid " + std::to_string(st.st_gid) + ", mode " + mode + ")";
    }
    return "permission denied on the control socket " + path + detail +
           ": operators need write access; join the daemon's group (e.g. `sudo usermod -aG shoredaq $USER`, then log in again)";
  }
  return "cannot use the control socket " + path + ": " + std::strerror(err);
}

nlohmann::json control_request(const std::string& endpoint, const nlohmann::json& request,
                               std::chrono::milliseconds timeout, const std::optional<ControlCurveClient>& curve) {
  // A missing socket may be a daemon still starting (ZeroMQ connects once it binds): wait as for
  // any daemon, and name the missing file if nothing answers. Permission denied is final.
  const auto problem = ipc_endpoint_problem(endpoint);
  const bool missing = problem && problem->rfind("no control socket", 0) == 0;
  if (problem && !missing) throw ControlUnreachable(*problem);
  const std::string hint = missing ? " (" + *problem + ")" : std::string(" (is the daemon running?)");
  zmq::context_t context(1);
  zmq::socket_t socket(context, zmq::socket_type::req);
  socket.set(zmq::sockopt::linger, 0);
  if (curve) make_curve_client(socket, curve->client_keys, curve->server_public_key);  // before connect
  socket.connect(endpoint);
  const std::string text = request.dump();
  zmq::pollitem_t out{static_cast<void*>(socket), 0, ZMQ_POLLOUT, 0};
  if (zmq::poll(&out, 1, timeout) == 0) throw ControlTimeout("no shoredaq answering on " + endpoint + hint);
  socket.send(zmq::buffer(text), zmq::send_flags::none);
  zmq::pollitem_t in{static_cast<void*>(socket), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&in, 1, timeout) == 0) {
    throw ControlTimeout("shoredaq on " + endpoint + " did not answer within " + std::to_string(timeout.count()) +
                         (curve ? " ms (is the daemon running? is this client's public key in its control allow-list, "
                                  "and is the server key the node's?)"
                                : " ms" + hint));
  }
  zmq::message_t reply;
  if (!socket.recv(reply)) throw ControlTimeout("no reply from " + endpoint);
  nlohmann::json r = nlohmann::json::parse(reply.to_string_view(), nullptr, false);
  if (r.is_discarded() || !r.is_object()) throw std::runtime_error("malformed reply from " + endpoint);
  return r;
}

}  // namespace shoredaq::firmware
