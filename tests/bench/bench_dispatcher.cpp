// ControlHost dispatcher throughput on loopback (DESIGN.md section 4: "a slow client never slows
// the pipeline"), against a same-run baseline: the same message bytes written straight to a
// loopback TCP socket.
//   bench_dispatcher [--messages N] [--event-hits H] [--slices S] [--doms D]
// Prints, for IO_EVT-sized messages (an event of H snapshot hits) and for IO_MONIT packets:
//   - publish() calls per second (what the writer thread pays) and the delivered rate to one
//     fast client (messages/s, MB/s), with its ratio to the raw-socket baseline;
//   - the same with a second client subscribed " a" that never reads: the fast client's rate,
//     and how many messages the stalled one lost (counted drops);
//   - the DispatcherSink's cost per slice (S slices of 20 events, a D-DOM summary and D TMCH
//     packets) with a subscribed client.
// Figures only: nothing is asserted.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "shoredaq/formats/clb_datagram.hpp"
#include "shoredaq/formats/online_format.hpp"
#include "shoredaq/storage/dispatcher.hpp"
#include "shoredaq/storage/dispatcher_sink.hpp"

namespace sd = shoredaq::dataflow;
namespace st = shoredaq::storage;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::size_t messages = 100'000;
  std::size_t event_hits = 150;  // ~2 KB online
  std::size_t slices = 200;
  std::size_t doms = 360;  // 20 DUs
};

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

int connect_loopback(std::uint16_t port, int receive_buffer = 0) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (receive_buffer > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    std::perror("connect");
    std::exit(1);
  }
  return fd;
}

void send_message(int fd, const std::string& tag, std::string_view payload) {
  const std::string m = st::encode_controlhost_message(
      tag, std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size()));
  (void)::send(fd, m.data(), m.size(), MSG_NOSIGNAL);
}

// Reads ControlHost messages until `expected` arrived or the stream ends; counts them and bytes.
struct Reader {
  std::atomic<std::size_t> messages{0};
  std::atomic<std::size_t> bytes{0};
  std::thread thread;
  void start(int fd, std::size_t expected) {
    thread = std::thread([this, fd, expected] {
      std::vector<std::uint8_t> buffer(1 << 20);
      std::size_t have = 0;
      while (messages.load() < expected) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 3000) <= 0) return;  // nothing for 3 s: what was lost is counted by the dispatcher
        const ssize_t n = ::recv(fd, buffer.data() + have, buffer.size() - have, 0);
        if (n <= 0) return;
        have += static_cast<std::size_t>(n);
        bytes += static_cast<std::size_t>(n);
        std::size_t pos = 0;
        while (have - pos >= 16) {
          const std::uint8_t* p = buffer.data() + pos;
          const std::size_t len = (std::size_t{p[8]} << 24) | (std::size_t{p[9]} << 16) | (std::size_t{p[10]} << 8) | p[11];
          if (have - pos < 16 + len) break;
          pos += 16 + len;
          ++messages;
        }
        std::memmove(buffer.data(), buffer.data() + pos, have - pos);
        have -= pos;
        if (buffer.size() - have < (1 << 16)) buffer.resize(buffer.size() * 2);
      }
    });
  }
  void join() { thread.join(); }
};

sd::Event make_event(std::size_t hits) {
  sd::Event e;
  e.header = sd::SliceHeader{133, 1, 0, 1'700'000'000u, 0};
  e.trigger_mask = 16;
  for (std::size_t i = 0; i < hits; ++i) {
    const sd::SnapshotHit s{806'000'000u + static_cast<std::uint32_t>(i % 18),
                            sd::Hit{static_cast<std::uint8_t>(i % 31), static_cast<std::uint32_t>(1000 + 3 * i), 25}};
    e.snapshot.push_back(s);
    if (i % 3 == 0) e.triggered.push_back({s.dom_id, s.hit, e.trigger_mask});
  }
  return e;
}

std::vector<std::uint8_t> make_monitoring(std::uint32_t dom) {
  sd::MonitoringPacket m;
  m.header.data_type = sd::DataType::Monitoring;
  m.header.dom_id = dom;
  return sd::encode_monitoring_packet(m);
}

template <class Pred>
void wait_for(Pred pred) {
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (!pred() && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

// Raw baseline: the same message bytes written by one thread to a loopback socket, read by another.
double raw_socket_rate(const std::string& message, std::size_t count) {
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(listener, reinterpret_cast<const sockaddr*>(&a), sizeof a);
  ::listen(listener, 1);
  socklen_t len = sizeof a;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len);
  const int client = connect_loopback(ntohs(a.sin_port));
  const int server = ::accept(listener, nullptr, nullptr);
  Reader reader;
  const auto t0 = Clock::now();
  reader.start(client, count);
  std::string batch;
  for (std::size_t i = 0; i < count; ++i) {
    batch += message;
    if (batch.size() >= (256u << 10) || i + 1 == count) {
      std::size_t sent = 0;
      while (sent < batch.size()) sent += static_cast<std::size_t>(::send(server, batch.data() + sent, batch.size() - sent, MSG_NOSIGNAL));
      batch.clear();
    }
  }
  reader.join();
  const double rate = static_cast<double>(reader.messages.load()) / seconds_since(t0);
  ::close(server);
  ::close(client);
  ::close(listener);
  return rate;
}

void run_case(const char* name, const std::string& tag, const std::vector<std::uint8_t>& payload, std::size_t count) {
  const std::string message = st::encode_controlhost_message(tag, payload);
  const double baseline = raw_socket_rate(message, count);
  for (const bool with_stalled : {false, true}) {
    st::DispatcherConfig config;
    config.port = 0;
    config.max_queue_bytes_all = std::size_t{16} << 20;  // the stalled client's bound: 16 MiB
    st::Dispatcher dispatcher(config);
    const int fast = connect_loopback(dispatcher.port());
    const int stalled = with_stalled ? connect_loopback(dispatcher.port(), 4096) : -1;
    send_message(fast, "_Subscri", " a " + tag);
    send_message(fast, "_Always", "");
    if (with_stalled) {
      send_message(stalled, "_Subscri", " a " + tag);
      send_message(stalled, "_Always", "");
    }
    wait_for([&] { return dispatcher.counters().subscriptions.load() == (with_stalled ? 2u : 1u); });
    Reader reader;
    reader.start(fast, count);
    const auto t0 = Clock::now();
    // A sustained stream, as the writer makes it: chunks of 1000 messages (one slice's worth or
    // so), the next when the fast client has the previous one.
    double publish_s = 0;
    for (std::size_t done = 0; done < count;) {
      const std::size_t chunk = std::min<std::size_t>(1000, count - done);
      const auto p0 = Clock::now();
      for (std::size_t i = 0; i < chunk; ++i) dispatcher.publish(tag, payload);
      publish_s += seconds_since(p0);
      done += chunk;
      wait_for([&] { return reader.messages.load() >= done; });
    }
    const double total_s = seconds_since(t0);
    reader.join();
    const auto s = dispatcher.snapshot();
    const double rate = static_cast<double>(reader.messages.load()) / total_s;
    std::printf("%-8s %6zu B %s: publish() %8.0f k/s; fast client %8.0f msg/s %7.1f MB/s (%zu of %zu, ratio to raw "
                "socket %.2f); dropped %llu\n",
                name, message.size(), with_stalled ? "+stalled" : "alone   ", count / publish_s / 1e3, rate,
                static_cast<double>(reader.bytes.load()) / total_s / 1e6, reader.messages.load(), count, rate / baseline,
                static_cast<unsigned long long>(s.messages_dropped));
    ::close(fast);
    if (stalled >= 0) ::close(stalled);
  }
  std::printf("%-8s raw socket baseline: %.0f msg/s\n", name, baseline);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    const auto value = static_cast<std::size_t>(std::strtoull(argv[i + 1], nullptr, 10));
    if (key == "--messages") o.messages = value;
    else if (key == "--event-hits") o.event_hits = value;
    else if (key == "--slices") o.slices = value;
    else if (key == "--doms") o.doms = value;
  }
  std::vector<std::uint8_t> event_bytes;
  sd::encode_online_event(make_event(o.event_hits), event_bytes);
  run_case("IO_EVT", "IO_EVT", event_bytes, o.messages);
  run_case("IO_MONIT", "IO_MONIT", make_monitoring(806'000'001u), o.messages);

  // The sink's cost per slice on the writer thread, with a client subscribed to everything.
  st::DispatcherConfig config;
  config.port = 0;
  st::Dispatcher dispatcher(config);
  st::DispatcherSink sink(dispatcher);
  const int client = connect_loopback(dispatcher.port());
  send_message(client, "_Subscri", " a IO_EVT a IO_SUM a IO_TSSN w IO_MONIT");
  send_message(client, "_Always", "");
  wait_for([&] { return dispatcher.has_subscribers(st::DispatchTag::Monitoring); });
  sd::SliceProducts slice;
  slice.header = sd::SliceHeader{133, 1, 0, 1'700'000'000u, 0};
  slice.summary.header = slice.header;
  for (std::size_t d = 0; d < o.doms; ++d) {
    sd::SummaryFrame f;
    f.dom_id = 806'000'000u + static_cast<std::uint32_t>(d);
    slice.summary.frames.push_back(f);
    slice.monitoring.push_back({f.dom_id, make_monitoring(f.dom_id)});
  }
  for (int e = 0; e < 20; ++e) slice.events.push_back(make_event(o.event_hits));
  const std::size_t per_slice = 20 + 1 + o.doms;
  Reader reader;
  reader.start(client, o.slices * per_slice);
  const auto t0 = Clock::now();
  for (std::size_t k = 0; k < o.slices; ++k) sink.write(slice);
  const double write_s = seconds_since(t0);
  reader.join();
  std::printf("DispatcherSink: %.1f us per slice on the writer thread (20 events of %zu hits, %zu-DOM summary, %zu "
              "TMCH packets); client got %zu of %zu messages in %.2f s\n",
              write_s / static_cast<double>(o.slices) * 1e6, o.event_hits, o.doms, o.doms, reader.messages.load(),
              o.slices * per_slice, seconds_since(t0));
  ::close(client);
  return 0;
}
