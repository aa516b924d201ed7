#pragma once
// Inside the event store (not installed): the LMDB environment shared by the writer and its
// readers, transactions, keys, and the checked look-ups of meta values and run records.

#include <lmdb.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>

#include "record_codec.hpp"
#include "shoredaq/dataflow/rate_limited_log.hpp"
#include "shoredaq/formats/run_record.hpp"
#include "shoredaq/storage/event_store.hpp"

namespace shoredaq::storage::detail {

// The environment and its database handles, shared by the writer and any in-process readers.
// mdb_env_set_mapsize needs every transaction of this process closed, so readers hold the
// mutex shared for the length of their (short) transaction and map growth takes it exclusively.
struct LmdbEnv {
  MDB_env* env = nullptr;
  MDB_dbi events = 0, summaries = 0, runs = 0, meta = 0;
  bool read_only = false;
  std::size_t max_map_bytes = 0;
  std::filesystem::path directory;
  mutable std::shared_timed_mutex resize_mutex;

  // Damaged records refused by queries on this environment (any thread).
  mutable std::atomic<std::uint64_t> damaged_refused{0};
  mutable std::mutex damaged_mutex;
  mutable std::optional<DamagedRecord> last_damaged;  // guarded by damaged_mutex
  mutable dataflow::RateLimitedLog damaged_log;

  LmdbEnv() = default;
  LmdbEnv(const LmdbEnv&) = delete;
  LmdbEnv& operator=(const LmdbEnv&) = delete;
  ~LmdbEnv() {
    if (env != nullptr) mdb_env_close(env);
  }
  MDB_dbi dbi(StoreDatabase database) const noexcept;
  // Counts a refused record and logs it (rate-limited).
  void note_damaged(const DamagedRecord& record) const;
};

// EventStoreReader's environment, for the scrubber and the backup.
struct ReaderAccess {
  static const std::shared_ptr<LmdbEnv>& env(const EventStoreReader& reader) noexcept { return reader.env_; }
};

std::string lmdb_message(const char* what, int rc);
// LMDB return codes that mean its own pages are damaged (MDB_BAD_TXN: a transaction that met such
// a page is unusable; LMDB may report the page itself only that way, e.g. when a cursor opened on
// a database whose root page is gone).
bool is_damage(int rc) noexcept;

// A read transaction holding the resize lock shared; handles MDB_MAP_RESIZED (another process grew
// the map) by adopting the new size.
class ReadTxn {
 public:
  explicit ReadTxn(const LmdbEnv& env);
  ~ReadTxn() { mdb_txn_abort(txn_); }
  ReadTxn(const ReadTxn&) = delete;
  ReadTxn& operator=(const ReadTxn&) = delete;
  MDB_txn* get() const { return txn_; }

 private:
  std::shared_lock<std::shared_timed_mutex> lock_;
  MDB_txn* txn_ = nullptr;
};

class Cursor {
 public:
  Cursor(MDB_txn* txn, MDB_dbi dbi) {
    const int rc = mdb_cursor_open(txn, dbi, &cursor_);
    if (rc != 0 && is_damage(rc)) throw StoreDamagedError(lmdb_message("cursor", rc));
    if (rc != 0) throw StoreError(lmdb_message("cursor", rc));
  }
  ~Cursor() { mdb_cursor_close(cursor_); }
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;
  MDB_cursor* get() const { return cursor_; }

 private:
  MDB_cursor* cursor_ = nullptr;
};

// ---- keys (big-endian, so LMDB's byte order is numeric order) ----
inline constexpr std::size_t kEventKeyBytes = 12, kSummaryKeyBytes = 8, kRunKeyBytes = 4;

inline void put_be32(std::uint32_t v, std::uint8_t* out) noexcept {
  out[0] = static_cast<std::uint8_t>(v >> 24);
  out[1] = static_cast<std::uint8_t>(v >> 16);
  out[2] = static_cast<std::uint8_t>(v >> 8);
  out[3] = static_cast<std::uint8_t>(v);
}
inline std::uint32_t get_be32(const std::uint8_t* p) noexcept {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}
inline std::array<std::uint8_t, kEventKeyBytes> event_key(std::uint32_t run, std::uint32_t frame, std::uint32_t number) {
  std::array<std::uint8_t, kEventKeyBytes> k{};
  put_be32(run, k.data());
  put_be32(frame, k.data() + 4);
  put_be32(number, k.data() + 8);
  return k;
}
inline std::array<std::uint8_t, kSummaryKeyBytes> summary_key(std::uint32_t run, std::uint32_t frame) {
  std::array<std::uint8_t, kSummaryKeyBytes> k{};
  put_be32(run, k.data());
  put_be32(frame, k.data() + 4);
  return k;
}
inline std::array<std::uint8_t, kRunKeyBytes> run_key(std::uint32_t run) {
  std::array<std::uint8_t, kRunKeyBytes> k{};
  put_be32(run, k.data());
  return k;
}
inline EventKey decode_event_key(const std::uint8_t* p) noexcept { return {get_be32(p), get_be32(p + 4), get_be32(p + 8)}; }

template <std::size_t N>
MDB_val as_val(std::array<std::uint8_t, N>& key) {
  return MDB_val{N, key.data()};
}
inline MDB_val as_val(std::span<const std::uint8_t> bytes) {
  return MDB_val{bytes.size(), const_cast<std::uint8_t*>(bytes.data())};
}
inline std::span<const std::uint8_t> as_span(const MDB_val& v) {
  return {static_cast<const std::uint8_t*>(v.mv_data), v.mv_size};
}

// "3/2/1", "3/2", "3", the meta name; hex when the key's length is wrong for the database.
std::string key_text(StoreDatabase database, std::span<const std::uint8_t> key);
DamagedRecord damaged_record(StoreDatabase database, std::span<const std::uint8_t> key, std::string reason);

std::uint64_t db_used_bytes(MDB_txn* txn, MDB_dbi dbi, std::uint64_t* entries);

// ---- meta and run records (checked) ----
enum class Lookup : std::uint8_t { Found, Missing, Damaged };

struct MetaLookup {
  Lookup status = Lookup::Missing;
  std::string text;
  DamagedRecord damaged;  // when Damaged
};
MetaLookup lookup_meta(MDB_txn* txn, const LmdbEnv& env, std::string_view name);
int put_meta(MDB_txn* txn, const LmdbEnv& env, std::string_view name, std::string_view value);

struct RunLookup {
  Lookup status = Lookup::Missing;
  dataflow::RunRecord record;
  DamagedRecord damaged;  // when Damaged (checksum wrong, or not a RunRecord buffer)
};
RunLookup lookup_run_record(MDB_txn* txn, const LmdbEnv& env, std::uint32_t run);

// The schema_version meta value. Schema 1 stored it as plain text, without a checksum.
struct SchemaLookup {
  enum class State : std::uint8_t { Missing, Current, Other, Damaged } state = State::Missing;
  std::uint32_t version = 0;  // when Current or Other
  DamagedRecord damaged;      // when Damaged
};
SchemaLookup lookup_schema_version(MDB_txn* txn, const LmdbEnv& env);
// "store DIR has schema version 1 (records without checksums) ... upgrade with ...".
std::string schema_mismatch_message(const std::filesystem::path& directory, std::uint32_t found);

// Opens (and with !read_only creates) the environment and its four databases.
std::shared_ptr<LmdbEnv> open_env(const std::filesystem::path& dir, bool read_only, std::size_t map_bytes,
                                  unsigned max_readers, unsigned extra_flags, int* stale_cleared);

}  // namespace shoredaq::storage::detail
