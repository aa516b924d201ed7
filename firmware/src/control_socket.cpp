#include "shoredaq/firmware/control_socket.hpp"

#include <zmq.hpp>

#include <filesystem>
#include <limits>

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

struct ControlServer::Impl {
  zmq::socket_t socket;
  Handler handler;
};

ControlServer::ControlServer(zmq::context_t& context, std::string endpoint, Handler handler)
    : impl_(std::make_unique<Impl>(Impl{zmq::socket_t(context, zmq::socket_type::rep), std::move(handler)})) {
  impl_->socket.set(zmq::sockopt::linger, kLingerMs);
  impl_->socket.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(kMaxControlRequestBytes));
  if (endpoint.rfind("ipc://", 0) == 0) {
    const std::filesystem::path p = endpoint.substr(6);
    if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
  }
  impl_->socket.bind(endpoint);
  endpoint_ = impl_->socket.get(zmq::sockopt::last_endpoint);
  thread_ = std::thread([this] {
    zmq::pollitem_t item{static_cast<void*>(impl_->socket), 0, ZMQ_POLLIN, 0};
    while (!stopping_.load()) {
      try {
        if (zmq::poll(&item, 1, std::chrono::milliseconds(100)) == 0) continue;
        zmq::message_t request;
        if (!impl_->socket.recv(request, zmq::recv_flags::dontwait)) continue;
        // A REP socket must answer every request; multipart requests are answered once, as errors.
        bool multipart = request.more();
        while (request.more()) {
          zmq::message_t rest;
          (void)impl_->socket.recv(rest);
          request = std::move(rest);
        }
        std::string reply = multipart ? std::string(R"({"ok":false,"error":"multipart request"})")
                                      : impl_->handler(request.to_string_view());
        impl_->socket.send(zmq::buffer(reply), zmq::send_flags::none);
        ++served_;
      } catch (const zmq::error_t& e) {
        if (e.num() == ETERM) break;
      }
    }
  });
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
                               std::chrono::milliseconds timeout) {
  zmq::context_t context(1);
  zmq::socket_t socket(context, zmq::socket_type::req);
  socket.set(zmq::sockopt::linger, 0);
  socket.connect(endpoint);
  const std::string text = request.dump();
  zmq::pollitem_t out{static_cast<void*>(socket), 0, ZMQ_POLLOUT, 0};
  if (zmq::poll(&out, 1, timeout) == 0)
    throw ControlTimeout("no shoredaq answering on " + endpoint + " (is the daemon running?)");
  socket.send(zmq::buffer(text), zmq::send_flags::none);
  zmq::pollitem_t in{static_cast<void*>(socket), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&in, 1, timeout) == 0) {
    throw ControlTimeout("shoredaq on " + endpoint + " did not answer within " + std::to_string(timeout.count()) +
                         " ms (is the daemon running?)");
  }
  zmq::message_t reply;
  if (!socket.recv(reply)) throw ControlTimeout("no reply from " + endpoint);
  nlohmann::json r = nlohmann::json::parse(reply.to_string_view(), nullptr, false);
  if (r.is_discarded() || !r.is_object()) throw std::runtime_error("malformed reply from " + endpoint);
  return r;
}

}  // namespace shoredaq::firmware
