#include "shoredaq/drivers/udp_receiver.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

#include "shoredaq/formats/record_stream.hpp"

namespace shoredaq::drivers {

namespace {

std::uint64_t steady_now_ns() noexcept {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

void put_le32(std::uint8_t* p, std::uint32_t v) noexcept {
  p[0] = static_cast<std::uint8_t>(v);
  p[1] = static_cast<std::uint8_t>(v >> 8);
  p[2] = static_cast<std::uint8_t>(v >> 16);
  p[3] = static_cast<std::uint8_t>(v >> 24);
}

std::string read_whole(const char* path) {
  std::ifstream in(path);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

// The DOM id of a datagram's header (0 when too short), for log messages.
std::uint32_t dom_id_of(const std::uint8_t* p, std::size_t size) noexcept {
  if (size < 24) return 0;
  return (std::uint32_t{p[20]} << 24) | (std::uint32_t{p[21]} << 16) | (std::uint32_t{p[22]} << 8) | p[23];
}

// Room for the SO_RXQ_OVFL message (a uint32) and anything else the kernel may add.
constexpr std::size_t kControlBytes = 64;

}  // namespace

UdpSocketCounters& UdpSocketCounters::operator+=(const UdpSocketCounters& o) noexcept {
  datagrams += o.datagrams;
  bytes += o.bytes;
  receive_calls += o.receive_calls;
  truncated_datagrams += o.truncated_datagrams;
  other_data_type += o.other_data_type;
  other_data_type_dropped += o.other_data_type_dropped;
  receive_errors += o.receive_errors;
  kernel_drops_rxq_ovfl += o.kernel_drops_rxq_ovfl;
  kernel_drops_proc += o.kernel_drops_proc;
  kernel_queue_bytes += o.kernel_queue_bytes;
  messages += o.messages;
  ingest += o.ingest;
  return *this;
}

std::optional<KernelUdpSocketStats> parse_proc_net_udp(std::string_view text, std::uint64_t inode) {
  // Columns (net/ipv4/udp.c udp4_format_sock, the same for udp6): sl local rem st tx:rx tr:when
  // retrnsmt uid timeout inode ref pointer drops. rx_queue is hex, inode and drops decimal.
  std::size_t line_start = 0;
  bool header = true;
  while (line_start < text.size()) {
    std::size_t line_end = text.find('\n', line_start);
    if (line_end == std::string_view::npos) line_end = text.size();
    const std::string line(text.substr(line_start, line_end - line_start));
    line_start = line_end + 1;
    if (header) {  // the column titles
      header = false;
      continue;
    }
    std::istringstream in(line);
    std::string field[13];
    std::size_t n = 0;
    while (n < 13 && in >> field[n]) ++n;
    if (n < 13) continue;
    std::uint64_t line_inode = 0;
    try {
      line_inode = std::stoull(field[9]);
    } catch (...) {
      continue;
    }
    if (line_inode != inode) continue;
    KernelUdpSocketStats s;
    try {
      const auto colon = field[4].find(':');
      if (colon != std::string::npos) s.rx_queue_bytes = std::stoull(field[4].substr(colon + 1), nullptr, 16);
      s.drops = std::stoull(field[12]);
    } catch (...) {
      return std::nullopt;
    }
    return s;
  }
  return std::nullopt;
}

std::optional<KernelUdpSocketStats> read_kernel_udp_stats(std::uint64_t inode) {
  for (const char* path : {"/proc/self/net/udp", "/proc/self/net/udp6"}) {
    if (auto s = parse_proc_net_udp(read_whole(path), inode)) return s;
  }
  return std::nullopt;
}

struct UdpReceiver::Socket {
  UdpPortConfig config;
  int fd = -1;
  dataflow::IngestParser parser;
  UdpSocketCounters counters;            // the receiver thread's working copy
  std::uint32_t last_rxq_ovfl = 0;       // the kernel's cumulative drop count from the last cmsg
  std::uint64_t inode = 0;               // its line in /proc/self/net/udp(6)
  bool changed = false;                  // since the last publish

  Socket(UdpPortConfig c, bool check_channels, dataflow::RateLimitedLog* log, std::string name)
      : config(std::move(c)), parser(config.header_layout, check_channels, log, std::move(name)) {}
};

// The receiver thread's buffers: one slot of max_datagram_bytes per datagram of a batch.
struct UdpReceiver::Scratch {
  std::vector<std::uint8_t> slots;
  std::vector<std::uint8_t> control;
  std::vector<iovec> iov;
  std::vector<mmsghdr> headers;
  std::vector<std::uint8_t> keep;  // per datagram of the batch: goes into the message

  Scratch(std::size_t batch, std::size_t slot_bytes)
      : slots(batch * slot_bytes), control(batch * kControlBytes), iov(batch), headers(batch), keep(batch) {
    for (std::size_t i = 0; i < batch; ++i) {
      iov[i].iov_base = slots.data() + i * slot_bytes;
      iov[i].iov_len = slot_bytes;
    }
  }
  void reset() noexcept {  // the kernel rewrites lengths and flags on every call
    for (std::size_t i = 0; i < headers.size(); ++i) {
      headers[i] = mmsghdr{};
      headers[i].msg_hdr.msg_iov = &iov[i];
      headers[i].msg_hdr.msg_iovlen = 1;
      headers[i].msg_hdr.msg_control = control.data() + i * kControlBytes;
      headers[i].msg_hdr.msg_controllen = kControlBytes;
    }
  }
};

UdpReceiver::UdpReceiver(UdpReceiverConfig config, MessageSink sink, dataflow::RateLimitedLog* log)
    : config_(std::move(config)), sink_(std::move(sink)), log_(log) {
  if (config_.batch_datagrams == 0) config_.batch_datagrams = 1;
  if (config_.max_batches_per_wakeup == 0) config_.max_batches_per_wakeup = 1;
  if (config_.poll_interval < std::chrono::milliseconds(1)) config_.poll_interval = std::chrono::milliseconds(1);  // never spin
  // A CLB datagram has at least a 28-byte header; anything under that slot size is a misconfiguration.
  if (config_.max_datagram_bytes < dataflow::kClbHeaderBytes) config_.max_datagram_bytes = dataflow::kClbHeaderBytes;
}

UdpReceiver::~UdpReceiver() { stop(); }

void UdpReceiver::close_sockets() noexcept {
  for (Socket& s : sockets_) {
    if (s.fd >= 0) ::close(s.fd);
    s.fd = -1;
  }
  sockets_.clear();
  if (wake_fd_ >= 0) ::close(wake_fd_);
  wake_fd_ = -1;
}

void UdpReceiver::open() {
  if (!sockets_.empty() || wake_fd_ >= 0) return;
  std::vector<UdpSocketInfo> info;
  try {
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) throw std::system_error(errno, std::generic_category(), "udp receiver: eventfd");
    sockets_.reserve(config_.ports.size());
    for (const UdpPortConfig& port : config_.ports) {
      const std::string name = "udp " + std::string(data_type_name(port.data_type)) + " " + to_string(port.bind);
      const auto fail = [&](const char* what) {
        return std::system_error(errno, std::generic_category(), name + ": " + what);
      };
      const SocketAddress address = resolve_udp(port.bind, true);
      sockets_.emplace_back(port, config_.check_channels, log_, name);
      Socket& s = sockets_.back();
      s.fd = ::socket(address.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (s.fd < 0) throw fail("socket");
      UdpSocketInfo i;
      i.data_type = port.data_type;
      i.requested = port.bind;
      i.receive_buffer_requested = port.receive_buffer_bytes;
      if (port.receive_buffer_bytes > 0) {
        const int bytes = port.receive_buffer_bytes;
        i.receive_buffer_forced =
            port.force_receive_buffer && ::setsockopt(s.fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) == 0;
        if (!i.receive_buffer_forced && ::setsockopt(s.fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes) != 0)
          throw fail("SO_RCVBUF");
      }
      const int on = 1;
      if (::setsockopt(s.fd, SOL_SOCKET, SO_RXQ_OVFL, &on, sizeof on) != 0) throw fail("SO_RXQ_OVFL");
      if (::bind(s.fd, address.get(), address.length) != 0) throw fail("bind");
      sockaddr_storage bound{};
      socklen_t bound_length = sizeof bound;
      if (::getsockname(s.fd, reinterpret_cast<sockaddr*>(&bound), &bound_length) != 0) throw fail("getsockname");
      i.bound = endpoint_of(reinterpret_cast<const sockaddr*>(&bound), bound_length);
      int granted = 0;
      socklen_t granted_length = sizeof granted;
      if (::getsockopt(s.fd, SOL_SOCKET, SO_RCVBUF, &granted, &granted_length) == 0) {
        i.receive_buffer_granted = granted / 2;  // the kernel reports twice the usable size (bookkeeping)
      }
      struct stat st {};
      if (::fstat(s.fd, &st) == 0) i.inode = s.inode = st.st_ino;
      if (log_ != nullptr && i.receive_buffer_granted < port.receive_buffer_bytes) {
        log_->log(spdlog::level::warn, "udp_receive_buffer_capped",
                  "{}: receive buffer {} bytes requested, the kernel granted {} (raise net.core.rmem_max, or give "
                  "the process CAP_NET_ADMIN for SO_RCVBUFFORCE)",
                  name, port.receive_buffer_bytes, i.receive_buffer_granted);
      }
      info.push_back(i);
    }
  } catch (...) {
    close_sockets();
    throw;
  }
  std::lock_guard lock(published_mutex_);
  info_ = std::move(info);
  published_.assign(sockets_.size(), UdpSocketCounters{});
}

void UdpReceiver::start() {
  if (running_.load()) return;
  open();
  stop_requested_ = false;
  running_ = true;
  thread_ = std::thread([this] { run(); });
  ::pthread_setname_np(thread_.native_handle(), "udp-rx");  // visible in top -H / ps -L
}

void UdpReceiver::stop() {
  stop_requested_ = true;
  if (wake_fd_ >= 0) {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(wake_fd_, &one, sizeof one);  // cannot block: EFD_NONBLOCK
  }
  if (thread_.joinable()) thread_.join();
  if (!sockets_.empty()) {
    read_kernel_stats();  // the final word on kernel drops, which needs no later datagram
    publish();
  }
  close_sockets();
  running_ = false;
}

std::vector<UdpSocketInfo> UdpReceiver::sockets() const {
  std::lock_guard lock(published_mutex_);
  return info_;
}

UdpSocketCounters UdpReceiver::counters(std::size_t socket) const {
  std::lock_guard lock(published_mutex_);
  return socket < published_.size() ? published_[socket] : UdpSocketCounters{};
}

UdpSocketCounters UdpReceiver::counters() const {
  std::lock_guard lock(published_mutex_);
  UdpSocketCounters sum;
  for (const auto& c : published_) sum += c;
  return sum;
}

void UdpReceiver::publish() {
  std::lock_guard lock(published_mutex_);
  for (std::size_t i = 0; i < sockets_.size(); ++i) {
    Socket& s = sockets_[i];
    if (!s.changed) continue;
    s.counters.ingest = s.parser.counters();
    published_[i] = s.counters;
    s.changed = false;
  }
}

void UdpReceiver::read_kernel_stats() {
  std::string v4, v6;  // each file read once for all sockets
  bool read = false;
  for (std::size_t i = 0; i < sockets_.size(); ++i) {
    if (!read) {
      v4 = read_whole("/proc/self/net/udp");
      v6 = read_whole("/proc/self/net/udp6");
      read = true;
    }
    Socket& s = sockets_[i];
    auto stats = parse_proc_net_udp(v4, s.inode);
    if (!stats) stats = parse_proc_net_udp(v6, s.inode);
    if (!stats) continue;
    s.counters.kernel_drops_proc = stats->drops;
    s.counters.kernel_queue_bytes = stats->rx_queue_bytes;
    s.changed = true;
  }
}

std::size_t UdpReceiver::receive_batch(std::size_t socket_index, Scratch& scratch) {
  Socket& s = sockets_[socket_index];
  scratch.reset();
  const int got = ::recvmmsg(s.fd, scratch.headers.data(), static_cast<unsigned>(scratch.headers.size()),
                             MSG_DONTWAIT, nullptr);
  if (got < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      ++s.counters.receive_errors;
      s.changed = true;
      if (log_ != nullptr) {
        log_->log(spdlog::level::err, "udp_receive_error", "udp {} port {}: recvmmsg failed: {}",
                  data_type_name(s.config.data_type), s.config.bind.port, std::strerror(errno));
      }
    }
    return 0;
  }
  if (got == 0) return 0;
  const std::uint64_t now = dataflow::unix_now_ns();
  const auto n = static_cast<std::size_t>(got);
  ++s.counters.receive_calls;
  s.counters.datagrams += n;
  s.changed = true;

  // Which datagrams go on, and the size of the record stream they make.
  std::size_t framed_bytes = 0;
  auto& keep = scratch.keep;
  std::fill(keep.begin(), keep.begin() + static_cast<std::ptrdiff_t>(n), std::uint8_t{1});
  for (std::size_t i = 0; i < n; ++i) {
    msghdr& h = scratch.headers[i].msg_hdr;
    const std::size_t length = scratch.headers[i].msg_len;
    s.counters.bytes += length;
    for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL && c->cmsg_len >= CMSG_LEN(sizeof(std::uint32_t))) {
        std::uint32_t dropped_so_far = 0;  // the socket's cumulative drops when this datagram was queued
        std::memcpy(&dropped_so_far, CMSG_DATA(c), sizeof dropped_so_far);
        s.counters.kernel_drops_rxq_ovfl += static_cast<std::uint32_t>(dropped_so_far - s.last_rxq_ovfl);
        s.last_rxq_ovfl = dropped_so_far;
      }
    }
    if ((h.msg_flags & MSG_TRUNC) != 0) {
      keep[i] = 0;
      ++s.counters.truncated_datagrams;
      if (log_ != nullptr) {
        log_->log(spdlog::level::warn, "udp_truncated",
                  "udp {} port {}: a datagram longer than {} bytes was truncated and dropped",
                  data_type_name(s.config.data_type), s.config.bind.port, config_.max_datagram_bytes);
      }
      continue;
    }
    const auto* bytes = static_cast<const std::uint8_t*>(scratch.iov[i].iov_base);
    const auto type = peek_data_type(bytes, length);
    if (type && *type != s.config.data_type) {
      ++s.counters.other_data_type;
      if (!s.config.accept_other_data_types) {
        keep[i] = 0;
        ++s.counters.other_data_type_dropped;
      }
      if (log_ != nullptr) {
        log_->log(spdlog::level::warn, "udp_other_data_type", "udp {} port {}: {} datagram from DOM {} ({})",
                  data_type_name(s.config.data_type), s.config.bind.port, data_type_name(*type),
                  dom_id_of(bytes, length), s.config.accept_other_data_types ? "accepted" : "dropped");
      }
      if (!keep[i]) continue;
    }
    framed_bytes += dataflow::kRecordLengthBytes + length;
  }
  if (framed_bytes == 0) return n;

  dataflow::ParsedMessage pm;
  pm.message = zmq::message_t(framed_bytes);
  auto* out = static_cast<std::uint8_t*>(pm.message.data());
  for (std::size_t i = 0; i < n; ++i) {
    if (!keep[i]) continue;
    const std::size_t length = scratch.headers[i].msg_len;
    put_le32(out, static_cast<std::uint32_t>(length));
    std::memcpy(out + dataflow::kRecordLengthBytes, scratch.iov[i].iov_base, length);
    out += dataflow::kRecordLengthBytes + length;
  }
  pm.receive_unix_ns = now;
  pm.endpoint = config_.endpoint_index_base + socket_index;
  s.parser.parse(pm.bytes(), pm.records);
  last_datagram_ns_.store(now, std::memory_order_relaxed);
  if (!pm.records.empty()) {
    ++s.counters.messages;
    if (sink_) sink_(std::move(pm));
  }
  return n;
}

void UdpReceiver::run() {
  Scratch scratch(config_.batch_datagrams, config_.max_datagram_bytes);
  std::vector<pollfd> fds;
  for (const Socket& s : sockets_) fds.push_back(pollfd{s.fd, POLLIN, 0});
  fds.push_back(pollfd{wake_fd_, POLLIN, 0});
  const std::uint64_t stats_interval_ns =
      static_cast<std::uint64_t>(std::chrono::nanoseconds(config_.kernel_stats_interval).count());
  std::uint64_t next_stats_ns = steady_now_ns() + stats_interval_ns;
  while (!stop_requested_.load(std::memory_order_relaxed)) {
    auto timeout_ms = static_cast<int>(config_.poll_interval.count());
    if (stats_interval_ns > 0) {
      const std::uint64_t now = steady_now_ns();
      const auto until_stats_ms = static_cast<int>(next_stats_ns > now ? (next_stats_ns - now) / 1'000'000 + 1 : 0);
      timeout_ms = std::min(timeout_ms, until_stats_ms);
    }
    const int ready = ::poll(fds.data(), fds.size(), std::max(timeout_ms, 0));
    if (ready < 0) {
      if (errno == EINTR) continue;
      if (log_ != nullptr) log_->log(spdlog::level::err, "udp_poll", "udp receiver: poll failed: {}", std::strerror(errno));
      break;
    }
    last_poll_ns_.store(dataflow::unix_now_ns(), std::memory_order_relaxed);
    if (fds.back().revents != 0) break;  // stop() woke us
    for (std::size_t i = 0; i + 1 < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      for (std::size_t b = 0; b < config_.max_batches_per_wakeup; ++b) {
        if (stop_requested_.load(std::memory_order_relaxed)) break;
        // A short batch means the queue is empty now: back to poll.
        if (receive_batch(i, scratch) < config_.batch_datagrams) break;
      }
    }
    if (stats_interval_ns > 0 && steady_now_ns() >= next_stats_ns) {
      read_kernel_stats();
      next_stats_ns = steady_now_ns() + stats_interval_ns;
    }
    publish();
  }
}

}  // namespace shoredaq::drivers
