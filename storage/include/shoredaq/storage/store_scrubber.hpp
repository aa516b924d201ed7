#pragma once
// StoreScrubber: re-reads the whole event store in small steps and checks every record's checksum,
// so damage is found before anyone needs the data (DESIGN.md section 4, "rate-limited background
// scrub"). It has no thread or clock of its own: the daemon calls scrub_step() at the rate it
// allows, e.g. once a second with that second's byte budget. Each step is one short read
// transaction (it never holds map growth back for long) and resumes after the last key it
// checked, so records committed or pruned between steps are fine. Order of a pass: meta, runs,
// summaries, events.
//
//   StoreScrubber scrubber(store.reader());
//   every second: auto step = scrubber.scrub_step(rate_bytes_per_s);   // a daemon thread
//   /status, /metrics: scrubber.status() (any thread)

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "shoredaq/storage/event_store.hpp"
#include "shoredaq/storage/store_integrity.hpp"

namespace shoredaq::storage {

// What one scrub_step did.
struct ScrubStep {
  std::uint64_t records_checked = 0;
  std::uint64_t bytes_checked = 0;     // keys + values read
  std::uint64_t damaged_count = 0;     // damaged records found in this step
  std::vector<DamagedRecord> damaged;  // the first max_listed of them
  bool pass_completed = false;         // this step reached the end of the store
};

struct ScrubStatus {
  // Since the scrubber was made.
  std::uint64_t passes_completed = 0;
  std::uint64_t records_checked = 0;
  std::uint64_t bytes_checked = 0;
  std::uint64_t damaged_found = 0;  // every damaged record met, in every pass
  // The pass under way.
  std::uint64_t pass_records_checked = 0;
  std::uint64_t pass_bytes_checked = 0;
  std::uint64_t pass_records_total = 0;  // records in the store when the pass began
  std::uint64_t pass_damaged_count = 0;
  std::vector<DamagedRecord> pass_damaged;  // the first max_listed of them
  // The last completed pass (what the store looked like as a whole).
  std::uint64_t last_pass_damaged_count = 0;
  std::vector<DamagedRecord> last_pass_damaged;
  std::string position;  // the last record checked, e.g. "events 3/2/1"; the next step goes on after it
  // Raise the alarm while this is true: the current or the last complete pass met damage.
  bool damaged() const noexcept { return pass_damaged_count != 0 || last_pass_damaged_count != 0; }
  // 0..1 of the pass under way (by records; the store changes during a pass, so approximate).
  double pass_fraction() const noexcept {
    if (pass_records_total == 0) return 0.0;
    const double f = static_cast<double>(pass_records_checked) / static_cast<double>(pass_records_total);
    return f < 1.0 ? f : 1.0;
  }
};

class StoreScrubber {
 public:
  // Keeps the reader's environment open; the scrubber works beside the writer (EventStore::reader())
  // or on a store opened by another process (EventStoreReader::open).
  explicit StoreScrubber(const EventStoreReader& reader, std::size_t max_listed = kMaxListedDamaged);

  // Checks records from where the previous step stopped until `max_bytes` of keys and values have
  // been read (at least one record), or the pass ends. One thread at a time. Damaged pages of
  // LMDB itself (a cursor ending in MDB_CORRUPTED) count as a damaged record and the pass goes on
  // with the next database; throws StoreError when no read transaction can begin (the position is
  // kept, the next step retries).
  ScrubStep scrub_step(std::uint64_t max_bytes);

  // A copy of the progress; safe from any thread, also while a step runs.
  ScrubStatus status() const;

 private:
  std::shared_ptr<detail::LmdbEnv> env_;
  std::size_t max_listed_;
  std::size_t database_ = 0;            // index into the pass order
  std::vector<std::uint8_t> last_key_;  // last key checked in that database; empty = its start
  mutable std::mutex status_mutex_;
  ScrubStatus status_;
};

}  // namespace shoredaq::storage
