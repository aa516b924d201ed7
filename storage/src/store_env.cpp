#include "store_env.hpp"

#include <cstdio>

#include <spdlog/spdlog.h>

#include "shoredaq/formats/fb_codec.hpp"

namespace shoredaq::storage {

std::string_view to_string(StoreDatabase database) noexcept {
  switch (database) {
    case StoreDatabase::Events: return "events";
    case StoreDatabase::Summaries: return "summaries";
    case StoreDatabase::Runs: return "runs";
    case StoreDatabase::Meta: return "meta";
  }
  return "unknown";
}

std::string DamagedRecord::describe() const {
  const char* what = "meta";
  switch (database) {
    case StoreDatabase::Events: what = "event"; break;
    case StoreDatabase::Summaries: what = "summary"; break;
    case StoreDatabase::Runs: what = "run"; break;
    case StoreDatabase::Meta: break;
  }
  return std::string(what) + " " + key + ": " + reason;
}

}  // namespace shoredaq::storage

namespace shoredaq::storage::detail {

namespace fs = std::filesystem;

MDB_dbi LmdbEnv::dbi(StoreDatabase database) const noexcept {
  switch (database) {
    case StoreDatabase::Events: return events;
    case StoreDatabase::Summaries: return summaries;
    case StoreDatabase::Runs: return runs;
    case StoreDatabase::Meta: return meta;
  }
  return meta;
}

void LmdbEnv::note_damaged(const DamagedRecord& record) const {
  damaged_refused.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard lock(damaged_mutex);
    last_damaged = record;
  }
  damaged_log.log(spdlog::level::err, "store.damaged_record", "event store {}: damaged record refused: {}",
                  directory.string(), record.describe());
}

std::string lmdb_message(const char* what, int rc) { return std::string(what) + ": " + mdb_strerror(rc); }

bool is_damage(int rc) noexcept {
  return rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_INVALID || rc == MDB_BAD_TXN;
}

ReadTxn::ReadTxn(const LmdbEnv& env) {
  for (int attempt = 0;; ++attempt) {
    std::shared_lock lock(env.resize_mutex);
    const int rc = mdb_txn_begin(env.env, nullptr, MDB_RDONLY, &txn_);
    if (rc == 0) {
      lock_ = std::move(lock);
      return;
    }
    if (rc != MDB_MAP_RESIZED || attempt > 3) throw StoreError(lmdb_message("read transaction", rc));
    lock.unlock();
    std::unique_lock exclusive(env.resize_mutex);
    mdb_env_set_mapsize(env.env, 0);
  }
}

std::string key_text(StoreDatabase database, std::span<const std::uint8_t> key) {
  const auto numbers = [&](std::size_t count) {
    std::string text;
    for (std::size_t i = 0; i < count; ++i) {
      if (i != 0) text += '/';
      text += std::to_string(get_be32(key.data() + 4 * i));
    }
    return text;
  };
  switch (database) {
    case StoreDatabase::Events:
      if (key.size() == kEventKeyBytes) return numbers(3);
      break;
    case StoreDatabase::Summaries:
      if (key.size() == kSummaryKeyBytes) return numbers(2);
      break;
    case StoreDatabase::Runs:
      if (key.size() == kRunKeyBytes) return numbers(1);
      break;
    case StoreDatabase::Meta: {
      bool printable = !key.empty();
      for (const std::uint8_t c : key) printable = printable && c >= 0x20 && c < 0x7f;
      if (printable) return std::string(key.begin(), key.end());
      break;
    }
  }
  std::string hex = "0x";
  for (const std::uint8_t c : key) {
    char digits[3];
    std::snprintf(digits, sizeof digits, "%02x", c);
    hex += digits;
  }
  return hex;
}

DamagedRecord damaged_record(StoreDatabase database, std::span<const std::uint8_t> key, std::string reason) {
  return DamagedRecord{database, key_text(database, key), std::move(reason)};
}

std::uint64_t db_used_bytes(MDB_txn* txn, MDB_dbi dbi, std::uint64_t* entries) {
  MDB_stat st{};
  if (mdb_stat(txn, dbi, &st) != 0) return 0;
  if (entries != nullptr) *entries = st.ms_entries;
  return std::uint64_t{st.ms_psize} * (st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages);
}

MetaLookup lookup_meta(MDB_txn* txn, const LmdbEnv& env, std::string_view name) {
  MetaLookup result;
  MDB_val k{name.size(), const_cast<char*>(name.data())}, v{};
  if (mdb_get(txn, env.meta, &k, &v) != 0) return result;
  const auto opened = open_record(text_bytes(name), as_span(v));
  if (opened.check != RecordCheck::Ok) {
    result.status = Lookup::Damaged;
    result.damaged = damaged_record(StoreDatabase::Meta, text_bytes(name), std::string(to_string(opened.check)));
    return result;
  }
  result.status = Lookup::Found;
  result.text.assign(opened.payload.begin(), opened.payload.end());
  return result;
}

int put_meta(MDB_txn* txn, const LmdbEnv& env, std::string_view name, std::string_view value) {
  const auto sealed = seal_record(text_bytes(name), text_bytes(value));
  MDB_val k{name.size(), const_cast<char*>(name.data())};
  MDB_val v{sealed.size(), const_cast<std::uint8_t*>(sealed.data())};
  return mdb_put(txn, env.meta, &k, &v, 0);
}

RunLookup lookup_run_record(MDB_txn* txn, const LmdbEnv& env, std::uint32_t run) {
  RunLookup result;
  auto key = run_key(run);
  MDB_val k = as_val(key), v{};
  if (mdb_get(txn, env.runs, &k, &v) != 0) return result;
  const auto opened = open_record(key, as_span(v));
  if (opened.check != RecordCheck::Ok) {
    result.status = Lookup::Damaged;
    result.damaged = damaged_record(StoreDatabase::Runs, key, std::string(to_string(opened.check)));
    return result;
  }
  auto decoded = dataflow::decode_run_record_fb(opened.payload);
  if (!decoded) {  // checksum right, bytes wrong: written so by a bug, refused all the same
    result.status = Lookup::Damaged;
    result.damaged = damaged_record(StoreDatabase::Runs, key, std::string(dataflow::to_string(decoded.error)));
    return result;
  }
  result.status = Lookup::Found;
  result.record = std::move(decoded.value);
  return result;
}

namespace {

std::optional<std::uint32_t> parse_version(std::string_view text) {
  if (text.empty() || text.size() > 9) return std::nullopt;
  std::uint32_t v = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint32_t>(c - '0');
  }
  return v;
}

}  // namespace

SchemaLookup lookup_schema_version(MDB_txn* txn, const LmdbEnv& env) {
  SchemaLookup result;
  constexpr std::string_view kName = "schema_version";
  MDB_val k{kName.size(), const_cast<char*>(kName.data())}, v{};
  if (mdb_get(txn, env.meta, &k, &v) != 0) return result;
  const auto value = as_span(v);
  const auto opened = open_record(text_bytes(kName), value);
  std::optional<std::uint32_t> version;
  if (opened.check == RecordCheck::Ok) {
    version = parse_version(std::string_view(reinterpret_cast<const char*>(opened.payload.data()), opened.payload.size()));
  } else {
    // Schema 1 kept meta values as bare text: "1" has no room for a checksum.
    version = parse_version(std::string_view(reinterpret_cast<const char*>(value.data()), value.size()));
    if (version && *version >= kStoreSchemaVersion) version.reset();  // a damaged current value, not an old one
  }
  if (!version) {
    result.state = SchemaLookup::State::Damaged;
    result.damaged = damaged_record(StoreDatabase::Meta, text_bytes(kName),
                                    opened.check == RecordCheck::Ok ? "not a version number"
                                                                    : std::string(to_string(opened.check)));
    return result;
  }
  result.version = *version;
  result.state = *version == kStoreSchemaVersion ? SchemaLookup::State::Current : SchemaLookup::State::Other;
  return result;
}

std::string schema_mismatch_message(const fs::path& directory, std::uint32_t found) {
  const std::string dir = directory.string();
  if (found < kStoreSchemaVersion) {
    return "store " + dir + " has schema version " + std::to_string(found) +
           " (records without checksums); this program reads and writes version " +
           std::to_string(kStoreSchemaVersion) + ". Upgrade it (the daemon stopped): shore-events --store " + dir +
           " upgrade --to " + dir + ".v" + std::to_string(kStoreSchemaVersion) + ", then put that directory in its place";
  }
  return "store " + dir + " has schema version " + std::to_string(found) + ", written by a newer shoredaq; this program " +
         "knows version " + std::to_string(kStoreSchemaVersion) + " only";
}

namespace {

void open_dbis(LmdbEnv& env, bool create) {
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env.env, nullptr, create ? 0 : MDB_RDONLY, &txn);
  if (rc != 0) {
    if (is_damage(rc)) throw StoreDamagedError(lmdb_message(("store " + env.directory.string() + " is damaged").c_str(), rc));
    throw StoreError(lmdb_message("open transaction", rc));
  }
  const unsigned flags = create ? MDB_CREATE : 0;
  int opened = 0;
  for (auto [name, dbi] : {std::pair{"events", &env.events}, std::pair{"summaries", &env.summaries},
                           std::pair{"runs", &env.runs}, std::pair{"meta", &env.meta}}) {
    rc = mdb_dbi_open(txn, name, flags, dbi);
    if (rc != 0) {
      mdb_txn_abort(txn);
      const std::string what = std::string("database '") + name + "': " + mdb_strerror(rc);
      // Another program's LMDB environment has none of our databases; a store missing one has
      // damaged pages (the main database's, which names them).
      if (rc == MDB_NOTFOUND && opened == 0) throw StoreError("not a shoredaq store (" + what + ")");
      throw StoreDamagedError("store " + env.directory.string() + " is damaged: " + what);
    }
    ++opened;
  }
  rc = mdb_txn_commit(txn);
  if (rc != 0) throw StoreError(lmdb_message("open commit", rc));
}

}  // namespace

std::shared_ptr<LmdbEnv> open_env(const fs::path& dir, bool read_only, std::size_t map_bytes, unsigned max_readers,
                                  unsigned extra_flags, int* stale_cleared) {
  auto env = std::make_shared<LmdbEnv>();
  env->read_only = read_only;
  env->directory = dir;
  int rc = mdb_env_create(&env->env);
  if (rc != 0) throw StoreError(lmdb_message("mdb_env_create", rc));
  mdb_env_set_maxdbs(env->env, 8);
  mdb_env_set_maxreaders(env->env, max_readers);
  if (map_bytes != 0) mdb_env_set_mapsize(env->env, map_bytes);
  // NOTLS: read transactions are not tied to a thread (the daemon's queries run on Asio threads).
  unsigned flags = MDB_NOTLS | extra_flags;
  if (read_only) flags |= MDB_RDONLY;
  rc = mdb_env_open(env->env, dir.c_str(), flags, 0640);
  if (rc != 0 && is_damage(rc)) throw StoreDamagedError(lmdb_message(("store " + dir.string() + " is damaged").c_str(), rc));
  if (rc != 0) throw StoreError(lmdb_message(("open store " + dir.string()).c_str(), rc));
  // Slots of readers that died (kill -9) would pin old pages forever.
  int dead = 0;
  mdb_reader_check(env->env, &dead);
  if (stale_cleared != nullptr) *stale_cleared = dead;
  open_dbis(*env, !read_only);
  return env;
}

}  // namespace shoredaq::storage::detail
