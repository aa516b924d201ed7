// The Tier-0 spool's writing side: slices into the buffer, the buffer into the open part (resuming
// partial writes, holding data while the disk is full), parts sealed into ready/. Names, run
// manifests, acks and crash recovery are in tier0_spool_recovery.cpp.

#include "shoredaq/storage/tier0_spool.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <spdlog/spdlog.h>

#include "shoredaq/formats/online_format.hpp"
#include "shoredaq/storage/monitoring_record.hpp"
#include "shoredaq/storage/supernova_alert_record.hpp"
#include "spool_recovery.hpp"
#include "tier0_spool_files.hpp"

namespace shoredaq::storage {

namespace fs = std::filesystem;
using spool_files::errno_text;

namespace {

// Errors of write(2) on a regular file that a later attempt may not see (space freed, quota
// raised, a transient device error). Anything else (EBADF, EFAULT, EINVAL) is a bug.
bool write_error_may_pass(int error) noexcept {
  return error == ENOSPC || error == EDQUOT || error == EFBIG || error == EIO || error == EAGAIN ||
         error == EWOULDBLOCK;
}

}  // namespace

const char* to_string(SpoolSliceStatus status) noexcept {
  switch (status) {
    case SpoolSliceStatus::Accepted: return "accepted";
    case SpoolSliceStatus::Pending: return "pending";
    case SpoolSliceStatus::Lost: return "lost";
  }
  return "unknown";
}

Tier0Spool::Tier0Spool(Tier0SpoolConfig config)
    : config_(std::move(config)), detector_id_(config_.detector_id), provenance_(spool_files::completed({})) {
  if (!config_.write) {
    config_.write = [](int fd, const void* data, std::size_t bytes) { return ::write(fd, data, bytes); };
  }
  spool_files::create_spool_dirs({open_dir(), ready_dir(), done_dir(), damaged_dir(), runs_dir()});
  recover();
}

Tier0Spool::~Tier0Spool() {
  try {
    if (fd_ >= 0) seal_part();
  } catch (const std::exception& e) {
    spdlog::error("tier-0 spool: sealing at shutdown failed: {} (recovered at next start)", e.what());
  }
  if (fd_ >= 0) ::close(fd_);
}

void Tier0Spool::count(Counter counter, std::uint64_t n) noexcept {
  counters_.*counter += n;
  run_counters_.*counter += n;
}

void Tier0Spool::begin_run(std::uint32_t run, std::int32_t detector_id, RunProvenance provenance) {
  if (run_) end_run();
  provenance = spool_files::completed(std::move(provenance));
  // Recorded before the first byte of the run, so a crash at any point leaves it for recovery.
  spool_files::write_file_atomically(runs_dir() / run_provenance_name(detector_id, run),
                                     spool_files::provenance_to_json(provenance).dump(2) + "\n", config_.fsync);
  if (config_.fsync) spool_files::fsync_dir(runs_dir());
  provenance_ = std::move(provenance);
  run_ = run;
  detector_id_ = detector_id;
  next_part_ = next_part_number(detector_id, run);
  run_counters_ = Tier0SpoolCounters{};
}

SpoolSliceResult Tier0Spool::write_event(const dataflow::Event& event) {
  return write_slice(std::span<const dataflow::Event>(&event, 1), nullptr);
}

SpoolSliceResult Tier0Spool::write_summary(const dataflow::SummarySlice& summary) {
  return write_slice({}, &summary);
}

std::uint64_t Tier0Spool::BufferedSlice::timeslice_total() const noexcept {
  std::uint64_t n = 0;
  for (const std::uint32_t k : timeslices) n += k;
  return n;
}

std::uint64_t Tier0Spool::BufferedSlice::objects() const noexcept {
  return std::uint64_t{events} + summaries + monitoring + supernova_alerts + timeslice_total();
}

void Tier0Spool::BufferedSlice::note_header(const dataflow::SliceHeader& header) noexcept {
  const std::uint64_t start_ns = header.slice_start_ns();
  const std::uint64_t end_ns = start_ns + dataflow::kSliceDurationNs;
  if (objects() == 0) {  // called before the object is counted
    first_frame = last_frame = header.frame_index;
    utc_start_ns = start_ns;
    utc_end_ns = end_ns;
  } else {
    first_frame = std::min(first_frame, header.frame_index);
    last_frame = std::max(last_frame, header.frame_index);
    utc_start_ns = std::min(utc_start_ns, start_ns);
    utc_end_ns = std::max(utc_end_ns, end_ns);
  }
}

SpoolSliceResult Tier0Spool::write_slice(std::span<const dataflow::Event> events,
                                         const dataflow::SummarySlice* summary) {
  if (!run_) throw SpoolError("tier-0 spool: data written outside a run");
  // The slice's objects are encoded together so the slice enters the buffer whole or not at all.
  BufferedSlice slice;
  scratch_.clear();
  if (summary != nullptr) {
    dataflow::encode_online_summary_slice(*summary, scratch_);
    slice.note_header(summary->header);
    ++slice.summaries;
  }
  for (const auto& event : events) {
    dataflow::encode_online_event(event, scratch_);
    slice.note_header(event.header);
    slice.events_per_trigger.add_event(event.trigger_mask);
    ++slice.events;
  }
  return append_slice(slice);
}

SpoolSliceResult Tier0Spool::write_slice(const dataflow::SliceProducts& products) {
  if (!run_) throw SpoolError("tier-0 spool: data written outside a run");
  BufferedSlice slice;
  scratch_.clear();
  dataflow::encode_online_summary_slice(products.summary, scratch_);
  slice.note_header(products.summary.header);
  ++slice.summaries;
  for (const auto& event : products.events) {
    dataflow::encode_online_event(event, scratch_);
    slice.note_header(event.header);
    slice.events_per_trigger.add_event(event.trigger_mask);
    ++slice.events;
  }
  for (const auto& tagged : products.timeslices) {
    dataflow::encode_online_timeslice(tagged.slice, tagged.kind, scratch_);
    slice.note_header(tagged.slice.header);
    ++slice.timeslices[static_cast<std::size_t>(tagged.kind)];
  }
  for (const auto& packet : products.monitoring) {
    encode_online_monitoring(products.header, packet, scratch_);
    slice.note_header(products.header);
    ++slice.monitoring;
  }
  for (const auto& alert : products.supernova_alerts) {
    encode_online_supernova_alert(products.header, alert, scratch_);
    slice.note_header(products.header);
    ++slice.supernova_alerts;
  }
  return append_slice(slice);
}

SpoolSliceResult Tier0Spool::append_slice(BufferedSlice& slice) {
  if (scratch_.empty()) return {};
  const auto now = std::chrono::steady_clock::now();
  if (writes_failing_ && fd_ >= 0) write_buffered();  // space may have come back
  roll_if_due(now);
  if (fd_ >= 0) {
    const std::uint64_t part_bytes = part_.bytes + (buffer_.size() - buffered_from());
    if (part_bytes > 0 && part_bytes + scratch_.size() > config_.max_file_bytes) try_roll();
  }
  if (fd_ < 0 && !open_part()) return lose(slice, scratch_.size());
  if (writes_failing_ && pending_bytes() + scratch_.size() > config_.max_pending_bytes) {
    return lose(slice, scratch_.size());
  }

  if (pending_bytes() == 0) oldest_buffered_at_ = now;
  slice.begin = buffer_.size();
  buffer_.insert(buffer_.end(), scratch_.begin(), scratch_.end());
  slice.end = buffer_.size();
  buffered_slices_.push_back(slice);
  if (!writes_failing_) {
    if (pending_bytes() >= config_.write_buffer_bytes) {
      write_buffered();
    } else {
      flush_if_due(now);
    }
  }
  if (writes_failing_) return {SpoolSliceStatus::Pending, write_failure_};
  return {};
}

void Tier0Spool::flush_if_due(std::chrono::steady_clock::time_point now) {
  if (fd_ >= 0 && pending_bytes() > 0 && now - oldest_buffered_at_ >= config_.flush_interval) write_buffered();
}

void Tier0Spool::roll_if_due(std::chrono::steady_clock::time_point now) {
  if (fd_ >= 0 && now - opened_at_ >= config_.max_file_age) try_roll();
}

void Tier0Spool::end_run() {
  if (!run_) return;
  if (fd_ >= 0) seal_part();
  write_run_manifest(detector_id_, *run_, false);
  // The run manifest now carries every part: the provenance record has done its job.
  std::error_code ignored;
  fs::remove(runs_dir() / run_provenance_name(detector_id_, *run_), ignored);
  count(&Tier0SpoolCounters::runs_ended);
  run_.reset();
}

void Tier0Spool::count_lost(const BufferedSlice& slice, std::size_t bytes) noexcept {
  count(&Tier0SpoolCounters::slices_lost);
  count(&Tier0SpoolCounters::events_lost, slice.events);
  count(&Tier0SpoolCounters::summaries_lost, slice.summaries);
  count(&Tier0SpoolCounters::timeslices_lost, slice.timeslice_total());
  count(&Tier0SpoolCounters::monitoring_lost, slice.monitoring);
  count(&Tier0SpoolCounters::bytes_lost, bytes);
}

SpoolSliceResult Tier0Spool::lose(const BufferedSlice& slice, std::size_t bytes) {
  count_lost(slice, bytes);
  // Once per failure episode: the episode's end logs how many were lost in all.
  if (lost_in_episode_++ == 0) {
    spdlog::error("tier-0 spool: refusing slices of run {} while writes fail ({} bytes pending): {}", part_.run,
                  pending_bytes(), write_failure_);
  }
  return {SpoolSliceStatus::Lost, write_failure_};
}

void Tier0Spool::note_write_failure(std::string text) {
  count(&Tier0SpoolCounters::write_errors);
  write_failure_ = std::move(text);
  if (writes_failing_) {
    ++failed_attempts_;
    return;
  }
  writes_failing_ = true;
  failed_attempts_ = 1;
  lost_in_episode_ = 0;
  spdlog::error("tier-0 spool: {}; holding up to {} unwritten bytes in memory and retrying", write_failure_,
                config_.max_pending_bytes);
}

void Tier0Spool::note_writes_work() {
  spdlog::warn("tier-0 spool: writing again after {} failed attempts; {} slices lost meanwhile",
               failed_attempts_, lost_in_episode_);
  writes_failing_ = false;
  write_failure_.clear();
}

bool Tier0Spool::open_part() {
  part_ = SpoolPartInfo{};
  part_.detector_id = detector_id_;
  part_.run = *run_;
  part_.part = next_part_;
  part_.file = part_file_name(detector_id_, part_.run, part_.part);
  part_.provenance = provenance_;
  const fs::path path = open_dir() / part_.file;
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd_ < 0) {
    note_write_failure(errno_text("create", path, errno));
    return false;
  }
  ++next_part_;
  adler_ = Adler32{};
  md5_ = Md5{};
  buffer_.clear();
  written_ = 0;
  buffered_slices_.clear();
  opened_at_ = std::chrono::steady_clock::now();
  if (writes_failing_) note_writes_work();  // nothing is pending in a new part
  return true;
}

std::size_t Tier0Spool::buffered_from() const noexcept {
  return buffered_slices_.empty() ? buffer_.size() : buffered_slices_.front().begin;
}

// Writes buffer_[written_, end) to the part, resuming after short writes. On a failure the bytes
// already written stay written and the next attempt starts right after them.
bool Tier0Spool::write_buffered() {
  while (written_ < buffer_.size()) {
    const std::size_t remaining = buffer_.size() - written_;
    const ssize_t n = config_.write(fd_, buffer_.data() + written_, remaining);
    if (n > 0) {
      const auto wrote = std::min(static_cast<std::size_t>(n), remaining);
      if (wrote < remaining) count(&Tier0SpoolCounters::partial_writes);
      written_ += wrote;
      continue;
    }
    const int error = n < 0 ? errno : ENOSPC;  // 0 bytes for a non-empty write: no room
    if (n < 0 && error == EINTR) continue;
    const fs::path path = open_dir() / part_.file;
    if (!write_error_may_pass(error)) {
      count(&Tier0SpoolCounters::write_errors);
      throw SpoolError(errno_text("write", path, error));
    }
    note_write_failure(errno_text("write", path, error));
    commit_written_slices();
    // Drop the checksummed prefix so a long outage holds only unwritten bytes (and the written
    // head of the first unfinished slice, needed for its checksum once it is whole).
    const std::size_t done = buffered_from();
    if (done > 0) {
      buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(done));
      written_ -= done;
      for (auto& slice : buffered_slices_) {
        slice.begin -= done;
        slice.end -= done;
      }
    }
    return false;
  }
  commit_written_slices();
  buffer_.clear();
  written_ = 0;
  if (writes_failing_) note_writes_work();
  return true;
}

// Slices whose every byte is in the file join the part: counts, frame range and checksums, so
// the manifest describes exactly the bytes of the file.
void Tier0Spool::commit_written_slices() {
  while (!buffered_slices_.empty() && buffered_slices_.front().end <= written_) {
    const BufferedSlice& slice = buffered_slices_.front();
    const std::span<const std::uint8_t> bytes(buffer_.data() + slice.begin, slice.end - slice.begin);
    adler_.update(bytes);
    md5_.update(bytes);
    if (part_.objects() == 0) {
      part_.first_frame = slice.first_frame;
      part_.last_frame = slice.last_frame;
      part_.utc_start_ns = slice.utc_start_ns;
      part_.utc_end_ns = slice.utc_end_ns;
    } else {
      part_.first_frame = std::min(part_.first_frame, slice.first_frame);
      part_.last_frame = std::max(part_.last_frame, slice.last_frame);
      part_.utc_start_ns = std::min(part_.utc_start_ns, slice.utc_start_ns);
      part_.utc_end_ns = std::max(part_.utc_end_ns, slice.utc_end_ns);
    }
    part_.events_per_trigger += slice.events_per_trigger;
    part_.events += slice.events;
    part_.summary_slices += slice.summaries;
    for (std::size_t k = 0; k < kTimesliceKinds; ++k) part_.timeslices.per_kind[k] += slice.timeslices[k];
    part_.monitoring_packets += slice.monitoring;
    part_.supernova_alerts += slice.supernova_alerts;
    part_.bytes += bytes.size();
    count(&Tier0SpoolCounters::slices_written);
    count(&Tier0SpoolCounters::events_written, slice.events);
    count(&Tier0SpoolCounters::summaries_written, slice.summaries);
    count(&Tier0SpoolCounters::timeslices_written, slice.timeslice_total());
    count(&Tier0SpoolCounters::monitoring_written, slice.monitoring);
    count(&Tier0SpoolCounters::bytes_written, bytes.size());
    buffered_slices_.pop_front();
  }
}

// The part must be sealed while writes still fail: what is not wholly in the file is lost
// (counted), and the head of a slice written in part is cut off so the file ends on a slice.
void Tier0Spool::drop_unwritten_slices() {
  std::uint64_t slices = 0;
  for (const BufferedSlice& slice : buffered_slices_) {
    count_lost(slice, slice.end - slice.begin);
    ++slices;
  }
  lost_in_episode_ += slices;
  spdlog::error("tier-0 spool: sealing {} while writes fail: {} slices not written are lost ({})", part_.file,
                slices, write_failure_);
  buffered_slices_.clear();
  buffer_.clear();
  written_ = 0;
  if (::ftruncate(fd_, static_cast<off_t>(part_.bytes)) != 0) {
    count(&Tier0SpoolCounters::write_errors);
    throw SpoolError(errno_text("truncate", open_dir() / part_.file, errno));
  }
}

// A roll waits while writes fail: sealing now would lose the pending slices.
void Tier0Spool::try_roll() {
  if (!writes_failing_ && write_buffered()) seal_part();
}

void Tier0Spool::seal_part() {
  if (!write_buffered()) drop_unwritten_slices();
  const fs::path from = open_dir() / part_.file;
  const fs::path to = ready_dir() / part_.file;
  if (part_.bytes == 0) {
    // Every slice of it was lost: no empty part in ready/; the number is used by the next part.
    ::close(fd_);
    fd_ = -1;
    if (::unlink(from.c_str()) != 0) throw SpoolError(errno_text("remove", from, errno));
    next_part_ = part_.part;
    return;
  }
  if (config_.fsync && ::fsync(fd_) != 0) {
    count(&Tier0SpoolCounters::write_errors);
    throw SpoolError(errno_text("fsync", from, errno));
  }
  ::close(fd_);
  fd_ = -1;
  part_.adler32 = adler_.hex();
  part_.md5 = md5_.hex();
  part_.guid = make_guid_v4();
  if (::rename(from.c_str(), to.c_str()) != 0) {
    count(&Tier0SpoolCounters::write_errors);
    throw SpoolError(errno_text("rename", from, errno));
  }
  spool_files::write_file_atomically(ready_dir() / (part_.file + ".json"),
                                     spool_files::part_to_json(part_).dump(2) + "\n", config_.fsync);
  if (config_.fsync) {
    spool_files::fsync_dir(ready_dir());
    spool_files::fsync_dir(open_dir());
  }
  count(&Tier0SpoolCounters::parts_sealed);
  sealed_.push_back(part_);
}

}  // namespace shoredaq::storage
