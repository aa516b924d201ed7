#pragma once
// The node's event store (DESIGN.md section 4): one LMDB environment under a directory with the
// named databases
//   events    key 12 B big-endian (run, frame, event number) -> Event FlatBuffer
//   summaries key  8 B big-endian (run, frame)               -> SummarySlice FlatBuffer
//   runs      key  4 B big-endian run                        -> RunRecord FlatBuffer
//   meta      key text ("schema_version", "detector_id")     -> value text
// Every value is stored with an 8-byte checksum of key and value after it (schema 2; see
// store_integrity.hpp): readers check it and refuse a damaged record by its key, never hand it out.
// One writer (EventStore, one per directory, guarded by a lock file) commits whole slices or
// batches of slices in one write transaction; readers (EventStoreReader) use their own read-only
// transactions and never block it. Keys increase during a run, so writes use MDB_APPEND.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "shoredaq/formats/event.hpp"
#include "shoredaq/formats/run_record.hpp"
#include "shoredaq/formats/summary_slice.hpp"
#include "shoredaq/storage/store_integrity.hpp"

namespace shoredaq::storage {

// 1: records without checksums (opening such a store throws StoreSchemaError; store_upgrade.hpp
//    rewrites it). 2: every value followed by its XXH3-64 checksum.
inline constexpr std::uint32_t kStoreSchemaVersion = 2;

// Counters the store keeps inside each run record (same transaction as the data they count).
inline constexpr const char* kCounterStoredSlices = "store.slices";
inline constexpr const char* kCounterStoredSummaries = "store.summaries";
inline constexpr const char* kCounterStoredEvents = "store.events";
inline constexpr const char* kCounterStoredEventBytes = "store.event_bytes";
// Supernova alerts kept in the run record (RunRecord::supernova_alerts), with their slice.
inline constexpr const char* kCounterStoredSupernovaAlerts = "store.supernova_alerts";

enum class SyncMode : std::uint8_t {
  Full,        // fsync data and meta page at every commit (default: a commit survives power loss)
  NoMetaSync,  // last commit may be lost on power loss, never corrupted
  NoSync,      // OS decides; only for benchmarks and tests
};

struct EventStoreConfig {
  std::filesystem::path directory;
  std::size_t initial_map_bytes = std::size_t{256} << 20;  // explicit: LMDB's default is 10 MiB
  std::size_t max_map_bytes = std::size_t{64} << 30;       // growth cap; reaching it refuses new data
  std::uint64_t disk_reserve_bytes = std::uint64_t{1} << 30;  // refuse new data when less is free
  std::uint64_t max_store_bytes = 0;  // retention threshold on used pages (0 = never prune)
  SyncMode sync = SyncMode::Full;
  std::int32_t detector_id = 0;  // written to meta on creation; a mismatch at open is an error (0 = any)
  unsigned max_readers = 126;
  // Growing the map needs every read transaction of this process closed; wait at most this long.
  std::chrono::milliseconds growth_wait{2000};
  // Retention asks this before pruning a run: true only when the Tier-0 spool has every part of
  // the run acknowledged (Tier0Spool::transferred). Unset = nothing is ever pruned.
  std::function<bool(std::uint32_t run)> run_transferred;
};

enum class CommitStatus : std::uint8_t {
  Ok,
  CapReached,    // map full and cannot grow (at max_map_bytes with nothing prunable, or an in-process
                 // reader held a transaction past growth_wait; see the counters): refused, data intact
  DiskReserve,   // free disk below disk_reserve_bytes: refused
  DuplicateKey,  // a (run, frame) already stored: the whole batch refused
  LmdbError,     // any other LMDB failure: transaction aborted, nothing of the batch stored
};
inline constexpr std::size_t kCommitStatusValues = 5;  // firmware indexes counters by CommitStatus
std::string_view to_string(CommitStatus status) noexcept;

struct CommitResult {
  CommitStatus status = CommitStatus::Ok;
  std::string message;                // human-readable cause when refused
  std::uint64_t committed_unix_ns = 0;  // the stamp written into every Event of the batch
  std::size_t events = 0;
  std::size_t bytes = 0;  // Event + SummarySlice buffer bytes written (their checksums not included)
  explicit operator bool() const noexcept { return status == CommitStatus::Ok; }
};

// One slice's output, as handed to the writer. The store numbers the events 0..n-1 in the given
// order (the key's third part; the stored Event's event_number is set to match).
struct SliceRecord {
  std::uint32_t run = 0;
  std::uint32_t frame = 0;
  std::span<const dataflow::Event> events;
  const dataflow::SummarySlice* summary = nullptr;  // optional
  // SNEWS-format supernova alerts raised at this slice: appended to the run record's list.
  std::span<const std::string> supernova_alerts = {};
};

struct EventStoreCounters {
  std::uint64_t commits = 0;            // successful write transactions
  std::uint64_t slices_committed = 0;
  std::uint64_t events_committed = 0;
  std::uint64_t summaries_committed = 0;
  std::uint64_t bytes_committed = 0;
  std::uint64_t map_growths = 0;
  std::uint64_t slices_refused_cap = 0;
  std::uint64_t slices_refused_disk_reserve = 0;
  std::uint64_t slices_refused_duplicate = 0;
  std::uint64_t slices_refused_growth_blocked = 0;  // the part of slices_refused_cap due to an open reader
  std::uint64_t slices_refused_lmdb_error = 0;
  std::uint64_t events_refused = 0;
  std::uint64_t out_of_order_writes = 0;  // keys below the last one: written without MDB_APPEND
  std::uint64_t runs_pruned = 0;
  std::uint64_t stale_readers_cleared = 0;  // at open
  // A run's record was damaged when a commit or put_run_record needed it: replaced by a new one
  // (its "store.*" counters restart from this batch; verify reports the difference).
  std::uint64_t damaged_run_records_replaced = 0;
  std::uint64_t last_commit_duration_ns = 0;
  std::uint64_t max_commit_duration_ns = 0;
};

struct StoreStats {
  std::size_t map_bytes = 0;      // current map size
  std::size_t max_map_bytes = 0;  // cap (0 for a reader)
  std::uint64_t used_bytes = 0;   // pages in use by the four databases
  std::uint64_t file_bytes = 0;   // data.mdb on disk
  std::uint64_t disk_free_bytes = 0;
  std::uint64_t events = 0, summaries = 0, runs = 0;  // entries
};

struct EventKey {
  std::uint32_t run = 0;
  std::uint32_t frame = 0;
  std::uint32_t event_number = 0;
  friend auto operator<=>(const EventKey&, const EventKey&) = default;
};

namespace detail {
struct LmdbEnv;
struct ReaderAccess;
}  // namespace detail

// Read-only access: from another process (open) or beside the writer (EventStore::reader()).
// Each call runs in its own short read transaction. Callbacks get views valid only during the call;
// return false to stop early. Every record's checksum is checked first: a damaged record is never
// handed out; it is counted in integrity() and logged (rate-limited) with its key.
class EventStoreReader {
 public:
  // Opens an existing store read-only; throws StoreError if it is missing or not a shoredaq store,
  // StoreSchemaError if it has another schema version (the message says how to upgrade).
  // For other processes (shore-events): inside the writer's process use EventStore::reader(), as
  // LMDB forbids opening one environment twice in a process.
  static EventStoreReader open(const std::filesystem::path& directory);

  // Every intact run record; damaged ones are skipped, counted and (when `damaged` is given) listed there.
  std::vector<dataflow::RunRecord> runs(ReadResult* damaged = nullptr) const;
  // nullopt when absent; throws DamagedRecordError (counted) when the record is damaged, so a
  // damaged record never reads as "no such run".
  std::optional<dataflow::RunRecord> run(std::uint32_t run) const;
  std::optional<std::int32_t> detector_id() const;       // nullopt when absent or damaged
  std::optional<std::uint32_t> schema_version() const;  // nullopt when absent or damaged

  using EventVisitor = std::function<bool(const EventKey&, std::span<const std::uint8_t> event_buffer)>;
  using SummaryVisitor =
      std::function<bool(std::uint32_t run, std::uint32_t frame, std::span<const std::uint8_t> summary_buffer)>;
  // Events of `run` with first_frame <= frame <= last_frame, in key order; the buffer excludes
  // the checksum and points into the map (no copy). Damaged records are skipped and returned;
  // damaged LMDB pages (a scan that cannot reach its end) throw StoreError rather than answer short.
  ReadResult for_each_event(std::uint32_t run, std::uint32_t first_frame, std::uint32_t last_frame,
                            const EventVisitor& visit) const;
  ReadResult for_each_summary(std::uint32_t run, std::uint32_t first_frame, std::uint32_t last_frame,
                              const SummaryVisitor& visit) const;

  StoreStats stats() const;
  // Every record's checksum, keys ordered and well-formed, every buffer passes the verifier and
  // matches its key, the counts per run match the run records; options.deep adds the cross-checks
  // listed at VerifyOptions. One read transaction: a consistent snapshot (in the writer's process
  // it holds map growth back while it runs; prefer shore-events there).
  VerifyReport verify(const VerifyOptions& options = {}) const;

  // Damaged records refused by queries on this environment (shared with the writer).
  IntegrityCounters integrity() const;

 private:
  friend class EventStore;
  friend struct detail::ReaderAccess;
  explicit EventStoreReader(std::shared_ptr<detail::LmdbEnv> env) : env_(std::move(env)) {}
  std::shared_ptr<detail::LmdbEnv> env_;
};

class EventStore {
 public:
  // Creates the directory and the environment if needed; clears stale reader slots; throws
  // StoreError on failure (including a second writer on the same directory and a damaged meta
  // record), StoreSchemaError for a store of another schema version (the message says how to upgrade).
  explicit EventStore(EventStoreConfig config);
  ~EventStore();
  EventStore(const EventStore&) = delete;
  EventStore& operator=(const EventStore&) = delete;

  CommitResult commit_slice(std::uint32_t run, std::uint32_t frame, std::span<const dataflow::Event> events,
                            const dataflow::SummarySlice* summary = nullptr,
                            std::span<const std::string> supernova_alerts = {});
  // Several slices in one write transaction (all or nothing).
  CommitResult commit_slices(std::span<const SliceRecord> slices);

  // Writes the run control's view of a run (start, stop, counters). The store's own "store.*"
  // counters, frame range and supernova alerts already in the record are kept.
  CommitResult put_run_record(const dataflow::RunRecord& record);

  // Retention: while used bytes exceed max_store_bytes, deletes the oldest runs (by start time)
  // that run_transferred() confirms; never any other. Returns the runs pruned. Also tried
  // automatically when the cap is reached.
  std::vector<std::uint32_t> apply_retention();

  EventStoreReader reader() const { return EventStoreReader(env_); }
  StoreStats stats() const { return reader().stats(); }
  const EventStoreCounters& counters() const noexcept { return counters_; }
  IntegrityCounters integrity() const { return reader().integrity(); }
  const EventStoreConfig& config() const noexcept { return config_; }

 private:
  struct Encoded;
  struct Scratch;  // buffers reused from commit to commit
  int write_batch(std::span<const SliceRecord> slices, const Encoded& encoded, CommitStatus& status);
  enum class Growth : std::uint8_t { Grown, AtCap, ReaderOpen, Failed };
  Growth grow_map(std::chrono::milliseconds wait);
  void grow_ahead(std::size_t batch_bytes);
  bool prune_run(std::uint32_t run);
  CommitResult refuse(CommitStatus status, std::span<const SliceRecord> slices, std::string message);
  std::uint64_t disk_free_bytes() const;

  EventStoreConfig config_;
  std::shared_ptr<detail::LmdbEnv> env_;
  int lock_fd_ = -1;
  EventStoreCounters counters_;
  bool refusing_ = false;  // for logging the transition once
  std::unique_ptr<Scratch> scratch_;
};

}  // namespace shoredaq::storage
