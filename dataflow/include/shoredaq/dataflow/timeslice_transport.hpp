#pragma once
// Whole timeslices between nodes (DESIGN.md section 6, scale-out): a TimesliceSender PUSHes each
// slice as one FlatBuffers `Timeslice` buffer (ZeroMQ round-robins them over the connected
// receivers, like the collaboration's DataQueue -> DataFilters), a TimesliceReceiver PULLs,
// verifies every buffer (bad ones are counted and dropped) and hands whole slices to a sink, e.g.
// Pipeline::feed_slice. The same code runs in-process (inproc://) or across nodes (tcp://); only
// the endpoint strings change.

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "shoredaq/formats/fb_codec.hpp"
#include "shoredaq/dataflow/rate_limited_log.hpp"
#include "shoredaq/formats/timeslice.hpp"

namespace shoredaq::dataflow {

struct TimesliceSenderConfig {
  std::vector<std::string> endpoints;  // each bound or connected, per `bind`
  bool bind = false;
  int send_hwm = 8;                    // slices queued per peer before PUSH blocks
  int linger_ms = 200;
  // How long send() may wait while every peer is at its HWM (or none is connected) before the
  // slice is dropped and counted. Keep it short: the caller is a pipeline stage.
  std::chrono::milliseconds send_timeout{100};
  TimesliceKind kind = TimesliceKind::L0;
  // ZeroMQ heartbeats (ZMQ_HEARTBEAT_IVL, timeout 3x): a peer host that vanished without closing
  // its connection (power, cable) is disconnected instead of swallowing sends until TCP gives up.
  int heartbeat_ms = 0;  // 0 = off
};

struct TimesliceSenderCounters {
  std::uint64_t sent = 0;
  std::uint64_t bytes = 0;
  std::uint64_t blocked = 0;  // sends that found every peer at HWM and had to wait
  std::uint64_t dropped = 0;  // still blocked after send_timeout
};

// One thread at a time may call send() (a ZeroMQ socket is not thread-safe).
class TimesliceSender {
 public:
  TimesliceSender(zmq::context_t& context, TimesliceSenderConfig config);
  // Encodes and sends; false (counted as dropped) if it could not be sent within send_timeout.
  bool send(const Timeslice& slice);
  // Sends an already-encoded Timeslice buffer (e.g. encoded in parallel by pipeline workers).
  bool send_encoded(std::span<const std::uint8_t> buffer);
  TimesliceSenderCounters counters() const;

 private:
  TimesliceSenderConfig config_;
  zmq::socket_t socket_;
  flatbuffers::FlatBufferBuilder fbb_;
  std::atomic<std::uint64_t> sent_{0}, bytes_{0}, blocked_{0}, dropped_{0};
};

struct TimesliceReceiverConfig {
  std::vector<std::string> endpoints;
  bool bind = true;
  int receive_hwm = 8;
  int linger_ms = 200;
  std::chrono::milliseconds poll_interval{20};  // bounds the stop latency
  FbLimits limits;
};

inline constexpr std::size_t kFbErrorCount = 7;  // FbError values

struct TimesliceReceiverCounters {
  std::uint64_t received = 0;  // good buffers handed to the sink
  std::uint64_t bytes = 0;     // all bytes received
  std::uint64_t bad_buffers = 0;
  std::array<std::uint64_t, kFbErrorCount> bad_by_error{};  // indexed by FbError
  std::uint64_t last_receive_unix_ns = 0;
  std::uint64_t sink_errors = 0;        // the sink (or idle step) threw: counted, the thread goes on
  std::uint64_t discarded_at_stop = 0;  // still queued when a drain's deadline passed
};

// A PULL socket and its thread: every message goes to `decode`, which verifies it, calls `accepted`
// (the buffer is counted as received before anything downstream sees it) and hands on what it holds,
// or says why a bad one is bad (counted by FbError, logged rate-limited, dropped); `idle` is
// called on the same thread at least every poll interval (timeouts of what the sink holds). The
// receiving end of every boundary between processes: whole slices, partial slices, filtered slices.
class BufferReceiver {
 public:
  using Decode = std::function<FbError(std::span<const std::uint8_t> bytes, const std::function<void()>& accepted)>;
  using Idle = std::function<void(std::uint64_t now_unix_ns)>;
  BufferReceiver(zmq::context_t& context, TimesliceReceiverConfig config, Decode decode, Idle idle = {},
                 RateLimitedLog* log = nullptr);
  ~BufferReceiver();
  BufferReceiver(const BufferReceiver&) = delete;
  BufferReceiver& operator=(const BufferReceiver&) = delete;

  // Binds/connects in the caller's thread (throws zmq::error_t), then starts the receive thread.
  void start();
  // Returns after the batch in progress (up to 64 sink calls) and one poll interval.
  void stop();
  // Stop at the end of a run: keeps receiving until a whole `quiet` passes without a message (the
  // senders upstream stopped first; their last buffers are in flight), at most until `deadline`,
  // then reads and counts what is still queued (discarded_at_stop) instead of closing it away.
  void drain_and_stop(std::chrono::milliseconds quiet, std::chrono::milliseconds deadline);
  TimesliceReceiverCounters counters() const;
  // The endpoints actually bound (resolves "tcp://127.0.0.1:*" to the chosen port).
  std::vector<std::string> bound_endpoints() const { return bound_; }
  // When the thread last ran its loop (at least every poll interval while it is healthy); 0 = never.
  std::uint64_t last_wakeup_unix_ns() const noexcept { return last_wakeup_ns_.load(std::memory_order_relaxed); }

 private:
  void run();
  bool receive_one();  // false: nothing was queued

  zmq::context_t& context_;
  TimesliceReceiverConfig config_;
  std::atomic<std::uint64_t> last_wakeup_ns_{0};
  std::atomic<bool> draining_{false};
  std::atomic<std::int64_t> drain_quiet_ms_{0}, drain_until_ns_{0};  // steady clock
  Decode decode_;
  Idle idle_;
  RateLimitedLog* log_;
  zmq::socket_t socket_;
  std::vector<std::string> bound_;
  std::thread thread_;
  std::atomic<bool> stop_requested_{false};
  mutable std::mutex counters_mutex_;
  TimesliceReceiverCounters counters_;
};

// Whole (or partial) timeslices: a BufferReceiver that decodes FlatBuffers Timeslice buffers.
class TimesliceReceiver {
 public:
  using Sink = std::function<void(Timeslice&&)>;
  TimesliceReceiver(zmq::context_t& context, TimesliceReceiverConfig config, Sink sink,
                    RateLimitedLog* log = nullptr, BufferReceiver::Idle idle = {});

  void start() { receiver_.start(); }
  void stop() { receiver_.stop(); }
  void drain_and_stop(std::chrono::milliseconds quiet, std::chrono::milliseconds deadline) {
    receiver_.drain_and_stop(quiet, deadline);
  }
  TimesliceReceiverCounters counters() const { return receiver_.counters(); }
  std::vector<std::string> bound_endpoints() const { return receiver_.bound_endpoints(); }
  std::uint64_t last_wakeup_unix_ns() const noexcept { return receiver_.last_wakeup_unix_ns(); }

 private:
  FbLimits limits_;
  Sink sink_;
  BufferReceiver receiver_;  // last: its thread stops before the sink goes
};

}  // namespace shoredaq::dataflow
