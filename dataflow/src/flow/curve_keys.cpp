#include "shoredaq/dataflow/curve_keys.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include <spdlog/fmt/fmt.h>

#include "shoredaq/formats/failure_text.hpp"

namespace shoredaq::dataflow {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t z85_key_length = 40;
constexpr std::size_t max_key_file_bytes = 64 * 1024;

std::string trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) {
    return {};
  }
  const auto last = s.find_last_not_of(" \t\r");
  return std::string(s.substr(first, last - first + 1));
}

std::string mode_text(mode_t mode) { return fmt::format("{:04o}", mode & 07777); }

// Opens without following symlinks and returns the fd plus its stat; throws KeyFileError.
int open_checked(const fs::path& path, struct stat& st, std::string_view what) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    const int err = errno;
    if (err == ELOOP) {
      throw KeyFileError(fmt::format("refusing {} {}: it is a symbolic link; point the configuration at the file itself",
                                     what, path.string()));
    }
    throw KeyFileError(describe_errno(fmt::format("read {}", what), path.string(), err));
  }
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw KeyFileError(describe_errno(fmt::format("stat {}", what), path.string(), err));
  }
  return fd;
}

std::string read_all(int fd, const fs::path& path, std::string_view what) {
  std::string content;
  std::array<char, 4096> buffer{};
  while (true) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      throw KeyFileError(describe_errno(fmt::format("read {}", what), path.string(), err));
    }
    if (n == 0) break;
    content.append(buffer.data(), static_cast<std::size_t>(n));
    if (content.size() > max_key_file_bytes) {
      ::close(fd);
      throw KeyFileError(fmt::format("refusing {} {}: larger than {} bytes", what, path.string(), max_key_file_bytes));
    }
  }
  ::close(fd);
  return content;
}

// Keys of a key file: non-empty lines that are not comments; text after '#' is a comment.
std::vector<std::pair<std::string, int>> key_lines(const std::string& content) {
  std::vector<std::pair<std::string, int>> keys;
  int line_no = 0;
  std::size_t pos = 0;
  while (pos <= content.size()) {
    const auto eol = content.find('\n', pos);
    std::string_view line(content.data() + pos, (eol == std::string::npos ? content.size() : eol) - pos);
    ++line_no;
    pos = eol == std::string::npos ? content.size() + 1 : eol + 1;
    // Z85 uses '#' too, so a comment starts only at the line start or after whitespace.
    std::size_t hash = 0;
    while ((hash = line.find('#', hash)) != std::string_view::npos) {
      if (hash == 0 || line[hash - 1] == ' ' || line[hash - 1] == '\t') {
        line = line.substr(0, hash);
        break;
      }
      ++hash;
    }
    std::string key = trim(line);
    if (!key.empty()) {
      keys.emplace_back(std::move(key), line_no);
    }
  }
  return keys;
}

std::string single_key(const std::string& content, const fs::path& path, std::string_view what) {
  const auto keys = key_lines(content);
  if (keys.size() != 1) {
    throw KeyFileError(fmt::format("invalid {} {}: expected exactly one key, found {}", what, path.string(), keys.size()));
  }
  if (!is_curve_key(keys[0].first)) {
    throw KeyFileError(fmt::format("invalid {} {} line {}: not a 40-character Z85 CURVE key", what, path.string(),
                                   keys[0].second));
  }
  return keys[0].first;
}

// Public keys and allow-lists decide who may connect: nobody but the owner may change them.
void refuse_if_others_can_write(const struct stat& st, const fs::path& path, std::string_view what) {
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    throw KeyFileError(fmt::format("refusing {} {}: writable by group or others (mode {}); chmod go-w it", what,
                                   path.string(), mode_text(st.st_mode)));
  }
}

void write_new_file(const fs::path& path, const std::string& content, mode_t mode, std::string_view what) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) {
    const int err = errno;
    if (err == EEXIST) {
      throw KeyFileError(fmt::format("cannot write {} {}: file exists; refusing to overwrite a key", what, path.string()));
    }
    throw KeyFileError(describe_errno(fmt::format("write {}", what), path.string(), err));
  }
  // The umask may only have narrowed the mode; make it exact.
  bool ok = ::fchmod(fd, mode) == 0;
  std::size_t written = 0;
  while (ok && written < content.size()) {
    const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) written += static_cast<std::size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    throw KeyFileError(describe_errno(fmt::format("write {}", what), path.string(), err));
  }
}

}  // namespace

std::string curve_key_z85(const std::uint8_t* key32) {
  std::array<char, z85_key_length + 1> text{};
  zmq_z85_encode(text.data(), key32, 32);
  return std::string(text.data(), z85_key_length);
}


bool curve_available() { return zmq_has("curve") == 1; }

bool is_curve_key(std::string_view z85) {
  if (z85.size() != z85_key_length) {
    return false;
  }
  const std::string text(z85);
  std::array<std::uint8_t, 32> decoded{};
  return zmq_z85_decode(decoded.data(), text.c_str()) != nullptr;
}

CurveKeyPair generate_curve_key_pair() {
  std::array<char, z85_key_length + 1> public_key{};
  std::array<char, z85_key_length + 1> secret_key{};
  if (zmq_curve_keypair(public_key.data(), secret_key.data()) != 0) {
    throw std::runtime_error(describe_failure("generate a CURVE key pair", "", zmq_strerror(zmq_errno())));
  }
  return CurveKeyPair{std::string(public_key.data(), z85_key_length), std::string(secret_key.data(), z85_key_length)};
}

std::string curve_public_key_of(std::string_view secret_key_z85) {
  if (!is_curve_key(secret_key_z85)) {
    throw std::invalid_argument("not a 40-character Z85 CURVE secret key");
  }
  const std::string secret(secret_key_z85);
  std::array<char, z85_key_length + 1> public_key{};
  if (zmq_curve_public(public_key.data(), secret.c_str()) != 0) {
    throw std::runtime_error(describe_failure("derive the CURVE public key", "", zmq_strerror(zmq_errno())));
  }
  return std::string(public_key.data(), z85_key_length);
}

void write_curve_key_files(const fs::path& secret_path, const fs::path& public_path, const CurveKeyPair& keys) {
  if (!is_curve_key(keys.secret_key) || !is_curve_key(keys.public_key)) {
    throw KeyFileError("cannot write CURVE key files: the key pair is not valid Z85");
  }
  write_new_file(secret_path,
                 "# shoredaq CURVE secret key (Z85). Keep private: mode 0600, owned by the daemon's user.\n" +
                     keys.secret_key + "\n",
                 0600, "secret key file");
  try {
    write_new_file(public_path, "# shoredaq CURVE public key (Z85). Give this to the peers.\n" + keys.public_key + "\n",
                   0644, "public key file");
  } catch (...) {
    ::unlink(secret_path.c_str());  // do not leave half a key pair behind
    throw;
  }
}

CurveKeyPair read_secret_key_file(const fs::path& path) {
  struct stat st {};
  const int fd = open_checked(path, st, "secret key file");
  auto refuse = [&](const std::string& why) {
    ::close(fd);
    throw KeyFileError(fmt::format("refusing secret key file {}: {}", path.string(), why));
  };
  if (!S_ISREG(st.st_mode)) {
    refuse("not a regular file");
  }
  if (st.st_uid != ::geteuid()) {
    refuse(fmt::format("owned by uid {}, not by us (uid {}); chown it to the daemon's user", st.st_uid, ::geteuid()));
  }
  if ((st.st_mode & 0177) != 0) {
    refuse(fmt::format("mode {} lets others read or change it; it must be 0600 or 0400 (chmod 600 {})",
                       mode_text(st.st_mode), path.string()));
  }
  const std::string secret = single_key(read_all(fd, path, "secret key file"), path, "secret key file");
  return CurveKeyPair{curve_public_key_of(secret), secret};
}

std::string read_public_key_file(const fs::path& path) {
  struct stat st {};
  const int fd = open_checked(path, st, "public key file");
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw KeyFileError(fmt::format("refusing public key file {}: not a regular file", path.string()));
  }
  try {
    refuse_if_others_can_write(st, path, "public key file");
  } catch (...) {
    ::close(fd);
    throw;
  }
  return single_key(read_all(fd, path, "public key file"), path, "public key file");
}

std::vector<std::string> read_allowed_keys(const fs::path& file_or_directory) {
  std::error_code ec;
  const auto status = fs::symlink_status(file_or_directory, ec);
  if (ec) {
    throw KeyFileError(describe_failure("read allow-list", file_or_directory.string(), ec));
  }
  std::vector<std::string> keys;
  if (fs::is_directory(status)) {
    struct stat st {};
    if (::stat(file_or_directory.c_str(), &st) == 0) {
      refuse_if_others_can_write(st, file_or_directory, "allow-list directory");
    }
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(file_or_directory, ec)) {
      if (entry.path().extension() == ".pub") {
        files.push_back(entry.path());
      }
    }
    if (ec) {
      throw KeyFileError(describe_failure("read allow-list", file_or_directory.string(), ec));
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      keys.push_back(read_public_key_file(file));
    }
  } else {
    struct stat st {};
    const int fd = open_checked(file_or_directory, st, "allow-list");
    try {
      refuse_if_others_can_write(st, file_or_directory, "allow-list");
    } catch (...) {
      ::close(fd);
      throw;
    }
    for (auto& [key, line] : key_lines(read_all(fd, file_or_directory, "allow-list"))) {
      if (!is_curve_key(key)) {
        throw KeyFileError(fmt::format("invalid allow-list {} line {}: not a 40-character Z85 CURVE key",
                                       file_or_directory.string(), line));
      }
      keys.push_back(std::move(key));
    }
  }
  return keys;
}

void make_curve_client(zmq::socket_t& socket, const CurveKeyPair& client_keys, std::string_view server_public_key) {
  if (!is_curve_key(client_keys.public_key) || !is_curve_key(client_keys.secret_key) ||
      !is_curve_key(server_public_key)) {
    throw std::invalid_argument("make_curve_client: invalid CURVE key");
  }
  socket.set(zmq::sockopt::curve_serverkey, std::string(server_public_key));
  socket.set(zmq::sockopt::curve_publickey, client_keys.public_key);
  socket.set(zmq::sockopt::curve_secretkey, client_keys.secret_key);
}

}  // namespace shoredaq::dataflow
