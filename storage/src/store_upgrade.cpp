#include "shoredaq/storage/store_upgrade.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <vector>

#include "shoredaq/formats/fb_codec.hpp"
#include "shoredaq/storage/event_store.hpp"
#include "store_env.hpp"
#include "store_files.hpp"

namespace shoredaq::storage {

namespace fs = std::filesystem;
using namespace detail;

namespace {

constexpr std::size_t kMaxListedProblems = 1000;
// Records per write transaction: bounded memory and no giant transaction, few commits.
constexpr std::size_t kChunkRecords = 20'000;
constexpr std::size_t kChunkBytes = std::size_t{64} << 20;

// Holds the old store's writer lock shared, so no daemon writes it while it is read.
class WriterLockShared {
 public:
  explicit WriterLockShared(const fs::path& store) {
    const fs::path path = store / "writer.lock";
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return;  // no writer ever ran here with a lock file: nothing to hold
    if (::flock(fd_, LOCK_SH | LOCK_NB) != 0) {
      ::close(fd_);
      throw StoreError("store " + store.string() + " is open by a writer (a running shoredaq?); stop it first");
    }
  }
  ~WriterLockShared() {
    if (fd_ >= 0) ::close(fd_);
  }
  WriterLockShared(const WriterLockShared&) = delete;
  WriterLockShared& operator=(const WriterLockShared&) = delete;

 private:
  int fd_ = -1;
};

class Upgrader {
 public:
  Upgrader(LmdbEnv& from, LmdbEnv& to, UpgradeReport& report) : from_(from), to_(to), report_(report) {}

  void run() {
    ReadTxn source(from_);  // one snapshot of the old store for the whole copy
    copy(source.get(), StoreDatabase::Meta, report_.meta);
    copy(source.get(), StoreDatabase::Runs, report_.runs);
    copy(source.get(), StoreDatabase::Summaries, report_.summaries);
    copy(source.get(), StoreDatabase::Events, report_.events);
    const int rc = mdb_env_sync(to_.env, 1);
    if (rc != 0) throw StoreError(lmdb_message("upgrade sync", rc));
  }

 private:
  struct Record {
    std::span<const std::uint8_t> key, payload;
  };

  void problem(std::string text) {
    ++report_.problem_count;
    if (report_.problems.size() < kMaxListedProblems) report_.problems.push_back(std::move(text));
  }

  // What the old format allows to check: the buffer passes the FlatBuffers verifier and matches its key.
  bool valid(StoreDatabase database, std::span<const std::uint8_t> key, std::span<const std::uint8_t> value) {
    const std::string where = std::string(to_string(database)) + " " + key_text(database, key);
    auto fail = [&](std::string_view why) {
      problem(where + ": " + std::string(why));
      return false;
    };
    switch (database) {
      case StoreDatabase::Events: {
        if (key.size() != kEventKeyBytes) return fail("key of " + std::to_string(key.size()) + " bytes");
        const EventKey k = decode_event_key(key.data());
        const auto d = dataflow::decode_event_fb(value);
        if (!d) return fail(dataflow::to_string(d.error));
        const auto& h = d.value.event.header;
        if (h.run != k.run || h.frame_index != k.frame || d.value.event.event_number != k.event_number) {
          return fail("buffer does not match its key");
        }
        return true;
      }
      case StoreDatabase::Summaries: {
        if (key.size() != kSummaryKeyBytes) return fail("key of " + std::to_string(key.size()) + " bytes");
        const auto d = dataflow::decode_summary_slice_fb(value);
        if (!d) return fail(dataflow::to_string(d.error));
        if (d.value.header.run != get_be32(key.data()) || d.value.header.frame_index != get_be32(key.data() + 4)) {
          return fail("buffer does not match its key");
        }
        return true;
      }
      case StoreDatabase::Runs: {
        if (key.size() != kRunKeyBytes) return fail("key of " + std::to_string(key.size()) + " bytes");
        const auto d = dataflow::decode_run_record_fb(value);
        if (!d) return fail(dataflow::to_string(d.error));
        if (d.value.run != get_be32(key.data())) return fail("record does not match its key");
        return true;
      }
      case StoreDatabase::Meta: return true;
    }
    return false;
  }

  void copy(MDB_txn* source, StoreDatabase database, std::uint64_t& copied) {
    static const std::string kCurrentVersion = std::to_string(kStoreSchemaVersion);
    Cursor cursor(source, from_.dbi(database));
    MDB_val k{}, v{};
    std::vector<Record> chunk;
    std::size_t chunk_bytes = 0;
    int rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_FIRST);
    for (; rc == 0; rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT)) {
      Record record{as_span(k), as_span(v)};
      if (!valid(database, record.key, record.payload)) continue;
      if (database == StoreDatabase::Meta && std::ranges::equal(record.key, text_bytes("schema_version"))) {
        record.payload = text_bytes(kCurrentVersion);
      }
      chunk.push_back(record);
      chunk_bytes += record.payload.size();
      if (chunk.size() >= kChunkRecords || chunk_bytes >= kChunkBytes) {
        copied += write(database, chunk);
        chunk.clear();
        chunk_bytes = 0;
      }
    }
    if (rc != MDB_NOTFOUND) {
      if (is_damage(rc)) throw StoreDamagedError(lmdb_message("the old store is damaged", rc));
      throw StoreError(lmdb_message("upgrade read", rc));
    }
    copied += write(database, chunk);
  }

  // One write transaction; the map doubles and the chunk is written again on MDB_MAP_FULL.
  // Returns the records written.
  std::size_t write(StoreDatabase database, const std::vector<Record>& chunk) {
    if (chunk.empty() || report_.problem_count != 0) return 0;  // nothing is kept once a record failed
    for (;;) {
      MDB_txn* txn = nullptr;
      int rc = mdb_txn_begin(to_.env, nullptr, 0, &txn);
      if (rc != 0) throw StoreError(lmdb_message("upgrade transaction", rc));
      for (const Record& record : chunk) {
        MDB_val k = as_val(record.key);
        MDB_val v{record.payload.size() + kChecksumBytes, nullptr};
        // Keys come in order from the old store: append, and let LMDB hand out the bytes to fill.
        rc = mdb_put(txn, to_.dbi(database), &k, &v, MDB_APPEND | MDB_RESERVE);
        if (rc != 0) break;
        auto* out = static_cast<std::uint8_t*>(v.mv_data);
        std::copy(record.payload.begin(), record.payload.end(), out);
        put_checksum(record.key, record.payload, out + record.payload.size());
      }
      if (rc == 0) {
        rc = mdb_txn_commit(txn);
      } else {
        mdb_txn_abort(txn);
      }
      if (rc == 0) return chunk.size();
      if (rc != MDB_MAP_FULL) throw StoreError(lmdb_message("upgrade write", rc));
      MDB_envinfo info{};
      mdb_env_info(to_.env, &info);
      rc = mdb_env_set_mapsize(to_.env, info.me_mapsize * 2);
      if (rc != 0) throw StoreError(lmdb_message("upgrade map growth", rc));
    }
  }

  LmdbEnv& from_;
  LmdbEnv& to_;
  UpgradeReport& report_;
};

}  // namespace

UpgradeReport upgrade_store(const fs::path& from, const fs::path& to) {
  if (!fs::exists(from / "data.mdb")) throw StoreError("no store at " + from.string());
  const fs::path target = checked_target(to);
  const WriterLockShared no_writer(from);
  auto old_env = open_env(from, true, 0, 126, 0, nullptr);
  UpgradeReport report;
  {
    ReadTxn txn(*old_env);
    const auto schema = lookup_schema_version(txn.get(), *old_env);
    if (schema.state == SchemaLookup::State::Current) {
      throw StoreError("store " + from.string() + " already has schema version " + std::to_string(kStoreSchemaVersion));
    }
    if (schema.state != SchemaLookup::State::Other || schema.version > kStoreSchemaVersion) {
      throw StoreError("store " + from.string() + ": no schema version this program can upgrade from");
    }
    report.from_version = schema.version;
  }
  StagingDirectory staging(target);
  {
    MDB_envinfo info{};
    mdb_env_info(old_env->env, &info);
    // Writes are synced once at the end (MDB_NOSYNC + mdb_env_sync): the staging copy is not the
    // store until it is renamed into place.
    auto new_env = open_env(staging.path(), false, info.me_mapsize, 126, MDB_NOSYNC, nullptr);
    Upgrader(*old_env, *new_env, report).run();
  }
  if (report.problem_count != 0) return report;  // the staging directory goes away
  report.verify = EventStoreReader::open(staging.path()).verify(VerifyOptions{.deep = true});
  if (!report.verify.ok()) return report;
  staging.put_in_place(target);
  return report;
}

}  // namespace shoredaq::storage
