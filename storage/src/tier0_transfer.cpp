// The Tier-0 transfer agent: the queue of sealed parts and one attempt at a file (the steps are
// in the header). Records, status, retention and the scan's repairs are in
// tier0_transfer_record.cpp; backoff, bandwidth and path layout in tier0_transfer_policy.cpp.

#include "shoredaq/storage/tier0_transfer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "shoredaq/storage/acoustic_spool.hpp"
#include "shoredaq/storage/checksums.hpp"
#include "shoredaq/storage/tier0_spool.hpp"
#include "tier0_spool_files.hpp"

namespace shoredaq::storage {

namespace fs = std::filesystem;

namespace {

// An attempt that cannot go on, with its cause.
struct AttemptFailure {
  TransferFailure cause;
  std::string message;
};

struct AttemptCancelled {};

std::int64_t unix_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string utc_text(std::chrono::system_clock::time_point t) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  return format_utc_ns(static_cast<std::uint64_t>(std::max<std::int64_t>(0, ns)));
}

std::optional<std::string> read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

class LocalFile {
 public:
  explicit LocalFile(const fs::path& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (fd_ < 0) throw AttemptFailure{TransferFailure::LocalIo, "open " + path.string() + ": " + std::strerror(errno)};
  }
  ~LocalFile() { ::close(fd_); }
  LocalFile(const LocalFile&) = delete;
  LocalFile& operator=(const LocalFile&) = delete;
  std::size_t read(std::uint8_t* into, std::size_t bytes, const fs::path& path) {
    for (;;) {
      const ssize_t n = ::read(fd_, into, bytes);
      if (n >= 0) return static_cast<std::size_t>(n);
      if (errno != EINTR) throw AttemptFailure{TransferFailure::LocalIo, "read " + path.string() + ": " + std::strerror(errno)};
    }
  }

 private:
  int fd_;
};

std::string parent_of(const std::string& remote_path) {
  const auto slash = remote_path.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : remote_path.substr(0, slash);
}

}  // namespace

struct Tier0TransferAgent::Attempt {
  std::string file;
  TransferRecord record;
  Tier0TransferManifest manifest;
  std::string remote_path, part_path;
};

Tier0TransferAgent::Tier0TransferAgent(Tier0TransferConfig config, TransferClock& clock)
    : config_(std::move(config)), clock_(clock) {
  if (const auto problem = check_remote_path_template(config_.path_template)) {
    throw std::invalid_argument("remote path template '" + config_.path_template + "': " + *problem);
  }
  if (config_.chunk_bytes == 0) throw std::invalid_argument("chunk_bytes must be positive");
  std::error_code ec;
  for (const fs::path& dir : {ready_dir(), done_dir()}) {
    fs::create_directories(dir, ec);
    if (ec) throw SpoolError("cannot create " + dir.string() + ": " + ec.message());
  }
}

std::size_t Tier0TransferAgent::scan() {
  finish_interrupted_commits();
  std::set<std::string> present;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(ready_dir(), ec)) {
    const std::string name = entry.path().filename().string();
    // A part without its manifest is still being sealed (or recovered by the node): not yet.
    if (is_spool_part_file_name(name) && fs::exists(ready_dir() / (name + ".json"), ec)) present.insert(name);
  }
  std::map<std::string, Entry> fresh;
  for (const std::string& name : present) {
    {
      const std::lock_guard lock(mutex_);
      if (entries_.contains(name)) continue;
    }
    Entry entry;
    entry.record = read_record(ready_dir() / record_name(name)).value_or(TransferRecord{});
    entry.record.file = name;
    if (const auto text = read_text(ready_dir() / (name + ".json"))) {
      if (const auto manifest = parse_tier0_transfer_manifest(*text, nullptr)) entry.bytes = manifest->bytes;
    }
    fresh.emplace(name, std::move(entry));
  }
  const std::lock_guard lock(mutex_);
  for (auto it = entries_.begin(); it != entries_.end();) {
    // Gone from ready/ (acknowledged by hand, say): forget it, unless an attempt is running.
    it = !present.contains(it->first) && !it->second.in_progress ? entries_.erase(it) : std::next(it);
  }
  entries_.merge(fresh);
  return entries_.size();
}

std::optional<std::string> Tier0TransferAgent::claim_next() {
  const std::int64_t now_ms = unix_ms(clock_.utc_now());
  const std::lock_guard lock(mutex_);
  for (auto& [name, entry] : entries_) {
    if (!entry.in_progress && entry.record.next_attempt_unix_ms <= now_ms) {
      entry.in_progress = true;
      return name;
    }
  }
  return std::nullopt;
}

std::optional<std::chrono::system_clock::time_point> Tier0TransferAgent::next_due() const {
  const std::lock_guard lock(mutex_);
  std::optional<std::int64_t> earliest;
  for (const auto& [name, entry] : entries_) {
    if (entry.in_progress) continue;
    if (!earliest || entry.record.next_attempt_unix_ms < *earliest) earliest = entry.record.next_attempt_unix_ms;
  }
  if (!earliest) return std::nullopt;
  return std::chrono::system_clock::time_point{std::chrono::milliseconds{*earliest}};
}

TransferOutcome Tier0TransferAgent::transfer(const std::string& file, Tier0Remote& remote, BandwidthLimiter& limiter,
                                             const std::atomic<bool>* cancel) {
  Attempt a;
  a.file = file;
  std::error_code ec;
  const bool still_there = fs::exists(ready_dir() / file, ec);
  {
    const std::lock_guard lock(mutex_);
    const auto it = entries_.find(file);
    if (it == entries_.end()) return TransferOutcome::Gone;
    if (!still_there) {
      // Moved to done/ by another attempt (a scan that listed it just before) or acknowledged by
      // hand: nothing to do, and nothing wrong.
      entries_.erase(it);
      return TransferOutcome::Gone;
    }
    a.record = it->second.record;
    ++counters_.attempts;
  }
  const auto started = clock_.utc_now();
  a.record.file = file;
  ++a.record.attempts;
  a.record.last_attempt_utc = utc_text(started);
  if (a.record.first_attempt_utc.empty()) a.record.first_attempt_utc = a.record.last_attempt_utc;

  std::optional<AttemptFailure> failure;
  TransferOutcome outcome = TransferOutcome::Failed;
  try {
    outcome = attempt(a, remote, limiter, cancel);
  } catch (const AttemptFailure& f) {
    failure = f;
  } catch (const AttemptCancelled&) {
    outcome = TransferOutcome::Cancelled;
  } catch (const RemoteFailure& e) {
    failure = AttemptFailure{e.unreachable() ? TransferFailure::Unreachable : TransferFailure::RemoteError, e.what()};
  } catch (const std::exception& e) {  // SpoolError from the move into done/, filesystem errors
    failure = AttemptFailure{TransferFailure::LocalIo, e.what()};
  }

  if (outcome == TransferOutcome::Transferred || outcome == TransferOutcome::AlreadyAtRemote) {
    const std::lock_guard lock(mutex_);
    entries_.erase(file);
    return outcome;
  }
  if (outcome == TransferOutcome::Cancelled) {
    --a.record.attempts;  // a stop is not an attempt: the next one starts over
    const std::lock_guard lock(mutex_);
    if (const auto it = entries_.find(file); it != entries_.end()) it->second.in_progress = false;
    return outcome;
  }

  // A failure: counted by cause, recorded beside the file, retried after the backoff.
  const AttemptFailure f = failure.value_or(AttemptFailure{TransferFailure::LocalIo, "unknown failure"});
  ++a.record.consecutive_failures;
  a.record.last_error = f.message;
  a.record.last_failure = to_string(f.cause);
  const auto delay = config_.backoff.delay_after(a.record.consecutive_failures);
  a.record.next_attempt_unix_ms = unix_ms(clock_.utc_now()) + delay.count();
  save_record(ready_dir() / record_name(file), a.record);
  {
    const std::lock_guard lock(mutex_);
    ++counters_.failures[static_cast<std::size_t>(f.cause)];
    last_error_ = file + ": " + f.message;
    if (const auto it = entries_.find(file); it != entries_.end()) {
      it->second.record = a.record;
      it->second.in_progress = false;
    }
  }
  // One line per attempt; attempts are spaced by the backoff, so this cannot flood.
  const bool alarming = a.record.consecutive_failures >= config_.alarm_after_failures ||
                        f.cause == TransferFailure::LocalMismatch || f.cause == TransferFailure::ManifestInvalid;
  spdlog::log(alarming ? spdlog::level::err : spdlog::level::warn,
      "shore-transfer: {} not transferred ({}, {} failed attempts in a row): {}; next attempt in {:.1f} s", file,
      to_string(f.cause), a.record.consecutive_failures, f.message, std::chrono::duration<double>(delay).count());
  return TransferOutcome::Failed;
}

TransferOutcome Tier0TransferAgent::attempt(Attempt& a, Tier0Remote& remote, BandwidthLimiter& limiter,
                                            const std::atomic<bool>* cancel) {
  // 1. The manifest: what the file must be, and where it goes.
  const fs::path local = ready_dir() / a.file;
  const auto text = read_text(ready_dir() / (a.file + ".json"));
  if (!text) throw AttemptFailure{TransferFailure::ManifestInvalid, "cannot read the manifest " + a.file + ".json"};
  std::string why;
  const auto manifest = parse_tier0_transfer_manifest(*text, &why);
  if (!manifest) throw AttemptFailure{TransferFailure::ManifestInvalid, "manifest " + a.file + ".json: " + why};
  if (manifest->name != a.file) {
    throw AttemptFailure{TransferFailure::ManifestInvalid, "manifest names " + manifest->name + ", not " + a.file};
  }
  a.manifest = *manifest;
  if (const auto problems = validate_tier0_manifest(*text); !problems.empty()) {
    const std::lock_guard lock(mutex_);
    if (incomplete_manifests_.insert(a.file).second) {
      ++counters_.manifests_incomplete;
      spdlog::warn("shore-transfer: manifest of {} lacks what a catalogue needs ({}); sending it anyway", a.file,
                   problems.front());
    }
  }
  std::error_code ec;
  const auto local_bytes = fs::file_size(local, ec);
  if (ec) throw AttemptFailure{TransferFailure::LocalIo, "size of " + local.string() + ": " + ec.message()};
  if (local_bytes != a.manifest.bytes) {
    throw AttemptFailure{TransferFailure::LocalMismatch, a.file + " has " + std::to_string(local_bytes) +
                                                             " bytes, its manifest says " + std::to_string(a.manifest.bytes)};
  }
  a.remote_path = expand_remote_path(config_.path_template, a.manifest);
  a.part_path = a.remote_path + ".part";
  a.record.remote_url = remote.url(a.remote_path);

  // 2. A copy already there is checked, never trusted.
  std::string difference;
  if (remote.size_of(a.remote_path)) {
    if (remote_matches(remote, a.remote_path, a.manifest, difference)) {
      spdlog::info("shore-transfer: {} is already verified at {}", a.file, a.record.remote_url);
      commit(a);
      const std::lock_guard lock(mutex_);
      ++counters_.already_at_remote;
      return TransferOutcome::AlreadyAtRemote;
    }
    spdlog::warn("shore-transfer: the copy of {} at {} differs from the manifest ({}): replacing it", a.file,
                 a.record.remote_url, difference);
    ++a.record.checksum_mismatches;
    {
      const std::lock_guard lock(mutex_);
      ++counters_.checksum_mismatches;
    }
    remote.remove(a.remote_path);
  }

  // 3. Upload under a name that is never taken for the file.
  remote.make_directories(parent_of(a.remote_path));
  remote.remove(a.part_path);  // a stale partial, and with it any checksum the server cached for it
  upload(a, remote, limiter, cancel);

  // 4. Verify the upload, give it the final name, verify that.
  for (const std::string* path : {&a.part_path, &a.remote_path}) {
    if (!remote_matches(remote, *path, a.manifest, difference)) {
      ++a.record.checksum_mismatches;
      {
        const std::lock_guard lock(mutex_);
        ++counters_.checksum_mismatches;
      }
      try {
        remote.remove(*path);
      } catch (const RemoteFailure&) {
        // Left for the next attempt, which checks (and replaces) whatever it finds.
      }
      throw AttemptFailure{TransferFailure::ChecksumMismatch,
                           "remote copy " + remote.url(*path) + " differs from the manifest (" + difference + "); re-sent"};
    }
    if (path == &a.part_path) remote.rename(a.part_path, a.remote_path);
  }
  commit(a);
  return TransferOutcome::Transferred;
}

void Tier0TransferAgent::upload(Attempt& a, Tier0Remote& remote, BandwidthLimiter& limiter,
                                const std::atomic<bool>* cancel) {
  const fs::path local = ready_dir() / a.file;
  LocalFile file(local);
  std::vector<std::uint8_t> chunk(chunk_bytes_for(limiter));
  auto writer = remote.create(a.part_path);
  Adler32 sent_adler;
  std::uint64_t offset = 0;
  for (;;) {
    const std::size_t n = file.read(chunk.data(), chunk.size(), local);
    if (n == 0) break;
    if (cancel != nullptr && cancel->load()) throw AttemptCancelled{};
    if (!clock_.sleep_until(limiter.reserve(n, clock_.now()))) throw AttemptCancelled{};
    const std::span<const std::uint8_t> bytes(chunk.data(), n);
    writer->write(offset, bytes);
    sent_adler.update(bytes);
    offset += n;
    const std::lock_guard lock(mutex_);
    counters_.bytes_sent += n;
  }
  writer->close();
  // The bytes sent, not the file as it was sealed, are what the server now holds: a local file
  // damaged since its seal shows here and is never accepted.
  const auto expected = parse_adler32_hex(a.manifest.adler32);
  if (offset != a.manifest.bytes || !expected || sent_adler.value() != *expected) {
    try {
      remote.remove(a.part_path);
    } catch (const RemoteFailure&) {
      // A .part is never taken for the file; the next attempt replaces it.
    }
    throw AttemptFailure{TransferFailure::LocalMismatch,
                         a.file + " read back as " + std::to_string(offset) + " bytes with adler32 " + sent_adler.hex() +
                             ", its manifest says " + std::to_string(a.manifest.bytes) + " bytes, " + a.manifest.adler32 +
                             ": the local file is damaged (kept in ready/, not accepted)"};
  }
}

bool Tier0TransferAgent::remote_matches(Tier0Remote& remote, const std::string& path, const Tier0TransferManifest& m,
                                        std::string& difference) {
  const auto size = remote.size_of(path);
  if (!size) {
    difference = "missing";
    return false;
  }
  if (*size != m.bytes) {
    difference = std::to_string(*size) + " bytes, manifest " + std::to_string(m.bytes);
    return false;
  }
  const std::string remote_sum = remote.adler32_of(path);
  const auto remote_value = parse_adler32_hex(remote_sum);
  if (!remote_value) throw RemoteFailure("server answered '" + remote_sum + "' for the adler32 of " + path, false);
  if (*remote_value != parse_adler32_hex(m.adler32)) {
    difference = "adler32 " + remote_sum + ", manifest " + m.adler32;
    return false;
  }
  return true;
}

void Tier0TransferAgent::commit(Attempt& a) {
  const auto now = clock_.utc_now();
  a.record.verified = true;
  a.record.verified_utc = utc_text(now);
  a.record.verified_unix_ms = unix_ms(now);
  a.record.consecutive_failures = 0;
  a.record.next_attempt_unix_ms = 0;
  a.record.last_error.clear();
  a.record.last_failure.clear();
  // The record first: done/ then always explains its files. Renames need no space, so a full disk
  // (record not written, counted) does not hold the commit back.
  save_record(done_dir() / record_name(a.file), a.record);
  if (!spool_files::move_part_to_done(config_.spool_dir, a.file, config_.fsync)) {
    throw AttemptFailure{TransferFailure::LocalIo, a.file + " vanished from ready/ before its move into done/"};
  }
  std::error_code ignored;
  fs::remove(ready_dir() / record_name(a.file), ignored);
  {
    const std::lock_guard lock(mutex_);
    ++counters_.files_transferred;
    counters_.bytes_transferred += a.manifest.bytes;
  }
  spdlog::info("shore-transfer: {} ({} bytes, adler32 {}) verified at {}, moved to done/ (attempt {})", a.file,
               a.manifest.bytes, a.manifest.adler32, a.record.remote_url, a.record.attempts);
}

std::size_t Tier0TransferAgent::chunk_bytes_for(const BandwidthLimiter& limiter) const noexcept {
  if (!limiter.limited()) return config_.chunk_bytes;
  // About a tenth of a second of the cap per write, so a low cap paces smoothly.
  const std::size_t tenth = static_cast<std::size_t>(limiter.bytes_per_s() / 10);
  return std::min(std::max(tenth, std::size_t{16} << 10), config_.chunk_bytes);
}

}  // namespace shoredaq::storage
