#include "shoredaq/storage/raw_slice_ring.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>
#include <xxhash.h>

#include "full_io.hpp"

namespace shoredaq::storage {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kHeaderBytes = 64;
constexpr std::size_t kSlotBytes = 64;
constexpr std::array<char, 8> kIndexMagic{'S', 'D', 'Q', 'R', 'I', 'N', 'G', '1'};
constexpr std::uint32_t kSlotMagic = 0x474e4952u;  // "RING"

std::string errno_text(const std::string& what, const fs::path& path, int error) {
  return what + " " + path.string() + ": " + std::strerror(error);
}

void put_u32(std::uint8_t* p, std::uint32_t v) noexcept {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
void put_u64(std::uint8_t* p, std::uint64_t v) noexcept {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
std::uint32_t get_u32(const std::uint8_t* p) noexcept {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= std::uint32_t{p[i]} << (8 * i);
  return v;
}
std::uint64_t get_u64(const std::uint8_t* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= std::uint64_t{p[i]} << (8 * i);
  return v;
}

bool overlaps(const RingEntry& e, std::uint64_t offset, std::uint64_t bytes) noexcept {
  return e.offset < offset + bytes && offset < e.offset + e.bytes;
}

std::uint64_t checksum_of(std::span<const std::uint8_t> bytes) noexcept { return XXH3_64bits(bytes.data(), bytes.size()); }

}  // namespace

const char* to_string(RingAppendStatus status) noexcept {
  switch (status) {
    case RingAppendStatus::Stored: return "stored";
    case RingAppendStatus::TooLarge: return "too_large";
    case RingAppendStatus::TooOld: return "too_old";
    case RingAppendStatus::WriteFailed: return "write_failed";
  }
  return "?";
}

RawSliceRing::RawSliceRing(RawSliceRingConfig config) : config_(std::move(config)) {
  if (config_.max_bytes == 0) throw RingError("raw slice ring: max_bytes must be > 0");
  if (config_.max_seconds == 0) throw RingError("raw slice ring: max_seconds must be > 0");
  slots_ = config_.slots != 0 ? config_.slots : std::max<std::uint32_t>(64, config_.max_seconds * 20);
  open_files();
  recover();
}

RawSliceRing::~RawSliceRing() {
  if (data_fd_ >= 0) ::close(data_fd_);
  if (index_fd_ >= 0) ::close(index_fd_);
}

void RawSliceRing::open_files() {
  std::error_code ec;
  fs::create_directories(config_.directory, ec);
  if (ec) throw RingError("raw slice ring: cannot create " + config_.directory.string() + ": " + ec.message());
  const fs::path data = config_.directory / "ring.data";
  const fs::path index = config_.directory / "ring.index";
  data_fd_ = ::open(data.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (data_fd_ < 0) throw RingError(errno_text("open", data, errno));
  index_fd_ = ::open(index.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (index_fd_ < 0) throw RingError(errno_text("open", index, errno));

  std::array<std::uint8_t, kHeaderBytes> header{};
  std::memcpy(header.data(), kIndexMagic.data(), kIndexMagic.size());
  put_u32(header.data() + 8, slots_);
  put_u64(header.data() + 16, config_.max_bytes);
  std::array<std::uint8_t, kHeaderBytes> found{};
  const std::uint64_t index_bytes = kHeaderBytes + std::uint64_t{slots_} * kSlotBytes;
  struct stat st {};
  const bool same = detail::pread_fully(index_fd_, found.data(), found.size(), 0) && found == header &&
                    ::fstat(index_fd_, &st) == 0 && static_cast<std::uint64_t>(st.st_size) == index_bytes;
  if (!same) {
    // A new ring, or one made with other bounds: its entries cannot be placed, start afresh.
    if (::fstat(index_fd_, &st) == 0 && st.st_size > 0)
      spdlog::warn("raw slice ring: {} has another layout: the ring starts empty", index.string());
    if (::ftruncate(index_fd_, 0) != 0 || ::ftruncate(index_fd_, static_cast<off_t>(index_bytes)) != 0 ||
        !detail::pwrite_fully(index_fd_, header.data(), header.size(), 0))
      throw RingError(errno_text("initialise", index, errno));
    if (::ftruncate(data_fd_, 0) != 0) throw RingError(errno_text("truncate", data, errno));
  }
  // Preallocated: a full disk shows up now, not in the middle of a run.
  const int rc = ::posix_fallocate(data_fd_, 0, static_cast<off_t>(config_.max_bytes));
  if (rc != 0) throw RingError(errno_text("preallocate " + std::to_string(config_.max_bytes) + " bytes for", data, rc));
}

std::optional<RingEntry> RawSliceRing::read_slot(std::uint32_t slot) const {
  std::array<std::uint8_t, kSlotBytes> s{};
  if (!detail::pread_fully(index_fd_, s.data(), s.size(), kHeaderBytes + std::uint64_t{slot} * kSlotBytes)) return std::nullopt;
  if (get_u32(s.data()) != kSlotMagic) return std::nullopt;
  if (get_u64(s.data() + 56) != XXH3_64bits(s.data(), 56)) return std::nullopt;
  RingEntry e;
  e.bytes = get_u32(s.data() + 4);
  e.sequence = get_u64(s.data() + 8);
  e.slice_start_ns = get_u64(s.data() + 16);
  e.offset = get_u64(s.data() + 24);
  e.run = get_u32(s.data() + 32);
  e.frame_index = get_u32(s.data() + 36);
  e.detector_id = static_cast<std::int32_t>(get_u32(s.data() + 40));
  e.records = get_u32(s.data() + 44);
  e.checksum = get_u64(s.data() + 48);
  if (e.sequence % slots_ != slot || e.bytes == 0 || e.offset + e.bytes > config_.max_bytes) return std::nullopt;
  return e;
}

void RawSliceRing::write_slot(const RingEntry& e) {
  std::array<std::uint8_t, kSlotBytes> s{};
  put_u32(s.data(), kSlotMagic);
  put_u32(s.data() + 4, e.bytes);
  put_u64(s.data() + 8, e.sequence);
  put_u64(s.data() + 16, e.slice_start_ns);
  put_u64(s.data() + 24, e.offset);
  put_u32(s.data() + 32, e.run);
  put_u32(s.data() + 36, e.frame_index);
  put_u32(s.data() + 40, static_cast<std::uint32_t>(e.detector_id));
  put_u32(s.data() + 44, e.records);
  put_u64(s.data() + 48, e.checksum);
  put_u64(s.data() + 56, XXH3_64bits(s.data(), 56));
  if (!detail::pwrite_fully(index_fd_, s.data(), s.size(), kHeaderBytes + (e.sequence % slots_) * kSlotBytes))
    throw RingError(errno_text("write slot of", config_.directory / "ring.index", errno));
}

void RawSliceRing::clear_slot(std::uint64_t sequence) {
  const std::array<std::uint8_t, kSlotBytes> zero{};
  if (!detail::pwrite_fully(index_fd_, zero.data(), zero.size(), kHeaderBytes + (sequence % slots_) * kSlotBytes))
    throw RingError(errno_text("clear slot of", config_.directory / "ring.index", errno));
}

void RawSliceRing::recover() {
  std::vector<RingEntry> found;
  std::uint64_t max_sequence = 0;
  std::vector<std::uint32_t> torn_slots;
  for (std::uint32_t slot = 0; slot < slots_; ++slot) {
    if (auto e = read_slot(slot)) {
      found.push_back(*e);
      max_sequence = std::max(max_sequence, e->sequence);
    } else {
      std::array<std::uint8_t, kSlotBytes> s{};
      const std::array<std::uint8_t, kSlotBytes> zero{};
      if (detail::pread_fully(index_fd_, s.data(), s.size(), kHeaderBytes + std::uint64_t{slot} * kSlotBytes) && s != zero)
        torn_slots.push_back(slot);
    }
  }
  // Newest first: an older entry whose bytes a newer one overwrote is gone.
  std::sort(found.begin(), found.end(), [](const RingEntry& a, const RingEntry& b) { return a.sequence > b.sequence; });
  std::vector<RingEntry> kept;
  std::uint64_t dropped = torn_slots.size();
  for (const RingEntry& e : found) {
    bool ok = std::none_of(kept.begin(), kept.end(), [&](const RingEntry& k) { return overlaps(k, e.offset, e.bytes); });
    if (ok) {
      std::vector<std::uint8_t> bytes(e.bytes);
      ok = detail::pread_fully(data_fd_, bytes.data(), bytes.size(), e.offset) && checksum_of(bytes) == e.checksum;
    }
    if (ok) {
      kept.push_back(e);
    } else {
      clear_slot(e.sequence);
      ++dropped;
    }
  }
  for (const std::uint32_t slot : torn_slots) clear_slot(slot);
  std::sort(kept.begin(), kept.end(), [](const RingEntry& a, const RingEntry& b) { return a.sequence < b.sequence; });
  live_.assign(kept.begin(), kept.end());
  next_sequence_ = max_sequence + 1;
  write_offset_ = live_.empty() ? 0 : live_.back().offset + live_.back().bytes;
  for (const RingEntry& e : live_) newest_ns_ = std::max(newest_ns_, e.slice_start_ns);
  counters_.recovered_slices = live_.size();
  counters_.recovery_dropped_slices = dropped;
  evict_older_than_window();
  counters_.evicted_by_time = 0;  // what the window dropped at start-up is not this process's eviction
  counters_.recovered_slices = live_.size();
  if (!live_.empty() || dropped != 0)
    spdlog::info("raw slice ring: {} slices recovered, {} torn or overwritten entries dropped", live_.size(), dropped);
}

void RawSliceRing::evict_older_than_window() {
  const std::uint64_t window_ns = std::uint64_t{config_.max_seconds} * 1'000'000'000ull;
  for (auto it = live_.begin(); it != live_.end();) {
    if (it->slice_start_ns + window_ns <= newest_ns_) {
      clear_slot(it->sequence);
      ++counters_.evicted_by_time;
      it = live_.erase(it);
    } else {
      ++it;
    }
  }
}

RingAppendStatus RawSliceRing::append(const RingSliceMeta& meta, std::span<const std::uint8_t> records) {
  std::lock_guard lock(mutex_);
  const std::uint64_t window_ns = std::uint64_t{config_.max_seconds} * 1'000'000'000ull;
  if (records.empty() || records.size() > config_.max_bytes || records.size() > UINT32_MAX) {
    ++counters_.refused_too_large;
    return RingAppendStatus::TooLarge;
  }
  if (meta.slice_start_ns + window_ns <= newest_ns_) {
    ++counters_.refused_too_old;
    return RingAppendStatus::TooOld;
  }
  RingEntry e;
  e.sequence = next_sequence_++;
  e.slice_start_ns = meta.slice_start_ns;
  e.detector_id = meta.detector_id;
  e.run = meta.run;
  e.frame_index = meta.frame_index;
  e.records = meta.records;
  e.bytes = static_cast<std::uint32_t>(records.size());
  e.offset = write_offset_ + records.size() <= config_.max_bytes ? write_offset_ : 0;
  e.checksum = checksum_of(records);
  try {
    // The slots of what this slice overwrites (bytes or slot) are cleared before its bytes land.
    for (auto it = live_.begin(); it != live_.end();) {
      const bool space = overlaps(*it, e.offset, e.bytes);
      const bool slot = it->sequence % slots_ == e.sequence % slots_;
      if (space || slot) {
        clear_slot(it->sequence);
        ++(space ? counters_.evicted_by_space : counters_.evicted_by_slots);
        it = live_.erase(it);
      } else {
        ++it;
      }
    }
    if (!detail::pwrite_fully(data_fd_, records.data(), records.size(), e.offset)) {
      ++counters_.write_errors;
      spdlog::warn("raw slice ring: {}", errno_text("write", config_.directory / "ring.data", errno));
      return RingAppendStatus::WriteFailed;
    }
    write_slot(e);
  } catch (const RingError& error) {
    ++counters_.write_errors;
    spdlog::warn("raw slice ring: {}", error.what());
    return RingAppendStatus::WriteFailed;
  }
  live_.push_back(e);
  write_offset_ = e.offset + e.bytes;
  ++counters_.slices_stored;
  counters_.bytes_stored += e.bytes;
  if (e.slice_start_ns > newest_ns_) {
    newest_ns_ = e.slice_start_ns;
    try {
      evict_older_than_window();
    } catch (const RingError& error) {
      ++counters_.write_errors;
      spdlog::warn("raw slice ring: {}", error.what());
    }
  }
  return RingAppendStatus::Stored;
}

std::vector<RingEntry> RawSliceRing::entries() const {
  std::vector<RingEntry> out;
  {
    std::lock_guard lock(mutex_);
    out.assign(live_.begin(), live_.end());
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const RingEntry& a, const RingEntry& b) { return a.slice_start_ns < b.slice_start_ns; });
  return out;
}

std::vector<RingEntry> RawSliceRing::entries_between(std::uint64_t from_ns, std::uint64_t to_ns) const {
  std::vector<RingEntry> out = entries();
  std::erase_if(out, [&](const RingEntry& e) { return e.slice_start_ns < from_ns || e.slice_start_ns >= to_ns; });
  return out;
}

std::optional<std::vector<std::uint8_t>> RawSliceRing::read(const RingEntry& entry) const {
  std::lock_guard lock(mutex_);
  // Held while reading: the ring thread cannot overwrite these bytes meanwhile.
  const bool live = std::any_of(live_.begin(), live_.end(), [&](const RingEntry& e) { return e.sequence == entry.sequence; });
  if (!live) return std::nullopt;
  std::vector<std::uint8_t> bytes(entry.bytes);
  if (!detail::pread_fully(data_fd_, bytes.data(), bytes.size(), entry.offset) || checksum_of(bytes) != entry.checksum)
    return std::nullopt;
  return bytes;
}

RingFill RawSliceRing::fill() const {
  std::lock_guard lock(mutex_);
  RingFill f;
  f.slices = live_.size();
  for (const RingEntry& e : live_) {
    f.bytes += e.bytes;
    f.oldest_ns = f.oldest_ns == 0 ? e.slice_start_ns : std::min(f.oldest_ns, e.slice_start_ns);
    f.newest_ns = std::max(f.newest_ns, e.slice_start_ns);
  }
  return f;
}

RawSliceRingCounters RawSliceRing::counters() const {
  std::lock_guard lock(mutex_);
  return counters_;
}

std::vector<std::string> RawSliceRing::verify() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> problems;
  std::vector<bool> used(slots_, false);
  for (std::size_t i = 0; i < live_.size(); ++i) {
    const RingEntry& e = live_[i];
    const auto slot = static_cast<std::uint32_t>(e.sequence % slots_);
    used[slot] = true;
    const auto on_disk = read_slot(slot);
    if (!on_disk || on_disk->sequence != e.sequence || on_disk->offset != e.offset || on_disk->checksum != e.checksum)
      problems.push_back("slice " + std::to_string(e.sequence) + ": its index slot does not match");
    std::vector<std::uint8_t> bytes(e.bytes);
    if (!detail::pread_fully(data_fd_, bytes.data(), bytes.size(), e.offset) || checksum_of(bytes) != e.checksum)
      problems.push_back("slice " + std::to_string(e.sequence) + ": its bytes do not match the checksum");
    for (std::size_t j = i + 1; j < live_.size(); ++j) {
      if (overlaps(live_[j], e.offset, e.bytes))
        problems.push_back("slices " + std::to_string(e.sequence) + " and " + std::to_string(live_[j].sequence) + " overlap");
    }
  }
  const std::array<std::uint8_t, kSlotBytes> zero{};
  for (std::uint32_t slot = 0; slot < slots_; ++slot) {
    if (used[slot]) continue;
    std::array<std::uint8_t, kSlotBytes> s{};
    if (!detail::pread_fully(index_fd_, s.data(), s.size(), kHeaderBytes + std::uint64_t{slot} * kSlotBytes) || s != zero)
      problems.push_back("slot " + std::to_string(slot) + " holds an entry the index does not list");
  }
  return problems;
}

}  // namespace shoredaq::storage
