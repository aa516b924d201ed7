#pragma once
// The collaboration's message dispatch (the "Ligier", ControlHost protocol; DOMAIN.md section 3):
// a TCP server so existing consumers connect unchanged. Every message is a 16-byte prefix
// (8-byte ASCII tag padded with NUL, uint32 big-endian payload length, 4 spare bytes) and the
// payload. A client subscribes with tag `_Subscri` and payload " w TAG" (any: may miss messages
// when slow) or " a TAG" (all), several concatenated, then tag `_Always`.
// The node publishes IO_EVT (online events), IO_SUM (summary slices), IO_TSL1 (L1 timeslices) and
// MSG (log lines). Publishing never blocks: each client has a bounded queue; what does not fit is
// dropped for that client and counted.

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "shoredaq/formats/event.hpp"
#include "shoredaq/formats/summary_slice.hpp"
#include "shoredaq/formats/timeslice.hpp"

namespace shoredaq::storage {

inline constexpr std::size_t kControlHostPrefixBytes = 16;
inline constexpr std::size_t kControlHostTagBytes = 8;

struct DispatcherConfig {
  std::string address = "127.0.0.1";
  std::uint16_t port = 5553;  // 0 = any free port (tests)
  std::size_t max_queue_bytes_any = std::size_t{16} << 20;  // per client, " w" subscriptions
  std::size_t max_queue_bytes_all = std::size_t{128} << 20;  // per client, " a" subscriptions
  std::size_t max_client_message_bytes = 64 << 10;           // what a client may send us
  std::size_t max_clients = 64;
};

struct DispatcherCounters {
  std::atomic<std::uint64_t> clients_accepted{0}, clients_refused{0}, clients_connected{0};
  std::atomic<std::uint64_t> subscriptions{0};       // _Always received (client ready)
  std::atomic<std::uint64_t> messages_published{0};  // publish() calls
  std::atomic<std::uint64_t> messages_queued{0};     // per client
  std::atomic<std::uint64_t> messages_dropped{0};    // per client, queue full
  std::atomic<std::uint64_t> bytes_sent{0};
  std::atomic<std::uint64_t> bad_client_messages{0};  // oversized or malformed: client disconnected
};

// Encodes one ControlHost message.
std::string encode_controlhost_message(std::string_view tag, std::span<const std::uint8_t> payload);

class Dispatcher {
 public:
  explicit Dispatcher(DispatcherConfig config);  // binds and starts its own I/O thread; throws on bind failure
  ~Dispatcher();                                  // closes every connection, joins the thread
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  std::uint16_t port() const noexcept;

  // Thread-safe; never blocks on clients.
  void publish(std::string_view tag, std::span<const std::uint8_t> payload);
  void publish_event(const dataflow::Event& event);                 // IO_EVT, online format
  void publish_summary(const dataflow::SummarySlice& summary);      // IO_SUM
  void publish_l1_timeslice(const dataflow::Timeslice& timeslice);  // IO_TSL1
  void publish_log(std::string_view line);                          // MSG

  const DispatcherCounters& counters() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shoredaq::storage
