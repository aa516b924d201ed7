// EventStore retention: deletes the oldest runs the Tier-0 spool confirms as transferred.

#include <algorithm>
#include <tuple>

#include <spdlog/spdlog.h>

#include "shoredaq/storage/event_store.hpp"
#include "store_env.hpp"

namespace shoredaq::storage {

using dataflow::RunRecord;
using namespace detail;

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
