#include "shoredaq/storage/store_scrubber.hpp"

#include <algorithm>
#include <array>

#include "store_env.hpp"

namespace shoredaq::storage {

using namespace detail;

namespace {

// Small databases first: a pass reports meta and run-record damage early.
constexpr std::array<StoreDatabase, 4> kPassOrder{StoreDatabase::Meta, StoreDatabase::Runs, StoreDatabase::Summaries,
                                                  StoreDatabase::Events};

}  // namespace

StoreScrubber::StoreScrubber(const EventStoreReader& reader, std::size_t max_listed)
    : env_(ReaderAccess::env(reader)), max_listed_(max_listed) {
  status_.position = "start of the store";
}

ScrubStep StoreScrubber::scrub_step(std::uint64_t max_bytes) {
  ScrubStep step;
  const bool pass_starts = database_ == 0 && last_key_.empty();
  std::uint64_t records_in_store = 0;
  if (pass_starts) {  // its own transaction: a damaged database makes LMDB void the one it is met in
    ReadTxn txn(*env_);
    for (const StoreDatabase database : kPassOrder) {
      std::uint64_t entries = 0;
      db_used_bytes(txn.get(), env_->dbi(database), &entries);
      records_in_store += entries;
    }
  }
  {
    ReadTxn txn(*env_);
    bool budget_spent = false;
    while (database_ < kPassOrder.size() && !budget_spent) {
      const StoreDatabase database = kPassOrder[database_];
      MDB_cursor* raw_cursor = nullptr;
      int rc = mdb_cursor_open(txn.get(), env_->dbi(database), &raw_cursor);
      if (rc != 0 && !is_damage(rc)) throw StoreError(lmdb_message("scrub cursor", rc));
      const std::unique_ptr<MDB_cursor, decltype(&mdb_cursor_close)> cursor(raw_cursor, &mdb_cursor_close);
      MDB_val k{}, v{};
      if (rc == 0 && last_key_.empty()) {
        rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_FIRST);
      } else if (rc == 0) {  // resume after the last key checked (it may have been deleted since)
        k = as_val(last_key_);
        rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_SET_RANGE);
        if (rc == 0 && std::ranges::equal(as_span(k), last_key_)) rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT);
      }
      for (; rc == 0; rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT)) {
        const auto key = as_span(k);
        const auto check = open_record(key, as_span(v)).check;
        if (check != RecordCheck::Ok) {
          auto record = damaged_record(database, key, std::string(to_string(check)));
          env_->damaged_log.log(spdlog::level::err, "store.scrub_damaged", "event store {}: scrub found a damaged record: {}",
                                env_->directory.string(), record.describe());
          if (step.damaged.size() < max_listed_) step.damaged.push_back(std::move(record));
          ++step.damaged_count;
        }
        ++step.records_checked;
        step.bytes_checked += k.mv_size + v.mv_size;
        last_key_.assign(key.begin(), key.end());
        if (step.bytes_checked >= max_bytes) {
          budget_spent = true;
          break;
        }
      }
      if (budget_spent) break;
      if (rc != MDB_NOTFOUND) {
        // LMDB's own pages are damaged: the rest of this database cannot be walked. Report it like a
        // damaged record (after the last key read) and go on with the next database.
        auto record = damaged_record(database, last_key_, std::string("LMDB: ") + mdb_strerror(rc) + " after this key");
        if (last_key_.empty()) record.key = "(start)";
        env_->damaged_log.log(spdlog::level::err, "store.scrub_damaged", "event store {}: scrub: {}",
                              env_->directory.string(), record.describe());
        if (step.damaged.size() < max_listed_) step.damaged.push_back(std::move(record));
        ++step.damaged_count;
      }
      ++database_;
      last_key_.clear();
      if (rc != MDB_NOTFOUND) break;  // the transaction is unusable now: the next step takes a new one
    }
    if (database_ == kPassOrder.size()) {
      database_ = 0;
      step.pass_completed = true;
    }
  }

  std::lock_guard lock(status_mutex_);
  ScrubStatus& s = status_;
  if (pass_starts) {
    s.pass_records_total = records_in_store;
    s.pass_records_checked = s.pass_bytes_checked = s.pass_damaged_count = 0;
    s.pass_damaged.clear();
  }
  s.records_checked += step.records_checked;
  s.bytes_checked += step.bytes_checked;
  s.damaged_found += step.damaged_count;
  s.pass_records_checked += step.records_checked;
  s.pass_bytes_checked += step.bytes_checked;
  s.pass_damaged_count += step.damaged_count;
  for (const auto& record : step.damaged) {
    if (s.pass_damaged.size() < max_listed_) s.pass_damaged.push_back(record);
  }
  if (step.pass_completed) {
    ++s.passes_completed;
    s.last_pass_damaged_count = s.pass_damaged_count;
    s.last_pass_damaged = std::move(s.pass_damaged);
    s.pass_damaged.clear();
    s.pass_damaged_count = s.pass_records_checked = s.pass_bytes_checked = 0;
    s.pass_records_total = 0;
    s.position = "start of the store";
  } else {
    const StoreDatabase database = kPassOrder[database_];
    s.position = std::string(to_string(database)) + " " +
                 (last_key_.empty() ? std::string("(start)") : key_text(database, last_key_));
  }
  return step;
}

ScrubStatus StoreScrubber::status() const {
  std::lock_guard lock(status_mutex_);
  return status_;
}

}  // namespace shoredaq::storage
