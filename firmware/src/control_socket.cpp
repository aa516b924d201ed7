#include "shoredaq/firmware/control_socket.hpp"

#include <zmq.hpp>

#include <filesystem>
#include <limits>
#include <mutex>
#include <optional>
#include <vector>

namespace shoredaq::firmware {
namespace {

constexpr int kLingerMs = 100;

nlohmann::json refusal(RunState state, std::string error) {
  return {{"ok", false}, {"state", std::string(to_string(state))}, {"error", std::move(error)}};
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

ControlDispatcher::ControlDispatcher(RunControl& run_control, StatusFn status)
    : run_control_(run_control), status_(std::move(status)) {}

nlohmann::json ControlDispatcher::reply(const CommandResult& result) const {
  nlohmann::json r{{"ok", result.ok}, {"state", std::string(to_string(result.state))}};
  if (auto run = run_control_.run()) r["run"] = *run;
  if (!result.ok) r["error"] = result.error;
  return r;
}

std::string ControlDispatcher::handle(std::string_view request_text) const {
  if (request_text.size() > kMaxControlRequestBytes)
    return refusal(run_control_.state(), "request larger than 64 KiB").dump();
  nlohmann::json request = nlohmann::json::parse(request_text, nullptr, /*allow_exceptions=*/false);
  if (request.is_discarded()) return refusal(run_control_.state(), "request is not valid JSON").dump();
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

  const auto command = parse_run_command(cmd);
  if (!command) {
    return refusal(run_control_.state(),
                   "unknown command \"" + cmd +
                       "\" (status, init, configure, start, pause, continue, stop, reset, quit)");
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
      return reply(run_control_.start(static_cast<std::uint32_t>(it->get<std::int64_t>())));
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
  nlohmann::json r = refusal(run_control_.state(), "busy: a stop is draining the pipeline; retry when it is done");
  if (auto c = run_control_.in_progress()) r["busy_with"] = std::string(to_string(*c));
  r["draining"] = true;
  return r.dump();
}

ControlRequestKind classify_control_request(std::string_view request_text) {
  if (request_text.size() > kMaxControlRequestBytes) return ControlRequestKind::Immediate;
  const nlohmann::json request = nlohmann::json::parse(request_text, nullptr, false);
  if (request.is_discarded() || !request.is_object()) return ControlRequestKind::Immediate;
  auto it = request.find("cmd");
  if (it == request.end() || !it->is_string()) return ControlRequestKind::Immediate;
  const auto& cmd = it->get_ref<const std::string&>();
  if (cmd == "status") return ControlRequestKind::Immediate;
  const auto command = parse_run_command(cmd);
  if (!command) return ControlRequestKind::Immediate;
  if (*command == RunCommand::Stop || *command == RunCommand::Quit) return ControlRequestKind::Background;
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
  impl_->socket.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(kMaxControlRequestBytes));
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
          im.send(im.job_envelope, *done);
          im.job_envelope.clear();
          ++served_;
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
        im.send(envelope, R"({"ok":false,"error":"multipart request"})");
        ++served_;
        continue;
      }
      const std::string request(frames[body].to_string_view());
      const ControlRequestKind kind =
          im.options.classify ? im.options.classify(request) : ControlRequestKind::Exclusive;
      if (kind != ControlRequestKind::Immediate && active) {
        im.send(envelope, im.options.busy_reply ? im.options.busy_reply() : std::string(R"({"ok":false,"error":"busy"})"));
        ++refused_busy_;
        ++served_;
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
      im.send(envelope, im.handler(request));
      ++served_;
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

nlohmann::json control_request(const std::string& endpoint, const nlohmann::json& request,
                               std::chrono::milliseconds timeout, const std::optional<ControlCurveClient>& curve) {
  zmq::context_t context(1);
  zmq::socket_t socket(context, zmq::socket_type::req);
  socket.set(zmq::sockopt::linger, 0);
  if (curve) make_curve_client(socket, curve->client_keys, curve->server_public_key);  // before connect
  socket.connect(endpoint);
  const std::string text = request.dump();
  zmq::pollitem_t out{static_cast<void*>(socket), 0, ZMQ_POLLOUT, 0};
  if (zmq::poll(&out, 1, timeout) == 0)
    throw ControlTimeout("no shoredaq answering on " + endpoint + " (is the daemon running?)");
  socket.send(zmq::buffer(text), zmq::send_flags::none);
  zmq::pollitem_t in{static_cast<void*>(socket), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&in, 1, timeout) == 0) {
    throw ControlTimeout("shoredaq on " + endpoint + " did not answer within " + std::to_string(timeout.count()) +
                         (curve ? " ms (is the daemon running? is this client's public key in its control allow-list, "
                                  "and is the server key the node's?)"
                                : " ms (is the daemon running?)"));
  }
  zmq::message_t reply;
  if (!socket.recv(reply)) throw ControlTimeout("no reply from " + endpoint);
  nlohmann::json r = nlohmann::json::parse(reply.to_string_view(), nullptr, false);
  if (r.is_discarded() || !r.is_object()) throw std::runtime_error("malformed reply from " + endpoint);
  return r;
}

}  // namespace shoredaq::firmware
