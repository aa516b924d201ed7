#include "shoredaq/storage/dispatcher.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include <utility>  // before Asio: Boost 1.74 awaitable.hpp needs std::exchange
#include <boost/asio.hpp>
#include <spdlog/spdlog.h>

#include "shoredaq/dataflow/rate_limited_log.hpp"
#include "shoredaq/formats/online_format.hpp"

namespace shoredaq::storage {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

constexpr std::array<std::string_view, kDispatchTags> kTagNames{"IO_EVT",  "IO_SUM",   "IO_TSL0", "IO_TSL1", "IO_TSL2",
                                                               "IO_TSSN", "IO_MONIT", "MSG",     ""};
// Messages handed to one write(2): fewer system calls for the many small ones (IO_MONIT, MSG).
constexpr std::size_t kMaxMessagesPerWrite = 64;

std::size_t index_of(DispatchTag tag) noexcept { return static_cast<std::size_t>(tag); }

std::string tag_of(const std::uint8_t* p) {
  std::string tag(reinterpret_cast<const char*>(p), kControlHostTagBytes);
  tag.erase(std::find(tag.begin(), tag.end(), '\0'), tag.end());
  return tag;
}

bool parse_prefix_bits(std::string_view text, unsigned max_bits, unsigned& bits) {
  if (text.empty() || text.size() > 3) return false;
  unsigned value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value > max_bits) return false;
  bits = value;
  return true;
}

}  // namespace

std::string_view controlhost_tag(DispatchTag tag) noexcept { return kTagNames[index_of(tag)]; }

DispatchTag dispatch_tag_of(std::string_view tag) noexcept {
  for (std::size_t i = 0; i + 1 < kDispatchTags; ++i) {
    if (kTagNames[i] == tag) return static_cast<DispatchTag>(i);
  }
  return DispatchTag::Other;
}

std::optional<DispatchTag> dispatch_tag_of(dataflow::TimesliceKind kind) noexcept {
  switch (kind) {
    case dataflow::TimesliceKind::L0: return DispatchTag::TimesliceL0;
    case dataflow::TimesliceKind::L1: return DispatchTag::TimesliceL1;
    case dataflow::TimesliceKind::L2: return DispatchTag::TimesliceL2;
    case dataflow::TimesliceKind::SN: return DispatchTag::TimesliceSN;
    case dataflow::TimesliceKind::Error: break;
  }
  return std::nullopt;
}

std::optional<ClientNetwork> ClientNetwork::parse(std::string_view text) {
  const std::size_t slash = text.find('/');
  const std::string host(text.substr(0, slash));
  ClientNetwork n;
  if (::inet_pton(AF_INET, host.c_str(), n.address.data()) == 1) {
    n.ipv6 = false;
    n.prefix_bits = 32;
  } else if (::inet_pton(AF_INET6, host.c_str(), n.address.data()) == 1) {
    n.ipv6 = true;
    n.prefix_bits = 128;
  } else {
    return std::nullopt;
  }
  if (slash != std::string_view::npos && !parse_prefix_bits(text.substr(slash + 1), n.prefix_bits, n.prefix_bits)) {
    return std::nullopt;
  }
  // Host bits beyond the prefix do not matter: cleared so to_string() shows the network.
  const std::size_t bytes = n.ipv6 ? 16 : 4;
  for (std::size_t i = 0; i < bytes; ++i) {
    const unsigned first_bit = static_cast<unsigned>(i) * 8;
    if (first_bit >= n.prefix_bits) {
      n.address[i] = 0;
    } else if (n.prefix_bits - first_bit < 8) {
      n.address[i] &= static_cast<std::uint8_t>(0xff << (8 - (n.prefix_bits - first_bit)));
    }
  }
  return n;
}

bool ClientNetwork::contains(std::span<const std::uint8_t> client, bool client_ipv6) const noexcept {
  static constexpr std::uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (client_ipv6 && client.size() == 16 && std::equal(client.begin(), client.begin() + 12, kMappedPrefix)) {
    client = client.subspan(12);  // an IPv4 client on an IPv6 socket
    client_ipv6 = false;
  }
  if (client_ipv6 != ipv6 || client.size() != (ipv6 ? 16u : 4u)) return false;
  for (unsigned bit = 0; bit < prefix_bits; ++bit) {
    const unsigned byte = bit / 8, shift = 7 - bit % 8;
    if (((client[byte] >> shift) & 1u) != ((address[byte] >> shift) & 1u)) return false;
  }
  return true;
}

std::string ClientNetwork::to_string() const {
  char text[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(ipv6 ? AF_INET6 : AF_INET, address.data(), text, sizeof text);
  return std::string(text) + "/" + std::to_string(prefix_bits);
}

std::vector<ClientNetwork> parse_client_networks(const std::vector<std::string>& cidrs) {
  std::vector<ClientNetwork> out;
  for (const auto& text : cidrs) {
    const auto n = ClientNetwork::parse(text);
    if (!n) throw std::invalid_argument("'" + text + "' is not an address or a network (CIDR, e.g. 10.1.0.0/16)");
    out.push_back(*n);
  }
  return out;
}

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

struct Dispatcher::Impl {
  using Message = std::shared_ptr<const std::string>;

  struct Session : std::enable_shared_from_this<Session> {
    Session(Impl& owner, tcp::socket s) : impl(owner), socket(std::move(s)) {}
    Impl& impl;
    tcp::socket socket;
    std::array<std::uint8_t, kControlHostPrefixBytes> prefix{};
    std::vector<std::uint8_t> body;
    std::map<std::string, bool> tags;  // tag -> "all" (true) or "any" (false)
    bool ready = false;                // _Always received
    bool closed = false;
    std::vector<DispatchTag> counted;  // tags this client adds to subscribers_per_tag
    std::deque<Message> queue;
    std::size_t queued_bytes = 0;
    std::size_t in_flight = 0;  // messages of the running write (the front of the queue)
    std::vector<asio::const_buffer> buffers;

    void start() { read_prefix(); }

    void read_prefix() {
      asio::async_read(socket, asio::buffer(prefix), [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
        if (ec) return self->close();
        const std::uint32_t n = (std::uint32_t{self->prefix[8]} << 24) | (std::uint32_t{self->prefix[9]} << 16) |
                                (std::uint32_t{self->prefix[10]} << 8) | std::uint32_t{self->prefix[11]};
        if (n > self->impl.config.max_client_message_bytes) {
          ++self->impl.counters.bad_client_messages;
          self->impl.log.log(spdlog::level::warn, "client_message_too_large",
                             "dispatcher: client message of {} bytes refused, disconnecting", n);
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
        if (ready) recount();  // a ready client may change its subscriptions
      } else if (tag == "_Always") {
        if (!ready) ++impl.counters.subscriptions;
        ready = true;
        recount();
      }
      // Other tags from clients (publishing to the node) are not served: ignored.
    }

    void uncount() {
      for (const DispatchTag t : counted) --impl.counters.subscribers_per_tag[index_of(t)];
      counted.clear();
    }

    void recount() {
      uncount();
      for (const auto& [name, all] : tags) {
        const DispatchTag t = dispatch_tag_of(name);
        if (t == DispatchTag::Other) continue;
        ++impl.counters.subscribers_per_tag[index_of(t)];
        counted.push_back(t);
      }
    }

    void enqueue(const std::string& tag, const Message& message) {
      if (!ready || closed) return;
      const auto it = tags.find(tag);
      if (it == tags.end()) return;
      const bool all = it->second;
      const std::size_t limit = all ? impl.config.max_queue_bytes_all : impl.config.max_queue_bytes_any;
      if (queued_bytes + message->size() > limit) {
        ++impl.counters.messages_dropped;
        if (all && impl.config.disconnect_slow_all_clients) {
          ++impl.counters.clients_disconnected_slow;
          impl.log.log(spdlog::level::warn, "slow_client",
                       "dispatcher: a client subscribed to all {} messages fell {} bytes behind: disconnected", tag,
                       queued_bytes);
          close();
        }
        return;
      }
      queue.push_back(message);
      queued_bytes += message->size();
      ++impl.counters.messages_queued;
      if (in_flight == 0) write_next();
    }

    void write_next() {
      in_flight = std::min(queue.size(), kMaxMessagesPerWrite);
      if (in_flight == 0) return;
      buffers.clear();
      for (std::size_t i = 0; i < in_flight; ++i) buffers.push_back(asio::buffer(*queue[i]));
      asio::async_write(socket, buffers, [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
        if (ec) return self->close();
        self->impl.counters.bytes_sent += n;
        for (std::size_t i = 0; i < self->in_flight; ++i) {
          self->queued_bytes -= self->queue.front()->size();
          self->queue.pop_front();
        }
        self->write_next();
      });
    }

    void close() {
      if (closed) return;
      closed = true;
      uncount();
      boost::system::error_code ignored;
      socket.shutdown(tcp::socket::shutdown_both, ignored);
      socket.close(ignored);
      --impl.counters.clients_connected;
      impl.sessions.erase(shared_from_this());
    }
  };

  explicit Impl(DispatcherConfig c) : config(std::move(c)), acceptor(io) {
    networks = parse_client_networks(config.allowed_networks);
    const auto listen_address = asio::ip::make_address(config.address);
    if (networks.empty() && !listen_address.is_loopback()) {
      throw std::invalid_argument("dispatcher: address " + config.address +
                                  " is not loopback: allowed_networks must list the client networks");
    }
    const tcp::endpoint endpoint(listen_address, config.port);
    acceptor.open(endpoint.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen();
    bound_port = acceptor.local_endpoint().port();
    accept();
    thread = std::thread([this] { io.run(); });
  }

  bool allowed(const tcp::socket& socket) const {
    if (networks.empty()) return true;
    boost::system::error_code ec;
    const auto remote = socket.remote_endpoint(ec);
    if (ec) return false;
    const auto address = remote.address();
    if (address.is_v4()) {
      const auto bytes = address.to_v4().to_bytes();
      return std::any_of(networks.begin(), networks.end(), [&](const ClientNetwork& n) { return n.contains(bytes, false); });
    }
    const auto bytes = address.to_v6().to_bytes();
    return std::any_of(networks.begin(), networks.end(), [&](const ClientNetwork& n) { return n.contains(bytes, true); });
  }

  void accept() {
    acceptor.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) {
        boost::system::error_code ignored;
        if (!allowed(socket)) {
          ++counters.clients_refused_network;
          const auto remote = socket.remote_endpoint(ignored);
          log.log(spdlog::level::warn, "client_not_allowed", "dispatcher: connection from {} refused (not in allowed_networks)",
                  remote.address().to_string(ignored));
          socket.close(ignored);
        } else if (sessions.size() >= config.max_clients) {
          ++counters.clients_refused;
          socket.close(ignored);
        } else {
          socket.set_option(tcp::no_delay(true), ignored);
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

  void publish(std::string tag, Message message) {
    ++counters.messages_published;
    ++counters.published_per_tag[index_of(dispatch_tag_of(tag))];
    {
      std::lock_guard lock(backlog_mutex);
      if (backlog_bytes + message->size() > config.max_backlog_bytes) {
        ++counters.messages_dropped_backlog;
        return;
      }
      backlog_bytes += message->size();
      backlog.emplace_back(std::move(tag), std::move(message));
      if (drain_posted) return;
      drain_posted = true;
    }
    asio::post(io, [this] { drain(); });
  }

  // On the I/O thread: hands the backlog to the clients' queues.
  void drain() {
    std::deque<std::pair<std::string, Message>> batch;
    {
      std::lock_guard lock(backlog_mutex);
      batch.swap(backlog);
      backlog_bytes = 0;
      drain_posted = false;
    }
    // A copy: a slow client may be closed (erased) while we go.
    const std::vector<std::shared_ptr<Session>> current(sessions.begin(), sessions.end());
    for (const auto& [tag, message] : batch) {
      for (const auto& s : current) s->enqueue(tag, message);
    }
  }

  DispatcherConfig config;
  std::vector<ClientNetwork> networks;
  dataflow::RateLimitedLog log;
  asio::io_context io;
  tcp::acceptor acceptor;
  std::uint16_t bound_port = 0;
  std::set<std::shared_ptr<Session>> sessions;  // touched only on the I/O thread
  DispatcherCounters counters;
  std::mutex backlog_mutex;  // guards the three below
  std::deque<std::pair<std::string, Message>> backlog;
  std::size_t backlog_bytes = 0;
  bool drain_posted = false;
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

DispatcherSnapshot Dispatcher::snapshot() const noexcept {
  const DispatcherCounters& c = impl_->counters;
  DispatcherSnapshot s;
  s.clients_accepted = c.clients_accepted;
  s.clients_refused = c.clients_refused;
  s.clients_connected = c.clients_connected;
  s.clients_refused_network = c.clients_refused_network;
  s.clients_disconnected_slow = c.clients_disconnected_slow;
  s.subscriptions = c.subscriptions;
  s.messages_published = c.messages_published;
  s.messages_queued = c.messages_queued;
  s.messages_dropped = c.messages_dropped;
  s.messages_dropped_backlog = c.messages_dropped_backlog;
  s.bytes_sent = c.bytes_sent;
  s.bad_client_messages = c.bad_client_messages;
  for (std::size_t i = 0; i < kDispatchTags; ++i) s.published_per_tag[i] = c.published_per_tag[i];
  return s;
}

bool Dispatcher::has_subscribers(DispatchTag tag) const noexcept {
  return tag == DispatchTag::Other || impl_->counters.subscribers_per_tag[index_of(tag)] > 0;
}

void Dispatcher::publish(std::string_view tag, std::span<const std::uint8_t> payload) {
  impl_->publish(std::string(tag.substr(0, kControlHostTagBytes)),
                 std::make_shared<const std::string>(encode_controlhost_message(tag, payload)));
}

void Dispatcher::publish_event(const dataflow::Event& event) {
  std::vector<std::uint8_t> bytes;
  dataflow::encode_online_event(event, bytes);
  publish(controlhost_tag(DispatchTag::Event), bytes);
}

void Dispatcher::publish_summary(const dataflow::SummarySlice& summary) {
  std::vector<std::uint8_t> bytes;
  dataflow::encode_online_summary_slice(summary, bytes);
  publish(controlhost_tag(DispatchTag::Summary), bytes);
}

bool Dispatcher::publish_timeslice(const dataflow::Timeslice& timeslice, dataflow::TimesliceKind kind) {
  const auto tag = dispatch_tag_of(kind);
  if (!tag) return false;
  std::vector<std::uint8_t> bytes;
  dataflow::encode_online_timeslice(timeslice, kind, bytes);
  publish(controlhost_tag(*tag), bytes);
  return true;
}

void Dispatcher::publish_l1_timeslice(const dataflow::Timeslice& timeslice) {
  publish_timeslice(timeslice, dataflow::TimesliceKind::L1);
}

void Dispatcher::publish_monitoring(std::span<const std::uint8_t> datagram) {
  publish(controlhost_tag(DispatchTag::Monitoring), datagram);
}

void Dispatcher::publish_log(std::string_view line) {
  publish(controlhost_tag(DispatchTag::Log),
          std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(line.data()), line.size()));
}

}  // namespace shoredaq::storage
