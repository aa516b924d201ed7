#include "shoredaq/drivers/udp_sender.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "shoredaq/formats/record_stream.hpp"

namespace shoredaq::drivers {

namespace {
using Clock = std::chrono::steady_clock;
constexpr auto kRetryPause = std::chrono::milliseconds(1);
constexpr auto kLongestSleep = std::chrono::milliseconds(50);  // how soon a pacing wait notices `stop`
constexpr std::size_t kOptical = 0, kMonitoring = 1, kAcoustic = 2;

std::size_t route_of(std::span<const std::uint8_t> datagram) noexcept {
  const auto type = peek_data_type(datagram.data(), datagram.size());
  if (type == dataflow::DataType::Monitoring) return kMonitoring;
  if (type == dataflow::DataType::Acoustic) return kAcoustic;
  return kOptical;  // TTDC, and anything without a type tag: the optical receiver counts it
}
}  // namespace

struct UdpFeedSender::Destination {
  int fd = -1;
  std::vector<mmsghdr> headers;  // scratch for one group
  std::vector<iovec> iov;
};

UdpFeedSender::UdpFeedSender(UdpSenderConfig config, const std::atomic<bool>* stop)
    : config_(std::move(config)), stop_(stop), destinations_(3) {
  if (!config_.optical && !config_.monitoring && !config_.acoustic)
    throw std::invalid_argument("UDP sender: no destination");
  if (config_.burst_datagrams == 0) config_.burst_datagrams = 1;
  const std::optional<UdpEndpoint>* targets[3] = {&config_.optical, &config_.monitoring, &config_.acoustic};
  try {
    for (std::size_t k = 0; k < 3; ++k) {
      if (!*targets[k]) continue;
      const UdpEndpoint& target = **targets[k];
      const SocketAddress address = resolve_udp(target, false);
      Destination& d = destinations_[k];
      d.fd = ::socket(address.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0);
      const auto fail = [&](const char* what) {
        return std::system_error(errno, std::generic_category(), "UDP sender to " + to_string(target) + ": " + what);
      };
      if (d.fd < 0) throw fail("socket");
      if (config_.send_buffer_bytes > 0 &&
          ::setsockopt(d.fd, SOL_SOCKET, SO_SNDBUF, &config_.send_buffer_bytes, sizeof config_.send_buffer_bytes) != 0)
        throw fail("SO_SNDBUF");
      // Connected: the kernel reports "port unreachable" from the destination as ECONNREFUSED.
      if (::connect(d.fd, address.get(), address.length) != 0) throw fail("connect");
      d.headers.resize(config_.burst_datagrams);
      d.iov.resize(config_.burst_datagrams);
    }
  } catch (...) {
    for (Destination& d : destinations_)
      if (d.fd >= 0) ::close(d.fd);
    throw;
  }
}

UdpFeedSender::~UdpFeedSender() {
  for (Destination& d : destinations_)
    if (d.fd >= 0) ::close(d.fd);
}

bool UdpFeedSender::wait_until(Clock::time_point when) {
  while (Clock::now() < when) {
    if (stop_ != nullptr && stop_->load()) return false;
    std::this_thread::sleep_until(std::min(when, Clock::now() + kLongestSleep));
  }
  return true;
}

void UdpFeedSender::write(std::span<const SimDatagram> datagrams) {
  std::vector<std::span<const std::uint8_t>> spans;
  std::vector<DatagramFault> faults;
  spans.reserve(datagrams.size());
  faults.reserve(datagrams.size());
  for (const SimDatagram& d : datagrams) {
    spans.emplace_back(d.bytes);
    faults.push_back(d.fault);
  }
  send_spans(spans, faults);
}

void UdpFeedSender::send(std::span<const std::span<const std::uint8_t>> datagrams) { send_spans(datagrams, {}); }

void UdpFeedSender::send_framed(std::span<const std::uint8_t> records) {
  std::vector<std::span<const std::uint8_t>> spans;
  dataflow::for_each_record(records, [&](std::span<const std::uint8_t> d) { spans.push_back(d); });
  send_spans(spans, {});
}

void UdpFeedSender::send_spans(std::span<const std::span<const std::uint8_t>> datagrams,
                               std::span<const DatagramFault> faults) {
  const std::size_t n = datagrams.size();
  sink_counters_.records += n;
  if (n == 0) return;
  const double spread_step_ns = static_cast<double>(config_.spread.count()) / static_cast<double>(n);
  const auto interval_of = [&](std::size_t bytes) {
    double ns = spread_step_ns;
    if (config_.rate_limit_datagrams_per_s > 0) ns = std::max(ns, 1e9 / config_.rate_limit_datagrams_per_s);
    if (config_.rate_limit_bytes_per_s > 0)
      ns = std::max(ns, static_cast<double>(bytes) * 1e9 / config_.rate_limit_bytes_per_s);
    return std::chrono::nanoseconds(static_cast<std::int64_t>(ns));
  };
  next_send_ = std::max(next_send_, Clock::now());  // idle time earns no credit for a burst later
  std::size_t i = 0;
  while (i < n) {
    if (next_send_ > Clock::now()) {
      ++counters_.pacing_waits;
      if (!wait_until(next_send_)) break;
    } else if (stop_ != nullptr && stop_->load()) {
      break;
    }
    const std::size_t route = route_of(datagrams[i]);
    if (destinations_[route].fd < 0) {
      ++counters_.unrouted;
      ++i;
      continue;
    }
    // A burst: consecutive datagrams for the same destination, at most burst_datagrams.
    std::size_t j = i;
    while (j < n && j - i < config_.burst_datagrams && route_of(datagrams[j]) == route) {
      if (!faults.empty() && faults[j] == DatagramFault::BadLengthRecord) ++counters_.bad_length_sent_intact;
      next_send_ += interval_of(datagrams[j].size());
      ++j;
    }
    send_group(destinations_[route], datagrams.subspan(i, j - i));
    i = j;
  }
  sink_counters_.dropped_on_stop += n - i;
}

void UdpFeedSender::send_group(Destination& d, std::span<const std::span<const std::uint8_t>> group) {
  for (std::size_t k = 0; k < group.size(); ++k) {
    d.iov[k].iov_base = const_cast<std::uint8_t*>(group[k].data());  // sendmmsg only reads it
    d.iov[k].iov_len = group[k].size();
    d.headers[k] = mmsghdr{};
    d.headers[k].msg_hdr.msg_iov = &d.iov[k];
    d.headers[k].msg_hdr.msg_iovlen = 1;
  }
  std::size_t done = 0;
  unsigned retries_left = config_.retries;
  while (done < group.size()) {
    const int sent = ::sendmmsg(d.fd, d.headers.data() + done, static_cast<unsigned>(group.size() - done), MSG_DONTWAIT);
    if (sent > 0) {
      ++counters_.send_calls;
      for (std::size_t k = done; k < done + static_cast<std::size_t>(sent); ++k) {
        ++counters_.datagrams_sent;
        counters_.bytes_sent += group[k].size();
        ++sink_counters_.messages;
        sink_counters_.bytes += group[k].size();
      }
      done += static_cast<std::size_t>(sent);
      retries_left = config_.retries;
      continue;
    }
    const int error = errno;
    if (error == EINTR) continue;
    const bool retry = (error == ENOBUFS || error == EAGAIN || error == EWOULDBLOCK || error == ECONNREFUSED) &&
                       retries_left > 0;
    if (error == ENOBUFS || error == EAGAIN || error == EWOULDBLOCK) {
      ++counters_.enobufs;
      if (retry) std::this_thread::sleep_for(kRetryPause);  // the queue drains meanwhile
    } else if (error == ECONNREFUSED) {
      ++counters_.refused;  // about an earlier datagram; this one was not sent yet: try it again
    } else {
      ++counters_.other_errors;
    }
    if (retry) {
      --retries_left;
      continue;
    }
    ++counters_.datagrams_failed;  // give up on this one, go on with the next
    ++done;
    retries_left = config_.retries;
  }
}

}  // namespace shoredaq::drivers
