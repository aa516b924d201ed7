#pragma once
// A ControlHost client for tests, written from the protocol description (DOMAIN.md section 3) with
// plain POSIX sockets, independent of the dispatcher's code: each message is an 8-byte ASCII tag
// padded with NUL, a uint32 big-endian payload length, 4 spare bytes, then the payload; a client
// subscribes with tag "_Subscri" and payload " w TAG" / " a TAG" (several concatenated), then tag
// "_Always". Every wait has a deadline.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace shoredaq::storage::testing {

class ControlHostClient {
 public:
  struct Message {
    std::string tag;
    std::vector<std::uint8_t> payload;
  };

  // Connects to 127.0.0.1:port; a receive buffer of `receive_buffer_bytes` (0 = the default)
  // makes a client that stops reading fill up fast.
  explicit ControlHostClient(std::uint16_t port, int receive_buffer_bytes = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
    if (receive_buffer_bytes > 0) {
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer_bytes, sizeof receive_buffer_bytes);
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
      const int error = errno;
      ::close(fd_);
      throw std::runtime_error("connect: " + std::string(std::strerror(error)));
    }
  }
  ~ControlHostClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  ControlHostClient(const ControlHostClient&) = delete;
  ControlHostClient& operator=(const ControlHostClient&) = delete;

  void send(std::string_view tag, std::string_view payload) {
    std::string message(16, '\0');
    message.replace(0, std::min<std::size_t>(tag.size(), 8), tag.substr(0, 8));
    const auto n = static_cast<std::uint32_t>(payload.size());
    message[8] = static_cast<char>((n >> 24) & 0xff);
    message[9] = static_cast<char>((n >> 16) & 0xff);
    message[10] = static_cast<char>((n >> 8) & 0xff);
    message[11] = static_cast<char>(n & 0xff);
    message.append(payload);
    std::size_t sent = 0;
    while (sent < message.size()) {
      const ssize_t k = ::send(fd_, message.data() + sent, message.size() - sent, MSG_NOSIGNAL);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) throw std::runtime_error("send: " + std::string(std::strerror(errno)));
      sent += static_cast<std::size_t>(k);
    }
  }

  // e.g. " a IO_EVT w IO_MONIT"
  void subscribe(std::string_view subscriptions) {
    send("_Subscri", subscriptions);
    send("_Always", "");
  }

  // The next message, or nullopt when the deadline passes or the server closed the connection
  // (closed() tells which).
  std::optional<Message> receive(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    if (!wait_readable(deadline)) return std::nullopt;
    // A message once begun is read whole: giving up in its middle (a short timeout, a slow ASan
    // run, a large event) would drop its head and misread the rest as the next prefix.
    const auto message_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    std::uint8_t prefix[16];
    if (!read_exactly(prefix, sizeof prefix, message_deadline)) return std::nullopt;
    Message m;
    m.tag.assign(reinterpret_cast<const char*>(prefix), 8);
    m.tag.erase(m.tag.find('\0') == std::string::npos ? m.tag.size() : m.tag.find('\0'));
    const std::uint32_t n = (std::uint32_t{prefix[8]} << 24) | (std::uint32_t{prefix[9]} << 16) |
                            (std::uint32_t{prefix[10]} << 8) | std::uint32_t{prefix[11]};
    m.payload.resize(n);
    if (!read_exactly(m.payload.data(), n, message_deadline)) return std::nullopt;
    return m;
  }

  // Reads (and discards) until the server closes the connection; false at the deadline.
  bool wait_until_closed(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::uint8_t sink[65536];
    while (!closed_) {
      if (!wait_readable(deadline)) return false;
      const ssize_t k = ::recv(fd_, sink, sizeof sink, 0);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) closed_ = true;
    }
    return true;
  }

  bool closed() const noexcept { return closed_; }

 private:
  bool wait_readable(std::chrono::steady_clock::time_point deadline) {
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      const int r = ::poll(&p, 1, static_cast<int>(left.count()));
      if (r > 0) return true;
      if (r < 0 && errno != EINTR) return false;
    }
  }

  bool read_exactly(std::uint8_t* out, std::size_t n, std::chrono::steady_clock::time_point deadline) {
    std::size_t got = 0;
    while (got < n) {
      if (!wait_readable(deadline)) return false;
      const ssize_t k = ::recv(fd_, out + got, n - got, 0);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) {
        closed_ = true;
        return false;
      }
      got += static_cast<std::size_t>(k);
    }
    return true;
  }

  int fd_ = -1;
  bool closed_ = false;
};

}  // namespace shoredaq::storage::testing
