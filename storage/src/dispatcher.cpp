#include "shoredaq/storage/dispatcher.hpp"

#include <deque>
#include <map>
#include <set>
#include <thread>

#include <utility>  // before Asio: Boost 1.74 awaitable.hpp needs std::exchange
#include <boost/asio.hpp>
#include <spdlog/spdlog.h>

#include "shoredaq/formats/online_format.hpp"

namespace shoredaq::storage {

namespace asio = boost::asio;
using asio::ip::tcp;

std::string encode_controlhost_message(std::string_view tag, std::span<const std::uint8_t> payload) {
  std::string m(kControlHostPrefixBytes + payload.size(), '\0');
  std::copy_n(tag.data(), std::min(tag.size(), kControlHostTagBytes), m.begin());
  const auto n = static_cast<std::uint32_t>(payload.size());
  m[8] = static_cast<char>(n >> 24);
  m[9] = static_cast<char>(n >> 16);
  m[10] = static_cast<char>(n >> 8);
  m[11] = static_cast<char>(n);
  std::copy(payload.begin(), payload.end(), m.begin() + kControlHostPrefixBytes);
  return m;
}

namespace {

std::string tag_of(const std::uint8_t* p) {
  std::string tag(reinterpret_cast<const char*>(p), kControlHostTagBytes);
  tag.erase(std::find(tag.begin(), tag.end(), '\0'), tag.end());
  return tag;
}

}  // namespace

struct Dispatcher::Impl {
  struct Session : std::enable_shared_from_this<Session> {
    Session(Impl& owner, tcp::socket s) : impl(owner), socket(std::move(s)) {}
    Impl& impl;
    tcp::socket socket;
    std::array<std::uint8_t, kControlHostPrefixBytes> prefix{};
    std::vector<std::uint8_t> body;
    std::map<std::string, bool> tags;  // tag -> "all" (true) or "any" (false)
    bool ready = false;                // _Always received
    std::deque<std::shared_ptr<const std::string>> queue;
    std::size_t queued_bytes = 0;
    bool writing = false;

    void start() { read_prefix(); }

    void read_prefix() {
      asio::async_read(socket, asio::buffer(prefix), [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
        if (ec) return self->close();
        const std::uint32_t n = (std::uint32_t{self->prefix[8]} << 24) | (std::uint32_t{self->prefix[9]} << 16) |
                                (std::uint32_t{self->prefix[10]} << 8) | std::uint32_t{self->prefix[11]};
        if (n > self->impl.config.max_client_message_bytes) {
          ++self->impl.counters.bad_client_messages;
          spdlog::warn("dispatcher: client message of {} bytes refused, disconnecting", n);
          return self->close();
        }
        self->body.resize(n);
        asio::async_read(self->socket, asio::buffer(self->body), [self](boost::system::error_code ec2, std::size_t) {
          if (ec2) return self->close();
          self->handle(tag_of(self->prefix.data()));
          self->read_prefix();
        });
      });
    }

    // " w TAG a TAG2 ..." : pairs of mode and tag separated by blanks.
    void handle(const std::string& tag) {
      if (tag == "_Subscri") {
        std::string text(body.begin(), body.end());
        std::size_t pos = 0;
        auto word = [&]() {
          while (pos < text.size() && text[pos] == ' ') ++pos;
          const std::size_t start = pos;
          while (pos < text.size() && text[pos] != ' ') ++pos;
          return text.substr(start, pos - start);
        };
        for (;;) {
          const std::string mode = word();
          if (mode.empty()) break;
          const std::string t = word();
          if ((mode != "w" && mode != "a") || t.empty() || t.size() > kControlHostTagBytes) {
            ++impl.counters.bad_client_messages;
            break;
          }
          tags[t] = tags[t] || mode == "a";
        }
      } else if (tag == "_Always") {
        if (!ready) ++impl.counters.subscriptions;
        ready = true;
      }
      // Other tags from clients (publishing to the node) are not served: ignored.
    }

    void enqueue(const std::string& tag, const std::shared_ptr<const std::string>& message) {
      if (!ready) return;
      const auto it = tags.find(tag);
      if (it == tags.end()) return;
      const std::size_t limit = it->second ? impl.config.max_queue_bytes_all : impl.config.max_queue_bytes_any;
      if (queued_bytes + message->size() > limit) {
        ++impl.counters.messages_dropped;
        return;
      }
      queue.push_back(message);
      queued_bytes += message->size();
      ++impl.counters.messages_queued;
      if (!writing) write_next();
    }

    void write_next() {
      if (queue.empty()) {
        writing = false;
        return;
      }
      writing = true;
      auto message = queue.front();
      asio::async_write(socket, asio::buffer(*message), [self = shared_from_this(), message](boost::system::error_code ec, std::size_t n) {
        if (ec) return self->close();
        self->impl.counters.bytes_sent += n;
        self->queued_bytes -= message->size();
        self->queue.pop_front();
        self->write_next();
      });
    }

    void close() {
      if (!socket.is_open()) return;
      boost::system::error_code ignored;
      socket.shutdown(tcp::socket::shutdown_both, ignored);
      socket.close(ignored);
      --impl.counters.clients_connected;
      impl.sessions.erase(shared_from_this());
    }
  };

  explicit Impl(DispatcherConfig c) : config(std::move(c)), acceptor(io) {
    const tcp::endpoint endpoint(asio::ip::make_address(config.address), config.port);
    acceptor.open(endpoint.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen();
    bound_port = acceptor.local_endpoint().port();
    accept();
    thread = std::thread([this] { io.run(); });
  }

  void accept() {
    acceptor.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) {
        if (sessions.size() >= config.max_clients) {
          ++counters.clients_refused;
          boost::system::error_code ignored;
          socket.close(ignored);
        } else {
          socket.set_option(tcp::no_delay(true));
          auto session = std::make_shared<Session>(*this, std::move(socket));
          sessions.insert(session);
          ++counters.clients_accepted;
          ++counters.clients_connected;
          session->start();
        }
      }
      accept();
    });
  }

  void publish(std::string tag, std::shared_ptr<const std::string> message) {
    ++counters.messages_published;
    asio::post(io, [this, tag = std::move(tag), message = std::move(message)] {
      // Copy: a failing write may erase a session while we iterate.
      const auto current = sessions;
      for (const auto& s : current) s->enqueue(tag, message);
    });
  }

  DispatcherConfig config;
  asio::io_context io;
  tcp::acceptor acceptor;
  std::uint16_t bound_port = 0;
  std::set<std::shared_ptr<Session>> sessions;  // touched only on the I/O thread
  DispatcherCounters counters;
  std::thread thread;
};

Dispatcher::Dispatcher(DispatcherConfig config) : impl_(std::make_unique<Impl>(std::move(config))) {}

Dispatcher::~Dispatcher() {
  asio::post(impl_->io, [impl = impl_.get()] {
    boost::system::error_code ignored;
    impl->acceptor.close(ignored);
    const auto current = impl->sessions;
    for (const auto& s : current) s->close();
  });
  impl_->thread.join();  // returns once every handler has finished
}

std::uint16_t Dispatcher::port() const noexcept { return impl_->bound_port; }
const DispatcherCounters& Dispatcher::counters() const noexcept { return impl_->counters; }

void Dispatcher::publish(std::string_view tag, std::span<const std::uint8_t> payload) {
  impl_->publish(std::string(tag.substr(0, kControlHostTagBytes)),
                 std::make_shared<const std::string>(encode_controlhost_message(tag, payload)));
}

void Dispatcher::publish_event(const dataflow::Event& event) {
  std::vector<std::uint8_t> bytes;
  dataflow::encode_online_event(event, bytes);
  publish("IO_EVT", bytes);
}

void Dispatcher::publish_summary(const dataflow::SummarySlice& summary) {
  std::vector<std::uint8_t> bytes;
  dataflow::encode_online_summary_slice(summary, bytes);
  publish("IO_SUM", bytes);
}

void Dispatcher::publish_l1_timeslice(const dataflow::Timeslice& timeslice) {
  std::vector<std::uint8_t> bytes;
  dataflow::encode_online_timeslice(timeslice, dataflow::TimesliceKind::L1, bytes);
  publish("IO_TSL1", bytes);
}

void Dispatcher::publish_log(std::string_view line) {
  publish("MSG", std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(line.data()), line.size()));
}

}  // namespace shoredaq::storage
