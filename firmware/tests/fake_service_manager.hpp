#pragma once
// A fake systemd service manager for tests: binds a unix datagram socket in a fresh temp dir
// and exports NOTIFY_SOCKET, so sd_notify(3) messages of this process (or of a child started
// afterwards, which inherits the environment) arrive here. Restores the environment on exit.

#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <random>
#include <string>

namespace shoredaq::test {

using namespace std::chrono_literals;

class FakeServiceManager {
public:
  FakeServiceManager() {
    namespace fs = std::filesystem;
    dir_ = fs::temp_directory_path() /
           ("shoredaq-notify-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}()));
    fs::create_directories(dir_);
    path_ = (dir_ / "notify.sock").string();
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd_, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << std::strerror(errno);
    ::setenv("NOTIFY_SOCKET", path_.c_str(), 1);
  }
  FakeServiceManager(const FakeServiceManager&) = delete;
  FakeServiceManager& operator=(const FakeServiceManager&) = delete;
  const std::string& socket_path() const { return path_; }

  ~FakeServiceManager() {
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("WATCHDOG_USEC");
    ::unsetenv("WATCHDOG_PID");
    ::close(fd_);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Next datagram, or nullopt if none arrives before the deadline.
  std::optional<std::string> receive(std::chrono::milliseconds timeout = 2000ms) {
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(timeout.count())) <= 0) {
      return std::nullopt;
    }
    char buffer[4096];
    const ssize_t n = ::recv(fd_, buffer, sizeof(buffer), 0);
    if (n < 0) {
      return std::nullopt;
    }
    return std::string(buffer, static_cast<std::size_t>(n));
  }

  // Drops everything already queued; returns how many messages were dropped.
  int drain() {
    int count = 0;
    while (receive(0ms)) {
      ++count;
    }
    return count;
  }

private:
  std::filesystem::path dir_;
  std::string path_;
  int fd_ = -1;
};

}  // namespace shoredaq::test
