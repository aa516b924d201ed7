#include "shoredaq/storage/event_store.hpp"

#include <fcntl.h>
#include <lmdb.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <shared_mutex>

#include <flatbuffers/flatbuffers.h>
#include <spdlog/spdlog.h>

#include "shoredaq/dataflow/fb_codec.hpp"

namespace shoredaq::storage {

namespace fs = std::filesystem;
using dataflow::RunRecord;

std::string_view to_string(CommitStatus status) noexcept {
  switch (status) {
    case CommitStatus::Ok: return "ok";
    case CommitStatus::CapReached: return "store map cap reached";
    case CommitStatus::DiskReserve: return "disk reserve reached";
    case CommitStatus::DuplicateKey: return "slice already stored";
    case CommitStatus::LmdbError: return "LMDB error";
  }
  return "unknown";
}

namespace detail {

// The environment and its database handles, shared by the writer and any in-process readers.
// mdb_env_set_mapsize needs every transaction of this process closed, so readers hold the
// mutex shared for the length of their (short) transaction and map growth takes it exclusively.
struct LmdbEnv {
  MDB_env* env = nullptr;
  MDB_dbi events = 0, summaries = 0, runs = 0, meta = 0;
  bool read_only = false;
  std::size_t max_map_bytes = 0;
  fs::path directory;
  mutable std::shared_timed_mutex resize_mutex;
  ~LmdbEnv() {
    if (env != nullptr) mdb_env_close(env);
  }
};

}  // namespace detail

namespace {

using detail::LmdbEnv;

std::uint64_t now_unix_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

std::string lmdb_message(const char* what, int rc) { return std::string(what) + ": " + mdb_strerror(rc); }

void put_be32(std::uint32_t v, std::uint8_t* out) {
  out[0] = static_cast<std::uint8_t>(v >> 24);
  out[1] = static_cast<std::uint8_t>(v >> 16);
  out[2] = static_cast<std::uint8_t>(v >> 8);
  out[3] = static_cast<std::uint8_t>(v);
}
std::uint32_t get_be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}

std::array<std::uint8_t, 12> event_key(std::uint32_t run, std::uint32_t frame, std::uint32_t number) {
  std::array<std::uint8_t, 12> k{};
  put_be32(run, k.data());
  put_be32(frame, k.data() + 4);
  put_be32(number, k.data() + 8);
  return k;
}
std::array<std::uint8_t, 8> summary_key(std::uint32_t run, std::uint32_t frame) {
  std::array<std::uint8_t, 8> k{};
  put_be32(run, k.data());
  put_be32(frame, k.data() + 4);
  return k;
}
std::array<std::uint8_t, 4> run_key(std::uint32_t run) {
  std::array<std::uint8_t, 4> k{};
  put_be32(run, k.data());
  return k;
}

template <std::size_t N>
MDB_val as_val(std::array<std::uint8_t, N>& key) {
  return MDB_val{N, key.data()};
}
MDB_val as_val(std::span<const std::uint8_t> bytes) {
  return MDB_val{bytes.size(), const_cast<std::uint8_t*>(bytes.data())};
}
std::span<const std::uint8_t> as_span(const MDB_val& v) {
  return {static_cast<const std::uint8_t*>(v.mv_data), v.mv_size};
}

// A read transaction holding the resize lock shared; handles MDB_MAP_RESIZED (another process grew
// the map) by adopting the new size.
class ReadTxn {
 public:
  explicit ReadTxn(const LmdbEnv& env) {
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
    if (rc != 0) throw StoreError(lmdb_message("cursor", rc));
  }
  ~Cursor() { mdb_cursor_close(cursor_); }
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;
  MDB_cursor* get() const { return cursor_; }

 private:
  MDB_cursor* cursor_ = nullptr;
};

std::uint64_t db_used_bytes(MDB_txn* txn, MDB_dbi dbi, std::uint64_t* entries) {
  MDB_stat st{};
  if (mdb_stat(txn, dbi, &st) != 0) return 0;
  if (entries != nullptr) *entries = st.ms_entries;
  return std::uint64_t{st.ms_psize} * (st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages);
}

std::optional<RunRecord> get_run_record(MDB_txn* txn, MDB_dbi runs, std::uint32_t run) {
  auto key = run_key(run);
  MDB_val k = as_val(key), v{};
  if (mdb_get(txn, runs, &k, &v) != 0) return std::nullopt;
  auto decoded = dataflow::decode_run_record_fb(as_span(v));
  if (!decoded) return std::nullopt;
  return std::move(decoded.value);
}

std::optional<std::string> get_meta(MDB_txn* txn, MDB_dbi meta, std::string_view name) {
  MDB_val k{name.size(), const_cast<char*>(name.data())}, v{};
  if (mdb_get(txn, meta, &k, &v) != 0) return std::nullopt;
  return std::string(static_cast<const char*>(v.mv_data), v.mv_size);
}

int put_meta(MDB_txn* txn, MDB_dbi meta, std::string_view name, const std::string& value) {
  MDB_val k{name.size(), const_cast<char*>(name.data())};
  MDB_val v{value.size(), const_cast<char*>(value.data())};
  return mdb_put(txn, meta, &k, &v, 0);
}

void open_dbis(LmdbEnv& env, bool create) {
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env.env, nullptr, create ? 0 : MDB_RDONLY, &txn);
  if (rc != 0) throw StoreError(lmdb_message("open transaction", rc));
  const unsigned flags = create ? MDB_CREATE : 0;
  for (auto [name, dbi] : {std::pair{"events", &env.events}, std::pair{"summaries", &env.summaries},
                           std::pair{"runs", &env.runs}, std::pair{"meta", &env.meta}}) {
    rc = mdb_dbi_open(txn, name, flags, dbi);
    if (rc != 0) {
      mdb_txn_abort(txn);
      throw StoreError(std::string("not a shoredaq store (database '") + name + "'): " + mdb_strerror(rc));
    }
  }
  rc = mdb_txn_commit(txn);
  if (rc != 0) throw StoreError(lmdb_message("open commit", rc));
}

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
  if (rc != 0) throw StoreError(lmdb_message(("open store " + dir.string()).c_str(), rc));
  // Slots of readers that died (kill -9) would pin old pages forever.
  int dead = 0;
  mdb_reader_check(env->env, &dead);
  if (stale_cleared != nullptr) *stale_cleared = dead;
  open_dbis(*env, !read_only);
  return env;
}

}  // namespace

// ---------------- EventStoreReader ----------------

EventStoreReader EventStoreReader::open(const fs::path& directory) {
  if (!fs::exists(directory / "data.mdb")) throw StoreError("no store at " + directory.string());
  return EventStoreReader(open_env(directory, true, 0, 126, 0, nullptr));
}

std::vector<RunRecord> EventStoreReader::runs() const {
  ReadTxn txn(*env_);
  Cursor cursor(txn.get(), env_->runs);
  std::vector<RunRecord> out;
  MDB_val k{}, v{};
  for (int rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_FIRST); rc == 0;
       rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT)) {
    if (auto decoded = dataflow::decode_run_record_fb(as_span(v))) out.push_back(std::move(decoded.value));
  }
  return out;
}

std::optional<RunRecord> EventStoreReader::run(std::uint32_t run) const {
  ReadTxn txn(*env_);
  return get_run_record(txn.get(), env_->runs, run);
}

std::optional<std::int32_t> EventStoreReader::detector_id() const {
  ReadTxn txn(*env_);
  const auto v = get_meta(txn.get(), env_->meta, "detector_id");
  if (!v) return std::nullopt;
  try {
    return static_cast<std::int32_t>(std::stol(*v));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<std::uint32_t> EventStoreReader::schema_version() const {
  ReadTxn txn(*env_);
  const auto v = get_meta(txn.get(), env_->meta, "schema_version");
  if (!v) return std::nullopt;
  try {
    return static_cast<std::uint32_t>(std::stoul(*v));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

void EventStoreReader::for_each_event(std::uint32_t run, std::uint32_t first_frame, std::uint32_t last_frame,
                                      const EventVisitor& visit) const {
  ReadTxn txn(*env_);
  Cursor cursor(txn.get(), env_->events);
  auto start = event_key(run, first_frame, 0);
  MDB_val k = as_val(start), v{};
  for (int rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_SET_RANGE); rc == 0;
       rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT)) {
    if (k.mv_size != 12) continue;  // verify() reports these
    const auto* p = static_cast<const std::uint8_t*>(k.mv_data);
    const EventKey key{get_be32(p), get_be32(p + 4), get_be32(p + 8)};
    if (key.run != run || key.frame > last_frame) break;
    if (!visit(key, as_span(v))) break;
  }
}

void EventStoreReader::for_each_summary(std::uint32_t run, std::uint32_t first_frame, std::uint32_t last_frame,
                                        const SummaryVisitor& visit) const {
  ReadTxn txn(*env_);
  Cursor cursor(txn.get(), env_->summaries);
  auto start = summary_key(run, first_frame);
  MDB_val k = as_val(start), v{};
  for (int rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_SET_RANGE); rc == 0;
       rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT)) {
    if (k.mv_size != 8) continue;
    const auto* p = static_cast<const std::uint8_t*>(k.mv_data);
    const std::uint32_t key_run = get_be32(p), frame = get_be32(p + 4);
    if (key_run != run || frame > last_frame) break;
    if (!visit(key_run, frame, as_span(v))) break;
  }
}

StoreStats EventStoreReader::stats() const {
  StoreStats s;
  s.max_map_bytes = env_->max_map_bytes;
  {
    ReadTxn txn(*env_);
    MDB_envinfo info{};
    mdb_env_info(env_->env, &info);
    s.map_bytes = info.me_mapsize;
    s.used_bytes = db_used_bytes(txn.get(), env_->events, &s.events) +
                   db_used_bytes(txn.get(), env_->summaries, &s.summaries) +
                   db_used_bytes(txn.get(), env_->runs, &s.runs) + db_used_bytes(txn.get(), env_->meta, nullptr);
  }
  std::error_code ec;
  s.file_bytes = fs::file_size(env_->directory / "data.mdb", ec);
  struct statvfs vfs{};
  if (statvfs(env_->directory.c_str(), &vfs) == 0) s.disk_free_bytes = std::uint64_t{vfs.f_bavail} * vfs.f_frsize;
  return s;
}

VerifyReport EventStoreReader::verify() const {
  VerifyReport report;
  constexpr std::size_t kMaxProblems = 100;
  auto problem = [&](std::string text) {
    if (report.problems.size() < kMaxProblems) report.problems.push_back(std::move(text));
  };
  ReadTxn txn(*env_);
  std::map<std::uint32_t, std::uint64_t> events_per_run, summaries_per_run, bytes_per_run;
  {
    Cursor cursor(txn.get(), env_->events);
    MDB_val k{}, v{};
    std::vector<std::uint8_t> previous;
    for (int rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT)) {
      ++report.events_checked;
      const auto key = as_span(k);
      if (key.size() != 12) {
        problem("events: key of " + std::to_string(key.size()) + " bytes");
        continue;
      }
      if (!previous.empty() && !std::lexicographical_compare(previous.begin(), previous.end(), key.begin(), key.end())) {
        problem("events: keys out of order");
      }
      previous.assign(key.begin(), key.end());
      const EventKey ek{get_be32(key.data()), get_be32(key.data() + 4), get_be32(key.data() + 8)};
      const std::string where = "event " + std::to_string(ek.run) + "/" + std::to_string(ek.frame) + "/" +
                                std::to_string(ek.event_number);
      const auto decoded = dataflow::decode_event_fb(as_span(v));
      if (!decoded) {
        problem(where + ": " + std::string(dataflow::to_string(decoded.error)));
        continue;
      }
      const auto& h = decoded.value.event.header;
      if (h.run != ek.run || h.frame_index != ek.frame || decoded.value.event.event_number != ek.event_number) {
        problem(where + ": buffer does not match its key");
      }
      ++events_per_run[ek.run];
      bytes_per_run[ek.run] += v.mv_size;
    }
  }
  {
    Cursor cursor(txn.get(), env_->summaries);
    MDB_val k{}, v{};
    for (int rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT)) {
      ++report.summaries_checked;
      const auto key = as_span(k);
      if (key.size() != 8) {
        problem("summaries: key of " + std::to_string(key.size()) + " bytes");
        continue;
      }
      const std::uint32_t run = get_be32(key.data()), frame = get_be32(key.data() + 4);
      const std::string where = "summary " + std::to_string(run) + "/" + std::to_string(frame);
      const auto decoded = dataflow::decode_summary_slice_fb(as_span(v));
      if (!decoded) {
        problem(where + ": " + std::string(dataflow::to_string(decoded.error)));
        continue;
      }
      if (decoded.value.header.run != run || decoded.value.header.frame_index != frame) {
        problem(where + ": buffer does not match its key");
      }
      ++summaries_per_run[run];
    }
  }
  std::map<std::uint32_t, RunRecord> records;
  {
    Cursor cursor(txn.get(), env_->runs);
    MDB_val k{}, v{};
    for (int rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT)) {
      ++report.runs_checked;
      if (k.mv_size != 4) {
        problem("runs: key of " + std::to_string(k.mv_size) + " bytes");
        continue;
      }
      const std::uint32_t run = get_be32(static_cast<const std::uint8_t*>(k.mv_data));
      auto decoded = dataflow::decode_run_record_fb(as_span(v));
      if (!decoded) {
        problem("run " + std::to_string(run) + ": " + std::string(dataflow::to_string(decoded.error)));
        continue;
      }
      if (decoded.value.run != run) problem("run " + std::to_string(run) + ": record does not match its key");
      records.emplace(run, std::move(decoded.value));
    }
  }
  auto check_count = [&](const std::map<std::uint32_t, std::uint64_t>& found, const char* counter, const char* what) {
    for (const auto& [run, n] : found) {
      if (!records.contains(run)) problem("run " + std::to_string(run) + ": " + what + " stored but no run record");
    }
    for (const auto& [run, record] : records) {
      const auto it = found.find(run);
      const std::uint64_t n = it == found.end() ? 0 : it->second;
      if (record.counter(counter) != n) {
        problem("run " + std::to_string(run) + ": " + std::to_string(n) + " " + what + " stored, run record says " +
                std::to_string(record.counter(counter)));
      }
    }
  };
  check_count(events_per_run, kCounterStoredEvents, "events");
  check_count(summaries_per_run, kCounterStoredSummaries, "summaries");
  check_count(bytes_per_run, kCounterStoredEventBytes, "event bytes");
  if (!get_meta(txn.get(), env_->meta, "schema_version")) problem("meta: schema_version missing");
  return report;
}

// ---------------- EventStore ----------------

// Every buffer of a batch, encoded before the write transaction (so retries after map growth
// do not encode again).
struct EventStore::Encoded {
  std::vector<std::uint8_t> arena;
  std::vector<std::pair<std::size_t, std::size_t>> events;     // offset, size; in slice order
  std::vector<std::pair<std::size_t, std::size_t>> summaries;  // per slice; size 0 = none
};

EventStore::EventStore(EventStoreConfig config) : config_(std::move(config)) {
  std::error_code ec;
  fs::create_directories(config_.directory, ec);
  if (ec) throw StoreError("cannot create " + config_.directory.string() + ": " + ec.message());
  if (config_.initial_map_bytes > config_.max_map_bytes) config_.initial_map_bytes = config_.max_map_bytes;

  // One writer per store: LMDB would serialise two, but two daemons on one store is a mistake.
  const fs::path lock_path = config_.directory / "writer.lock";
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (lock_fd_ < 0) throw StoreError("cannot open " + lock_path.string() + ": " + std::strerror(errno));
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    ::close(lock_fd_);
    throw StoreError("store " + config_.directory.string() + " is already open by another writer");
  }

  unsigned flags = 0;
  if (config_.sync == SyncMode::NoMetaSync) flags |= MDB_NOMETASYNC;
  if (config_.sync == SyncMode::NoSync) flags |= MDB_NOSYNC;
  try {
    int stale = 0;
    // An existing store may already be bigger than initial_map_bytes; LMDB then keeps its size.
    env_ = open_env(config_.directory, false, config_.initial_map_bytes, config_.max_readers, flags, &stale);
    env_->max_map_bytes = config_.max_map_bytes;
    counters_.stale_readers_cleared = static_cast<std::uint64_t>(stale);
    if (stale > 0) spdlog::warn("event store: cleared {} stale reader slot(s)", stale);

    MDB_txn* txn = nullptr;
    int rc = mdb_txn_begin(env_->env, nullptr, 0, &txn);
    if (rc != 0) throw StoreError(lmdb_message("meta transaction", rc));
    const auto version = get_meta(txn, env_->meta, "schema_version");
    const auto detector = get_meta(txn, env_->meta, "detector_id");
    std::string error;
    if (version && *version != std::to_string(kStoreSchemaVersion)) {
      error = "store schema version " + *version + ", this program writes " + std::to_string(kStoreSchemaVersion);
    } else if (detector && config_.detector_id != 0 && *detector != std::to_string(config_.detector_id)) {
      error = "store belongs to detector " + *detector + ", configured " + std::to_string(config_.detector_id);
    }
    if (error.empty()) {
      rc = 0;
      if (!version) rc = put_meta(txn, env_->meta, "schema_version", std::to_string(kStoreSchemaVersion));
      if (rc == 0 && !detector && config_.detector_id != 0) {
        rc = put_meta(txn, env_->meta, "detector_id", std::to_string(config_.detector_id));
      }
      if (rc == 0) {
        rc = mdb_txn_commit(txn);
      } else {
        mdb_txn_abort(txn);
      }
      if (rc != 0) error = lmdb_message("meta write", rc);
    } else {
      mdb_txn_abort(txn);
    }
    if (!error.empty()) throw StoreError(error);
  } catch (...) {
    env_.reset();
    ::close(lock_fd_);
    throw;
  }
}

EventStore::~EventStore() {
  env_.reset();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

std::uint64_t EventStore::disk_free_bytes() const {
  struct statvfs vfs{};
  if (statvfs(config_.directory.c_str(), &vfs) != 0) return UINT64_MAX;  // unknown: do not refuse
  return std::uint64_t{vfs.f_bavail} * vfs.f_frsize;
}

CommitResult EventStore::refuse(CommitStatus status, std::span<const SliceRecord> slices, std::string message) {
  std::uint64_t events = 0;
  for (const auto& s : slices) events += s.events.size();
  counters_.events_refused += events;
  switch (status) {
    case CommitStatus::CapReached: counters_.slices_refused_cap += slices.size(); break;
    case CommitStatus::DiskReserve: counters_.slices_refused_disk_reserve += slices.size(); break;
    case CommitStatus::DuplicateKey: counters_.slices_refused_duplicate += slices.size(); break;
    default: counters_.slices_refused_lmdb_error += slices.size(); break;
  }
  if (!refusing_) {  // log the transition, not every refused slice
    spdlog::error("event store refuses new data: {}", message);
    refusing_ = true;
  }
  CommitResult r;
  r.status = status;
  r.message = std::move(message);
  return r;
}

EventStore::Growth EventStore::grow_map(std::chrono::milliseconds wait) {
  MDB_envinfo info{};
  mdb_env_info(env_->env, &info);
  const std::size_t current = info.me_mapsize;
  if (current >= config_.max_map_bytes) return Growth::AtCap;
  const std::size_t next = std::min(config_.max_map_bytes, std::max(current * 2, current + (std::size_t{1} << 20)));
  // No transaction of this process may be open while the map is replaced; an in-process reader
  // holding one delays growth at most `wait`.
  std::unique_lock exclusive(env_->resize_mutex, std::defer_lock);
  if (!exclusive.try_lock_for(wait)) return Growth::ReaderOpen;
  const int rc = mdb_env_set_mapsize(env_->env, next);
  if (rc != 0) {
    spdlog::error("event store: map growth to {} bytes failed: {}", next, mdb_strerror(rc));
    return Growth::Failed;
  }
  ++counters_.map_growths;
  spdlog::info("event store: map grown from {} to {} bytes", current, next);
  return Growth::Grown;
}

void EventStore::grow_ahead(std::size_t batch_bytes) {
  // Grow before MDB_MAP_FULL when a reader is not in the way, so that a long in-process read
  // transaction rarely meets a full map. Pages past me_last_pgno are the untouched part of the map.
  MDB_envinfo info{};
  MDB_stat st{};
  if (mdb_env_info(env_->env, &info) != 0 || mdb_env_stat(env_->env, &st) != 0) return;
  const std::size_t used = (info.me_last_pgno + 1) * std::size_t{st.ms_psize};
  if (used + 4 * batch_bytes + info.me_mapsize / 8 > info.me_mapsize) grow_map(std::chrono::milliseconds(0));
}

int EventStore::write_batch(std::span<const SliceRecord> slices, const Encoded& encoded, CommitStatus& status) {
  status = CommitStatus::LmdbError;
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_->env, nullptr, 0, &txn);
  if (rc != 0) return rc;
  auto fail = [&](int code) {
    mdb_txn_abort(txn);
    return code;
  };
  std::map<std::uint32_t, RunRecord> touched;
  const std::uint64_t now = now_unix_ns();
  std::size_t event_index = 0;
  for (std::size_t s = 0; s < slices.size(); ++s) {
    const SliceRecord& slice = slices[s];
    std::uint64_t slice_bytes = 0;
    for (std::uint32_t n = 0; n < slice.events.size(); ++n, ++event_index) {
      const auto [offset, size] = encoded.events[event_index];
      auto key = event_key(slice.run, slice.frame, n);
      MDB_val k = as_val(key);
      MDB_val v{size, const_cast<std::uint8_t*>(encoded.arena.data() + offset)};
      rc = mdb_put(txn, env_->events, &k, &v, MDB_APPEND);
      if (rc == MDB_KEYEXIST) {  // below the last key: a rerun of an old run number, or a duplicate
        rc = mdb_put(txn, env_->events, &k, &v, MDB_NOOVERWRITE);
        if (rc == MDB_KEYEXIST) {
          status = CommitStatus::DuplicateKey;
          return fail(rc);
        }
        ++counters_.out_of_order_writes;
      }
      if (rc != 0) return fail(rc);
      slice_bytes += size;
    }
    const auto [summary_offset, summary_size] = encoded.summaries[s];
    if (summary_size != 0) {
      auto key = summary_key(slice.run, slice.frame);
      MDB_val k = as_val(key);
      MDB_val v{summary_size, const_cast<std::uint8_t*>(encoded.arena.data() + summary_offset)};
      rc = mdb_put(txn, env_->summaries, &k, &v, MDB_APPEND);
      if (rc == MDB_KEYEXIST) {
        rc = mdb_put(txn, env_->summaries, &k, &v, MDB_NOOVERWRITE);
        if (rc == MDB_KEYEXIST) {
          status = CommitStatus::DuplicateKey;
          return fail(rc);
        }
        ++counters_.out_of_order_writes;
      }
      if (rc != 0) return fail(rc);
    }
    // The run record's store counters change in the same transaction as the data they count.
    auto it = touched.find(slice.run);
    if (it == touched.end()) {
      auto existing = get_run_record(txn, env_->runs, slice.run);
      if (!existing) {
        existing.emplace();
        existing->run = slice.run;
        existing->detector_id = config_.detector_id;
        existing->state = dataflow::RunState::Running;
        existing->start_unix_ns = now;
        existing->first_frame = slice.frame;
        existing->last_frame = slice.frame;
      }
      it = touched.emplace(slice.run, std::move(*existing)).first;
    }
    RunRecord& record = it->second;
    if (record.counter(kCounterStoredSlices) == 0) {  // a record from put_run_record: no frames yet
      record.first_frame = slice.frame;
      record.last_frame = slice.frame;
    }
    record.first_frame = std::min(record.first_frame, slice.frame);
    record.last_frame = std::max(record.last_frame, slice.frame);
    record.counters[kCounterStoredSlices] += 1;
    record.counters[kCounterStoredEvents] += slice.events.size();
    record.counters[kCounterStoredEventBytes] += slice_bytes;
    if (summary_size != 0) record.counters[kCounterStoredSummaries] += 1;
  }
  flatbuffers::FlatBufferBuilder builder(1024);
  for (const auto& [run, record] : touched) {
    dataflow::encode_run_record_fb(record, builder);
    auto key = run_key(run);
    MDB_val k = as_val(key);
    MDB_val v{builder.GetSize(), builder.GetBufferPointer()};
    rc = mdb_put(txn, env_->runs, &k, &v, 0);
    if (rc != 0) return fail(rc);
  }
  rc = mdb_txn_commit(txn);  // frees txn whatever the outcome
  if (rc == 0) status = CommitStatus::Ok;
  return rc;
}

CommitResult EventStore::commit_slice(std::uint32_t run, std::uint32_t frame, std::span<const dataflow::Event> events,
                                      const dataflow::SummarySlice* summary) {
  const SliceRecord record{run, frame, events, summary};
  return commit_slices(std::span<const SliceRecord>(&record, 1));
}

CommitResult EventStore::commit_slices(std::span<const SliceRecord> slices) {
  const auto started = std::chrono::steady_clock::now();
  if (disk_free_bytes() < config_.disk_reserve_bytes) {
    return refuse(CommitStatus::DiskReserve, slices,
                  "free disk space below the reserve of " + std::to_string(config_.disk_reserve_bytes) + " bytes at " +
                      config_.directory.string());
  }

  // Encode everything first; the committed stamp is the time the batch enters the transaction.
  CommitResult result;
  result.committed_unix_ns = now_unix_ns();
  Encoded encoded;
  flatbuffers::FlatBufferBuilder builder(4096);
  auto append = [&](std::pair<std::size_t, std::size_t>& where) {
    where = {encoded.arena.size(), builder.GetSize()};
    encoded.arena.insert(encoded.arena.end(), builder.GetBufferPointer(), builder.GetBufferPointer() + builder.GetSize());
  };
  dataflow::Event numbered;
  for (const SliceRecord& slice : slices) {
    for (std::size_t n = 0; n < slice.events.size(); ++n) {
      const dataflow::Event& e = slice.events[n];
      if (e.event_number != n || e.header.run != slice.run || e.header.frame_index != slice.frame) {
        numbered = e;  // the key is authoritative: keep the buffer consistent with it
        numbered.event_number = static_cast<std::uint32_t>(n);
        numbered.header.run = slice.run;
        numbered.header.frame_index = slice.frame;
        dataflow::encode_event_fb(numbered, builder, result.committed_unix_ns);
      } else {
        dataflow::encode_event_fb(e, builder, result.committed_unix_ns);
      }
      append(encoded.events.emplace_back());
      ++result.events;
    }
    auto& summary_where = encoded.summaries.emplace_back(0, 0);
    if (slice.summary != nullptr) {
      dataflow::encode_summary_slice_fb(*slice.summary, builder);
      append(summary_where);
    }
  }
  result.bytes = encoded.arena.size();

  grow_ahead(encoded.arena.size());
  bool retention_tried = false;
  for (;;) {
    CommitStatus status = CommitStatus::LmdbError;
    const int rc = write_batch(slices, encoded, status);
    if (rc == 0) break;
    if (rc == MDB_MAP_FULL) {
      const Growth growth = grow_map(config_.growth_wait);
      if (growth == Growth::Grown) continue;
      if (growth == Growth::ReaderOpen) {
        counters_.slices_refused_growth_blocked += slices.size();
        return refuse(CommitStatus::CapReached, slices,
                      "store map full and a read transaction of this process held open for " +
                          std::to_string(config_.growth_wait.count()) + " ms prevents growth");
      }
      if (!retention_tried && config_.max_store_bytes != 0) {
        retention_tried = true;
        if (!apply_retention().empty()) continue;
      }
      return refuse(CommitStatus::CapReached, slices,
                    "store map cap of " + std::to_string(config_.max_map_bytes) +
                        " bytes reached and no transferred run to prune");
    }
    if (status == CommitStatus::DuplicateKey) {
      return refuse(status, slices, "slice " + std::to_string(slices.front().run) + "/" +
                                        std::to_string(slices.front().frame) + " (batch) already stored");
    }
    return refuse(CommitStatus::LmdbError, slices, lmdb_message("commit", rc));
  }
  if (refusing_) {
    spdlog::info("event store accepts data again");
    refusing_ = false;
  }
  ++counters_.commits;
  counters_.slices_committed += slices.size();
  counters_.events_committed += result.events;
  for (const auto& where : encoded.summaries) counters_.summaries_committed += where.second != 0 ? 1 : 0;
  counters_.bytes_committed += result.bytes;
  const auto took = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - started).count());
  counters_.last_commit_duration_ns = took;
  counters_.max_commit_duration_ns = std::max(counters_.max_commit_duration_ns, took);

  if (config_.max_store_bytes != 0 && counters_.commits % 16 == 0) apply_retention();
  return result;
}

CommitResult EventStore::put_run_record(const RunRecord& record) {
  for (;;) {
    MDB_txn* txn = nullptr;
    int rc = mdb_txn_begin(env_->env, nullptr, 0, &txn);
    if (rc != 0) return refuse(CommitStatus::LmdbError, {}, lmdb_message("run record", rc));
    RunRecord merged = record;
    if (auto existing = get_run_record(txn, env_->runs, record.run)) {
      for (const auto& [name, value] : existing->counters) {
        if (name.starts_with("store.")) merged.counters[name] = value;
      }
      if (existing->counters.contains(kCounterStoredSlices)) {
        merged.first_frame = existing->first_frame;
        merged.last_frame = existing->last_frame;
      }
    } else {
      for (auto it = merged.counters.begin(); it != merged.counters.end();) {
        it = it->first.starts_with("store.") ? merged.counters.erase(it) : std::next(it);
      }
    }
    const auto bytes = dataflow::encode_run_record_fb(merged);
    auto key = run_key(record.run);
    MDB_val k = as_val(key);
    MDB_val v = as_val(bytes);
    rc = mdb_put(txn, env_->runs, &k, &v, 0);
    if (rc == 0) {
      rc = mdb_txn_commit(txn);
    } else {
      mdb_txn_abort(txn);
    }
    if (rc == MDB_MAP_FULL && grow_map(config_.growth_wait) == Growth::Grown) continue;
    if (rc != 0) {
      return refuse(rc == MDB_MAP_FULL ? CommitStatus::CapReached : CommitStatus::LmdbError, {},
                    lmdb_message("run record", rc));
    }
    CommitResult ok;
    ok.bytes = bytes.size();
    return ok;
  }
}

bool EventStore::prune_run(std::uint32_t run) {
  // Deleting needs a few free pages too; chunks keep each transaction small.
  constexpr std::size_t kChunk = 20'000;
  for (MDB_dbi dbi : {env_->events, env_->summaries}) {
    for (;;) {
      MDB_txn* txn = nullptr;
      if (mdb_txn_begin(env_->env, nullptr, 0, &txn) != 0) return false;
      MDB_cursor* cursor = nullptr;
      if (mdb_cursor_open(txn, dbi, &cursor) != 0) {
        mdb_txn_abort(txn);
        return false;
      }
      auto start = summary_key(run, 0);  // (run, frame 0) is a prefix of both key kinds
      MDB_val k = as_val(start), v{};
      std::size_t deleted = 0;
      int rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
      while (rc == 0 && deleted < kChunk && k.mv_size >= 4 &&
             get_be32(static_cast<const std::uint8_t*>(k.mv_data)) == run) {
        rc = mdb_cursor_del(cursor, 0);
        if (rc != 0) break;
        ++deleted;
        k = as_val(start);  // re-seek: the cursor's state after a delete at the end is subtle
        rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
      }
      mdb_cursor_close(cursor);
      if (rc != 0 && rc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return false;
      }
      if (mdb_txn_commit(txn) != 0) return false;
      if (deleted < kChunk) break;
    }
  }
  MDB_txn* txn = nullptr;
  if (mdb_txn_begin(env_->env, nullptr, 0, &txn) != 0) return false;
  auto key = run_key(run);
  MDB_val k = as_val(key);
  const int rc = mdb_del(txn, env_->runs, &k, nullptr);
  if (rc != 0 && rc != MDB_NOTFOUND) {
    mdb_txn_abort(txn);
    return false;
  }
  return mdb_txn_commit(txn) == 0;
}

std::vector<std::uint32_t> EventStore::apply_retention() {
  std::vector<std::uint32_t> pruned;
  if (config_.max_store_bytes == 0 || !config_.run_transferred) return pruned;
  if (stats().used_bytes <= config_.max_store_bytes) return pruned;
  auto runs = reader().runs();
  std::sort(runs.begin(), runs.end(), [](const RunRecord& a, const RunRecord& b) {
    return std::tie(a.start_unix_ns, a.run) < std::tie(b.start_unix_ns, b.run);
  });
  for (const RunRecord& r : runs) {
    if (stats().used_bytes <= config_.max_store_bytes) break;
    if (!config_.run_transferred(r.run)) continue;  // never prune what Tier-0 has not confirmed
    if (!prune_run(r.run)) {
      spdlog::error("event store: pruning run {} failed", r.run);
      break;
    }
    spdlog::info("event store: pruned run {} (transferred to Tier-0)", r.run);
    ++counters_.runs_pruned;
    pruned.push_back(r.run);
  }
  return pruned;
}

}  // namespace shoredaq::storage
