#include "store_files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "shoredaq/storage/store_integrity.hpp"

namespace shoredaq::storage::detail {

namespace fs = std::filesystem;

namespace {

void fsync_path(const fs::path& path, bool directory) {
  const int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) throw StoreError("cannot open " + path.string() + ": " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (rc != 0) throw StoreError("fsync " + path.string() + ": " + std::strerror(error));
}

}  // namespace

fs::path checked_target(const fs::path& to) {
  if (to.empty()) throw StoreError("no target directory given");
  fs::path target = fs::absolute(to).lexically_normal();
  if (!target.has_filename()) target = target.parent_path();  // "dir/" -> "dir"
  std::error_code ec;
  if (fs::exists(target, ec)) {
    if (!fs::is_directory(target, ec) || !fs::is_empty(target, ec)) {
      throw StoreError(target.string() + " exists and is not an empty directory; choose a new one");
    }
  }
  return target;
}

StagingDirectory::StagingDirectory(const fs::path& target)
    : path_(target.parent_path() / ("." + target.filename().string() + ".partial-" + std::to_string(::getpid()))) {
  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  fs::remove_all(path_, ec);  // a leftover of an earlier attempt by a process with our pid
  if (!fs::create_directory(path_, ec) || ec) {
    throw StoreError("cannot create " + path_.string() + ": " + (ec ? ec.message() : std::string("exists")));
  }
}

StagingDirectory::~StagingDirectory() {
  if (released_) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
}

void StagingDirectory::put_in_place(const fs::path& target) {
  fsync_path(path_ / "data.mdb", false);
  std::error_code ec;
  fs::remove(path_ / "lock.mdb", ec);  // LMDB makes a new one at the next open
  fs::rename(path_, target, ec);  // rename(2) replaces an empty directory (checked so before we began)
  if (ec) throw StoreError("cannot rename " + path_.string() + " to " + target.string() + ": " + ec.message());
  released_ = true;
  fsync_path(target.parent_path(), true);
}

}  // namespace shoredaq::storage::detail
