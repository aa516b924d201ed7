#pragma once
// The Tier-0 transfer agent's logic (the program is storage/shore_transfer/): a sealed part in
// spool/ready/ is copied to the computing centre and moved to spool/done/ only once the remote
// copy's size and adler32 (the server's own checksum) match the part's manifest.
//
// One attempt at a file (transfer()):
//   1. the manifest gives name, bytes, adler32; the local file must have that size;
//   2. a remote file already at the final path is never trusted: if its size and checksum match
//      the file is done without sending it again (a restart after the upload), otherwise it is
//      counted as a checksum mismatch, removed and re-sent;
//   3. the bytes go to `<final path>.part` (a stale one is removed first), paced by the shared
//      BandwidthLimiter; the adler32 of the bytes sent must match the manifest (else the local
//      file is damaged: nothing is accepted, an alarm is raised, the file is kept);
//   4. the .part's size and checksum are checked, it is renamed to the final path, and the final
//      path is checked again; a partial upload therefore never carries the final name;
//   5. commit: the record goes to done/<file>.transfer.json, the file and then its manifest are
//      renamed into done/ (the rename is the commit).
// A failure is counted by cause, recorded in ready/<file>.transfer.json (attempts, last error,
// remote URL, next attempt) and retried after an exponential backoff; that record is the only
// state, so a restarted agent resumes where it stopped. Files are never deleted from ready/;
// only retention (spool_retention.hpp) prunes done/.
//
// No threads of its own: the program runs parallel workers that each claim_next() a file and
// call transfer(); the agent's bookkeeping is guarded by a mutex. Time comes from a TransferClock.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "shoredaq/storage/bandwidth_limiter.hpp"
#include "shoredaq/storage/retry_backoff.hpp"
#include "shoredaq/storage/spool_retention.hpp"
#include "shoredaq/storage/tier0_manifest.hpp"

namespace shoredaq::storage {

// ---- the computing centre, as the agent sees it (XRootD in shore-transfer, a fake in tests) ----

// A remote operation failed; `unreachable` when the server could not be reached at all.
class RemoteFailure : public std::runtime_error {
 public:
  RemoteFailure(const std::string& what, bool unreachable) : std::runtime_error(what), unreachable_(unreachable) {}
  bool unreachable() const noexcept { return unreachable_; }

 private:
  bool unreachable_;
};

class Tier0RemoteWriter {
 public:
  virtual ~Tier0RemoteWriter() = default;
  virtual void write(std::uint64_t offset, std::span<const std::uint8_t> bytes) = 0;  // throws RemoteFailure
  virtual void close() = 0;                                                            // throws RemoteFailure
};

// Paths are absolute within the endpoint ("/km3net/raw/..."). Every call throws RemoteFailure.
class Tier0Remote {
 public:
  virtual ~Tier0Remote() = default;
  virtual std::string url(const std::string& path) const = 0;  // for records and logs
  virtual std::optional<std::uint64_t> size_of(const std::string& path) = 0;  // nullopt: no such file
  virtual std::string adler32_of(const std::string& path) = 0;  // the server's checksum, hex
  virtual void make_directories(const std::string& dir) = 0;
  virtual void remove(const std::string& path) = 0;                          // no such file: fine
  virtual void rename(const std::string& from, const std::string& to) = 0;  // replaces `to`
  virtual std::unique_ptr<Tier0RemoteWriter> create(const std::string& path) = 0;  // new or truncated
};

// Time for the agent: the program's is the real clocks; tests pass a fake that never sleeps.
class TransferClock {
 public:
  virtual ~TransferClock() = default;
  virtual std::chrono::steady_clock::time_point now() = 0;
  virtual std::chrono::system_clock::time_point utc_now() = 0;
  // Waits until `when`; false when the wait was cut short by a stop request.
  virtual bool sleep_until(std::chrono::steady_clock::time_point when) = 0;
};

// ---- configuration, records, counters ----

// The remote layout. Placeholders: {detector} (8 digits), {run} (8 digits), {run_thousands}
// (run / 1000), {file}, {scope}, {data_type}. The default is the collaboration's raw-data layout.
inline constexpr const char* kDefaultRemotePathTemplate = "/km3net/raw/sea/KM3NeT_{detector}/{run_thousands}/{file}";
// nullopt when the template is usable; else what is wrong with it.
std::optional<std::string> check_remote_path_template(const std::string& path_template);
// Throws std::invalid_argument for a template check_remote_path_template() refuses.
std::string expand_remote_path(const std::string& path_template, const Tier0TransferManifest& manifest);

struct Tier0TransferConfig {
  std::filesystem::path spool_dir;                           // holds ready/ and done/
  std::string endpoint;                                      // shown in the status file ("" = not said)
  std::string path_template = kDefaultRemotePathTemplate;    // see above
  RetryBackoff backoff;                                      // wait between attempts at one file
  std::uint32_t alarm_after_failures = 5;                    // failed attempts in a row at a file that raise the alarm
  std::size_t chunk_bytes = std::size_t{4} << 20;            // bytes per remote write (smaller under a low bandwidth cap)
  RetentionPolicy retention;                                 // of done/
  bool fsync = true;                                         // records and renames synced (off only in tests)
};

enum class TransferFailure : std::uint8_t {
  Unreachable,       // the server could not be reached
  RemoteError,       // the server refused or failed an operation, or the upload broke off
  ChecksumMismatch,  // the remote copy's size or adler32 differs from the manifest: re-sent
  LocalMismatch,     // the local file differs from its manifest (size, or adler32 of the bytes read)
  ManifestInvalid,   // no usable name, byte count or adler32
  LocalIo,           // reading the file or moving it into done/ failed
};
inline constexpr std::size_t kTransferFailureKinds = 6;
const char* to_string(TransferFailure failure) noexcept;

// What the agent keeps per file in ready/<file>.transfer.json (and done/ once verified).
struct TransferRecord {
  std::string file;
  std::string remote_url;
  std::uint32_t attempts = 0;
  std::uint32_t consecutive_failures = 0;
  std::uint32_t checksum_mismatches = 0;
  std::string last_error;         // "" after a success
  std::string last_failure;       // to_string(TransferFailure) of the last failure
  std::string first_attempt_utc, last_attempt_utc, verified_utc;
  bool verified = false;          // remote size and adler32 matched the manifest
  std::int64_t verified_unix_ms = 0;      // when (retention ages done/ files from it)
  std::int64_t next_attempt_unix_ms = 0;  // not before (backoff survives a restart)
};

struct Tier0TransferCounters {
  std::uint64_t files_transferred = 0, bytes_transferred = 0;  // verified and moved to done/
  std::uint64_t bytes_sent = 0;                                // uploaded, whether accepted or not
  std::uint64_t attempts = 0;
  std::uint64_t already_at_remote = 0;  // found verified at the remote (not sent again)
  std::uint64_t checksum_mismatches = 0;  // remote copies that differed from the manifest (re-sent)
  std::array<std::uint64_t, kTransferFailureKinds> failures{};  // by TransferFailure
  std::uint64_t manifests_incomplete = 0;  // manifests missing catalogue fields (still sent)
  std::uint64_t retention_files_pruned = 0, retention_bytes_pruned = 0;
  std::uint64_t record_write_errors = 0;   // records/status that could not be written (disk full)
  std::uint64_t commits_finished = 0;      // interrupted moves into done/ completed at scan
};

enum class TransferOutcome : std::uint8_t { Transferred, AlreadyAtRemote, Failed, Cancelled, Gone };

struct Tier0TransferStatus {
  Tier0TransferCounters counters;
  std::uint64_t files_waiting = 0, bytes_waiting = 0;  // in ready/, not yet verified
  std::uint64_t files_in_progress = 0;
  std::uint64_t files_failing = 0;  // whose last attempt failed
  std::string oldest_waiting_file;
  std::string alarm;       // "" = none
  std::string last_error;  // of the latest failure, "" if none yet
};

// ---- the agent ----

class Tier0TransferAgent {
 public:
  Tier0TransferAgent(Tier0TransferConfig config, TransferClock& clock);
  Tier0TransferAgent(const Tier0TransferAgent&) = delete;
  Tier0TransferAgent& operator=(const Tier0TransferAgent&) = delete;

  // Re-reads ready/: new sealed parts (with their records, after a restart) join the queue,
  // parts gone from ready/ leave it, and a move into done/ cut short by a crash is finished.
  // Returns the files waiting.
  std::size_t scan();
  // The next file whose attempt is due, oldest name first, marked in progress; nullopt if none.
  std::optional<std::string> claim_next();
  // When the earliest waiting file not in progress is due; nullopt when none waits.
  std::optional<std::chrono::system_clock::time_point> next_due() const;
  // One attempt at a file from claim_next(); releases it. `cancel` (may be null) stops an upload
  // between chunks (Cancelled: not a failure, the next attempt starts over).
  TransferOutcome transfer(const std::string& file, Tier0Remote& remote, BandwidthLimiter& limiter,
                           const std::atomic<bool>* cancel = nullptr);
  // Reads a record written by the agent; nullopt when missing or unreadable.
  static std::optional<TransferRecord> read_record(const std::filesystem::path& path);

  // Prunes done/ by the retention policy (data files only; manifests and records stay, so the
  // spool still knows the run was transferred). Returns the files pruned.
  std::vector<std::string> prune_done();

  Tier0TransferStatus status() const;
  std::string status_json() const;  // status() plus the time, endpoint and the failures by cause
  // Writes status_json() to spool/transfer.status.json atomically; false (counted) on failure.
  bool write_status_file();
  std::filesystem::path status_file() const { return config_.spool_dir / "transfer.status.json"; }

  std::filesystem::path ready_dir() const { return config_.spool_dir / "ready"; }
  std::filesystem::path done_dir() const { return config_.spool_dir / "done"; }
  static std::string record_name(const std::string& file) { return file + ".transfer.json"; }
  const Tier0TransferConfig& config() const noexcept { return config_; }

 private:
  struct Entry {
    TransferRecord record;
    std::uint64_t bytes = 0;  // from the manifest, for the backlog figure
    bool in_progress = false;
  };
  struct Attempt;

  void finish_interrupted_commits();
  TransferOutcome attempt(Attempt& a, Tier0Remote& remote, BandwidthLimiter& limiter, const std::atomic<bool>* cancel);
  void upload(Attempt& a, Tier0Remote& remote, BandwidthLimiter& limiter, const std::atomic<bool>* cancel);
  bool remote_matches(Tier0Remote& remote, const std::string& path, const Tier0TransferManifest& manifest,
                      std::string& difference);
  void commit(Attempt& a);
  void settle(const std::string& file, const TransferRecord& record, bool keep);
  bool save_record(const std::filesystem::path& path, const TransferRecord& record);
  std::size_t chunk_bytes_for(const BandwidthLimiter& limiter) const noexcept;

  Tier0TransferConfig config_;
  TransferClock& clock_;
  mutable std::mutex mutex_;
  std::map<std::string, Entry> entries_;  // by file name: name order = detector, run, part order
  Tier0TransferCounters counters_;
  std::string last_error_;
  std::set<std::string> incomplete_manifests_;  // warned about once each
  bool status_write_failing_ = false;            // logged when it starts and ends
};

}  // namespace shoredaq::storage
