#pragma once
// The Tier-0 spool (DESIGN.md section 4): per run, rolling files
// `KM3NeT_<det 8 digits>_<run 8 digits>_<part 4 digits>.daq` of preamble-framed online objects, so
// the collaboration's readers work on them unchanged. Per slice, in frame order: its summary slice
// (2001), its events (10001), the timeslices the filters kept (prescaled L0/L1/L2, SN, the error
// stream: 1001..1005) and the DOMs' TMCH monitoring packets as received (3001, shoredaq's wrapper:
// monitoring_record.hpp). Manifests count each kind.
//   spool/open/   the part being written
//   spool/ready/  sealed parts (fsync, atomic rename, directory fsync) + `<file>.json` manifest
//                 (what a catalogue registers: tier0_manifest.hpp and the schema
//                 storage/schema/tier0_manifest.schema.json); `<run prefix>.run.json` lists every
//                 part once the run ended
//   spool/done/   parts the transfer agent has confirmed at the computing centre (moved there by
//                 the agent, or by ack()); only then may the store prune the run
//   spool/runs/   `<run prefix>.provenance.json` while a run is open: what begin_run() was told,
//                 so parts recovered after a crash carry it too
// At construction, leftovers in open/ from a crash are sealed (their valid objects) and any torn
// tail is kept as `<file>.partial` in spool/damaged/ — nothing is dropped silently. Recovery needs
// no detector id (it reads it from the file names), so the spool can be built before a run is
// configured; a run's detector comes with begin_run().
//
// Writing: a slice (all its objects) goes into a memory buffer whole, and reaches the file
// with write(2) when the buffer holds write_buffer_bytes, or when flush_if_due() finds its oldest
// byte older than flush_interval (so a kill -9 loses about flush_interval of data; fsync is done
// at seal). A failed write (disk full) keeps the unwritten bytes and resumes at the byte where it
// stopped; while writes fail, slices are still accepted ("pending") until max_pending_bytes, then
// refused whole and counted as lost. A part's checksums and counts cover the slices whose every
// byte is in its file, so a sealed part matches its manifest byte for byte; a part sealed while
// writes still fail is cut back to its last whole slice and the rest is counted as lost.
// Not thread-safe: one writer thread owns it.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "shoredaq/formats/event.hpp"
#include "shoredaq/formats/slice_products.hpp"
#include "shoredaq/formats/summary_slice.hpp"
#include "shoredaq/storage/checksums.hpp"
#include "shoredaq/storage/tier0_manifest.hpp"

namespace shoredaq::storage {

// Same contract as write(2): bytes written, or -1 with errno set.
using SpoolWriteFunction = std::function<ssize_t(int fd, const void* data, std::size_t bytes)>;

struct Tier0SpoolConfig {
  std::filesystem::path directory;  // the spool root
  // Detector of begin_run(run) without a detector id (the daemon's current call); recovery and
  // begin_run(run, detector_id) do not use it.
  std::int32_t detector_id = 0;
  std::uint64_t max_file_bytes = std::uint64_t{2} << 30;  // roll when the next slice would pass this
  std::chrono::seconds max_file_age{3600};                // roll a part open this long
  std::size_t write_buffer_bytes = std::size_t{1} << 20;  // bytes gathered before a write(2)
  // flush_if_due() writes the buffer once its oldest byte is this old: what a kill -9 may lose.
  std::chrono::milliseconds flush_interval{1000};
  // Unwritten bytes held in memory while writes fail (disk full); past it new slices are refused
  // whole and counted as lost. A roll waits for the pending bytes to be written, so a part may
  // pass max_file_bytes by up to this much.
  std::size_t max_pending_bytes = std::size_t{64} << 20;
  bool fsync = true;  // off only in tests/benchmarks
  // Replaces ::write for the part files (tests inject short writes, EINTR, ENOSPC). Empty = ::write.
  SpoolWriteFunction write;
};

struct SpoolPartInfo {
  std::string file;  // file name (no directory)
  // Events for a run file (.daq, online objects), Acoustic for an acoustic part (.acoustic.dqd).
  Tier0DataType data_type = Tier0DataType::Events;
  std::int32_t detector_id = 0;
  std::uint32_t run = 0;
  std::uint32_t part = 0;
  std::uint64_t bytes = 0;
  std::uint64_t events = 0;
  std::uint64_t summary_slices = 0;
  TimesliceCounts timeslices;           // kept timeslices per stream
  std::uint64_t monitoring_packets = 0;  // TMCH packets (monitoring_record.hpp)
  std::uint64_t supernova_alerts = 0;    // SN alerts (supernova_alert_record.hpp)
  std::uint64_t datagrams = 0;           // acoustic parts: TAES records
  std::map<std::uint32_t, std::uint64_t> datagrams_per_dom;  // acoustic parts: records by DOM id
  std::uint32_t first_frame = 0, last_frame = 0;  // meaningful when a run file holds objects()
  // UTC of the first slice's start and of the last slice's end (start + 100 ms), Unix ns;
  // meaningful when objects() > 0.
  std::uint64_t utc_start_ns = 0, utc_end_ns = 0;
  TriggerEventCounts events_per_trigger;
  std::string adler32, md5;
  std::string guid;            // random UUID (v4) given at seal time
  RunProvenance provenance;    // of the run, software_version filled in
  bool recovered = false;           // sealed at start-up after a crash
  std::uint64_t damaged_bytes = 0;  // torn tail kept in damaged/ (recovery only)

  std::uint64_t objects() const noexcept {
    return events + summary_slices + timeslices.total() + monitoring_packets + supernova_alerts + datagrams;
  }
};

struct Tier0SpoolCounters {
  // Slices whose every byte was written (write(2)) to a part file; fsync'ed when the part is sealed.
  std::uint64_t slices_written = 0, events_written = 0, summaries_written = 0, bytes_written = 0;
  std::uint64_t timeslices_written = 0, monitoring_written = 0;  // all kinds of timeslices; TMCH packets
  // Lost for good: refused whole (pending bytes at max_pending_bytes, part not creatable), or still
  // unwritten when their part had to be sealed.
  std::uint64_t slices_lost = 0, events_lost = 0, summaries_lost = 0, bytes_lost = 0;
  std::uint64_t timeslices_lost = 0, monitoring_lost = 0;
  std::uint64_t write_errors = 0;    // failed write(2)/create calls; their data is retried or counted lost
  std::uint64_t partial_writes = 0;  // short writes, resumed at the byte where they stopped
  std::uint64_t parts_sealed = 0, parts_recovered = 0, damaged_bytes = 0;
  std::uint64_t runs_ended = 0, acks = 0;
};

// What became of one slice handed to the spool.
enum class SpoolSliceStatus : std::uint8_t {
  Accepted,  // written, or buffered while writes work (in the file within flush_interval)
  Pending,   // accepted while writes fail: held in memory, written when space comes back; counted
             // lost if its part must be sealed first (end_run while the disk is still full)
  Lost,      // refused whole (counted in slices_lost): nothing of it is in the file
};
const char* to_string(SpoolSliceStatus status) noexcept;

struct SpoolSliceResult {
  SpoolSliceStatus status = SpoolSliceStatus::Accepted;
  std::string reason;  // the failure behind Pending/Lost (e.g. "write ...: No space left on device")
};

class SpoolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Tier0Spool {
 public:
  // Creates open/, ready/, done/, damaged/ and recovers leftovers in open/ (of any detector).
  // Throws SpoolError.
  explicit Tier0Spool(Tier0SpoolConfig config);
  ~Tier0Spool();  // seals the open part (a clean stop without end_run leaves no open file)
  Tier0Spool(const Tier0Spool&) = delete;
  Tier0Spool& operator=(const Tier0Spool&) = delete;

  // Starts a run of `detector_id`; a run already in progress is ended first. Parts continue after
  // any already present for this detector and run (e.g. recovered ones). `provenance` goes into
  // every manifest of the run (an empty software_version becomes shoredaq::version()); it is
  // kept in runs/ until end_run() so parts recovered after a crash carry it too. Throws
  // SpoolError when that record cannot be written.
  void begin_run(std::uint32_t run, std::int32_t detector_id, RunProvenance provenance);
  void begin_run(std::uint32_t run, std::int32_t detector_id) { begin_run(run, detector_id, RunProvenance{}); }
  void begin_run(std::uint32_t run) { begin_run(run, config_.detector_id); }

  // One slice's output, in frame order, whole or not at all. A full disk gives Pending/Lost, not an
  // exception; throws SpoolError outside a run, on a write error no retry can cure (EBADF, EINVAL),
  // or when a roll cannot seal the full part (fsync, rename or manifest failed: the part is
  // recovered at the next start).
  SpoolSliceResult write_slice(std::span<const dataflow::Event> events, const dataflow::SummarySlice* summary);
  // The same with every object of the slice: summary, events, kept timeslices, monitoring packets.
  SpoolSliceResult write_slice(const dataflow::SliceProducts& slice);
  SpoolSliceResult write_event(const dataflow::Event& event);  // a slice of one event
  SpoolSliceResult write_summary(const dataflow::SummarySlice& summary);
  // write(2)s the buffer when its oldest byte is flush_interval old, and retries failed writes.
  // The writer calls it once per slice (and may from a timer on its own thread). No fsync.
  void flush_if_due(std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now());
  // Seals a part open longer than max_file_age (writes call it too). Waits while writes fail.
  void roll_if_due(std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now());
  // Seals the open part and writes the end-of-run manifest listing every part of the run. Slices
  // still unwritten (disk full) are counted as lost and cut off whole. Throws SpoolError when the
  // seal or a manifest cannot be written (the next start recovers the part and closes the run).
  void end_run();

  // The transfer agent's confirmation: moves ready/<file> and its manifest into done/.
  // False if the file is not in ready/.
  bool ack(const std::string& file_name);
  // True when run `run` has its end-of-run manifest and every listed part reached done/ (for every
  // detector that has this run number in the spool; false if none has). A part whose data the
  // transfer agent's retention pruned from done/ still counts: its manifest stays there.
  bool transferred(std::uint32_t run) const;

  std::optional<std::uint32_t> current_run() const noexcept { return run_; }
  std::int32_t current_detector_id() const noexcept { return detector_id_; }  // of the current/last run
  const RunProvenance& current_provenance() const noexcept { return provenance_; }  // completed
  std::vector<SpoolPartInfo> sealed_parts() const noexcept { return sealed_; }  // this process's + recovered
  const Tier0SpoolCounters& counters() const noexcept { return counters_; }        // since construction
  const Tier0SpoolCounters& run_counters() const noexcept { return run_counters_; }  // since begin_run
  // Bytes accepted but not yet in the file; more than a buffer's worth only while writes fail.
  std::size_t pending_bytes() const noexcept { return buffer_.size() - written_; }
  bool writes_failing() const noexcept { return writes_failing_; }
  const Tier0SpoolConfig& config() const noexcept { return config_; }

  std::filesystem::path open_dir() const { return config_.directory / "open"; }
  std::filesystem::path ready_dir() const { return config_.directory / "ready"; }
  std::filesystem::path done_dir() const { return config_.directory / "done"; }
  std::filesystem::path damaged_dir() const { return config_.directory / "damaged"; }
  std::filesystem::path runs_dir() const { return config_.directory / "runs"; }

  static std::string part_file_name(std::int32_t detector_id, std::uint32_t run, std::uint32_t part);
  static std::string run_manifest_name(std::int32_t detector_id, std::uint32_t run);
  static std::string run_provenance_name(std::int32_t detector_id, std::uint32_t run);
  // Parses a part (or run manifest) file name; nullopt if it is not one.
  struct ParsedName {
    std::int32_t detector_id;
    std::uint32_t run, part;
  };
  static std::optional<ParsedName> parse_part_file_name(const std::string& name);
  static std::optional<ParsedName> parse_run_manifest_name(const std::string& name);  // part = 0
  static std::optional<ParsedName> parse_run_provenance_name(const std::string& name);  // part = 0

 private:
  // A slice in buffer_ not yet wholly in the file: [begin, end) offsets into buffer_.
  struct BufferedSlice {
    std::size_t begin = 0, end = 0;
    std::uint32_t first_frame = 0, last_frame = 0;
    std::uint64_t utc_start_ns = 0, utc_end_ns = 0;
    std::uint32_t events = 0, summaries = 0, monitoring = 0, supernova_alerts = 0;
    std::array<std::uint32_t, kTimesliceKinds> timeslices{};
    TriggerEventCounts events_per_trigger;

    std::uint64_t objects() const noexcept;
    std::uint64_t timeslice_total() const noexcept;
    void note_header(const dataflow::SliceHeader& header) noexcept;  // frame and UTC range
  };
  using Counter = std::uint64_t Tier0SpoolCounters::*;

  void count(Counter counter, std::uint64_t n = 1) noexcept;
  SpoolSliceResult append_slice(BufferedSlice& slice);  // scratch_ holds the slice's bytes
  void count_lost(const BufferedSlice& slice, std::size_t bytes) noexcept;
  SpoolSliceResult lose(const BufferedSlice& slice, std::size_t bytes);
  void note_write_failure(std::string text);
  void note_writes_work();
  bool open_part();
  std::size_t buffered_from() const noexcept;  // offset in buffer_ of the first slice not yet in the part
  bool write_buffered();
  void commit_written_slices();
  void drop_unwritten_slices();
  void try_roll();
  void seal_part();
  void recover();
  SpoolPartInfo scan_crashed_part(const std::filesystem::path& path, const ParsedName& parsed);
  void write_run_manifest(std::int32_t detector_id, std::uint32_t run, bool recovered);
  std::uint32_t next_part_number(std::int32_t detector_id, std::uint32_t run) const;
  RunProvenance recorded_provenance(std::int32_t detector_id, std::uint32_t run) const;

  Tier0SpoolConfig config_;
  Tier0SpoolCounters counters_, run_counters_;
  std::optional<std::uint32_t> run_;
  std::int32_t detector_id_ = 0;
  RunProvenance provenance_;
  // The open part: part_ counts only the slices wholly in its file (what its manifest will say).
  int fd_ = -1;
  SpoolPartInfo part_;
  Adler32 adler_;
  Md5 md5_;
  std::chrono::steady_clock::time_point opened_at_;
  std::uint32_t next_part_ = 0;
  // Bytes not yet in the file: buffer_[written_, end). Bytes before it are in the file; they stay
  // in buffer_ until their slice is whole in the file and has been checksummed.
  std::vector<std::uint8_t> buffer_;
  std::size_t written_ = 0;
  std::deque<BufferedSlice> buffered_slices_;
  std::chrono::steady_clock::time_point oldest_buffered_at_;
  bool writes_failing_ = false;
  std::string write_failure_;          // errno text of the last failure
  std::uint64_t failed_attempts_ = 0;  // in the current failure episode (logged when it ends)
  std::uint64_t lost_in_episode_ = 0;  // slices lost in the current failure episode
  std::vector<SpoolPartInfo> sealed_;
  std::vector<std::uint8_t> scratch_;
};

}  // namespace shoredaq::storage
