#include "shoredaq/storage/store_backup.hpp"

#include <shared_mutex>

#include <spdlog/spdlog.h>

#include "store_env.hpp"
#include "store_files.hpp"

namespace shoredaq::storage {

namespace fs = std::filesystem;
using namespace detail;

BackupReport backup_store(const EventStoreReader& source, const fs::path& to) {
  const fs::path target = checked_target(to);
  const auto& env = ReaderAccess::env(source);
  StagingDirectory staging(target);
  {
    // mdb_env_copy2 runs its own read transaction: no map growth of this process meanwhile.
    std::shared_lock lock(env->resize_mutex);
    const int rc = mdb_env_copy2(env->env, staging.path().c_str(), MDB_CP_COMPACT);
    if (rc != 0) {
      const std::string what = lmdb_message(("backup of " + env->directory.string()).c_str(), rc);
      if (is_damage(rc)) throw StoreDamagedError(what);
      throw StoreError(what);
    }
  }
  BackupReport report;
  report.directory = target;
  std::error_code ec;
  report.bytes = fs::file_size(staging.path() / "data.mdb", ec);
  report.verify = EventStoreReader::open(staging.path()).verify(VerifyOptions{.deep = true});
  staging.put_in_place(target);
  if (!report.ok()) {
    spdlog::error("event store backup {}: the copy does not verify ({} problems, {} damaged records)", target.string(),
                  report.verify.problem_count, report.verify.damaged_count);
  }
  return report;
}

}  // namespace shoredaq::storage
