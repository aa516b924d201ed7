// EventStoreReader: the queries. Every record's checksum is checked before it is handed out.

#include <sys/statvfs.h>

#include "shoredaq/formats/fb_codec.hpp"
#include "shoredaq/storage/event_store.hpp"
#include "store_env.hpp"

namespace shoredaq::storage {

namespace fs = std::filesystem;
using dataflow::RunRecord;
using namespace detail;

namespace {

// A scan stops at the end of its range (rc 0 after a break) or of the database (MDB_NOTFOUND);
// anything else is LMDB's own pages damaged: never a silently short answer.
void throw_unless_end(const char* database, int rc) {
  if (rc == 0 || rc == MDB_NOTFOUND) return;
  const std::string what = std::string("reading ") + database + ": " + mdb_strerror(rc);
  if (is_damage(rc)) throw StoreDamagedError(what);
  throw StoreError(what);
}

void refuse(const LmdbEnv& env, ReadResult& result, DamagedRecord record) {
  env.note_damaged(record);
  ++result.damaged;
  if (result.damaged_records.size() < kMaxListedDamaged) result.damaged_records.push_back(std::move(record));
}

}  // namespace

EventStoreReader EventStoreReader::open(const fs::path& directory) {
  if (!fs::exists(directory / "data.mdb")) throw StoreError("no store at " + directory.string());
  auto env = open_env(directory, true, 0, 126, 0, nullptr);
  ReadTxn txn(*env);
  const auto schema = lookup_schema_version(txn.get(), *env);
  if (schema.state == SchemaLookup::State::Other) {
    throw StoreSchemaError(schema_mismatch_message(directory, schema.version), schema.version);
  }
  // A damaged version record does not stop a reader: the checks of every other record still tell
  // what is intact (verify reports it).
  if (schema.state == SchemaLookup::State::Damaged) env->note_damaged(schema.damaged);
  return EventStoreReader(std::move(env));
}

std::vector<RunRecord> EventStoreReader::runs(ReadResult* damaged) const {
  ReadResult result;
  ReadTxn txn(*env_);
  Cursor cursor(txn.get(), env_->runs);
  std::vector<RunRecord> out;
  MDB_val k{}, v{};
  int rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_FIRST);
  for (; rc == 0; rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT)) {
    const auto key = as_span(k);
    const auto opened = open_record(key, as_span(v));
    if (opened.check != RecordCheck::Ok) {
      refuse(*env_, result, damaged_record(StoreDatabase::Runs, key, std::string(to_string(opened.check))));
      continue;
    }
    if (auto decoded = dataflow::decode_run_record_fb(opened.payload)) {
      ++result.visited;
      out.push_back(std::move(decoded.value));
    }
  }
  throw_unless_end("runs", rc);
  if (damaged != nullptr) *damaged = std::move(result);
  return out;
}

std::optional<RunRecord> EventStoreReader::run(std::uint32_t run) const {
  ReadTxn txn(*env_);
  auto found = lookup_run_record(txn.get(), *env_, run);
  switch (found.status) {
    case Lookup::Found: return std::move(found.record);
    case Lookup::Missing: return std::nullopt;
    case Lookup::Damaged: break;
  }
  env_->note_damaged(found.damaged);
  throw DamagedRecordError(found.damaged);
}

std::optional<std::int32_t> EventStoreReader::detector_id() const {
  ReadTxn txn(*env_);
  const auto found = lookup_meta(txn.get(), *env_, "detector_id");
  if (found.status == Lookup::Damaged) env_->note_damaged(found.damaged);
  if (found.status != Lookup::Found) return std::nullopt;
  try {
    return static_cast<std::int32_t>(std::stol(found.text));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<std::uint32_t> EventStoreReader::schema_version() const {
  ReadTxn txn(*env_);
  const auto schema = lookup_schema_version(txn.get(), *env_);
  if (schema.state == SchemaLookup::State::Damaged) env_->note_damaged(schema.damaged);
  if (schema.state == SchemaLookup::State::Current || schema.state == SchemaLookup::State::Other) return schema.version;
  return std::nullopt;
}

ReadResult EventStoreReader::for_each_event(std::uint32_t run, std::uint32_t first_frame, std::uint32_t last_frame,
                                            const EventVisitor& visit) const {
  ReadResult result;
  ReadTxn txn(*env_);
  Cursor cursor(txn.get(), env_->events);
  auto start = event_key(run, first_frame, 0);
  MDB_val k = as_val(start), v{};
  int rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_SET_RANGE);
  for (; rc == 0; rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT)) {
    if (k.mv_size != kEventKeyBytes) continue;  // verify() reports these
    const EventKey key = decode_event_key(static_cast<const std::uint8_t*>(k.mv_data));
    if (key.run != run || key.frame > last_frame) break;
    const auto opened = open_record(as_span(k), as_span(v));
    if (opened.check != RecordCheck::Ok) {
      refuse(*env_, result, damaged_record(StoreDatabase::Events, as_span(k), std::string(to_string(opened.check))));
      continue;
    }
    ++result.visited;
    if (!visit(key, opened.payload)) break;
  }
  throw_unless_end("events", rc);
  return result;
}

ReadResult EventStoreReader::for_each_summary(std::uint32_t run, std::uint32_t first_frame, std::uint32_t last_frame,
                                              const SummaryVisitor& visit) const {
  ReadResult result;
  ReadTxn txn(*env_);
  Cursor cursor(txn.get(), env_->summaries);
  auto start = summary_key(run, first_frame);
  MDB_val k = as_val(start), v{};
  int rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_SET_RANGE);
  for (; rc == 0; rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT)) {
    if (k.mv_size != kSummaryKeyBytes) continue;
    const auto* p = static_cast<const std::uint8_t*>(k.mv_data);
    const std::uint32_t key_run = get_be32(p), frame = get_be32(p + 4);
    if (key_run != run || frame > last_frame) break;
    const auto opened = open_record(as_span(k), as_span(v));
    if (opened.check != RecordCheck::Ok) {
      refuse(*env_, result, damaged_record(StoreDatabase::Summaries, as_span(k), std::string(to_string(opened.check))));
      continue;
    }
    ++result.visited;
    if (!visit(key_run, frame, opened.payload)) break;
  }
  throw_unless_end("summaries", rc);
  return result;
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

IntegrityCounters EventStoreReader::integrity() const {
  IntegrityCounters c;
  c.damaged_records_refused = env_->damaged_refused.load(std::memory_order_relaxed);
  std::lock_guard lock(env_->damaged_mutex);
  c.last_damaged = env_->last_damaged;
  return c;
}

}  // namespace shoredaq::storage
