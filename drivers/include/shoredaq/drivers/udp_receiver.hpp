#pragma once
// UdpReceiver: the CLBs' own transport (DOMAIN.md section 2, issue 10 item 1). Every DOM's CLB
// sends its datagrams over UDP, one port per data type (optical 56015, monitoring 56017,
// acoustic 56016 by default). One socket per configured port, read by one thread of its own with
// recvmmsg batches; each batch becomes one record stream `[u32 LE length][datagram]...` parsed by
// dataflow::IngestParser, so the sink gets exactly what ZmqIngest hands its sink
// (dataflow::ParsedMessage, same per-cause reject counters) and the daemon can feed both into the
// same Pipeline. The sink runs on the receiver thread and must not block (Pipeline::feed in lossy
// mode drops the oldest queued message instead): while it blocks, the kernel buffer fills and
// drops.
//
// What can be lost, and where it is counted (UdpSocketCounters, per socket):
//  - kernel drops (receive buffer full): SO_RXQ_OVFL (learned from the next datagram received
//    after the drop) and, as a cross-check that needs no later datagram, the socket's "drops"
//    column of /proc/self/net/udp(6), read every `kernel_stats_interval` and at stop();
//  - datagrams longer than `max_datagram_bytes` (MSG_TRUNC): counted, dropped (never half-parsed);
//  - bad datagrams: dataflow::IngestCounters by cause (truncated header, unknown type, ...).
//
// Another data type on a port (e.g. TMCH arriving on the optical port): a CLB configured with the
// wrong port still sends valid data, and the builder tells the types apart by the header tag, so
// by default such datagrams are ACCEPTED and counted (`other_data_type`); a port can be made
// strict (`accept_other_data_types = false`): then they are dropped and counted as such too.
//
// Receive buffer: SO_RCVBUF is capped by the kernel at net.core.rmem_max unless SO_RCVBUFFORCE
// succeeds (CAP_NET_ADMIN); UdpSocketInfo says what was requested and what the kernel granted.
//
// stop() wakes the thread at once (an eventfd in the poll set) and returns once the current batch
// has been handed to the sink; poll() also times out every `poll_interval`, so nothing waits
// unbounded.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "shoredaq/dataflow/rate_limited_log.hpp"
#include "shoredaq/dataflow/zmq_ingest.hpp"
#include "shoredaq/drivers/udp_endpoint.hpp"

namespace shoredaq::drivers {

// One UDP socket: the port CLBs send one data type to.
struct UdpPortConfig {
  dataflow::DataType data_type = dataflow::DataType::Optical;  // what the CLBs send to this port
  UdpEndpoint bind{"0.0.0.0", 56015};  // local address and port; port 0 = ephemeral (see UdpSocketInfo)
  dataflow::HeaderLayoutMode header_layout = dataflow::HeaderLayoutMode::Standard40;  // 40, 28 or auto
  int receive_buffer_bytes = 32 << 20;  // SO_RCVBUF requested (public CLB readers use 32 MiB)
  bool force_receive_buffer = true;     // try SO_RCVBUFFORCE first (needs CAP_NET_ADMIN), else SO_RCVBUF
  bool accept_other_data_types = true;  // a datagram of another known type: accept (true) or drop; counted either way
};

struct UdpReceiverConfig {
  std::vector<UdpPortConfig> ports;
  std::size_t batch_datagrams = 64;         // datagrams per recvmmsg call = per ParsedMessage at most
  std::size_t max_datagram_bytes = 9216;    // receive slot; a longer datagram is truncated, counted and dropped
  std::size_t max_batches_per_wakeup = 16;  // then the next socket gets its turn (fairness)
  std::chrono::milliseconds poll_interval{100};            // poll() timeout: heartbeat (last_poll_unix_ns)
  std::chrono::milliseconds kernel_stats_interval{1000};   // /proc/self/net/udp(6) reads; 0 = only at stop()
  bool check_channels = false;              // as ZmqIngestConfig::check_channels
  std::size_t endpoint_index_base = 0;      // ParsedMessage::endpoint = base + socket index
};

// Per socket. `ingest` are the parser's counters (messages = receive batches parsed; bytes include
// the 4-byte record length the receiver puts in front of every datagram).
struct UdpSocketCounters {
  std::uint64_t datagrams = 0;              // received from the kernel, whatever their content
  std::uint64_t bytes = 0;                  // their UDP payload bytes (of a truncated one: the bytes kept)
  std::uint64_t receive_calls = 0;          // recvmmsg calls that returned datagrams
  std::uint64_t truncated_datagrams = 0;    // longer than max_datagram_bytes (MSG_TRUNC): dropped
  std::uint64_t other_data_type = 0;        // a known type that belongs to another port
  std::uint64_t other_data_type_dropped = 0;  // ... of which dropped (accept_other_data_types = false)
  std::uint64_t receive_errors = 0;         // recvmmsg failures other than EAGAIN / EINTR
  std::uint64_t kernel_drops_rxq_ovfl = 0;  // SO_RXQ_OVFL: dropped by the kernel (seen with a later datagram)
  std::uint64_t kernel_drops_proc = 0;      // /proc/self/net/udp(6) "drops" of this socket, last read
  std::uint64_t kernel_queue_bytes = 0;     // /proc rx_queue: bytes waiting in the kernel, last read (a gauge)
  std::uint64_t messages = 0;               // ParsedMessages handed to the sink (batches with >= 1 accepted datagram)
  dataflow::IngestCounters ingest;

  // Kernel drops by the better of the two sources (both count the same socket counter, sk_drops).
  std::uint64_t kernel_drops() const noexcept {
    return kernel_drops_rxq_ovfl > kernel_drops_proc ? kernel_drops_rxq_ovfl : kernel_drops_proc;
  }
  UdpSocketCounters& operator+=(const UdpSocketCounters& o) noexcept;
};

struct UdpSocketInfo {
  dataflow::DataType data_type = dataflow::DataType::Optical;
  UdpEndpoint requested;                 // as configured
  UdpEndpoint bound;                     // numeric address and the actual port (getsockname)
  int receive_buffer_requested = 0;      // bytes
  int receive_buffer_granted = 0;        // bytes usable as the kernel reports them (getsockopt / 2)
  bool receive_buffer_forced = false;    // SO_RCVBUFFORCE succeeded (not capped at rmem_max)
  std::uint64_t inode = 0;               // the socket's inode: its line in /proc/self/net/udp(6)
};

// One socket's line of /proc/net/udp or udp6.
struct KernelUdpSocketStats {
  std::uint64_t drops = 0;
  std::uint64_t rx_queue_bytes = 0;
};
// Finds the socket with this inode in the text of /proc/net/udp or /proc/net/udp6.
std::optional<KernelUdpSocketStats> parse_proc_net_udp(std::string_view text, std::uint64_t inode);
// Reads /proc/self/net/udp and udp6 (this process's network namespace).
std::optional<KernelUdpSocketStats> read_kernel_udp_stats(std::uint64_t inode);

class UdpReceiver {
 public:
  using MessageSink = dataflow::ZmqIngest::MessageSink;  // void(dataflow::ParsedMessage&&), must not block

  // `log` may be null (no logging); it must outlive the receiver.
  UdpReceiver(UdpReceiverConfig config, MessageSink sink, dataflow::RateLimitedLog* log = nullptr);
  ~UdpReceiver();
  UdpReceiver(const UdpReceiver&) = delete;
  UdpReceiver& operator=(const UdpReceiver&) = delete;

  // Creates and binds every socket in the caller's thread, so a bad address or a port in use is
  // an error at once (std::system_error / std::invalid_argument naming the address). Datagrams
  // queue in the kernel until start(). Does nothing when already open.
  void open();
  // open() if needed, then starts the receiver thread.
  void start();
  // Stops the thread (see the top of this file), reads the kernel counters one last time and
  // closes the sockets. Idempotent; start() opens new sockets afterwards.
  void stop();
  bool running() const noexcept { return running_.load(); }

  // Valid after open(): one entry per configured port, in order.
  std::vector<UdpSocketInfo> sockets() const;
  // Thread-safe snapshots, per socket and summed.
  UdpSocketCounters counters(std::size_t socket) const;
  UdpSocketCounters counters() const;
  std::uint64_t last_datagram_unix_ns() const noexcept { return last_datagram_ns_.load(std::memory_order_relaxed); }
  std::uint64_t last_poll_unix_ns() const noexcept { return last_poll_ns_.load(std::memory_order_relaxed); }
  const UdpReceiverConfig& config() const noexcept { return config_; }

 private:
  struct Socket;
  struct Scratch;
  void run();
  std::size_t receive_batch(std::size_t socket_index, Scratch& scratch);
  void read_kernel_stats();
  void publish();
  void close_sockets() noexcept;

  UdpReceiverConfig config_;
  MessageSink sink_;
  dataflow::RateLimitedLog* log_;
  std::vector<Socket> sockets_;
  int wake_fd_ = -1;
  mutable std::mutex published_mutex_;
  std::vector<UdpSocketInfo> info_;
  std::vector<UdpSocketCounters> published_;
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> running_{false};
  std::atomic<std::uint64_t> last_datagram_ns_{0};
  std::atomic<std::uint64_t> last_poll_ns_{0};
  std::thread thread_;
};

}  // namespace shoredaq::drivers
