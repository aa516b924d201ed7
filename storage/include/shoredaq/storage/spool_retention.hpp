#pragma once
// Retention of the spool's done/ folder: files already verified at the computing centre are kept
// locally for a while (a second copy on site) and then pruned, by age and by total size only.
// Nothing outside done/ is ever pruned. Plain logic: the caller lists done/ and deletes.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace shoredaq::storage {

struct RetentionPolicy {
  std::chrono::seconds max_age{0};  // prune files done longer ago than this; 0 = no age limit
  std::uint64_t max_bytes = 0;      // then prune the oldest until done/ holds at most this; 0 = no limit
  bool enabled() const noexcept { return max_age.count() > 0 || max_bytes > 0; }
};

struct DoneFile {
  std::string name;
  std::uint64_t bytes = 0;
  std::chrono::system_clock::time_point done_at;  // when it was verified remotely (moved to done/)
};

// The names to prune: every file older than max_age, then the oldest (ties by name) until the
// rest fit in max_bytes. Oldest first.
std::vector<std::string> plan_retention(std::vector<DoneFile> files, const RetentionPolicy& policy,
                                        std::chrono::system_clock::time_point now);

}  // namespace shoredaq::storage
