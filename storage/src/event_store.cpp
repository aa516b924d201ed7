// EventStore: the single writer (commits, run records, map growth, retention).

#include "shoredaq/storage/event_store.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>

#include <flatbuffers/flatbuffers.h>
#include <spdlog/spdlog.h>

#include "shoredaq/formats/fb_codec.hpp"
#include "store_env.hpp"

namespace shoredaq::storage {

namespace fs = std::filesystem;
using dataflow::RunRecord;
using namespace detail;

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

namespace {

std::uint64_t now_unix_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

// The run's record inside a write transaction. A damaged one cannot be updated: it is counted,
// logged and replaced by a new record (whose store counters then start from this batch).
std::optional<RunRecord> existing_run_record(MDB_txn* txn, const LmdbEnv& env, std::uint32_t run,
                                             EventStoreCounters& counters) {
  auto found = lookup_run_record(txn, env, run);
  if (found.status == Lookup::Found) return std::move(found.record);
  if (found.status == Lookup::Damaged) {
    env.note_damaged(found.damaged);
    ++counters.damaged_run_records_replaced;
    spdlog::error("event store: run record {} is damaged ({}); writing a new one", run, found.damaged.reason);
  }
  return std::nullopt;
}

}  // namespace

// ---------------- EventStore ----------------

// Every buffer of a batch, encoded before the write transaction (so retries after map growth
// do not encode again).
// Each value in the arena is the buffer followed by its checksum (record_codec.hpp).
struct EventStore::Encoded {
  std::vector<std::uint8_t> arena;
  std::vector<std::pair<std::size_t, std::size_t>> events;     // offset, buffer size; in slice order
  std::vector<std::pair<std::size_t, std::size_t>> summaries;  // per slice; buffer size 0 = none
  std::size_t buffer_bytes = 0;                                // without the checksums
  void clear() {
    arena.clear();
    events.clear();
    summaries.clear();
    buffer_bytes = 0;
  }
};

// Kept between commits so a commit does not allocate its encoding buffers anew (they keep the
// largest batch's capacity).
struct EventStore::Scratch {
  Encoded encoded;
  flatbuffers::FlatBufferBuilder builder{4096};
  flatbuffers::FlatBufferBuilder run_record_builder{1024};
};

EventStore::EventStore(EventStoreConfig config) : config_(std::move(config)), scratch_(std::make_unique<Scratch>()) {
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
    const auto schema = lookup_schema_version(txn, *env_);
    const auto detector = lookup_meta(txn, *env_, "detector_id");
    std::string error;
    if (schema.state == SchemaLookup::State::Other) {
      mdb_txn_abort(txn);
      throw StoreSchemaError(schema_mismatch_message(config_.directory, schema.version), schema.version);
    }
    // Writing on top of a damaged meta value would hide the damage (and which format the store has).
    if (schema.state == SchemaLookup::State::Damaged) {
      error = "store " + config_.directory.string() + ": " + schema.damaged.describe() +
              "; check it with shore-events verify --deep";
    } else if (detector.status == Lookup::Damaged) {
      error = "store " + config_.directory.string() + ": " + detector.damaged.describe() +
              "; check it with shore-events verify --deep";
    } else if (detector.status == Lookup::Found && config_.detector_id != 0 &&
               detector.text != std::to_string(config_.detector_id)) {
      error = "store belongs to detector " + detector.text + ", configured " + std::to_string(config_.detector_id);
    }
    if (error.empty()) {
      rc = 0;
      if (schema.state == SchemaLookup::State::Missing) {
        rc = put_meta(txn, *env_, "schema_version", std::to_string(kStoreSchemaVersion));
      }
      if (rc == 0 && detector.status == Lookup::Missing && config_.detector_id != 0) {
        rc = put_meta(txn, *env_, "detector_id", std::to_string(config_.detector_id));
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
      MDB_val v{size + kChecksumBytes, const_cast<std::uint8_t*>(encoded.arena.data() + offset)};
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
      MDB_val v{summary_size + kChecksumBytes, const_cast<std::uint8_t*>(encoded.arena.data() + summary_offset)};
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
      auto existing = existing_run_record(txn, *env_, slice.run, counters_);
      if (!existing) {
        existing.emplace();
        existing->run = slice.run;
        existing->detector_id = config_.detector_id;
        existing->state = dataflow::RunOutcome::Running;
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
    if (!slice.supernova_alerts.empty()) {
      record.supernova_alerts.insert(record.supernova_alerts.end(), slice.supernova_alerts.begin(),
                                     slice.supernova_alerts.end());
      record.counters[kCounterStoredSupernovaAlerts] += slice.supernova_alerts.size();
    }
  }
  flatbuffers::FlatBufferBuilder& builder = scratch_->run_record_builder;
  for (const auto& [run, record] : touched) {
    dataflow::encode_run_record_fb(record, builder);
    auto key = run_key(run);
    const auto value = seal_record(key, {builder.GetBufferPointer(), builder.GetSize()});
    MDB_val k = as_val(key);
    MDB_val v = as_val(value);
    rc = mdb_put(txn, env_->runs, &k, &v, 0);
    if (rc != 0) return fail(rc);
  }
  rc = mdb_txn_commit(txn);  // frees txn whatever the outcome
  if (rc == 0) status = CommitStatus::Ok;
  return rc;
}

CommitResult EventStore::commit_slice(std::uint32_t run, std::uint32_t frame, std::span<const dataflow::Event> events,
                                      const dataflow::SummarySlice* summary,
                                      std::span<const std::string> supernova_alerts) {
  const SliceRecord record{run, frame, events, summary, supernova_alerts};
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
  Encoded& encoded = scratch_->encoded;
  encoded.clear();
  flatbuffers::FlatBufferBuilder& builder = scratch_->builder;
  auto append = [&](std::pair<std::size_t, std::size_t>& where, std::span<const std::uint8_t> key) {
    const std::span<const std::uint8_t> buffer(builder.GetBufferPointer(), builder.GetSize());
    where = {encoded.arena.size(), buffer.size()};
    encoded.arena.insert(encoded.arena.end(), buffer.begin(), buffer.end());
    encoded.arena.resize(encoded.arena.size() + kChecksumBytes);
    put_checksum(key, buffer, encoded.arena.data() + encoded.arena.size() - kChecksumBytes);
    encoded.buffer_bytes += buffer.size();
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
      append(encoded.events.emplace_back(), event_key(slice.run, slice.frame, static_cast<std::uint32_t>(n)));
      ++result.events;
    }
    auto& summary_where = encoded.summaries.emplace_back(0, 0);
    if (slice.summary != nullptr) {
      dataflow::encode_summary_slice_fb(*slice.summary, builder);
      append(summary_where, summary_key(slice.run, slice.frame));
    }
  }
  result.bytes = encoded.buffer_bytes;

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
    if (auto existing = existing_run_record(txn, *env_, record.run, counters_)) {
      for (const auto& [name, value] : existing->counters) {
        if (name.starts_with("store.")) merged.counters[name] = value;
      }
      if (existing->counters.contains(kCounterStoredSlices)) {
        merged.first_frame = existing->first_frame;
        merged.last_frame = existing->last_frame;
      }
      merged.supernova_alerts = std::move(existing->supernova_alerts);  // the store's, with their slices
    } else {
      merged.supernova_alerts.clear();
      for (auto it = merged.counters.begin(); it != merged.counters.end();) {
        it = it->first.starts_with("store.") ? merged.counters.erase(it) : std::next(it);
      }
    }
    const auto bytes = dataflow::encode_run_record_fb(merged);
    auto key = run_key(record.run);
    const auto value = seal_record(key, bytes);
    MDB_val k = as_val(key);
    MDB_val v = as_val(value);
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

}  // namespace shoredaq::storage
