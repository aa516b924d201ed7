#pragma once
// The collaboration's message dispatch (the "Ligier", ControlHost protocol; DOMAIN.md section 3):
// a TCP server so existing consumers (km3mon, the online reconstruction) connect unchanged. Every
// message is a 16-byte prefix (8-byte ASCII tag padded with NUL, uint32 big-endian payload length,
// 4 spare bytes) and the payload. A client subscribes with tag `_Subscri` and payload " w TAG"
// (any: may miss messages when slow) or " a TAG" (all), several concatenated, then tag `_Always`.
//
// The node publishes IO_EVT (online events), IO_SUM (summary slices), IO_TSL0/IO_TSL1/IO_TSL2/
// IO_TSSN (the timeslices the filters kept: prescaled L0/L1/L2, SN), IO_MONIT (TMCH packets as
// received) and MSG (log lines), all in the collaboration's online binary format. The error
// stream (timeslice type 1001) has no ControlHost tag and is not published.
//
// A slow client never slows the pipeline: publish() only appends to a bounded backlog (a mutex
// held for a push) that the dispatcher's own I/O thread hands to the clients; each client has a
// bounded queue. What does not fit is dropped for that client and counted; optionally a client
// subscribed " a" (all) is disconnected instead, so it knows it missed data.
//
// Who may connect: by default the server listens on loopback only. Opened to the network, it
// takes an allow-list of client networks (CIDR); a connection from elsewhere is closed at once
// and counted.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shoredaq/formats/event.hpp"
#include "shoredaq/formats/online_format.hpp"
#include "shoredaq/formats/summary_slice.hpp"
#include "shoredaq/formats/timeslice.hpp"

namespace shoredaq::storage {

inline constexpr std::size_t kControlHostPrefixBytes = 16;
inline constexpr std::size_t kControlHostTagBytes = 8;

// The tags the node publishes, for per-tag counters; Other = any tag given to publish().
enum class DispatchTag : std::uint8_t { Event, Summary, TimesliceL0, TimesliceL1, TimesliceL2, TimesliceSN, Monitoring, Log, Other };
inline constexpr std::size_t kDispatchTags = 9;
// "IO_EVT", "IO_SUM", "IO_TSL0", "IO_TSL1", "IO_TSL2", "IO_TSSN", "IO_MONIT", "MSG"; "" for Other.
std::string_view controlhost_tag(DispatchTag tag) noexcept;
DispatchTag dispatch_tag_of(std::string_view tag) noexcept;  // Other when not one of the above
// The tag of a kept timeslice stream; nullopt for the error stream (not published).
std::optional<DispatchTag> dispatch_tag_of(dataflow::TimesliceKind kind) noexcept;

// One allowed client network: "10.1.0.0/16", "2001:db8::/32", or a single address ("10.1.2.3",
// "::1"). Host bits beyond the prefix are ignored. An IPv4 client connecting to an IPv6 socket
// (::ffff:a.b.c.d) is matched as the IPv4 address.
struct ClientNetwork {
  bool ipv6 = false;
  std::array<std::uint8_t, 16> address{};  // IPv4 in the first 4 bytes
  unsigned prefix_bits = 0;

  static std::optional<ClientNetwork> parse(std::string_view text);
  bool contains(std::span<const std::uint8_t> client, bool client_ipv6) const noexcept;
  std::string to_string() const;
};
// Parses every entry; throws std::invalid_argument naming the first bad one.
std::vector<ClientNetwork> parse_client_networks(const std::vector<std::string>& cidrs);

struct DispatcherConfig {
  std::string address = "127.0.0.1";  // listening address; a non-loopback one needs allowed_networks
  std::uint16_t port = 5553;           // 0 = any free port (tests)
  // Client networks allowed to connect (CIDR). Empty: every client that can reach the address,
  // which is accepted only for a loopback address.
  std::vector<std::string> allowed_networks;
  std::size_t max_queue_bytes_any = std::size_t{16} << 20;   // per client, " w" subscriptions
  std::size_t max_queue_bytes_all = std::size_t{128} << 20;  // per client, " a" subscriptions
  // A client subscribed " a" whose queue is full: disconnected (true) or its message dropped
  // (false, as for " w"). Either way counted.
  bool disconnect_slow_all_clients = false;
  // Published messages not yet handed to the clients by the I/O thread; past it a message is
  // dropped for everyone and counted (only when that thread is starved).
  std::size_t max_backlog_bytes = std::size_t{64} << 20;
  std::size_t max_client_message_bytes = 64 << 10;  // what a client may send us (subscriptions)
  std::size_t max_clients = 64;
};

struct DispatcherCounters {
  std::atomic<std::uint64_t> clients_accepted{0}, clients_refused{0}, clients_connected{0};
  std::atomic<std::uint64_t> clients_refused_network{0};    // not on the allow-list
  std::atomic<std::uint64_t> clients_disconnected_slow{0};  // " a" client whose queue was full
  std::atomic<std::uint64_t> subscriptions{0};       // _Always received (client ready)
  std::atomic<std::uint64_t> messages_published{0};  // publish() calls
  std::atomic<std::uint64_t> messages_queued{0};     // per client
  std::atomic<std::uint64_t> messages_dropped{0};    // per client, queue full (a slow client)
  std::atomic<std::uint64_t> messages_dropped_backlog{0};  // for everyone: the backlog was full
  std::atomic<std::uint64_t> bytes_sent{0};
  std::atomic<std::uint64_t> bad_client_messages{0};  // oversized or malformed: client disconnected
  std::array<std::atomic<std::uint64_t>, kDispatchTags> published_per_tag{};  // publish() calls per tag
  std::array<std::atomic<std::uint64_t>, kDispatchTags> subscribers_per_tag{};  // ready clients now
};

// A plain copy of the counters (for sinks, status, tests).
struct DispatcherSnapshot {
  std::uint64_t clients_accepted = 0, clients_refused = 0, clients_connected = 0, clients_refused_network = 0;
  std::uint64_t clients_disconnected_slow = 0, subscriptions = 0;
  std::uint64_t messages_published = 0, messages_queued = 0, messages_dropped = 0, messages_dropped_backlog = 0;
  std::uint64_t bytes_sent = 0, bad_client_messages = 0;
  std::array<std::uint64_t, kDispatchTags> published_per_tag{};
};

// Encodes one ControlHost message.
std::string encode_controlhost_message(std::string_view tag, std::span<const std::uint8_t> payload);

class Dispatcher {
 public:
  // Binds and starts its own I/O thread. Throws std::invalid_argument for a bad allowed network
  // or a non-loopback address without allowed_networks, boost::system::system_error when the
  // address cannot be bound.
  explicit Dispatcher(DispatcherConfig config);
  ~Dispatcher();  // closes every connection, joins the thread
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  std::uint16_t port() const noexcept;

  // Thread-safe; never blocks on clients.
  void publish(std::string_view tag, std::span<const std::uint8_t> payload);
  void publish_event(const dataflow::Event& event);             // IO_EVT, online format
  void publish_summary(const dataflow::SummarySlice& summary);  // IO_SUM
  // IO_TSL0/1/2 or IO_TSSN by kind; false (nothing sent) for the error stream, which has no tag.
  bool publish_timeslice(const dataflow::Timeslice& timeslice, dataflow::TimesliceKind kind);
  void publish_l1_timeslice(const dataflow::Timeslice& timeslice);  // IO_TSL1
  void publish_monitoring(std::span<const std::uint8_t> datagram);  // IO_MONIT: a TMCH packet as received
  // MSG: one log line (the node's warning-and-worse lines; hook it from a logging sink). Never logs
  // itself, so a logging sink that calls it cannot recurse.
  void publish_log(std::string_view line);

  // Whether a ready client is subscribed to this tag now (always true for tags other than the
  // node's own): lets a publisher skip encoding what nobody reads.
  bool has_subscribers(DispatchTag tag) const noexcept;

  const DispatcherCounters& counters() const noexcept;
  DispatcherSnapshot snapshot() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shoredaq::storage
