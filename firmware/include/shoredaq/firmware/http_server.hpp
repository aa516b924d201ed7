#pragma once
// The node's small HTTP endpoint (Boost.Beast on its own io thread):
//   GET /metrics  Prometheus text from the MetricsRegistry
//   GET /status   JSON document supplied by the daemon (state, run, rates, last error, …)
//   GET /healthz  200 "ok" while the pipeline makes progress, 503 with the reason otherwise
//   GET <route>   any further path the daemon adds (HttpRoute): the live page at /, its files, /ratemap.json
// Every response says Content-Security-Policy: default-src 'self', so a page served here loads
// nothing from anywhere else. Loopback only unless configured. Bad requests get 400/404/405 and never take the server down.
// Idle clients cannot lock out a probe: every connection must deliver a whole request within
// request_timeout, and when all max_connections slots are taken, the connection that has waited
// longest for its request is closed to make room (one that is being answered never is). Refused
// and evicted connections are counted (shoredaq_http_connections_total{outcome}).

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace shoredaq::firmware {

class MetricsRegistry;

struct HttpServerOptions {
  std::string address = "127.0.0.1";  // IPv4 or IPv6 literal; "0.0.0.0" exposes it to the network
  std::uint16_t port = 9560;          // 0: the kernel picks a free port (tests); see HttpServer::port()
  std::chrono::milliseconds request_timeout{5000};  // a connection's next request, headers included
  std::chrono::milliseconds write_timeout{5000};    // one response
  std::size_t max_connections = 256;  // open connections; see above for what happens beyond
};

struct HealthReport {
  bool healthy = true;
  std::string reason;  // shown in the 503 body, e.g. "no slice committed for 12 s"
};

// A further GET (and HEAD) path, matched exactly; the body is made per request on the io thread.
struct HttpRoute {
  std::string path;          // e.g. "/ratemap.json"
  std::string content_type;  // e.g. "application/json"
  std::function<std::string()> body;
};

class HttpServer {
public:
  using StatusProvider = std::function<std::string()>;  // returns a JSON document
  using HealthProbe = std::function<HealthReport()>;

  // The callbacks run on the server's io thread and must be thread-safe with the pipeline.
  // An exception from a callback becomes a 500 reply.
  HttpServer(HttpServerOptions options, MetricsRegistry& registry, StatusProvider status, HealthProbe health,
             std::vector<HttpRoute> routes = {});
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
