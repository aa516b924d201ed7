#include "full_io.hpp"

#include <unistd.h>

#include <cerrno>

namespace shoredaq::storage::detail {
namespace {

// `step(pointer, bytes, offset)` is one read or write; it is called until all bytes have moved.
template <typename Byte, typename Step>
bool move_fully(Byte* p, std::size_t bytes, std::uint64_t offset, int nothing_moved_errno, Step step) noexcept {
  while (bytes > 0) {
    const ssize_t n = step(p, bytes, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) {
      errno = nothing_moved_errno;
      return false;
    }
    p += n;
    bytes -= static_cast<std::size_t>(n);
    offset += static_cast<std::uint64_t>(n);
  }
  return true;
}

}  // namespace

bool write_fully(int fd, const void* data, std::size_t bytes) noexcept {
  return move_fully(static_cast<const std::uint8_t*>(data), bytes, 0, ENOSPC,
                    [fd](const std::uint8_t* p, std::size_t n, std::uint64_t) { return ::write(fd, p, n); });
}

bool pwrite_fully(int fd, const void* data, std::size_t bytes, std::uint64_t offset) noexcept {
  return move_fully(static_cast<const std::uint8_t*>(data), bytes, offset, ENOSPC,
                    [fd](const std::uint8_t* p, std::size_t n, std::uint64_t at) {
                      return ::pwrite(fd, p, n, static_cast<off_t>(at));
                    });
}

bool pread_fully(int fd, void* data, std::size_t bytes, std::uint64_t offset) noexcept {
  return move_fully(static_cast<std::uint8_t*>(data), bytes, offset, ENODATA,
                    [fd](std::uint8_t* p, std::size_t n, std::uint64_t at) { return ::pread(fd, p, n, static_cast<off_t>(at)); });
}

}  // namespace shoredaq::storage::detail
