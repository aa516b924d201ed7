#include "shoredaq/firmware/security.hpp"

#include "shoredaq/dataflow/rate_limited_log.hpp"
#include "shoredaq/firmware/logging.hpp"
#include "shoredaq/firmware/metrics.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace shoredaq::firmware {

namespace fs = std::filesystem;

namespace {

constexpr const char* zap_endpoint = "inproc://zeromq.zap.01";

}  // namespace

ZapHandler::ZapHandler(zmq::context_t& context, MetricsRegistry* metrics)
    : context_(context), socket_(context, zmq::socket_type::rep), metrics_(metrics) {
  socket_.set(zmq::sockopt::linger, 0);
  try {
    socket_.bind(zap_endpoint);
  } catch (const zmq::error_t& e) {
    throw std::runtime_error(describe_failure("start the ZAP handler on", zap_endpoint,
                                              std::string(e.what()) + " (only one handler per zmq context)"));
  }
  running_ = true;
  thread_ = std::thread([this] { run(); });
}

ZapHandler::~ZapHandler() { stop(); }

void ZapHandler::stop() {
  stop_requested_ = true;
  if (thread_.joinable()) {
    thread_.join();
  }
}

ZapHandler::DomainState& ZapHandler::domain_state(const std::string& domain) {
  auto it = domains_.find(domain);
  if (it == domains_.end()) {
    it = domains_.emplace(domain, DomainState{}).first;
    if (metrics_ != nullptr) {
      it->second.accepted_counter = &metrics_->counter(
          "shoredaq_auth_accepted_total", "CURVE clients admitted by the ZAP handler", {{"domain", domain}});
      it->second.refused_counter = &metrics_->counter(
          "shoredaq_auth_refused_total", "Clients refused by the ZAP handler (unknown key, domain or mechanism)",
          {{"domain", domain}});
      it->second.handshake_failed_counter = &metrics_->counter(
          "shoredaq_auth_handshake_failed_total",
          "Handshakes refused before authentication (plain client on a CURVE socket, wrong server key)",
          {{"domain", domain}});
    }
  }
  return it->second;
}

void ZapHandler::allow(std::string_view domain, const std::vector<std::string>& client_public_keys) {
  std::set<std::string> keys;
  for (const auto& key : client_public_keys) {
    if (!is_curve_key(key)) {
      throw std::invalid_argument(fmt::format("allow-list for ZAP domain '{}' holds an invalid key '{}'", domain, key));
    }
    keys.insert(key);
  }
  std::lock_guard lock(mutex_);
  domain_state(std::string(domain)).allowed_z85 = std::move(keys);
}

std::uint64_t ZapHandler::refused(std::string_view domain) const {
  std::lock_guard lock(mutex_);
  const auto it = domains_.find(domain);
  return it == domains_.end() ? 0 : it->second.refused;
}

std::uint64_t ZapHandler::handshake_failures(std::string_view domain) const {
  std::lock_guard lock(mutex_);
  const auto it = domains_.find(domain);
  return it == domains_.end() ? 0 : it->second.handshake_failed;
}

void ZapHandler::watch_handshakes(zmq::socket_t& socket, std::string_view domain) const {
  std::lock_guard lock(watch_mutex_);
  WatchedSocket w;
  w.monitor_endpoint = fmt::format("inproc://shoredaq.handshake-monitor.{}.{}", static_cast<const void*>(this),
                                   watch_count_++);
  w.domain = std::string(domain);
  // AUTH failures are the ZAP refusals, already counted in authorize().
  if (zmq_socket_monitor(socket.handle(), w.monitor_endpoint.c_str(),
                         ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                             ZMQ_EVENT_MONITOR_STOPPED) != 0) {
    throw std::runtime_error(describe_failure("monitor the handshakes of a CURVE socket", w.domain,
                                              zmq_strerror(zmq_errno())));
  }
  to_watch_.push_back(std::move(w));
}

void ZapHandler::count_handshake_failure(const std::string& domain, std::uint16_t event, std::uint32_t value,
                                         const std::string& endpoint) {
  {
    std::lock_guard lock(mutex_);
    DomainState& state = domain_state(domain);
    ++state.handshake_failed;
    if (state.handshake_failed_counter) state.handshake_failed_counter->inc();
  }
  static dataflow::RateLimitedLog log(nullptr, std::chrono::seconds(60), 5);
  log.log(spdlog::level::warn, "handshake-failed-" + domain,
          "refused a handshake on '{}' ({}) before authentication ({}, code {:#x}): a client without CURVE or "
          "with the wrong server key",
          domain, endpoint.empty() ? std::string("-") : endpoint,
          event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ? "protocol error" : "no detail", value);
}

bool ZapHandler::authorize(const std::string& domain, const std::string& mechanism, const std::string& credential,
                           const std::string& address, std::string& reason) {
  std::lock_guard lock(mutex_);
  DomainState& state = domain_state(domain);
  bool ok = false;
  std::string key;
  if (mechanism != "CURVE") {
    reason = fmt::format("mechanism {} not allowed", mechanism);
  } else if (credential.size() != 32) {
    reason = "malformed CURVE credential";
  } else {
    key = curve_key_z85(reinterpret_cast<const std::uint8_t*>(credential.data()));
    ok = state.allowed_z85.count(key) > 0;
    if (!ok) {
      reason = "client key not in the allow-list";
    }
  }
  if (ok) {
    accepted_.fetch_add(1);
    if (state.accepted_counter) state.accepted_counter->inc();
    return true;
  }
  ++state.refused;
  refused_.fetch_add(1);
  if (state.refused_counter) state.refused_counter->inc();
  // A scanning or misconfigured peer retries forever: log a few, count all.
  static dataflow::RateLimitedLog log(nullptr, std::chrono::seconds(60), 5);
  log.log(spdlog::level::warn, "zap-refused-" + domain, "refused {} client {} from {} for '{}': {}", mechanism,
           key.empty() ? std::string("-") : key, address, domain, reason);
  return false;
}

void ZapHandler::run() {
  struct Monitor {
    zmq::socket_t socket;
    std::string domain;
  };
  std::vector<Monitor> monitors;
  while (!stop_requested_.load()) {
    {
      std::lock_guard lock(watch_mutex_);
      for (auto& w : to_watch_) {
        zmq::socket_t pair(context_, zmq::socket_type::pair);
        pair.set(zmq::sockopt::linger, 0);
        pair.connect(w.monitor_endpoint);
        monitors.push_back(Monitor{std::move(pair), std::move(w.domain)});
      }
      to_watch_.clear();
    }
    std::vector<zmq::pollitem_t> items{{socket_.handle(), 0, ZMQ_POLLIN, 0}};
    for (auto& m : monitors) items.push_back({m.socket.handle(), 0, ZMQ_POLLIN, 0});
    try {
      zmq::poll(items, std::chrono::milliseconds(100));
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) break;
      continue;
    }
    // Socket monitor events: [u16 event, u32 value] then the monitored socket's endpoint.
    for (std::size_t i = monitors.size(); i-- > 0;) {
      if ((items[i + 1].revents & ZMQ_POLLIN) == 0) continue;
      std::vector<zmq::message_t> event;
      try {
        if (!zmq::recv_multipart(monitors[i].socket, std::back_inserter(event), zmq::recv_flags::dontwait)) continue;
      } catch (const zmq::error_t&) {
        continue;
      }
      if (event.size() < 2 || event[0].size() < 6) continue;
      std::uint16_t id = 0;
      std::uint32_t value = 0;
      std::memcpy(&id, event[0].data(), sizeof id);
      std::memcpy(&value, static_cast<const std::uint8_t*>(event[0].data()) + 2, sizeof value);
      if (id == ZMQ_EVENT_MONITOR_STOPPED) {
        monitors.erase(monitors.begin() + static_cast<std::ptrdiff_t>(i));  // the socket closed
        continue;
      }
      count_handshake_failure(monitors[i].domain, id, value, event[1].to_string());
    }
    if ((items[0].revents & ZMQ_POLLIN) == 0) {
      continue;
    }
    std::vector<zmq::message_t> request;
    try {
      if (!zmq::recv_multipart(socket_, std::back_inserter(request), zmq::recv_flags::dontwait)) {
        continue;
      }
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) break;
      continue;
    }
    // RFC 27: version, request id, domain, address, identity, mechanism, credentials...
    std::string status_code = "400";
    std::string status_text = "malformed ZAP request";
    std::string user_id;
    const std::string request_id = request.size() > 1 ? request[1].to_string() : std::string();
    if (request.size() >= 6 && request[0].to_string() == "1.0") {
      const std::string domain = request[2].to_string();
      const std::string address = request[3].to_string();
      const std::string mechanism = request[5].to_string();
      const std::string credential = request.size() > 6 ? request[6].to_string() : std::string();
      std::string reason;
      if (authorize(domain, mechanism, credential, address, reason)) {
        status_code = "200";
        status_text = "OK";
        user_id = curve_key_z85(reinterpret_cast<const std::uint8_t*>(credential.data()));
      } else {
        status_text = reason;
      }
    }
    try {
      std::array<zmq::const_buffer, 6> reply{zmq::str_buffer("1.0"), zmq::buffer(request_id),
                                             zmq::buffer(status_code), zmq::buffer(status_text),
                                             zmq::buffer(user_id), zmq::const_buffer()};
      zmq::send_multipart(socket_, reply);
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) break;
    }
  }
  monitors.clear();
  socket_.close();
  running_ = false;
}

void make_curve_server(zmq::socket_t& socket, const CurveKeyPair& server_keys, const ZapHandler& zap,
                       std::string_view zap_domain) {
  if (!zap.running()) {
    throw std::logic_error("make_curve_server: the ZAP handler is not running; CURVE would admit every client");
  }
  if (!is_curve_key(server_keys.secret_key)) {
    throw std::invalid_argument("make_curve_server: invalid server secret key");
  }
  socket.set(zmq::sockopt::curve_server, 1);
  socket.set(zmq::sockopt::curve_secretkey, server_keys.secret_key);
  socket.set(zmq::sockopt::zap_domain, std::string(zap_domain));
  zap.watch_handshakes(socket, zap_domain);
}

}  // namespace shoredaq::firmware
