#pragma once
// The acoustic stream on ZeroMQ, for the acoustic positioning system: a PUB socket sending each
// TAES datagram as received as a multipart [topic][datagram] message, topic
// `acoustic.<detector id>`. Like the alert stream (alert_publisher.hpp), sends never block: at the
// high-water mark a datagram is dropped and counted (the acoustic spool keeps them all).
// One thread (the one that feeds it, e.g. the node's builder thread); counters() is a copy.

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include <zmq.hpp>

namespace shoredaq::storage {

struct AcousticPublisherConfig {
  std::vector<std::string> endpoints{"tcp://127.0.0.1:9571"};  // bound
  std::int32_t detector_id = 0;
  int send_hwm = 10'000;  // datagrams queued per subscriber before drops
  int linger_ms = 200;    // bounded: closing never waits on a dead subscriber for longer
  // Exact drop counting (ZMQ_XPUB_NODROP): a full subscriber makes the send fail, counted, and
  // the datagram is then dropped for every subscriber (alert_publisher.hpp says why).
  bool count_drops_exactly = true;
  // Called on the socket before bind: the owner's hook (e.g. CURVE). Exceptions propagate.
  std::function<void(zmq::socket_t&)> configure_socket;
};

struct AcousticPublisherCounters {
  std::uint64_t datagrams_sent = 0;
  std::uint64_t datagrams_dropped = 0;  // at the high-water mark
  std::uint64_t send_errors = 0;        // other ZeroMQ errors
};

class AcousticPublisher {
 public:
  AcousticPublisher(zmq::context_t& context, AcousticPublisherConfig config);  // throws zmq::error_t on bind failure

  // True if the datagram went out. Never blocks, never throws.
  bool publish(std::span<const std::uint8_t> datagram) noexcept;

  const std::string& topic() const noexcept { return topic_; }
  const AcousticPublisherCounters& counters() const noexcept { return counters_; }
  std::vector<std::string> bound_endpoints() const { return bound_; }

 private:
  AcousticPublisherConfig config_;
  zmq::socket_t socket_;
  std::string topic_;
  std::vector<std::string> bound_;
  AcousticPublisherCounters counters_;
};

}  // namespace shoredaq::storage
