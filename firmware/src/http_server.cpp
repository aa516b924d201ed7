#include "shoredaq/firmware/http_server.hpp"

#include "shoredaq/firmware/metrics.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <future>
#include <map>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <thread>

namespace shoredaq::firmware {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr std::uint32_t max_header_bytes = 8 * 1024;
constexpr std::uint64_t max_body_bytes = 4 * 1024;  // we serve GETs; a body is never needed
constexpr auto stop_grace = std::chrono::seconds(2);

using Response = http::response<http::string_body>;

Response make_response(http::status status, std::string_view content_type, std::string body,
                       unsigned version = 11, bool keep_alive = false) {
  Response res{status, version};
  res.set(http::field::server, "shoredaq");
  res.set(http::field::content_type, beast::string_view(content_type.data(), content_type.size()));
  res.set(http::field::cache_control, "no-store");
  // The live page and its scripts come from this server only: nothing leaves the node.
  res.set("Content-Security-Policy", "default-src 'self'");
  res.set("X-Content-Type-Options", "nosniff");
  res.keep_alive(keep_alive);
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

}  // namespace

struct HttpServer::Impl {
  class Session;

  Impl(HttpServerOptions opts, MetricsRegistry& reg, StatusProvider status_cb, HealthProbe health_cb,
       std::vector<HttpRoute> extra_routes)
      : options(std::move(opts)), registry(reg), status(std::move(status_cb)), health(std::move(health_cb)) {
    for (auto& r : extra_routes) {
      std::string path = r.path;
      routes.insert_or_assign(std::move(path), std::move(r));
    }
  }

  void start();
  void stop();
  void accept();
  void close_all();
  // Closes the connection that has waited longest for a request; false when every one is busy.
  bool evict_longest_waiting();
  Response handle(const http::request<http::string_body>& req);
  void count(std::string_view path, unsigned code);
  void count_connection(const char* outcome);

  HttpServerOptions options;
  MetricsRegistry& registry;
  StatusProvider status;
  HealthProbe health;
  std::map<std::string, HttpRoute, std::less<>> routes;

  std::thread thread;
  std::future<void> finished;
  std::uint16_t bound_port = 0;
  bool started = false;
  bool stopped = false;
  std::mutex lifecycle_mutex;

  // Touched only on the io thread.
  std::map<Session*, std::weak_ptr<Session>> sessions;
  bool closing = false;

  // Declared last: destroyed first, so pending handlers (and the sessions they own) go away
  // before anything they refer to.
  asio::io_context io;
  std::optional<tcp::acceptor> acceptor;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
};

class HttpServer::Impl::Session : public std::enable_shared_from_this<Session> {
public:
  Session(tcp::socket socket, Impl& server) : stream_(std::move(socket)), server_(server) {}

  void start() {
    server_.sessions[this] = weak_from_this();
    read();
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
  }

  // Waiting for (the rest of) a request since this time; nullopt while a request is answered.
  std::optional<std::chrono::steady_clock::time_point> waiting_since() const { return waiting_since_; }

private:
  void read() {
    parser_.emplace();
    parser_->header_limit(max_header_bytes);
    parser_->body_limit(max_body_bytes);
    waiting_since_ = std::chrono::steady_clock::now();
    stream_.expires_after(server_.options.request_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    waiting_since_.reset();
    if (ec == beast::error::timeout) server_.count_connection("timed_out");
    // The client went away (possibly mid-request) or we are shutting down: nobody to answer.
    if (ec == http::error::end_of_stream || ec == http::error::partial_message || ec == beast::error::timeout || ec == asio::error::operation_aborted ||
        ec == asio::error::connection_reset || ec == asio::error::eof || server_.closing) {
      finish();
      return;
    }
    if (ec) {
      // Malformed request line or headers, oversized header or body: answer and hang up.
      server_.count("invalid", 400);
      write(make_response(http::status::bad_request, "text/plain; charset=utf-8",
                          fmt::format("bad request: {}\n", ec.message())));
      return;
    }
    write(server_.handle(parser_->get()));
  }

  void write(Response response) {
    response_ = std::move(response);
    stream_.expires_after(server_.options.write_timeout);
    http::async_write(stream_, response_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->on_write(ec);
    });
  }

  void on_write(beast::error_code ec) {
    if (ec || !response_.keep_alive() || server_.closing) {
      finish();
      return;
    }
    read();
  }

  void finish() {
    close();
    server_.sessions.erase(this);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Response response_;
  Impl& server_;
  std::optional<std::chrono::steady_clock::time_point> waiting_since_;
};

void HttpServer::Impl::count(std::string_view path, unsigned code) {
  registry
      .counter("shoredaq_http_requests_total", "HTTP requests served, by path and status code",
               {{"path", std::string(path)}, {"code", std::to_string(code)}})
      .inc();
}

void HttpServer::Impl::count_connection(const char* outcome) {
  registry
      .counter("shoredaq_http_connections_total",
               "HTTP connections: accepted; refused (every slot busy answering); evicted (closed while "
               "waiting for a request, to make room); timed_out (no whole request in time)",
               {{"outcome", outcome}})
      .inc();
}

bool HttpServer::Impl::evict_longest_waiting() {
  std::shared_ptr<Session> oldest;
  std::chrono::steady_clock::time_point oldest_since{};
  for (auto& [raw, weak] : sessions) {
    auto session = weak.lock();
    if (!session) continue;
    const auto since = session->waiting_since();
    if (since && (!oldest || *since < oldest_since)) {
      oldest = session;
      oldest_since = *since;
    }
  }
  if (!oldest) return false;
  oldest->close();  // its pending read completes with an error and the session removes itself
  sessions.erase(oldest.get());
  count_connection("evicted");
  return true;
}

Response HttpServer::Impl::handle(const http::request<http::string_body>& req) {
  const unsigned version = req.version();
  const bool keep_alive = req.keep_alive();
  const std::string_view target(req.target().data(), req.target().size());
  const std::string_view path = target.substr(0, target.find('?'));
  const bool head = req.method() == http::verb::head;

  auto reply = [&](std::string_view counted_path, http::status status, std::string_view type, std::string body) {
    Response res = make_response(status, type, std::move(body), version, keep_alive);
    if (head) {
      // Same headers as GET (Content-Length included), no body.
      const auto length = res.body().size();
      res.body().clear();
      res.content_length(length);
    }
    count(counted_path, static_cast<unsigned>(status));
    return res;
  };

  const auto route = routes.find(path);
  const bool known =
      path == "/metrics" || path == "/status" || path == "/healthz" || path == "/" || route != routes.end();
  if (!known) {
    return reply("other", http::status::not_found, "text/plain; charset=utf-8", "not found; try /, /metrics, /status, /healthz\n");
  }
  if (req.method() != http::verb::get && !head) {
    Response res = reply(path, http::status::method_not_allowed, "text/plain; charset=utf-8", "only GET and HEAD\n");
    res.set(http::field::allow, "GET, HEAD");
    return res;
  }
  try {
    if (route != routes.end()) {
      return reply(path, http::status::ok, route->second.content_type, route->second.body());
    }
    if (path == "/metrics") {
      return reply(path, http::status::ok, MetricsRegistry::content_type, registry.render_prometheus());
    }
    if (path == "/status") {
      return reply(path, http::status::ok, "application/json", status ? status() : std::string("{}"));
    }
    if (path == "/healthz") {
      const HealthReport report = health ? health() : HealthReport{};
      if (report.healthy) {
        return reply(path, http::status::ok, "text/plain; charset=utf-8", "ok\n");
      }
      return reply(path, http::status::service_unavailable, "text/plain; charset=utf-8",
                   (report.reason.empty() ? std::string("unhealthy") : report.reason) + "\n");
    }
    return reply(path, http::status::ok, "text/plain; charset=utf-8", "shoredaq: /metrics /status /healthz\n");
  } catch (const std::exception& e) {
    spdlog::warn("http: {} failed: {}", path, e.what());
    return reply(path, http::status::internal_server_error, "text/plain; charset=utf-8",
                 fmt::format("{} failed: {}\n", path, e.what()));
  }
}

void HttpServer::Impl::accept() {
  acceptor->async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || closing) {
      return;
    }
    if (!ec) {
      // Full: an idle client must not lock out the next probe, so the longest-waiting connection
      // makes room; only when every slot is busy answering is the new one shed.
      if (sessions.size() >= options.max_connections && !evict_longest_waiting()) {
        beast::error_code ignored;
        socket.close(ignored);
        count_connection("refused");
      } else {
        count_connection("accepted");
        std::make_shared<Session>(std::move(socket), *this)->start();
      }
    }
    accept();
  });
}

void HttpServer::Impl::close_all() {
  closing = true;
  beast::error_code ec;
  if (acceptor) {
    acceptor->close(ec);
  }
  auto open = sessions;
  for (auto& [raw, weak] : open) {
    if (auto session = weak.lock()) {
      session->close();
    }
  }
  sessions.clear();
}

void HttpServer::Impl::start() {
  std::lock_guard lock(lifecycle_mutex);
  if (started) {
    throw std::logic_error("HttpServer::start called twice");
  }
  beast::error_code ec;
  const auto address = asio::ip::make_address(options.address, ec);
  if (ec) {
    throw std::invalid_argument(fmt::format("invalid HTTP listen address '{}': {}", options.address, ec.message()));
  }
  const tcp::endpoint endpoint{address, options.port};
  const std::string where = fmt::format("{}:{}", options.address, options.port);
  acceptor.emplace(io);
  auto check = [&](const char* what) {
    if (ec) {
      throw std::system_error(ec, fmt::format("cannot {} for HTTP on {}", what, where));
    }
  };
  acceptor->open(endpoint.protocol(), ec);
  check("open a socket");
  acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  check("set SO_REUSEADDR");
  acceptor->bind(endpoint, ec);
  check("listen");
  acceptor->listen(asio::socket_base::max_listen_connections, ec);
  check("listen");
  bound_port = acceptor->local_endpoint().port();
  work.emplace(asio::make_work_guard(io));
  accept();
  std::promise<void> done;
  finished = done.get_future();
  thread = std::thread([this, done = std::move(done)]() mutable {
    try {
      io.run();
    } catch (const std::exception& e) {
      spdlog::error("http: io thread failed: {}", e.what());
    }
    done.set_value();
  });
  started = true;
  spdlog::info("http: serving /metrics /status /healthz on http://{}:{}", options.address, bound_port);
}

void HttpServer::Impl::stop() {
  std::lock_guard lock(lifecycle_mutex);
  if (!started || stopped) {
    stopped = true;
    return;
  }
  stopped = true;
  asio::post(io, [this] { close_all(); });
  work.reset();
  // Normally run() returns as soon as the aborted operations have completed; a callback stuck
  // in the daemon must not hold up the shutdown for longer than the grace period.
  if (finished.wait_for(stop_grace) != std::future_status::ready) {
    spdlog::warn("http: connections did not close within {} s, abandoning them", stop_grace.count());
    io.stop();
  }
  thread.join();
}

HttpServer::HttpServer(HttpServerOptions options, MetricsRegistry& registry, StatusProvider status, HealthProbe health,
                       std::vector<HttpRoute> routes)
    : impl_(std::make_unique<Impl>(std::move(options), registry, std::move(status), std::move(health), std::move(routes))) {}

HttpServer::~HttpServer() { stop(); }

void HttpServer::start() { impl_->start(); }
void HttpServer::stop() { impl_->stop(); }
std::uint16_t HttpServer::port() const { return impl_->bound_port; }
std::string HttpServer::url() const {
  const bool v6 = impl_->options.address.find(':') != std::string::npos;
  return v6 ? fmt::format("http://[{}]:{}", impl_->options.address, impl_->bound_port)
            : fmt::format("http://{}:{}", impl_->options.address, impl_->bound_port);
}

}  // namespace shoredaq::firmware
