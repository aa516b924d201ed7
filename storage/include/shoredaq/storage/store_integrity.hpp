#pragma once
// What the event store says about damaged data (DESIGN.md section 4, "Integrity"). Every stored
// record (event, summary slice, run record, meta value) carries a checksum of its key and value;
// a record whose checksum does not match is "damaged": readers refuse it (and name it), verify and
// the scrubber report it. Plain data only: the store's classes live in event_store.hpp,
// store_scrubber.hpp, store_backup.hpp and store_upgrade.hpp.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shoredaq::storage {

// Open failures (bad directory, detector mismatch, another writer, LMDB errors).
class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The store was written with another schema (an older one has records without checksums):
// the message names the upgrade command.
class StoreSchemaError : public StoreError {
 public:
  StoreSchemaError(const std::string& message, std::uint32_t found_version)
      : StoreError(message), found_version_(found_version) {}
  std::uint32_t found_version() const noexcept { return found_version_; }

 private:
  std::uint32_t found_version_;
};

// LMDB's own pages are damaged (the file is not a readable LMDB environment any more, a named
// database is missing beside the others, a scan cannot reach its end): the store is damaged as a
// whole, not a record of it. LMDB keeps no page checksums: worse damage can crash a reader
// (shore-events runs its commands in a child process for that reason).
class StoreDamagedError : public StoreError {
 public:
  using StoreError::StoreError;
};

enum class StoreDatabase : std::uint8_t { Events, Summaries, Runs, Meta };
std::string_view to_string(StoreDatabase database) noexcept;  // "events", "summaries", "runs", "meta"

struct DamagedRecord {
  StoreDatabase database = StoreDatabase::Events;
  // "run/frame/event" (events), "run/frame" (summaries), "run" (runs), the name (meta); the key's
  // bytes in hex when its length is wrong for the database.
  std::string key;
  std::string reason;  // "checksum mismatch", "too short to hold a checksum", ...
  // "event 3/2/1: checksum mismatch" (the same words as the other problems verify reports).
  std::string describe() const;
  friend bool operator==(const DamagedRecord&, const DamagedRecord&) = default;
};

// A query met a damaged record. Thrown only where a query returns one record (EventStoreReader::run);
// scans skip damaged records and return them in ReadResult.
class DamagedRecordError : public StoreError {
 public:
  explicit DamagedRecordError(DamagedRecord record)
      : StoreError("damaged record refused: " + record.describe()), record_(std::move(record)) {}
  const DamagedRecord& record() const noexcept { return record_; }

 private:
  DamagedRecord record_;
};

// How many damaged records a report lists (all of them are counted).
inline constexpr std::size_t kMaxListedDamaged = 100;

// What one scan of the store (EventStoreReader::for_each_event / for_each_summary) saw.
struct ReadResult {
  std::uint64_t visited = 0;  // records handed to the visitor
  std::uint64_t damaged = 0;  // records refused: checksum wrong, never handed to the visitor
  std::vector<DamagedRecord> damaged_records;  // the first kMaxListedDamaged of them, in key order
};

// Per environment (the writer and every reader it hands out share one); for /metrics and /status.
struct IntegrityCounters {
  // Records refused by queries (scans, run look-ups, the writer's own run-record updates).
  std::uint64_t damaged_records_refused = 0;
  std::optional<DamagedRecord> last_damaged;  // the latest one, for the alarm text
};

struct VerifyOptions {
  // Besides every record's checksum, keys, buffers and the per-run counts: event numbers of each
  // slice contiguous from 0, events and summaries inside their run record's frame range, at most
  // one summary per stored slice, detector ids of events, summaries and run records equal the
  // store's, the meta values well-formed.
  bool deep = false;
  std::size_t max_listed = 1000;  // problems and damaged records listed (all are counted)
};

struct VerifyReport {
  bool deep = false;
  std::uint64_t events_checked = 0, summaries_checked = 0, runs_checked = 0, meta_checked = 0;
  std::uint64_t bytes_checked = 0;  // keys + values read
  std::uint64_t damaged_count = 0;  // records whose checksum failed
  std::vector<DamagedRecord> damaged;  // the first max_listed of them
  std::uint64_t problem_count = 0;     // every problem, damaged records included
  std::vector<std::string> problems;   // the first max_listed, in words ("event 3/2/1: checksum mismatch")
  bool ok() const noexcept { return problem_count == 0; }
};

}  // namespace shoredaq::storage
