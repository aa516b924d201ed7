#pragma once
// Inside the event store (not installed): the directories a backup or an upgrade writes.
// Both build the new store in a hidden sibling of its final place and rename it there when done,
// so a half-written copy never sits under the name an operator asked for.

#include <filesystem>

namespace shoredaq::storage::detail {

// `to` made absolute, without a trailing slash; throws StoreError unless it is absent or an empty
// directory.
std::filesystem::path checked_target(const std::filesystem::path& to);

// A fresh hidden sibling directory of `target` (".NAME.partial-PID"), removed again on destruction
// unless released.
class StagingDirectory {
 public:
  explicit StagingDirectory(const std::filesystem::path& target);
  ~StagingDirectory();
  StagingDirectory(const StagingDirectory&) = delete;
  StagingDirectory& operator=(const StagingDirectory&) = delete;
  const std::filesystem::path& path() const noexcept { return path_; }
  // fsyncs data.mdb, drops the lock file a reader left, renames the directory to `target` (an
  // empty directory there is replaced) and fsyncs the parent. Throws StoreError.
  void put_in_place(const std::filesystem::path& target);

 private:
  std::filesystem::path path_;
  bool released_ = false;
};

}  // namespace shoredaq::storage::detail
