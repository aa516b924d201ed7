// HttpServer on loopback, driven by a raw-socket client so malformed requests can be sent too.
#include "shoredaq/firmware/http_server.hpp"

#include "shoredaq/firmware/metrics.hpp"
#include "metrics_text_parser.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using shoredaq::firmware::HealthReport;
using shoredaq::firmware::HttpServer;
using shoredaq::firmware::HttpServerOptions;
using shoredaq::firmware::MetricsRegistry;

namespace {

// Blocking loopback client with a receive deadline.
class RawClient {
public:
  explicit RawClient(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      throw std::system_error(errno, std::generic_category(), "connect");
    }
  }
  ~RawClient() { ::close(fd_); }

  void send(const std::string& bytes) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return;  // the server may hang up on garbage; the reply tells
      sent += static_cast<std::size_t>(n);
    }
  }

  // Reads until the peer closes, or until `complete(received)` is true, or the deadline.
  std::string receive(std::chrono::milliseconds deadline = 5000ms,
                      const std::function<bool(const std::string&)>& complete = {}) {
    std::string out;
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (std::chrono::steady_clock::now() < until) {
      if (complete && complete(out)) break;
      pollfd pfd{fd_, POLLIN, 0};
      if (::poll(&pfd, 1, 50) <= 0) continue;
      char buffer[8192];
      const ssize_t n = ::recv(fd_, buffer, sizeof(buffer), 0);
      if (n <= 0) {
        closed_ = true;
        break;
      }
      out.append(buffer, static_cast<std::size_t>(n));
    }
    return out;
  }
  bool peer_closed() const { return closed_; }

private:
  int fd_ = -1;
  bool closed_ = false;
};

struct Reply {
  int code = 0;
  std::string headers;
  std::string body;
};

Reply parse_reply(const std::string& raw) {
  Reply r;
  if (raw.rfind("HTTP/1.1 ", 0) != 0 || raw.size() < 12) return r;
  r.code = std::stoi(raw.substr(9, 3));
  const auto end = raw.find("\r\n\r\n");
  r.headers = raw.substr(0, end);
  if (end != std::string::npos) r.body = raw.substr(end + 4);
  return r;
}

Reply get(std::uint16_t port, const std::string& target, const std::string& method = "GET") {
  RawClient client(port);
  client.send(method + " " + target + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
  return parse_reply(client.receive());
}

struct HttpServerTest : ::testing::Test {
  MetricsRegistry registry;
  std::atomic<bool> healthy{true};
  std::atomic<bool> status_throws{false};
  HttpServerOptions options() {
    HttpServerOptions o;
    o.port = 0;
    return o;
  }
  std::unique_ptr<HttpServer> make_server(HttpServerOptions o, std::vector<shoredaq::firmware::HttpRoute> routes = {}) {
    return std::make_unique<HttpServer>(
        o, registry,
        [this] {
          if (status_throws) throw std::runtime_error("run control not configured");
          return nlohmann::json{{"state", "Running"}, {"run", 42}}.dump();
        },
        [this] { return healthy ? HealthReport{} : HealthReport{false, "no slice committed for 12 s"}; },
        std::move(routes));
  }
};

}  // namespace

TEST_F(HttpServerTest, ServesMetricsAsValidPrometheusText) {
  registry.counter("shoredaq_frames_lost_total", "Frames lost", {{"cause", "late"}}).inc(3);
  auto server = make_server(options());
  server->start();
  ASSERT_NE(server->port(), 0);
  EXPECT_EQ(server->url(), "http://127.0.0.1:" + std::to_string(server->port()));

  Reply r = get(server->port(), "/metrics");
  ASSERT_EQ(r.code, 200) << r.headers;
  EXPECT_NE(r.headers.find("text/plain; version=0.0.4"), std::string::npos) << r.headers;
  auto parsed = shoredaq::test::parse_prometheus_text(r.body);
  EXPECT_TRUE(parsed.errors.empty()) << r.body;
  EXPECT_EQ(parsed.value("shoredaq_frames_lost_total", {{"cause", "late"}}), 3.0);

  // The server counts its own requests; the first /metrics is visible on the second scrape.
  r = get(server->port(), "/metrics?x=1");
  parsed = shoredaq::test::parse_prometheus_text(r.body);
  EXPECT_TRUE(parsed.errors.empty()) << r.body;
  EXPECT_EQ(parsed.value("shoredaq_http_requests_total", {{"path", "/metrics"}, {"code", "200"}}), 1.0);
}

TEST_F(HttpServerTest, ServesStatusJsonFromCallback) {
  auto server = make_server(options());
  server->start();
  Reply r = get(server->port(), "/status");
  ASSERT_EQ(r.code, 200);
  EXPECT_NE(r.headers.find("application/json"), std::string::npos);
  const auto json = nlohmann::json::parse(r.body);
  EXPECT_EQ(json["state"], "Running");
  EXPECT_EQ(json["run"], 42);

  status_throws = true;
  r = get(server->port(), "/status");
  EXPECT_EQ(r.code, 500);
  EXPECT_NE(r.body.find("run control not configured"), std::string::npos);
}

TEST_F(HttpServerTest, HealthzFollowsTheHealthProbe) {
  auto server = make_server(options());
  server->start();
  Reply r = get(server->port(), "/healthz");
  EXPECT_EQ(r.code, 200);
  EXPECT_EQ(r.body, "ok\n");
  healthy = false;
  r = get(server->port(), "/healthz");
  EXPECT_EQ(r.code, 503);
  EXPECT_EQ(r.body, "no slice committed for 12 s\n");
}

TEST_F(HttpServerTest, BadRequestsAreAnsweredAndServerKeepsServing) {
  auto server = make_server(options());
  server->start();
  EXPECT_EQ(get(server->port(), "/nope").code, 404);
  const Reply post = get(server->port(), "/metrics", "POST");
  EXPECT_EQ(post.code, 405);
  EXPECT_NE(post.headers.find("Allow: GET, HEAD"), std::string::npos);

  {
    RawClient garbage(server->port());
    garbage.send(std::string("\x01\x02 not http at all\r\n\r\n", 22));
    EXPECT_EQ(parse_reply(garbage.receive()).code, 400);
    EXPECT_TRUE(garbage.peer_closed());
  }
  {
    RawClient huge(server->port());
    huge.send("GET /metrics HTTP/1.1\r\nX-Filler: " + std::string(20000, 'a') + "\r\n\r\n");
    EXPECT_EQ(parse_reply(huge.receive()).code, 400);
  }
  {
    RawClient body(server->port());
    body.send("GET /status HTTP/1.1\r\nContent-Length: 100000\r\n\r\n" + std::string(100000, 'b'));
    EXPECT_EQ(parse_reply(body.receive()).code, 400);
  }
  {
    RawClient half(server->port());  // connects, sends half a request, hangs up
    half.send("GET /met");
  }
  EXPECT_EQ(get(server->port(), "/healthz").code, 200);
  const auto parsed = shoredaq::test::parse_prometheus_text(get(server->port(), "/metrics").body);
  EXPECT_EQ(parsed.value("shoredaq_http_requests_total", {{"path", "invalid"}, {"code", "400"}}), 3.0);
  EXPECT_EQ(parsed.value("shoredaq_http_requests_total", {{"path", "other"}, {"code", "404"}}), 1.0);
}

TEST_F(HttpServerTest, HeadHasHeadersButNoBody) {
  auto server = make_server(options());
  server->start();
  RawClient client(server->port());
  client.send("HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  const Reply r = parse_reply(client.receive());
  EXPECT_EQ(r.code, 200);
  EXPECT_NE(r.headers.find("Content-Length: 3"), std::string::npos) << r.headers;
  EXPECT_TRUE(r.body.empty());
}

TEST_F(HttpServerTest, ServesTheDaemonsRoutesWithTheirTypeAndOnlyFromItself) {
  int calls = 0;
  auto server = make_server(options(), {{"/", "text/html; charset=utf-8", [] { return std::string("<p>live</p>"); }},
                                        {"/ratemap.json", "application/json", [&calls] {
                                           ++calls;
                                           return std::string(R"({"doms":[]})");
                                         }},
                                        {"/broken.json", "application/json", []() -> std::string {
                                           throw std::runtime_error("no detector");
                                         }}});
  server->start();
  const Reply page = get(server->port(), "/");
  EXPECT_EQ(page.code, 200);
  EXPECT_EQ(page.body, "<p>live</p>");
  EXPECT_NE(page.headers.find("Content-Type: text/html; charset=utf-8"), std::string::npos) << page.headers;
  // The page may load nothing from elsewhere (Chart.js is served here too).
  EXPECT_NE(page.headers.find("Content-Security-Policy: default-src 'self'"), std::string::npos) << page.headers;
  const Reply map = get(server->port(), "/ratemap.json?t=1");  // a query string does not matter
  EXPECT_EQ(map.code, 200);
  EXPECT_EQ(map.body, R"({"doms":[]})");
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(get(server->port(), "/broken.json").code, 500);
  EXPECT_EQ(get(server->port(), "/ratemap.json", "POST").code, 405);
  EXPECT_EQ(get(server->port(), "/static/other.js").code, 404);
  EXPECT_EQ(get(server->port(), "/status").code, 200);  // the built-in paths stay
}

TEST_F(HttpServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  auto server = make_server(options());
  server->start();
  RawClient client(server->port());
  for (int i = 0; i < 3; ++i) {
    client.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    const std::string raw = client.receive(5000ms, [](const std::string& s) { return s.find("ok\n") != std::string::npos; });
    EXPECT_EQ(parse_reply(raw).code, 200) << raw;
    EXPECT_FALSE(client.peer_closed());
  }
}

TEST_F(HttpServerTest, StopIsBoundedWithIdleClientsConnected) {
  auto server = make_server(options());
  server->start();
  RawClient idle(server->port());
  RawClient half(server->port());
  half.send("GET /metr");
  // Make sure both connections were accepted before stopping.
  EXPECT_EQ(get(server->port(), "/healthz").code, 200);
  const auto before = std::chrono::steady_clock::now();
  server->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - before, 3s);
  idle.receive(2000ms);
  EXPECT_TRUE(idle.peer_closed());
  server->stop();  // idempotent
}

TEST_F(HttpServerTest, BusyPortAndBadAddressGiveClearErrors) {
  auto first = make_server(options());
  first->start();
  auto o = options();
  o.port = first->port();
  auto second = make_server(o);
  try {
    second->start();
    FAIL() << "second bind on the same port succeeded";
  } catch (const std::system_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot listen for HTTP on 127.0.0.1:" + std::to_string(o.port)),
              std::string::npos)
        << e.what();
  }
  auto bad = options();
  bad.address = "not-an-ip";
  EXPECT_THROW(make_server(bad)->start(), std::invalid_argument);
}

TEST_F(HttpServerTest, ListensOnIpv6LoopbackWhenConfigured) {
  auto o = options();
  o.address = "::1";
  auto server = make_server(o);
  try {
    server->start();
  } catch (const std::system_error& e) {
    GTEST_SKIP() << "no IPv6 loopback here: " << e.what();
  }
  EXPECT_EQ(server->url(), "http://[::1]:" + std::to_string(server->port()));
  const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_port = htons(server->port());
  addr.sin6_addr = in6addr_loopback;
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const std::string request = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL), static_cast<ssize_t>(request.size()));
  std::string raw;
  pollfd pfd{fd, POLLIN, 0};
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < until && ::poll(&pfd, 1, 50) >= 0) {
    char buffer[1024];
    if ((pfd.revents & POLLIN) == 0) continue;
    const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    raw.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  EXPECT_EQ(parse_reply(raw).code, 200) << raw;
}

// 32 idle connections used to fill every slot: /healthz then answered 3 probes of 43. Now the
// longest-waiting connection makes room, so every probe is answered, and the evictions are counted.
TEST_F(HttpServerTest, IdleConnectionsNeverLockOutAProbe) {
  HttpServerOptions o = options();
  o.max_connections = 8;
  o.request_timeout = 60s;  // the idle clients stay for the whole test unless evicted
  auto server = make_server(o);
  server->start();
  std::vector<std::unique_ptr<RawClient>> idle;
  for (int i = 0; i < 40; ++i) idle.push_back(std::make_unique<RawClient>(server->port()));
  int answered = 0;
  for (int probe = 0; probe < 43; ++probe) {
    idle.push_back(std::make_unique<RawClient>(server->port()));  // keep the pressure on
    if (get(server->port(), "/healthz").code == 200) ++answered;
  }
  EXPECT_EQ(answered, 43);
  const auto text = registry.render_prometheus();
  const auto evicted = text.find("shoredaq_http_connections_total{outcome=\"evicted\"}");
  ASSERT_NE(evicted, std::string::npos) << text;
  EXPECT_EQ(text.find("shoredaq_http_connections_total{outcome=\"refused\"}"), std::string::npos) << text;
  server->stop();
}

// A client that never completes its request is cut off after request_timeout, and counted.
TEST_F(HttpServerTest, SlowRequestIsTimedOut) {
  HttpServerOptions o = options();
  o.request_timeout = 300ms;
  auto server = make_server(o);
  server->start();
  RawClient slow(server->port());
  slow.send("GET /healthz HTTP/1.1\r\nHost: loc");
  slow.receive(10s);  // returns when the server hangs up
  EXPECT_TRUE(slow.peer_closed());
  // The socket closes when the timer fires; the count follows in the read's completion handler.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  const std::string counted = "shoredaq_http_connections_total{outcome=\"timed_out\"} 1";
  while (registry.render_prometheus().find(counted) == std::string::npos && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  EXPECT_NE(registry.render_prometheus().find(counted), std::string::npos) << registry.render_prometheus();
  server->stop();
}
