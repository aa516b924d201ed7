#pragma once
// The raw-data ring buffer (DESIGN.md section 4, issue 12): the last N seconds of whole L0 slices
// on local disk, each slice as the CLB records it was built from ([uint32 LE length][datagram],
// the .dqd framing: ring_dump.hpp), so a window of it can be dumped and replayed.
//
// Two preallocated files in `directory`:
//   ring.data   max_bytes, a circular log of slices (a slice never wraps: it starts at 0 instead)
//   ring.index  a header and fixed 64-byte slots, one per stored slice (slot = sequence % slots),
//               each with its own checksum and the checksum of its slice's bytes
// Bounded by detector time (slices older than `max_seconds` before the newest are dropped) and by
// bytes (a new slice overwrites the oldest ones in its way). Crash safety: before a slice's bytes
// are written, the slots of the slices it overwrites are cleared; its own slot is written last.
// After a kill -9 (or a power cut) the index is rebuilt from the slots whose checksum and slice
// checksum hold, so a torn last entry is dropped, never read; the slots of dropped entries are
// cleared, which leaves the index consistent (verify()).
//
// Plain and synchronous (no threads; the node's ring thread calls append()). Thread-safe: a
// mutex guards the index, so a dump may read() while the ring thread appends.

#include <cstdint>
#include <deque>
#include <filesystem>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace shoredaq::storage {

class RingError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct RawSliceRingConfig {
  std::filesystem::path directory;
  std::uint64_t max_bytes = std::uint64_t{4} << 30;  // size of ring.data (preallocated)
  std::uint32_t max_seconds = 60;                    // detector time kept
  // Index slots: 0 = twice the slices of max_seconds (slices may arrive a little out of order).
  std::uint32_t slots = 0;
};

// Where a stored slice is and what it is.
struct RingEntry {
  std::uint64_t sequence = 0;        // order of arrival
  std::uint64_t slice_start_ns = 0;  // UTC, Unix ns
  std::int32_t detector_id = 0;
  std::uint32_t run = 0;
  std::uint32_t frame_index = 0;
  std::uint32_t records = 0;  // CLB datagrams in it
  std::uint64_t offset = 0;   // in ring.data
  std::uint32_t bytes = 0;
  std::uint64_t checksum = 0;  // XXH3-64 of the bytes
};

// What append() is told about a slice besides its bytes.
struct RingSliceMeta {
  std::uint64_t slice_start_ns = 0;
  std::int32_t detector_id = 0;
  std::uint32_t run = 0;
  std::uint32_t frame_index = 0;
  std::uint32_t records = 0;
};

enum class RingAppendStatus : std::uint8_t {
  Stored,
  TooLarge,     // larger than the whole ring
  TooOld,       // older than max_seconds before the newest slice
  WriteFailed,  // pwrite failed (disk error); counted
};
const char* to_string(RingAppendStatus status) noexcept;

struct RawSliceRingCounters {
  std::uint64_t slices_stored = 0, bytes_stored = 0;
  std::uint64_t evicted_by_time = 0, evicted_by_space = 0, evicted_by_slots = 0;
  std::uint64_t refused_too_large = 0, refused_too_old = 0, write_errors = 0;
  std::uint64_t recovered_slices = 0;        // found whole at start-up
  std::uint64_t recovery_dropped_slices = 0;  // torn or overwritten entries dropped at start-up
};

struct RingFill {
  std::uint64_t slices = 0, bytes = 0;
  std::uint64_t oldest_ns = 0, newest_ns = 0;  // slice starts; 0 when empty
  std::uint64_t end_ns() const noexcept { return slices == 0 ? 0 : newest_ns + 100'000'000ull; }
};

class RawSliceRing {
 public:
  // Creates (preallocates) or opens and recovers the ring. A ring made with another max_bytes or
  // slot count is started afresh (logged). Throws RingError.
  explicit RawSliceRing(RawSliceRingConfig config);
  ~RawSliceRing();
  RawSliceRing(const RawSliceRing&) = delete;
  RawSliceRing& operator=(const RawSliceRing&) = delete;

  RingAppendStatus append(const RingSliceMeta& meta, std::span<const std::uint8_t> records);

  // The stored slices, by slice time (then arrival).
  std::vector<RingEntry> entries() const;
  std::vector<RingEntry> entries_between(std::uint64_t from_ns, std::uint64_t to_ns) const;  // start in [from, to)
  // A stored slice's bytes, checked against its checksum; nullopt when it was overwritten since
  // entries() or does not match.
  std::optional<std::vector<std::uint8_t>> read(const RingEntry& entry) const;
  RingFill fill() const;
  RawSliceRingCounters counters() const;
  const RawSliceRingConfig& config() const noexcept { return config_; }
  std::uint32_t slot_count() const noexcept { return slots_; }

  // Checks the index against the disk: every live entry's slot and bytes, no two entries
  // overlapping, every other slot cleared. Empty = consistent; otherwise what is wrong.
  std::vector<std::string> verify() const;

 private:
  void open_files();
  void recover();
  void clear_slot(std::uint64_t sequence);
  void write_slot(const RingEntry& entry);
  std::optional<RingEntry> read_slot(std::uint32_t slot) const;
  void evict_older_than_window();

  RawSliceRingConfig config_;
  std::uint32_t slots_ = 0;
  int data_fd_ = -1, index_fd_ = -1;
  mutable std::mutex mutex_;
  std::deque<RingEntry> live_;  // by sequence
  std::uint64_t next_sequence_ = 1;
  std::uint64_t write_offset_ = 0;  // where the next slice goes
  std::uint64_t newest_ns_ = 0;
  RawSliceRingCounters counters_;
};

}  // namespace shoredaq::storage
