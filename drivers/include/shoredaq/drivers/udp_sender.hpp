#pragma once
// UdpFeedSender: du-sim's third sink (beside the .dqd file and ZeroMQ): real UDP datagrams, one
// per CLB datagram, as a CLB sends them, each to the port of its data type (TTDC to `optical`,
// TMCH to `monitoring`, TAES to `acoustic`; a datagram without a known type tag, e.g. a corrupted
// one, goes to `optical`, whose receiver counts it). A datagram whose type has no destination is
// counted as `unrouted` and not sent.
//
// Pacing, so that a local receiver is not overrun (UDP has no back-pressure: what the receiver
// cannot take, its kernel drops):
//  - `rate_limit_datagrams_per_s` / `rate_limit_bytes_per_s` (0 = none): a token bucket that lets
//    at most `burst_datagrams` go back to back (one sendmmsg call);
//  - `spread` (real time): each write()'s datagrams are spread evenly over this duration, as a
//    CLB sends its slice while it is being taken rather than in one burst at its end.
// The slower of the limits wins. Waiting is done in steps that check `stop`.
//
// Send errors never throw: ENOBUFS / EAGAIN (the local queue is full) are retried after a short
// pause up to `retries` times, ECONNREFUSED (an earlier datagram met a closed port: nobody
// listens) and others are counted; a datagram that could not be sent is counted as failed.
//
// There is no record length on UDP, so DatagramFault::BadLengthRecord cannot be represented: such
// datagrams are sent intact and counted (`bad_length_sent_intact`).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "shoredaq/drivers/feed_sink.hpp"
#include "shoredaq/drivers/udp_endpoint.hpp"

namespace shoredaq::drivers {

struct UdpSenderConfig {
  std::optional<UdpEndpoint> optical;     // TTDC (and datagrams without a known type tag)
  std::optional<UdpEndpoint> monitoring;  // TMCH
  std::optional<UdpEndpoint> acoustic;    // TAES
  double rate_limit_datagrams_per_s = 0;  // 0: no limit
  double rate_limit_bytes_per_s = 0;      // UDP payload bytes; 0: no limit
  std::chrono::nanoseconds spread{0};     // spread each write() over this long; 0: as fast as the limits allow
  std::size_t burst_datagrams = 32;       // the most sent back to back (one sendmmsg)
  int send_buffer_bytes = 0;              // SO_SNDBUF; 0: the kernel default
  unsigned retries = 50;                  // per datagram on ENOBUFS / EAGAIN (each after a 1 ms pause) or ECONNREFUSED
};

struct UdpSendCounters {
  std::uint64_t datagrams_sent = 0;
  std::uint64_t bytes_sent = 0;          // UDP payload bytes
  std::uint64_t send_calls = 0;          // sendmmsg calls
  std::uint64_t enobufs = 0;             // ENOBUFS / EAGAIN answers (each retried)
  std::uint64_t refused = 0;             // ECONNREFUSED: no receiver on a destination port
  std::uint64_t other_errors = 0;
  std::uint64_t datagrams_failed = 0;    // not sent: retries used up, or another error
  std::uint64_t unrouted = 0;            // no destination configured for their data type
  std::uint64_t bad_length_sent_intact = 0;
  std::uint64_t pacing_waits = 0;        // times the pacer slept
};

class UdpFeedSender final : public FeedSink {
 public:
  // Resolves and connects one socket per destination; throws std::invalid_argument when no
  // destination is set or a host does not resolve, std::system_error when a socket fails.
  // `stop` (optional) ends pacing waits early: the rest of the current write is abandoned (counted).
  explicit UdpFeedSender(UdpSenderConfig config, const std::atomic<bool>* stop = nullptr);
  ~UdpFeedSender() override;
  UdpFeedSender(const UdpFeedSender&) = delete;
  UdpFeedSender& operator=(const UdpFeedSender&) = delete;

  // One slice's datagrams, one UDP datagram each, in order.
  void write(std::span<const SimDatagram> datagrams) override;
  // The same for raw datagrams (e.g. the records of a .dqd file).
  void send(std::span<const std::span<const std::uint8_t>> datagrams);
  // An already-framed record stream `[u32 LE length][datagram]...`: one UDP datagram per record;
  // a record stream that ends in a bad length sends the records before it.
  void send_framed(std::span<const std::uint8_t> records);
  void finish() override {}
  // records = datagrams handed in; messages = UDP datagrams sent; bytes = their payload bytes;
  // dropped_on_stop = abandoned when `stop` was set during a pacing wait.
  const SinkCounters& counters() const noexcept override { return sink_counters_; }
  const UdpSendCounters& udp_counters() const noexcept { return counters_; }

 private:
  struct Destination;
  void send_spans(std::span<const std::span<const std::uint8_t>> datagrams,
                  std::span<const DatagramFault> faults);
  void send_group(Destination& destination, std::span<const std::span<const std::uint8_t>> group);
  bool wait_until(std::chrono::steady_clock::time_point when);  // false: stopped

  UdpSenderConfig config_;
  const std::atomic<bool>* stop_;
  std::vector<Destination> destinations_;  // [optical, monitoring, acoustic], fd < 0 when not set
  std::chrono::steady_clock::time_point next_send_{};
  SinkCounters sink_counters_;
  UdpSendCounters counters_;
};

}  // namespace shoredaq::drivers
