#pragma once
// UdpBridge: the CLBs' UDP on one machine, the node on another (issue 10 item 1; `clb-bridge`).
// A UdpReceiver takes the datagrams; every receive batch that has accepted datagrams goes out as
// ONE ZeroMQ message over PUSH in the DU-stream record format (DESIGN.md section 3,
// `[u32 LE length][datagram]...`), so the node's ZmqIngest takes it like du-sim's feed.
//
// Only accepted datagrams are forwarded: the bridge is where bad datagrams are seen, counted by
// cause and dropped (its receiver counters), so the node never counts them twice. A batch without
// rejects is forwarded as received (no copy); otherwise its accepted records are re-framed.
//
// Back-pressure: sending happens on the receiver thread. When the PUSH high-water mark is reached
// the send waits up to `max_block` for room (counted: `hwm_blocked`), then drops the message
// (counted: `hwm_dropped_*`), so a stalled node costs bounded time per batch and the loss is
// counted here rather than hidden in the kernel's UDP drops. stop() returns within one batch
// plus `max_block`, then closes the socket with the bounded linger.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include <zmq.hpp>

#include "shoredaq/dataflow/rate_limited_log.hpp"
#include "shoredaq/drivers/udp_receiver.hpp"

namespace shoredaq::drivers {

struct UdpBridgeConfig {
  UdpReceiverConfig receiver;
  std::string endpoint;                    // the node's ingest, e.g. "tcp://daq-node:5556"
  bool bind = false;                       // default: connect (the node binds its PULL socket)
  int send_hwm = 1000;                     // ZMQ_SNDHWM, messages (one per receive batch)
  int linger_ms = 1000;                    // ZMQ_LINGER at stop: bounded
  std::chrono::milliseconds max_block{100};  // at the HWM: wait this long for room, then drop
  // Called on the socket after the options above and before bind/connect (e.g. CURVE client keys).
  std::function<void(zmq::socket_t&)> configure_socket;
};

struct UdpBridgeCounters {
  std::uint64_t messages_forwarded = 0;
  std::uint64_t records_forwarded = 0;     // datagrams
  std::uint64_t bytes_forwarded = 0;       // record bytes (length prefixes included)
  std::uint64_t reframed_messages = 0;     // batches with rejected datagrams: accepted ones re-framed
  std::uint64_t hwm_blocked = 0;           // sends that found the HWM reached and waited
  std::uint64_t hwm_dropped_messages = 0;  // still no room after max_block: dropped
  std::uint64_t hwm_dropped_records = 0;
  std::uint64_t send_errors = 0;           // other ZeroMQ send failures: message dropped
  std::uint64_t send_error_records = 0;
};

class UdpBridge {
 public:
  // `context` and `log` (may be null) must outlive the bridge.
  UdpBridge(zmq::context_t& context, UdpBridgeConfig config, dataflow::RateLimitedLog* log = nullptr);
  ~UdpBridge();
  UdpBridge(const UdpBridge&) = delete;
  UdpBridge& operator=(const UdpBridge&) = delete;

  // Creates the ZeroMQ socket (zmq::error_t on a bad endpoint) and binds the UDP ports
  // (std::system_error / std::invalid_argument), then starts receiving.
  void start();
  void stop();  // bounded (see the top); idempotent

  UdpBridgeCounters counters() const;
  const UdpReceiver& receiver() const noexcept { return receiver_; }

 private:
  void forward(dataflow::ParsedMessage&& message);  // on the receiver thread

  zmq::context_t& context_;
  UdpBridgeConfig config_;
  dataflow::RateLimitedLog* log_;
  std::unique_ptr<zmq::socket_t> socket_;  // used by the receiver thread only while it runs
  UdpReceiver receiver_;
  mutable std::mutex counters_mutex_;
  UdpBridgeCounters counters_;
};

}  // namespace shoredaq::drivers
