#pragma once
// ZmqIngest: the node's input (DESIGN.md section 3, issue 4 item 1). One thread owns ZeroMQ PULL
// and/or SUB sockets on configured endpoints (tcp://, ipc://, inproc://); each message is a record
// stream `[u32 LE length][CLB datagram]...`. Every datagram is parsed and validated there; every
// rejected byte is counted by cause and logged rate-limited; the parsed message goes to a sink
// callable that must not block (the pipeline puts it on a drop-oldest queue), so the ingest thread
// never waits on disk or on the filters. stop() returns within about one poll interval.
//
// IngestParser is the same parsing without sockets, so offline replay of a .dqd file counts and
// rejects bytes exactly as the live path does.
//
// Oversized messages: a message over `max_message_bytes` is received, not parsed, and rejected as
// `oversize_message` with its bytes and its records (counted by walking the length prefixes), so
// the loss is exact. Beyond `hard_max_message_bytes` (ZMQ_MAXMSGSIZE, the memory bound) libzmq
// closes the sender's connection instead and the message is lost unseen. libzmq 4.3.4 reports that
// only as a ZMQ_EVENT_DISCONNECTED on the socket, exactly like a peer that closed its end, so a
// socket monitor on every ingest socket counts each disconnect as `peer_disconnected` (a record
// with no bytes): a message over the hard limit, or (most often) a DU / bridge going away. The monitor is set up before the
// `configure_socket` hook runs; libzmq keeps one monitor per socket, so a hook that installs its
// own monitor replaces this one (logged once; disconnects on that socket are then not counted).
// A connecting (bind = false) ingest socket does not reconnect after libzmq closed it for an
// oversize message (a protocol error for libzmq), a binding one takes the peer's next connection.

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "shoredaq/formats/clb_datagram.hpp"
#include "shoredaq/dataflow/rate_limited_log.hpp"

namespace shoredaq::dataflow {

enum class HeaderLayoutMode : std::uint8_t { Standard40, Legacy28, Auto };
std::optional<HeaderLayoutMode> parse_header_layout_mode(std::string_view text) noexcept;  // "40", "28", "auto"

// Why bytes were rejected; each cause has a byte and a record counter.
enum class IngestRejectCause : std::uint8_t {
  BadRecordLength,     // a record length overruns the message: the rest of the message is rejected
  TruncatedLength,     // 1-3 bytes left where a length prefix should be
  TruncatedHeader,     // record shorter than the CLB header
  UnknownDataType,     // not TTDC / TAES / TMCH
  BadPayloadSize,      // TTDC payload not a whole number of 6-byte hits
  BadMonitoringSize,   // TMCH packet of the wrong size
  ChannelOutOfRange,   // only when channel checking is on
  PeerDisconnected,    // ZmqIngest: a peer's connection closed (its message over hard_max_message_bytes, or it left)
  OversizeMessage,     // ZmqIngest: a message over max_message_bytes (records counted, none parsed)
  Count_
};
inline constexpr std::size_t kIngestRejectCauseCount = static_cast<std::size_t>(IngestRejectCause::Count_);
std::string_view to_string(IngestRejectCause cause) noexcept;

struct IngestCounters {
  std::uint64_t messages = 0;
  std::uint64_t bytes = 0;              // every byte received
  std::uint64_t datagrams = 0;          // records that parsed
  std::uint64_t datagram_bytes = 0;     // their bytes incl. the 4-byte length prefixes
  std::array<std::uint64_t, kIngestRejectCauseCount> rejected_bytes{};
  std::array<std::uint64_t, kIngestRejectCauseCount> rejected_records{};

  std::uint64_t rejected_bytes_total() const noexcept {
    std::uint64_t n = 0;
    for (auto b : rejected_bytes) n += b;
    return n;
  }
  std::uint64_t rejected_bytes_of(IngestRejectCause c) const noexcept {
    return rejected_bytes[static_cast<std::size_t>(c)];
  }
  std::uint64_t rejected_records_of(IngestRejectCause c) const noexcept {
    return rejected_records[static_cast<std::size_t>(c)];
  }
  IngestCounters& operator+=(const IngestCounters& o) noexcept;
};

// One accepted datagram inside a message: the header and where its payload lies.
struct ParsedRecord {
  ClbHeader header;
  HeaderLayout layout = HeaderLayout::Standard40;
  std::uint32_t payload_offset = 0;  // into the message bytes
  std::uint32_t payload_size = 0;
};

// Parses record streams with a per-stream header layout (Auto: detected on the stream's first
// datagram, then kept). Counts into `counters()`; logs rejects rate-limited when given a log.
class IngestParser {
 public:
  explicit IngestParser(HeaderLayoutMode mode = HeaderLayoutMode::Standard40, bool check_channels = false,
                        RateLimitedLog* log = nullptr, std::string stream_name = {});
  // Appends the accepted records of one message to `out`; returns how many were appended.
  std::size_t parse(std::span<const std::uint8_t> message, std::vector<ParsedRecord>& out);
  // A message too large to take: counted whole as `oversize_message` (its records, its bytes).
  void reject_oversize(std::span<const std::uint8_t> message);
  const IngestCounters& counters() const noexcept { return counters_; }
  std::optional<HeaderLayout> layout() const noexcept { return layout_; }

 private:
  void reject(IngestRejectCause cause, std::size_t bytes, std::size_t offset);
  HeaderLayoutMode mode_;
  bool check_channels_;
  RateLimitedLog* log_;
  std::string stream_name_;
  std::optional<HeaderLayout> layout_;
  IngestCounters counters_;
};

// A received message and its accepted datagrams; owns the bytes the datagrams point into.
struct ParsedMessage {
  zmq::message_t message;
  std::vector<ParsedRecord> records;
  std::uint64_t receive_unix_ns = 0;
  std::size_t endpoint = 0;  // index into ZmqIngestConfig::endpoints

  std::span<const std::uint8_t> bytes() const noexcept {
    return {static_cast<const std::uint8_t*>(message.data()), message.size()};
  }
  // The i-th datagram, its payload pointing into `message` (valid while this object lives).
  ClbDatagram datagram(std::size_t i) const noexcept;
};

enum class IngestSocketKind : std::uint8_t { Pull, Sub };

struct IngestEndpoint {
  std::string address;                 // "tcp://*:5556", "ipc:///run/x", "inproc://du"
  IngestSocketKind kind = IngestSocketKind::Pull;
  bool bind = true;                    // false: connect
  HeaderLayoutMode layout = HeaderLayoutMode::Standard40;
  std::string subscription;            // SUB only; "" = everything
};

struct ZmqIngestConfig {
  std::vector<IngestEndpoint> endpoints;
  int receive_hwm = 10'000;            // ZMQ_RCVHWM, messages
  int linger_ms = 200;                 // ZMQ_LINGER
  std::int64_t max_message_bytes = std::int64_t{64} << 20;  // larger messages are rejected whole, counted
  std::int64_t hard_max_message_bytes = 0;  // ZMQ_MAXMSGSIZE (peer disconnected beyond); 0 = 4 x max_message_bytes
  std::chrono::milliseconds poll_interval{20};              // bounds the stop latency
  std::size_t max_messages_per_wakeup = 256;  // fairness between sockets
  bool check_channels = false;
  // Called on every socket after the options above and before bind/connect, in start()'s thread:
  // the owner's hook for settings dataflow does not know about (e.g. CURVE authentication).
  // Exceptions propagate out of start().
  std::function<void(zmq::socket_t&)> configure_socket;
};

class ZmqIngest {
 public:
  using MessageSink = std::function<void(ParsedMessage&&)>;

  // `context` must outlive this object. `log` may be null (no logging).
  ZmqIngest(zmq::context_t& context, ZmqIngestConfig config, MessageSink sink, RateLimitedLog* log = nullptr);
  ~ZmqIngest();
  ZmqIngest(const ZmqIngest&) = delete;
  ZmqIngest& operator=(const ZmqIngest&) = delete;

  // Creates and binds/connects every socket in the caller's thread (throws zmq::error_t on a bad
  // endpoint, so configuration errors surface at once), then starts the ingest thread.
  void start();
  // Stops the thread (bounded by the poll interval) and closes the sockets (bounded linger).
  void stop();
  bool running() const noexcept { return running_.load(); }

  // Counters over all endpoints (thread-safe snapshot); per endpoint as well.
  IngestCounters counters() const;
  IngestCounters counters(std::size_t endpoint) const;
  std::uint64_t last_message_unix_ns() const noexcept { return last_message_ns_.load(std::memory_order_relaxed); }
  std::uint64_t last_poll_unix_ns() const noexcept { return last_poll_ns_.load(std::memory_order_relaxed); }
  const ZmqIngestConfig& config() const noexcept { return config_; }

 private:
  void run();
  void publish_counters(std::size_t endpoint);
  void read_monitor(std::size_t endpoint);

  zmq::context_t& context_;
  ZmqIngestConfig config_;
  MessageSink sink_;
  RateLimitedLog* log_;
  std::vector<zmq::socket_t> sockets_;
  std::vector<IngestParser> parsers_;
  // Per socket: the PAIR reading its libzmq monitor, and disconnects counted (ingest thread only).
  std::vector<zmq::socket_t> monitors_;
  std::vector<std::uint64_t> disconnects_;
  // Snapshots of the parsers' counters, published by the ingest thread under a seqlock-free mutex.
  mutable std::mutex counters_mutex_;
  std::vector<IngestCounters> published_;
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> running_{false};
  std::atomic<std::uint64_t> last_message_ns_{0};
  std::atomic<std::uint64_t> last_poll_ns_{0};
  std::thread thread_;
};

std::uint64_t unix_now_ns() noexcept;

}  // namespace shoredaq::dataflow
