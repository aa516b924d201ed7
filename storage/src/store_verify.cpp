// EventStoreReader::verify: every record's checksum and structure, and (deep) the cross-checks
// between events, summaries, run records and meta. One read transaction: a consistent snapshot.

#include <algorithm>
#include <map>
#include <vector>

#include <nlohmann/json.hpp>

#include "shoredaq/formats/fb_codec.hpp"
#include "shoredaq/storage/event_store.hpp"
#include "store_env.hpp"

namespace shoredaq::storage {

using dataflow::RunRecord;
using namespace detail;

namespace {

// What the data of one run looks like, to compare with its run record.
struct RunSeen {
  std::uint64_t events = 0, event_bytes = 0, summaries = 0;
  std::uint64_t event_frames = 0;  // distinct frames holding events
  std::uint32_t min_frame = UINT32_MAX, max_frame = 0;  // over events and summaries
  std::map<std::int32_t, std::uint64_t> detectors;  // events and summaries per detector id (deep only)
  void saw_frame(std::uint32_t frame) {
    min_frame = std::min(min_frame, frame);
    max_frame = std::max(max_frame, frame);
  }
};

class Verifier {
 public:
  Verifier(const LmdbEnv& env, const VerifyOptions& options) : env_(env), options_(options) {
    report_.deep = options.deep;
  }

  VerifyReport run() {
    txn_.emplace(env_);
    // Each scan's cursor is closed before check_end may replace the transaction.
    check_end(StoreDatabase::Meta, check_meta());
    check_end(StoreDatabase::Events, check_events());
    check_end(StoreDatabase::Summaries, check_summaries());
    check_end(StoreDatabase::Runs, check_runs());
    cross_check();
    return std::move(report_);
  }

 private:
  void problem(std::string text) {
    ++report_.problem_count;
    if (report_.problems.size() < options_.max_listed) report_.problems.push_back(std::move(text));
  }

  // The payload when the checksum matches; otherwise the record is reported and nullopt returned.
  std::optional<std::span<const std::uint8_t>> open(StoreDatabase database, const MDB_val& k, const MDB_val& v) {
    report_.bytes_checked += k.mv_size + v.mv_size;
    const auto opened = open_record(as_span(k), as_span(v));
    if (opened.check == RecordCheck::Ok) return opened.payload;
    auto record = damaged_record(database, as_span(k), std::string(to_string(opened.check)));
    ++report_.damaged_count;
    problem(record.describe());
    if (report_.damaged.size() < options_.max_listed) report_.damaged.push_back(std::move(record));
    return std::nullopt;
  }

  // A scan must end at the last record: any other end (MDB_CORRUPTED, MDB_PAGE_NOTFOUND: damaged
  // pages of LMDB itself) leaves the rest of the database unread, which is damage too.
  void check_end(StoreDatabase database, int rc) {
    if (rc == MDB_NOTFOUND) return;
    problem(std::string(to_string(database)) + ": reading stopped early, the database itself is damaged: " +
            mdb_strerror(rc));
    // LMDB marks a transaction that met a damaged page unusable; the other databases are read in a
    // new one (their counts may then be of a later commit: the store is damaged anyway).
    txn_.reset();
    txn_.emplace(env_);
  }

  // The check_* scans return how their cursor ended.
  int check_meta() {
    Cursor cursor(txn_->get(), env_.meta);
    MDB_val k{}, v{};
    bool has_version = false;
    int rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_FIRST);
    for (; rc == 0; rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT)) {
      ++report_.meta_checked;
      const std::string name(static_cast<const char*>(k.mv_data), k.mv_size);
      if (name == "schema_version") has_version = true;
      const auto payload = open(StoreDatabase::Meta, k, v);
      if (!payload) continue;
      const std::string text(payload->begin(), payload->end());
      if (name == "schema_version" && options_.deep && text != std::to_string(kStoreSchemaVersion)) {
        problem("meta schema_version: \"" + text + "\", expected " + std::to_string(kStoreSchemaVersion));
      }
      if (name == "detector_id") {
        try {
          store_detector_ = static_cast<std::int32_t>(std::stol(text));
        } catch (const std::exception&) {
          if (options_.deep) problem("meta detector_id: \"" + text + "\" is not a number");
        }
      }
    }
    if (!has_version) problem("meta: schema_version missing");
    return rc;
  }

  int check_events() {
    Cursor cursor(txn_->get(), env_.events);
    MDB_val k{}, v{};
    std::vector<std::uint8_t> previous;
    int rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_FIRST);
    for (; rc == 0; rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT)) {
      ++report_.events_checked;
      const auto key = as_span(k);
      if (key.size() != kEventKeyBytes) {
        open(StoreDatabase::Events, k, v);
        problem("events: key of " + std::to_string(key.size()) + " bytes");
        continue;
      }
      if (!previous.empty() && !std::lexicographical_compare(previous.begin(), previous.end(), key.begin(), key.end())) {
        problem("events: keys out of order");
      }
      const EventKey ek = decode_event_key(key.data());
      const std::string where = "event " + key_text(StoreDatabase::Events, key);
      const bool same_slice = !previous.empty() && std::equal(key.begin(), key.begin() + 8, previous.begin());
      if (options_.deep) {  // event numbers of a slice run 0, 1, 2, ...
        const std::uint32_t expected = same_slice ? get_be32(previous.data() + 8) + 1 : 0;
        if (ek.event_number != expected) {
          problem(where + ": event numbers of its slice are not contiguous (expected " + std::to_string(expected) + ")");
        }
      }
      previous.assign(key.begin(), key.end());
      RunSeen& seen = runs_seen_[ek.run];
      // A damaged record still counts as stored (its key is what the run record counted), so the
      // count checks below do not report the same damage twice.
      ++seen.events;
      if (!same_slice) ++seen.event_frames;
      seen.saw_frame(ek.frame);
      seen.event_bytes += v.mv_size >= kChecksumBytes ? v.mv_size - kChecksumBytes : 0;
      const auto payload = open(StoreDatabase::Events, k, v);
      if (!payload) continue;
      const auto decoded = dataflow::decode_event_fb(*payload);
      if (!decoded) {
        problem(where + ": " + std::string(dataflow::to_string(decoded.error)));
        continue;
      }
      const auto& h = decoded.value.event.header;
      if (h.run != ek.run || h.frame_index != ek.frame || decoded.value.event.event_number != ek.event_number) {
        problem(where + ": buffer does not match its key");
      }
      if (options_.deep) note_detector(seen, h.detector_id);
    }
    return rc;
  }

  int check_summaries() {
    Cursor cursor(txn_->get(), env_.summaries);
    MDB_val k{}, v{};
    int rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_FIRST);
    for (; rc == 0; rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT)) {
      ++report_.summaries_checked;
      const auto key = as_span(k);
      if (key.size() != kSummaryKeyBytes) {
        open(StoreDatabase::Summaries, k, v);
        problem("summaries: key of " + std::to_string(key.size()) + " bytes");
        continue;
      }
      const std::uint32_t run = get_be32(key.data()), frame = get_be32(key.data() + 4);
      RunSeen& seen = runs_seen_[run];
      ++seen.summaries;
      seen.saw_frame(frame);
      const auto payload = open(StoreDatabase::Summaries, k, v);
      if (!payload) continue;
      const std::string where = "summary " + key_text(StoreDatabase::Summaries, key);
      const auto decoded = dataflow::decode_summary_slice_fb(*payload);
      if (!decoded) {
        problem(where + ": " + std::string(dataflow::to_string(decoded.error)));
        continue;
      }
      if (decoded.value.header.run != run || decoded.value.header.frame_index != frame) {
        problem(where + ": buffer does not match its key");
      }
      if (options_.deep) note_detector(seen, decoded.value.header.detector_id);
    }
    return rc;
  }

  static void note_detector(RunSeen& seen, std::int32_t detector) { ++seen.detectors[detector]; }

  int check_runs() {
    Cursor cursor(txn_->get(), env_.runs);
    MDB_val k{}, v{};
    int rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_FIRST);
    for (; rc == 0; rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT)) {
      ++report_.runs_checked;
      if (k.mv_size != kRunKeyBytes) {
        open(StoreDatabase::Runs, k, v);
        problem("runs: key of " + std::to_string(k.mv_size) + " bytes");
        continue;
      }
      const std::uint32_t run = get_be32(static_cast<const std::uint8_t*>(k.mv_data));
      const auto payload = open(StoreDatabase::Runs, k, v);
      if (!payload) {
        damaged_runs_.push_back(run);
        continue;
      }
      auto decoded = dataflow::decode_run_record_fb(*payload);
      if (!decoded) {
        problem("run " + std::to_string(run) + ": " + std::string(dataflow::to_string(decoded.error)));
        continue;
      }
      if (decoded.value.run != run) problem("run " + std::to_string(run) + ": record does not match its key");
      if (options_.deep && store_detector_ && *store_detector_ != 0 && decoded.value.detector_id != 0 &&
          decoded.value.detector_id != *store_detector_) {
        problem("run " + std::to_string(run) + ": detector " + std::to_string(decoded.value.detector_id) +
                ", the store's is " + std::to_string(*store_detector_));
      }
      records_.emplace(run, std::move(decoded.value));
    }
    return rc;
  }

  void check_count(std::uint64_t RunSeen::*field, const char* counter, const char* what) {
    for (const auto& [run, seen] : runs_seen_) {
      const bool has_record = records_.contains(run) ||
                              std::find(damaged_runs_.begin(), damaged_runs_.end(), run) != damaged_runs_.end();
      if (seen.*field != 0 && !has_record) problem("run " + std::to_string(run) + ": " + what + " stored but no run record");
    }
    for (const auto& [run, record] : records_) {
      const auto it = runs_seen_.find(run);
      const std::uint64_t n = it == runs_seen_.end() ? 0 : it->second.*field;
      if (record.counter(counter) != n) {
        problem("run " + std::to_string(run) + ": " + std::to_string(n) + " " + what + " stored, run record says " +
                std::to_string(record.counter(counter)));
      }
    }
  }

  void cross_check() {
    check_count(&RunSeen::events, kCounterStoredEvents, "events");
    check_count(&RunSeen::summaries, kCounterStoredSummaries, "summaries");
    check_count(&RunSeen::event_bytes, kCounterStoredEventBytes, "event bytes");
    for (const auto& [run, record] : records_) {
      if (record.counter(kCounterStoredSupernovaAlerts) != record.supernova_alerts.size()) {
        problem("run " + std::to_string(run) + ": " + std::to_string(record.supernova_alerts.size()) +
                " supernova alerts kept, run record counts " +
                std::to_string(record.counter(kCounterStoredSupernovaAlerts)));
      }
    }
    if (!options_.deep) return;
    for (const auto& [run, record] : records_) {
      const auto it = runs_seen_.find(run);
      if (it == runs_seen_.end()) continue;
      const RunSeen& seen = it->second;
      const std::string where = "run " + std::to_string(run) + ": ";
      const std::uint64_t slices = record.counter(kCounterStoredSlices);
      if (seen.min_frame < record.first_frame || seen.max_frame > record.last_frame) {
        problem(where + "data in frames " + std::to_string(seen.min_frame) + ".." + std::to_string(seen.max_frame) +
                ", outside the run record's " + std::to_string(record.first_frame) + ".." +
                std::to_string(record.last_frame));
      }
      if (record.last_frame < record.first_frame ||
          std::uint64_t{record.last_frame} - record.first_frame + 1 < slices) {
        problem(where + std::to_string(slices) + " slices counted in frames " + std::to_string(record.first_frame) +
                ".." + std::to_string(record.last_frame));
      }
      if (seen.summaries > slices) {
        problem(where + std::to_string(seen.summaries) + " summaries stored for " + std::to_string(slices) + " slices");
      }
      if (seen.event_frames > slices) {
        problem(where + "events in " + std::to_string(seen.event_frames) + " frames, " + std::to_string(slices) +
                " slices counted");
      }
      for (std::size_t i = 0; i < record.supernova_alerts.size(); ++i) {
        const auto alert = nlohmann::json::parse(record.supernova_alerts[i], nullptr, false);
        if (!alert.is_object() || !alert.contains("neutrino_time"))
          problem(where + "supernova alert " + std::to_string(i) + " is not a SNEWS-format JSON message");
      }
      // The detector the data must come from: the store's, else the run record's (0 = not known).
      const std::int32_t expected = store_detector_.value_or(0) != 0 ? *store_detector_ : record.detector_id;
      for (const auto& [detector, n] : seen.detectors) {
        if (expected != 0 && detector != expected) {
          problem(where + std::to_string(n) + " events/summaries of detector " + std::to_string(detector) +
                  ", expected " + std::to_string(expected));
        }
      }
    }
  }

  const LmdbEnv& env_;
  const VerifyOptions& options_;
  std::optional<ReadTxn> txn_;
  VerifyReport report_;
  std::optional<std::int32_t> store_detector_;
  std::map<std::uint32_t, RunSeen> runs_seen_;
  std::map<std::uint32_t, RunRecord> records_;
  std::vector<std::uint32_t> damaged_runs_;
};

}  // namespace

VerifyReport EventStoreReader::verify(const VerifyOptions& options) const { return Verifier(*env_, options).run(); }

}  // namespace shoredaq::storage
