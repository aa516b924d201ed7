#pragma once
// The node's small HTTP endpoint (Boost.Beast on its own io thread):
//   GET /metrics  Prometheus text from the MetricsRegistry
//   GET /status   JSON document supplied by the daemon (state, run, rates, last error, …)
//   GET /healthz  200 "ok" while the pipeline makes progress, 503 with the reason otherwise
// Loopback only unless configured. Bad requests get 400/404/405 and never take the server down.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace shoredaq::firmware {

class MetricsRegistry;

struct HttpServerOptions {
  std::string address = "127.0.0.1";  // IPv4 or IPv6 literal; "0.0.0.0" exposes it to the network
  std::uint16_t port = 9560;          // 0: the kernel picks a free port (tests); see HttpServer::port()
  std::chrono::milliseconds io_timeout{5000};  // per request read and per response write
  std::size_t max_connections = 32;   // further connections are closed at once
};

struct HealthReport {
  bool healthy = true;
  std::string reason;  // shown in the 503 body, e.g. "no slice committed for 12 s"
};

class HttpServer {
public:
  using StatusProvider = std::function<std::string()>;  // returns a JSON document
  using HealthProbe = std::function<HealthReport()>;

  // The callbacks run on the server's io thread and must be thread-safe with the pipeline.
  // An exception from a callback becomes a 500 reply.
  HttpServer(HttpServerOptions options, MetricsRegistry& registry, StatusProvider status, HealthProbe health);
  ~HttpServer();  // stops
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds, listens and starts the io thread. Throws std::system_error naming the address on
  // failure ("cannot listen for HTTP on 127.0.0.1:9560: Address already in use").
  void start();
  // Closes the listener and every open connection; returns within about two seconds even if a
  // client misbehaves. Idempotent. A stopped server cannot be started again.
  void stop();

  [[nodiscard]] std::uint16_t port() const;  // the bound port (after start)
  [[nodiscard]] std::string url() const;     // e.g. "http://127.0.0.1:9560"

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shoredaq::firmware
