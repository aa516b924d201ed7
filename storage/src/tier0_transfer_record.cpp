// The Tier-0 transfer agent's files: per-file records (ready/<file>.transfer.json, then done/),
// the status file, retention of done/, and the scan that finishes moves into done/ cut short.

#include <sys/stat.h>

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "shoredaq/storage/acoustic_spool.hpp"
#include "shoredaq/storage/tier0_spool.hpp"
#include "shoredaq/storage/tier0_transfer.hpp"
#include "tier0_spool_files.hpp"

namespace shoredaq::storage {

namespace fs = std::filesystem;
using nlohmann::json;

const char* to_string(TransferFailure failure) noexcept {
  switch (failure) {
    case TransferFailure::Unreachable: return "unreachable";
    case TransferFailure::RemoteError: return "remote_error";
    case TransferFailure::ChecksumMismatch: return "checksum_mismatch";
    case TransferFailure::LocalMismatch: return "local_mismatch";
    case TransferFailure::ManifestInvalid: return "manifest_invalid";
    case TransferFailure::LocalIo: return "local_io";
  }
  return "unknown";
}

namespace {

json record_to_json(const TransferRecord& r) {
  return json{{"file", r.file},
              {"remote_url", r.remote_url},
              {"attempts", r.attempts},
              {"consecutive_failures", r.consecutive_failures},
              {"checksum_mismatches", r.checksum_mismatches},
              {"last_error", r.last_error},
              {"last_failure", r.last_failure},
              {"first_attempt_utc", r.first_attempt_utc},
              {"last_attempt_utc", r.last_attempt_utc},
              {"verified", r.verified},
              {"verified_utc", r.verified_utc},
              {"verified_unix_ms", r.verified_unix_ms},
              {"next_attempt_unix_ms", r.next_attempt_unix_ms}};
}

template <typename T>
void take(const json& j, const char* key, T& out) {
  if (!j.contains(key)) return;
  try {
    out = j[key].get<T>();
  } catch (const json::exception&) {
    // A field of the wrong type keeps its default: the record is advisory, the manifest rules.
  }
}

}  // namespace

std::optional<TransferRecord> Tier0TransferAgent::read_record(const fs::path& path) {
  const auto j = spool_files::read_json(path);
  if (!j || !j->is_object()) return std::nullopt;
  TransferRecord r;
  take(*j, "file", r.file);
  take(*j, "remote_url", r.remote_url);
  take(*j, "attempts", r.attempts);
  take(*j, "consecutive_failures", r.consecutive_failures);
  take(*j, "checksum_mismatches", r.checksum_mismatches);
  take(*j, "last_error", r.last_error);
  take(*j, "last_failure", r.last_failure);
  take(*j, "first_attempt_utc", r.first_attempt_utc);
  take(*j, "last_attempt_utc", r.last_attempt_utc);
  take(*j, "verified", r.verified);
  take(*j, "verified_utc", r.verified_utc);
  take(*j, "verified_unix_ms", r.verified_unix_ms);
  take(*j, "next_attempt_unix_ms", r.next_attempt_unix_ms);
  return r;
}

bool Tier0TransferAgent::save_record(const fs::path& path, const TransferRecord& record) {
  try {
    spool_files::write_file_atomically(path, record_to_json(record).dump(2) + "\n", config_.fsync);
    return true;
  } catch (const SpoolError& e) {
    // A full disk must not stop transfers (they free no space, but they make it safe to prune):
    // the record is advisory, counted and logged.
    const std::lock_guard lock(mutex_);
    ++counters_.record_write_errors;
    spdlog::warn("shore-transfer: cannot write {}: {}", path.string(), e.what());
    return false;
  }
}

// A crash between the two renames of a commit leaves the manifest (or our record) in ready/ while
// the data is already in done/: finish the move. A second manifest for a file done/ already
// describes (written by a spool recovery racing the commit) is set aside in damaged/, not lost.
void Tier0TransferAgent::finish_interrupted_commits() {
  std::error_code ec;
  std::vector<fs::path> leftovers;
  for (const auto& entry : fs::directory_iterator(ready_dir(), ec)) {
    const std::string name = entry.path().filename().string();
    if (name.ends_with(".json")) leftovers.push_back(entry.path());
  }
  for (const fs::path& path : leftovers) {
    const std::string name = path.filename().string();
    const bool is_record = name.ends_with(".transfer.json");
    const std::string part = name.substr(0, name.size() - (is_record ? 14 : 5));
    if (!is_spool_part_file_name(part) || fs::exists(ready_dir() / part, ec)) continue;
    if (!fs::exists(done_dir() / part, ec)) continue;  // not ours to judge: left alone
    const fs::path target = done_dir() / name;
    if (!fs::exists(target, ec)) {
      fs::rename(path, target, ec);
    } else if (is_record) {
      fs::remove(path, ec);  // the agent's own advisory record: done/ has the newer one
    } else {
      fs::create_directories(config_.spool_dir / "damaged", ec);
      fs::rename(path, config_.spool_dir / "damaged" / (name + ".stray"), ec);
    }
    if (ec) {
      spdlog::warn("shore-transfer: cannot finish moving {} into done/: {}", path.string(), ec.message());
      continue;
    }
    const std::lock_guard lock(mutex_);
    ++counters_.commits_finished;
  }
}

std::vector<std::string> Tier0TransferAgent::prune_done() {
  if (!config_.retention.enabled()) return {};
  std::vector<DoneFile> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(done_dir(), ec)) {
    const std::string name = entry.path().filename().string();
    if (!is_spool_part_file_name(name)) continue;
    struct stat st {};
    if (::stat(entry.path().c_str(), &st) != 0) continue;
    DoneFile f{name, static_cast<std::uint64_t>(st.st_size), std::chrono::system_clock::from_time_t(st.st_mtime)};
    // The record says when it was verified; without one (acked by hand) the seal time is used,
    // which is never later.
    if (const auto record = read_record(done_dir() / record_name(name)); record && record->verified_unix_ms > 0) {
      f.done_at = std::chrono::system_clock::time_point{std::chrono::milliseconds{record->verified_unix_ms}};
    }
    files.push_back(std::move(f));
  }
  std::vector<std::string> pruned;
  for (const std::string& name : plan_retention(files, config_.retention, clock_.utc_now())) {
    const fs::path path = done_dir() / name;
    const auto bytes = fs::file_size(path, ec);
    if (ec || !fs::remove(path, ec) || ec) {
      spdlog::warn("shore-transfer: retention cannot remove {}: {}", path.string(), ec.message());
      continue;
    }
    spdlog::info("shore-transfer: retention pruned {} ({} bytes) from done/", name, bytes);
    const std::lock_guard lock(mutex_);
    ++counters_.retention_files_pruned;
    counters_.retention_bytes_pruned += bytes;
    pruned.push_back(name);
  }
  return pruned;
}

Tier0TransferStatus Tier0TransferAgent::status() const {
  const std::lock_guard lock(mutex_);
  Tier0TransferStatus s;
  s.counters = counters_;
  s.last_error = last_error_;
  std::uint64_t alarming = 0;
  std::string local_problem;
  for (const auto& [name, entry] : entries_) {
    ++s.files_waiting;
    s.bytes_waiting += entry.bytes;
    if (s.oldest_waiting_file.empty()) s.oldest_waiting_file = name;
    if (entry.in_progress) ++s.files_in_progress;
    if (entry.record.consecutive_failures > 0) ++s.files_failing;
    const std::string& cause = entry.record.last_failure;
    if (entry.record.consecutive_failures > 0 &&
        (cause == to_string(TransferFailure::LocalMismatch) || cause == to_string(TransferFailure::ManifestInvalid))) {
      // A damaged local file or manifest will not heal by retrying: alarm at once.
      if (local_problem.empty()) local_problem = name + ": " + entry.record.last_error;
    } else if (entry.record.consecutive_failures >= config_.alarm_after_failures) {
      ++alarming;
    }
  }
  if (!local_problem.empty()) {
    s.alarm = "local file or manifest damaged, not sent (kept in ready/): " + local_problem;
  } else if (alarming > 0) {
    s.alarm = std::to_string(alarming) + " file(s) not transferred after " + std::to_string(config_.alarm_after_failures) +
              " or more failed attempts in a row; last error: " + last_error_;
  }
  return s;
}

std::string Tier0TransferAgent::status_json() const {
  const Tier0TransferStatus s = status();
  const auto now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(clock_.utc_now().time_since_epoch()).count();
  json failures = json::object();
  for (std::size_t k = 0; k < kTransferFailureKinds; ++k) {
    failures[to_string(static_cast<TransferFailure>(k))] = s.counters.failures[k];
  }
  const auto& c = s.counters;
  const json j{{"updated_utc", format_utc_ns(static_cast<std::uint64_t>(std::max<std::int64_t>(0, now_ns)))},
               {"endpoint", config_.endpoint},
               {"files_waiting", s.files_waiting},
               {"bytes_waiting", s.bytes_waiting},
               {"files_in_progress", s.files_in_progress},
               {"files_failing", s.files_failing},
               {"oldest_waiting_file", s.oldest_waiting_file.empty() ? json(nullptr) : json(s.oldest_waiting_file)},
               {"alarm", s.alarm.empty() ? json(nullptr) : json(s.alarm)},
               {"last_error", s.last_error.empty() ? json(nullptr) : json(s.last_error)},
               {"counters",
                {{"files_transferred", c.files_transferred},
                 {"bytes_transferred", c.bytes_transferred},
                 {"bytes_sent", c.bytes_sent},
                 {"attempts", c.attempts},
                 {"already_at_remote", c.already_at_remote},
                 {"checksum_mismatches", c.checksum_mismatches},
                 {"failures", failures},
                 {"manifests_incomplete", c.manifests_incomplete},
                 {"retention_files_pruned", c.retention_files_pruned},
                 {"retention_bytes_pruned", c.retention_bytes_pruned},
                 {"record_write_errors", c.record_write_errors},
                 {"commits_finished", c.commits_finished}}}};
  return j.dump(2) + "\n";
}

bool Tier0TransferAgent::write_status_file() {
  try {
    // Not fsync'ed: it is rewritten every poll, and a stale one after a crash is harmless.
    spool_files::write_file_atomically(status_file(), status_json(), false);
    const std::lock_guard lock(mutex_);
    if (status_write_failing_) spdlog::info("shore-transfer: status file written again");
    status_write_failing_ = false;
    return true;
  } catch (const SpoolError& e) {
    const std::lock_guard lock(mutex_);
    ++counters_.record_write_errors;
    // Once per failure episode: a full disk would otherwise log at every poll.
    if (!status_write_failing_) spdlog::warn("shore-transfer: cannot write the status file: {}", e.what());
    status_write_failing_ = true;
    return false;
  }
}

}  // namespace shoredaq::storage
