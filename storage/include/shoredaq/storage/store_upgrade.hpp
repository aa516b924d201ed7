#pragma once
// Rewrites an event store of an older schema in the current one (store schema 1 had no record
// checksums; see event_store.hpp). The old store is only read.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "shoredaq/storage/store_integrity.hpp"

namespace shoredaq::storage {

struct UpgradeReport {
  std::uint32_t from_version = 0;
  std::uint64_t events = 0, summaries = 0, runs = 0, meta = 0;  // records rewritten
  // Records of the old store that fail what the old format can check (FlatBuffers verifier, the
  // buffer matches its key): then no new store is kept.
  std::uint64_t problem_count = 0;
  std::vector<std::string> problems;  // the first 1000
  VerifyReport verify;                // deep verify of the new store
  bool ok() const noexcept { return problem_count == 0 && verify.ok(); }
};

// Reads the store at `from` (schema 1; its writer must be stopped: its writer.lock is held shared
// during the upgrade) and writes every record with its checksum into a new store at `to` (must
// not exist, or be an empty directory), in a hidden sibling directory first; the new store is
// deep-verified and renamed to `to` only when everything passed. Put it in place of the old one
// by hand (keep the old one until the new one has served). Throws StoreError when `from` is not
// an older shoredaq store, is held by a writer, or `to` is not empty.
UpgradeReport upgrade_store(const std::filesystem::path& from, const std::filesystem::path& to);

}  // namespace shoredaq::storage
