#pragma once
// Helpers of the event-store integrity tests: a store written by a short run, the file offsets of
// its records in data.mdb (read with plain LMDB calls, beside the store's own code), and damage
// done behind LMDB's back (bytes flipped in the file) or through LMDB (a value rewritten without
// its checksum fixed).

#include <fcntl.h>
#include <lmdb.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "shoredaq/storage/event_store.hpp"
#include "storage_test_support.hpp"

namespace shoredaq::storage::testing {

// Like the 2-DU run: 40 slices with a summary of 36 DOMs each, 23 events spread over them;
// the events range from ~0.6 KB (in LMDB leaf pages, unaligned) to ~3.6 KB (overflow pages, aligned).
inline constexpr std::uint32_t kShortRunFrames = 40;
inline constexpr std::uint64_t kShortRunEvents = 23;

inline void write_short_run(EventStore& store, std::int32_t detector, std::uint32_t run) {
  for (std::uint32_t f = 0; f < kShortRunFrames; ++f) {
    const std::size_t events = ((f + 1) * kShortRunEvents) / kShortRunFrames - (f * kShortRunEvents) / kShortRunFrames;
    const auto summary = make_summary(detector, run, f, 36);
    const auto r = store.commit_slice(run, f, make_slice_events(detector, run, f, events, 30 + (f % 4) * 60), &summary);
    ASSERT_TRUE(r) << r.message;
  }
}

struct StoredRecord {
  StoreDatabase database = StoreDatabase::Events;
  std::string key;            // as DamagedRecord::key writes it
  std::uint64_t value_offset = 0;  // in data.mdb
  std::size_t value_size = 0;
};

// Where LMDB mapped `file` (from its offset 0) in this process: LMDB has no call that says, so
// ask the kernel.
inline std::uintptr_t map_base(const std::filesystem::path& file) {
  const std::string wanted = std::filesystem::canonical(file).string();
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    // "start-end perms offset dev inode path"
    std::istringstream fields(line);
    std::string range, perms, offset, device, inode, path;
    fields >> range >> perms >> offset >> device >> inode;
    std::getline(fields >> std::ws, path);
    if (path != wanted || std::stoull(offset, nullptr, 16) != 0) continue;
    return static_cast<std::uintptr_t>(std::stoull(range.substr(0, range.find('-')), nullptr, 16));
  }
  return 0;
}

// Plain LMDB, read-only. LMDB forbids a second open of an environment in one process: call it
// while no EventStore or reader of `dir` is open.
inline std::vector<StoredRecord> list_records(const std::filesystem::path& dir) {
  std::vector<StoredRecord> out;
  MDB_env* env = nullptr;
  EXPECT_EQ(mdb_env_create(&env), 0);
  mdb_env_set_maxdbs(env, 8);
  if (mdb_env_open(env, dir.c_str(), MDB_RDONLY, 0640) != 0) {
    ADD_FAILURE() << "cannot open " << dir;
    mdb_env_close(env);
    return out;
  }
  const std::uintptr_t base = map_base(dir / "data.mdb");
  if (base == 0) {
    ADD_FAILURE() << "data.mdb of " << dir << " not found in /proc/self/maps";
    mdb_env_close(env);
    return out;
  }
  MDB_txn* txn = nullptr;
  EXPECT_EQ(mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn), 0);
  for (const auto& [name, database] : {std::pair{"meta", StoreDatabase::Meta}, std::pair{"runs", StoreDatabase::Runs},
                                       std::pair{"summaries", StoreDatabase::Summaries},
                                       std::pair{"events", StoreDatabase::Events}}) {
    MDB_dbi dbi = 0;
    EXPECT_EQ(mdb_dbi_open(txn, name, 0, &dbi), 0);
    MDB_cursor* cursor = nullptr;
    EXPECT_EQ(mdb_cursor_open(txn, dbi, &cursor), 0);
    MDB_val k{}, v{};
    for (int rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
      const auto* key = static_cast<const std::uint8_t*>(k.mv_data);
      auto be32 = [&](std::size_t i) {
        return std::to_string((std::uint32_t{key[i]} << 24) | (std::uint32_t{key[i + 1]} << 16) |
                              (std::uint32_t{key[i + 2]} << 8) | key[i + 3]);
      };
      StoredRecord r;
      r.database = database;
      switch (database) {
        case StoreDatabase::Events: r.key = be32(0) + "/" + be32(4) + "/" + be32(8); break;
        case StoreDatabase::Summaries: r.key = be32(0) + "/" + be32(4); break;
        case StoreDatabase::Runs: r.key = be32(0); break;
        case StoreDatabase::Meta: r.key.assign(reinterpret_cast<const char*>(key), k.mv_size); break;
      }
      r.value_offset = reinterpret_cast<std::uintptr_t>(v.mv_data) - base;
      r.value_size = v.mv_size;
      out.push_back(std::move(r));
    }
    mdb_cursor_close(cursor);
  }
  mdb_txn_abort(txn);
  mdb_env_close(env);
  return out;
}

// XORs the byte at `offset` of data.mdb with `mask` (non-zero), behind LMDB's back.
inline void flip_byte(const std::filesystem::path& dir, std::uint64_t offset, std::uint8_t mask) {
  const int fd = ::open((dir / "data.mdb").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  std::uint8_t b = 0;
  ASSERT_EQ(::pread(fd, &b, 1, static_cast<off_t>(offset)), 1);
  b ^= mask;
  ASSERT_EQ(::pwrite(fd, &b, 1, static_cast<off_t>(offset)), 1);
  ::close(fd);
}

struct Damage {
  std::set<std::pair<StoreDatabase, std::string>> keys;  // the records damaged
  std::size_t bytes_flipped = 0;
};

// Flips `flips` distinct bytes at random positions inside the values of `candidates` (each XORed
// with a random non-zero mask, so none is restored by a second flip).
inline Damage damage_random_bytes(const std::filesystem::path& dir, const std::vector<StoredRecord>& candidates,
                                  std::size_t flips, std::uint32_t seed) {
  Damage damage;
  std::mt19937 rng(seed);
  std::set<std::pair<std::size_t, std::size_t>> done;  // (record, position)
  std::size_t capacity = 0;
  for (const auto& r : candidates) capacity += r.value_size;
  while (done.size() < std::min(flips, capacity)) {
    const std::size_t record = rng() % candidates.size();
    const StoredRecord& r = candidates[record];
    const std::size_t position = rng() % r.value_size;
    if (!done.emplace(record, position).second) continue;
    flip_byte(dir, r.value_offset + position, static_cast<std::uint8_t>(1 + rng() % 255));
    ++damage.bytes_flipped;
    damage.keys.emplace(r.database, r.key);
  }
  return damage;
}

inline std::vector<StoredRecord> records_of(const std::vector<StoredRecord>& all, StoreDatabase database) {
  std::vector<StoredRecord> out;
  for (const auto& r : all) {
    if (r.database == database) out.push_back(r);
  }
  return out;
}

// Changes one byte of a stored value through LMDB itself (the pages stay valid; only the record's
// checksum can tell), as a bug or a bad tool would.
inline void rewrite_value_byte(const std::filesystem::path& dir, const char* database, std::span<const std::uint8_t> key,
                               std::size_t position) {
  MDB_env* env = nullptr;
  ASSERT_EQ(mdb_env_create(&env), 0);
  mdb_env_set_maxdbs(env, 8);
  ASSERT_EQ(mdb_env_open(env, dir.c_str(), 0, 0640), 0);
  MDB_txn* txn = nullptr;
  ASSERT_EQ(mdb_txn_begin(env, nullptr, 0, &txn), 0);
  MDB_dbi dbi = 0;
  ASSERT_EQ(mdb_dbi_open(txn, database, 0, &dbi), 0);
  MDB_val k{key.size(), const_cast<std::uint8_t*>(key.data())}, v{};
  ASSERT_EQ(mdb_get(txn, dbi, &k, &v), 0);
  std::vector<std::uint8_t> value(static_cast<const std::uint8_t*>(v.mv_data),
                                  static_cast<const std::uint8_t*>(v.mv_data) + v.mv_size);
  ASSERT_LT(position, value.size());
  value[position] ^= 0x01;
  MDB_val nv{value.size(), value.data()};
  ASSERT_EQ(mdb_put(txn, dbi, &k, &nv, 0), 0);
  ASSERT_EQ(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
}

// Damages LMDB's own structure, not a record: the root page number of a named database (in its
// MDB_db record of the main database, bytes 40..47) is made to point far past the file, so every
// walk of that database ends in MDB_PAGE_NOTFOUND.
inline void break_database_root(const std::filesystem::path& dir, const char* database) {
  MDB_env* env = nullptr;
  ASSERT_EQ(mdb_env_create(&env), 0);
  mdb_env_set_maxdbs(env, 8);
  ASSERT_EQ(mdb_env_open(env, dir.c_str(), MDB_RDONLY, 0640), 0);
  const std::uintptr_t base = map_base(dir / "data.mdb");
  MDB_txn* txn = nullptr;
  ASSERT_EQ(mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn), 0);
  MDB_dbi main = 0;
  ASSERT_EQ(mdb_dbi_open(txn, nullptr, 0, &main), 0);
  MDB_val k{std::strlen(database), const_cast<char*>(database)}, v{};
  ASSERT_EQ(mdb_get(txn, main, &k, &v), 0);
  ASSERT_EQ(v.mv_size, 48u);  // sizeof(MDB_db) on 64-bit
  const std::uint64_t root_high_byte = reinterpret_cast<std::uintptr_t>(v.mv_data) - base + 47;
  mdb_txn_abort(txn);
  mdb_env_close(env);
  ASSERT_NE(base, 0u);
  flip_byte(dir, root_high_byte, 0x40);
}

inline std::array<std::uint8_t, 12> event_key_bytes(std::uint32_t run, std::uint32_t frame, std::uint32_t number) {
  std::array<std::uint8_t, 12> k{};
  for (int i = 0; i < 4; ++i) {
    k[i] = static_cast<std::uint8_t>(run >> (24 - 8 * i));
    k[4 + i] = static_cast<std::uint8_t>(frame >> (24 - 8 * i));
    k[8 + i] = static_cast<std::uint8_t>(number >> (24 - 8 * i));
  }
  return k;
}

inline std::set<std::pair<StoreDatabase, std::string>> keys_of(const std::vector<DamagedRecord>& damaged) {
  std::set<std::pair<StoreDatabase, std::string>> out;
  for (const auto& d : damaged) out.emplace(d.database, d.key);
  return out;
}

}  // namespace shoredaq::storage::testing
