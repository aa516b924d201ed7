#pragma once
// Where the DU simulator's datagrams go: a `.dqd` record file or a ZeroMQ socket. Both carry the
// record stream of DESIGN.md section 3: `[uint32 little-endian length][CLB datagram]`...
// (Real UDP datagrams, one per CLB datagram: udp_sender.hpp; on a thread: threaded_feed_sink.hpp.)
//
// A datagram marked DatagramFault::BadLengthRecord gets a length field that overruns its unit:
//  - ZeroMQ: it travels alone in its own message, length = real length + 65536, so only that
//    message is bad (the receiver drops that message and nothing else).
//  - .dqd: a file has no resynchronisation point, so such records are kept back and written at the
//    very end of the file; the first one's length overruns the end of the file.

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "shoredaq/formats/record_stream.hpp"
#include "shoredaq/drivers/du_simulator.hpp"

namespace zmq {
class context_t;
class socket_t;
}  // namespace zmq

namespace shoredaq::drivers {

// Appends one record with a chosen (normally wrong) length field: 4-byte little-endian length,
// then the datagram. Correct records are written with dataflow's RecordWriter / DqdFileWriter.
void append_record_with_length(std::vector<std::uint8_t>& out, std::span<const std::uint8_t> datagram,
                               std::uint32_t length_field);

struct SinkCounters {
  std::uint64_t records = 0;
  std::uint64_t bad_length_records = 0;
  std::uint64_t messages = 0;      // ZeroMQ messages sent (file: 0)
  std::uint64_t bytes = 0;         // record bytes written / sent
  std::uint64_t hwm_blocked = 0;   // PUSH: sends that found the HWM reached and had to wait
  std::uint64_t hwm_dropped = 0;   // PUB: messages dropped at the HWM (counted via ZMQ_XPUB_NODROP)
  std::uint64_t dropped_on_stop = 0;  // messages abandoned because a stop was requested while blocked
};

class FeedSink {
 public:
  virtual ~FeedSink() = default;
  // Sends / writes one slice's datagrams in order.
  virtual void write(std::span<const SimDatagram> datagrams) = 0;
  // Flushes everything (for a file: the kept-back bad-length records, then close).
  virtual void finish() = 0;
  virtual const SinkCounters& counters() const noexcept = 0;
};

class DqdFileSink final : public FeedSink {
 public:
  // Throws std::runtime_error if the file cannot be created.
  explicit DqdFileSink(const std::filesystem::path& path);
  ~DqdFileSink() override;
  void write(std::span<const SimDatagram> datagrams) override;
  void finish() override;
  const SinkCounters& counters() const noexcept override { return counters_; }

 private:
  dataflow::DqdFileWriter writer_;
  std::vector<std::vector<std::uint8_t>> bad_length_;
  SinkCounters counters_;
  bool finished_ = false;
};

struct ZmqSenderConfig {
  std::string endpoint = "tcp://127.0.0.1:5555";
  enum class Kind { Push, Pub } kind = Kind::Push;
  bool bind = false;               // default: connect (the node binds its PULL/SUB socket)
  int linger_ms = 1000;            // bounded: never hang at exit on an absent peer
  int send_hwm = 1000;             // messages
  std::size_t batch_bytes = 256 * 1024;  // records are batched up to this size per message
  int blocked_retry_ms = 100;      // PUSH at HWM: wait in steps of this, checking `stop`
  // Called on the socket after the options above and before bind/connect: the caller's hook for
  // settings the drivers do not know about (e.g. CURVE client keys for a CURVE ingest).
  std::function<void(zmq::socket_t&)> configure_socket;
};

class ZmqFeedSender final : public FeedSink {
 public:
  // `stop` (optional) aborts a send blocked at the HWM. Throws zmq::error_t on a bad endpoint.
  explicit ZmqFeedSender(ZmqSenderConfig config, const std::atomic<bool>* stop = nullptr);
  ~ZmqFeedSender() override;
  void write(std::span<const SimDatagram> datagrams) override;
  void finish() override;
  const SinkCounters& counters() const noexcept override { return counters_; }
  // Sends an already-framed buffer of `record_count` records as one message (replay of a .dqd).
  void send_framed(std::span<const std::uint8_t> records, std::size_t record_count);

 private:
  void flush();
  void send_message(std::span<const std::uint8_t> bytes);
  ZmqSenderConfig config_;
  const std::atomic<bool>* stop_;
  std::unique_ptr<zmq::context_t> context_;
  std::unique_ptr<zmq::socket_t> socket_;
  dataflow::RecordWriter batch_;
  SinkCounters counters_;
};

}  // namespace shoredaq::drivers
