// The acoustic spool's writing side: datagrams into the batch (memory only), batches into the open
// part, parts sealed into ready/. Names, run manifests and crash recovery are in
// acoustic_spool_recovery.cpp.

#include "shoredaq/storage/acoustic_spool.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "shoredaq/formats/clb_datagram.hpp"
#include "shoredaq/formats/record_stream.hpp"
#include "spool_recovery.hpp"
#include "tier0_spool_files.hpp"

namespace shoredaq::storage {

namespace fs = std::filesystem;
using spool_files::errno_text;

namespace {

std::uint32_t load_be32(const std::uint8_t* p) noexcept {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}

// Up to the DOM id: seconds, ticks and DOM id sit at the same offsets in the 40- and the 28-byte
// header, so the spool reads a datagram's time without knowing the layout.
constexpr std::size_t kMinHeaderBytes = 24;

}  // namespace

AcousticSpool::AcousticSpool(AcousticSpoolConfig config) : config_(std::move(config)) {
  if (!config_.write) {
    config_.write = [](int fd, const void* data, std::size_t bytes) { return ::write(fd, data, bytes); };
  }
  provenance_ = spool_files::completed({});
  spool_files::create_spool_dirs({open_dir(), ready_dir(), done_dir(), damaged_dir(), runs_dir()});
  recover();
}

AcousticSpool::~AcousticSpool() {
  std::unique_lock io_lock(io_mutex_);
  Batch batch;
  {
    std::lock_guard lock(mutex_);
    batch = std::move(batch_);
    batch_ = Batch{};
  }
  if (!batch.records.empty()) write_batch(batch);
  if (fd_ >= 0) seal_part();
}

void AcousticSpool::count(Counter counter, std::uint64_t n) noexcept {
  counters_.*counter += n;
  run_counters_.*counter += n;
}

void AcousticSpool::count_lost(const Record* first, const Record* last) noexcept {
  for (const Record* r = first; r != last; ++r) {
    count(&AcousticSpoolCounters::datagrams_lost);
    count(&AcousticSpoolCounters::bytes_lost, r->bytes);
    ++dom_counts_[r->dom_id].lost;
  }
}

void AcousticSpool::begin_run(std::uint32_t run, std::int32_t detector_id, RunProvenance provenance) {
  std::unique_lock io_lock(io_mutex_);
  end_run_locked(io_lock);
  provenance = spool_files::completed(std::move(provenance));
  // Recorded before the first byte of the run, so a crash at any point leaves it for recovery.
  spool_files::write_file_atomically(runs_dir() / run_provenance_name(detector_id, run),
                                     spool_files::provenance_to_json(provenance).dump(2) + "\n", config_.fsync);
  if (config_.fsync) spool_files::fsync_dir(runs_dir());
  next_part_ = next_part_number(detector_id, run);
  file_run_ = run;
  file_detector_id_ = detector_id;
  file_provenance_ = provenance;
  std::lock_guard lock(mutex_);
  provenance_ = std::move(provenance);
  detector_id_ = detector_id;
  run_ = run;
  run_counters_ = AcousticSpoolCounters{};
  dom_counts_.clear();
}

AcousticWriteStatus AcousticSpool::write(std::span<const std::uint8_t> datagram, std::uint32_t dom_id) noexcept {
  const bool bad = datagram.size() < kMinHeaderBytes || datagram.size() > config_.max_datagram_bytes ||
                   std::memcmp(datagram.data(), "TAES", 4) != 0;
  const auto record_bytes = static_cast<std::uint32_t>(dataflow::kRecordLengthBytes + datagram.size());
  std::lock_guard lock(mutex_);
  if (bad) {
    count(&AcousticSpoolCounters::datagrams_bad);
    return AcousticWriteStatus::Bad;
  }
  if (!run_) {
    count(&AcousticSpoolCounters::datagrams_outside_run);
    return AcousticWriteStatus::OutsideRun;
  }
  const Record record{dom_id, record_bytes,
                      std::uint64_t{load_be32(datagram.data() + 12)} * 1'000'000'000ull +
                          std::uint64_t{load_be32(datagram.data() + 16)} * dataflow::kTickNs};
  if (batch_.bytes.size() + record_bytes > config_.max_pending_bytes) {
    count_lost(&record, &record + 1);
    return AcousticWriteStatus::Lost;
  }
  const std::size_t bytes_before = batch_.bytes.size();
  bool record_added = false;
  try {
    batch_.records.push_back(record);
    record_added = true;
    dataflow::append_record(batch_.bytes, datagram);
  } catch (const std::bad_alloc&) {
    // Bytes and records stay in step: nothing of this datagram is left in the batch.
    batch_.bytes.resize(bytes_before);
    if (record_added) batch_.records.pop_back();
    count_lost(&record, &record + 1);
    return AcousticWriteStatus::Lost;
  }
  if (batch_.records.size() == 1) batch_started_ = std::chrono::steady_clock::now();
  count(&AcousticSpoolCounters::datagrams_accepted);
  return AcousticWriteStatus::Accepted;
}

void AcousticSpool::flush_if_due(std::chrono::steady_clock::time_point now) noexcept {
  try {
    std::unique_lock io_lock(io_mutex_);
    Batch batch;
    {
      std::lock_guard lock(mutex_);
      if (!run_) return;
      const bool due = !batch_.records.empty() && (now - batch_started_ >= config_.flush_interval ||
                                                   batch_.bytes.size() >= config_.write_buffer_bytes);
      if (due) {
        batch = std::move(batch_);
        batch_ = Batch{};
      }
    }
    if (fd_ >= 0 && now - opened_at_ >= config_.max_file_age) seal_part();
    if (!batch.records.empty()) write_batch(batch);
  } catch (const std::exception& e) {
    // Not a full disk (that is counted in write_batch): a broken spool. Counted, logged, survived.
    std::lock_guard lock(mutex_);
    count(&AcousticSpoolCounters::write_errors);
    spdlog::error("acoustic spool: {}", e.what());
  }
}

void AcousticSpool::end_run() {
  std::unique_lock io_lock(io_mutex_);
  end_run_locked(io_lock);
}

void AcousticSpool::end_run_locked(std::unique_lock<std::mutex>& io_lock) {
  (void)io_lock;  // held by the caller: the file side is ours
  std::int32_t detector_id = 0;
  std::uint32_t run = 0;
  Batch batch;
  {
    std::lock_guard lock(mutex_);
    if (!run_) return;
    run = *run_;
    detector_id = detector_id_;
    run_.reset();  // from now on datagrams count as outside the run
    batch = std::move(batch_);
    batch_ = Batch{};
  }
  if (!batch.records.empty()) write_batch(batch);
  if (fd_ >= 0) seal_part();
  write_run_manifest(detector_id, run, false);
  std::error_code ignored;
  fs::remove(runs_dir() / run_provenance_name(detector_id, run), ignored);
  std::lock_guard lock(mutex_);
  count(&AcousticSpoolCounters::runs_ended);
}

void AcousticSpool::note_failure(const std::string& what) {
  // With mutex_ held. Once per failure episode: the disk stays full for a while.
  count(&AcousticSpoolCounters::write_errors);
  if (!writes_failing_) spdlog::error("acoustic spool: {}; acoustic datagrams are lost until writes work again", what);
  writes_failing_ = true;
}

bool AcousticSpool::open_part() {
  SpoolPartInfo part;
  part.data_type = Tier0DataType::Acoustic;
  part.detector_id = file_detector_id_;
  part.run = file_run_;
  part.provenance = file_provenance_;
  part.part = next_part_;
  part.file = part_file_name(part.detector_id, part.run, part.part);
  const fs::path path = open_dir() / part.file;
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd_ < 0) {
    const int error = errno;
    std::lock_guard lock(mutex_);
    note_failure(errno_text("create", path, error));
    return false;
  }
  ++next_part_;
  part_ = std::move(part);
  adler_ = Adler32{};
  md5_ = Md5{};
  opened_at_ = std::chrono::steady_clock::now();
  return true;
}

// Writes a batch to the open part (opened or rolled here). On a failure the whole records already
// in the file stay, the file is cut back to the last of them, and the rest is counted as lost.
void AcousticSpool::write_batch(const Batch& batch) {
  if (fd_ >= 0 && part_.bytes > 0 && part_.bytes + batch.bytes.size() > config_.max_file_bytes) seal_part();
  if (fd_ < 0 && !open_part()) {
    std::lock_guard lock(mutex_);
    count_lost(batch.records.data(), batch.records.data() + batch.records.size());
    return;
  }
  std::size_t written = 0;
  while (written < batch.bytes.size()) {
    const ssize_t n = config_.write(fd_, batch.bytes.data() + written, batch.bytes.size() - written);
    if (n > 0) {
      written += std::min(static_cast<std::size_t>(n), batch.bytes.size() - written);
      continue;
    }
    const int error = n < 0 ? errno : ENOSPC;  // 0 bytes for a non-empty write: no room
    if (n < 0 && error == EINTR) continue;
    // Whole records only: what a record started but did not finish is cut off.
    std::size_t records = 0, whole = 0;
    while (records < batch.records.size() && whole + batch.records[records].bytes <= written) {
      whole += batch.records[records].bytes;
      ++records;
    }
    const fs::path path = open_dir() / part_.file;
    // Cut the file back and write on from there (not from where the failed write left the offset).
    const auto end = static_cast<off_t>(part_.bytes + whole);
    const bool cut = ::ftruncate(fd_, end) == 0 && ::lseek(fd_, end, SEEK_SET) == end;
    const int cut_error = errno;
    commit(batch, records, whole);
    std::lock_guard lock(mutex_);
    note_failure(errno_text("write", path, error));
    count_lost(batch.records.data() + records, batch.records.data() + batch.records.size());
    if (!cut) {
      note_failure(errno_text("truncate", path, cut_error));
      // The file may end in a torn record: leave it in open/, where the next start's recovery
      // keeps its whole records; continue in a new part.
      ::close(fd_);
      fd_ = -1;
    }
    return;
  }
  commit(batch, batch.records.size(), batch.bytes.size());
  std::lock_guard lock(mutex_);
  if (writes_failing_) spdlog::warn("acoustic spool: writing again");
  writes_failing_ = false;
}

// The first `records` records of the batch (`bytes` bytes) are whole in the file.
void AcousticSpool::commit(const Batch& batch, std::size_t records, std::size_t bytes) {
  const std::span<const std::uint8_t> data(batch.bytes.data(), bytes);
  adler_.update(data);
  md5_.update(data);
  std::lock_guard lock(mutex_);
  for (std::size_t i = 0; i < records; ++i) {
    const Record& r = batch.records[i];
    const std::uint64_t end_ns = r.slice_start_ns + dataflow::kSliceDurationNs;
    if (part_.datagrams == 0) {
      part_.utc_start_ns = r.slice_start_ns;
      part_.utc_end_ns = end_ns;
    } else {
      part_.utc_start_ns = std::min(part_.utc_start_ns, r.slice_start_ns);
      part_.utc_end_ns = std::max(part_.utc_end_ns, end_ns);
    }
    ++part_.datagrams;
    ++part_.datagrams_per_dom[r.dom_id];
    ++dom_counts_[r.dom_id].written;
  }
  part_.bytes += bytes;
  count(&AcousticSpoolCounters::datagrams_written, records);
  count(&AcousticSpoolCounters::bytes_written, bytes);
}

void AcousticSpool::seal_part() noexcept {
  const fs::path from = open_dir() / part_.file;
  const fs::path to = ready_dir() / part_.file;
  const int fd = fd_;
  fd_ = -1;
  try {
    if (part_.bytes == 0) {
      // Nothing of it was written: no empty part in ready/; its number goes to the next one.
      ::close(fd);
      ::unlink(from.c_str());
      next_part_ = part_.part;
      return;
    }
    if (config_.fsync && ::fsync(fd) != 0) {
      const int error = errno;
      ::close(fd);
      throw SpoolError(errno_text("fsync", from, error));
    }
    ::close(fd);
    part_.adler32 = adler_.hex();
    part_.md5 = md5_.hex();
    part_.guid = make_guid_v4();
    if (::rename(from.c_str(), to.c_str()) != 0) throw SpoolError(errno_text("rename", from, errno));
    spool_files::write_file_atomically(ready_dir() / (part_.file + ".json"),
                                       spool_files::part_to_json(part_).dump(2) + "\n", config_.fsync);
    if (config_.fsync) {
      spool_files::fsync_dir(ready_dir());
      spool_files::fsync_dir(open_dir());
    }
    std::lock_guard lock(mutex_);
    count(&AcousticSpoolCounters::parts_sealed);
    sealed_.push_back(part_);
  } catch (const std::exception& e) {
    // The part stays in open/ (or ready/ without a manifest): the next start's recovery seals it.
    std::lock_guard lock(mutex_);
    count(&AcousticSpoolCounters::write_errors);
    spdlog::error("acoustic spool: sealing {} failed: {} (recovered at the next start)", part_.file, e.what());
  }
}

void AcousticSpool::describe(const AcousticSpoolCounters& run, dataflow::CounterSet& out) {
  out.total("acoustic", "datagrams_written", run.datagrams_written);
  out.total("acoustic", "bytes_written", run.bytes_written);
  out.total("acoustic", "parts_sealed", run.parts_sealed);
  out.total("acoustic", "write_errors", run.write_errors);
  out.drop("acoustic", "datagrams_lost", run.datagrams_lost, dataflow::LossUnit::Datagrams);
  out.drop("acoustic", "datagrams_bad", run.datagrams_bad, dataflow::LossUnit::Datagrams);
  out.drop("acoustic", "datagrams_outside_run", run.datagrams_outside_run, dataflow::LossUnit::NotLoss);
}

std::optional<std::uint32_t> AcousticSpool::current_run() const {
  std::lock_guard lock(mutex_);
  return run_;
}

AcousticSpoolCounters AcousticSpool::counters() const {
  std::lock_guard lock(mutex_);
  return counters_;
}

AcousticSpoolCounters AcousticSpool::run_counters() const {
  std::lock_guard lock(mutex_);
  return run_counters_;
}

std::map<std::uint32_t, AcousticDomCounts> AcousticSpool::dom_counts() const {
  std::lock_guard lock(mutex_);
  return dom_counts_;
}

std::vector<SpoolPartInfo> AcousticSpool::sealed_parts() const {
  std::lock_guard lock(mutex_);
  return sealed_;
}

std::size_t AcousticSpool::pending_bytes() const {
  std::lock_guard lock(mutex_);
  return batch_.bytes.size();
}

}  // namespace shoredaq::storage
