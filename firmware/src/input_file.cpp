#include "shoredaq/firmware/input_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace shoredaq::firmware {
namespace {

const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

std::string byte_size_text(std::uint64_t bytes) {
  if (bytes >= (std::uint64_t{1} << 30) && bytes % (std::uint64_t{1} << 30) == 0) return std::to_string(bytes >> 30) + " GiB";
  if (bytes >= (std::uint64_t{1} << 20) && bytes % (std::uint64_t{1} << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  if (bytes >= (std::uint64_t{1} << 10)) return std::to_string(bytes >> 10) + " KiB";
  return std::to_string(bytes) + " B";
}

std::string read_input_file(const std::filesystem::path& path, std::size_t max_bytes, std::chrono::milliseconds timeout,
                            const std::string& limit_name) {
  const std::string name = path.string();
  const auto too_big = [&](std::uint64_t size) {
    std::string why = name + ": " + byte_size_text(size) + " is more than the " + byte_size_text(max_bytes) + " allowed";
    if (!limit_name.empty()) why += " (" + limit_name + ")";
    return InputFileError(why);
  };
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
  const Fd fd(::open(name.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (fd.get() < 0) throw InputFileError(name + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw InputFileError(name + ": cannot stat: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw InputFileError(name + ": " + kind_of(st.st_mode) + ", expected a regular file");
  if (static_cast<std::uint64_t>(st.st_size) > max_bytes) throw too_big(static_cast<std::uint64_t>(st.st_size));

  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string text;
  text.resize(static_cast<std::size_t>(st.st_size));
  std::size_t have = 0;
  char chunk[64 * 1024];
  while (true) {
    if (std::chrono::steady_clock::now() > deadline)
      throw InputFileError(name + ": not read within " + std::to_string(timeout.count()) + " ms");
    const ssize_t n = ::read(fd.get(), chunk, sizeof chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw InputFileError(name + ": read failed: " + std::strerror(errno));
    }
    if (n == 0) break;
    // The file may grow while it is read: the limit holds for what is read, not only for st_size.
    if (have + static_cast<std::size_t>(n) > max_bytes) throw too_big(have + static_cast<std::size_t>(n));
    if (have + static_cast<std::size_t>(n) > text.size()) text.resize(have + static_cast<std::size_t>(n));
    std::memcpy(text.data() + have, chunk, static_cast<std::size_t>(n));
    have += static_cast<std::size_t>(n);
  }
  text.resize(have);
  return text;
}

}  // namespace shoredaq::firmware
