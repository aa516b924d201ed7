#pragma once
// Hot backup of the event store (DESIGN.md section 4): a consistent copy taken while the writer
// keeps committing, made by LMDB itself (mdb_env_copy2 with MDB_CP_COMPACT: one read transaction,
// free pages left out), then verified (deep) before it is put in place.

#include <cstdint>
#include <filesystem>

#include "shoredaq/storage/event_store.hpp"
#include "shoredaq/storage/store_integrity.hpp"

namespace shoredaq::storage {

struct BackupReport {
  std::filesystem::path directory;  // where the copy is (the `to` given)
  std::uint64_t bytes = 0;          // its data.mdb
  VerifyReport verify;              // deep verify of the copy
  bool ok() const noexcept { return verify.ok(); }
};

// Copies the store behind `source` into `to`, which must not exist or be an empty directory:
// the copy holds every commit made before the call began, none of a later one. It is written to
// a hidden sibling directory, fsync'ed, verified, then renamed to `to` (also when it does not
// verify: a copy of a damaged store is still the best copy there is; the report says so).
// Throws StoreError when the copy cannot be made (nothing is left behind then).
// The copy runs in one read transaction: from another process (shore-events backup) it never
// blocks the writer; inside the writer's process it holds map growth back while it runs.
BackupReport backup_store(const EventStoreReader& source, const std::filesystem::path& to);

}  // namespace shoredaq::storage
