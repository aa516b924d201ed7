#pragma once
// The acoustic spool (DESIGN.md section 4: acoustic datagrams into their own sealed spool stream):
// per run, rolling files `KM3NeT_<det 8>_<run 8>_<part 4>.acoustic.dqd` of the DOMs' TAES datagrams
// as received, each framed as a .dqd record ([uint32 LE length][datagram]), so a part replays
// unchanged (du-sim --replay, DqdFileReader) for the acoustic positioning system.
//
// It shares the Tier-0 spool's directories and life cycle: a part is written in open/, fsync'ed and
// renamed into ready/ with a manifest `<file>.json` (tier0_manifest.hpp, schema
// storage/schema/tier0_manifest.schema.json: data_type "acoustic", format "clb-records",
// `datagrams` and `datagrams_per_dom`), and moved to done/ by the transfer agent like a run file.
// When a run ends its parts are listed in `KM3NeT_<det>_<run>.acoustic.run.json`. At
// construction, parts a crash left in open/ are sealed (their whole records; a torn tail is kept
// in damaged/) and runs cut short get their run manifest. The Tier-0 spool leaves these files alone.
//
// Threads: thread-safe. write() never touches the disk: it appends the record to a batch in
// memory (at most max_pending_bytes; past it a datagram is lost, counted), so the node's builder
// thread can call it for every TAES datagram. flush_if_due() writes the batch and seals parts:
// call it from a thread that may wait on the disk (the run files' queue thread, a timer), at
// least every flush_interval. A failed write (disk full) cuts the file back to its last whole
// record and counts the rest of that batch as lost (acoustic data are not held while the disk is
// full; the next batch tries again), so a sealed part always matches its manifest byte for byte.
// Nothing here throws for a full disk.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "shoredaq/formats/counter_set.hpp"
#include "shoredaq/storage/checksums.hpp"
#include "shoredaq/storage/tier0_manifest.hpp"
#include "shoredaq/storage/tier0_spool.hpp"

namespace shoredaq::storage {

struct AcousticSpoolConfig {
  std::filesystem::path directory;                          // the spool root (the Tier-0 spool's)
  std::uint64_t max_file_bytes = std::uint64_t{1} << 30;    // roll when the next batch would pass this
  std::chrono::seconds max_file_age{3600};                  // roll a part open this long
  std::chrono::milliseconds flush_interval{1000};           // flush_if_due() writes a batch this old
  std::size_t write_buffer_bytes = std::size_t{1} << 20;    // ... or this large
  // Batch held in memory between two flushes; a datagram that does not fit is lost (counted).
  std::size_t max_pending_bytes = std::size_t{32} << 20;
  std::size_t max_datagram_bytes = 65'535;  // larger "datagrams" are refused as bad (a UDP payload is smaller)
  bool fsync = true;                        // off only in tests/benchmarks
  SpoolWriteFunction write;                 // replaces ::write for the part files (tests); empty = ::write
};

struct AcousticSpoolCounters {
  std::uint64_t datagrams_accepted = 0;                    // into the batch
  std::uint64_t datagrams_written = 0, bytes_written = 0;  // whole in a part file (fsync'ed at seal)
  // Lost for good: the batch was full, or writing it failed (disk full, part not creatable).
  std::uint64_t datagrams_lost = 0, bytes_lost = 0;
  std::uint64_t datagrams_outside_run = 0;  // arrived with no run open
  std::uint64_t datagrams_bad = 0;          // not TAES, shorter than a CLB header, or too large
  std::uint64_t write_errors = 0;           // failed create/write/fsync/rename calls
  std::uint64_t parts_sealed = 0, parts_recovered = 0, damaged_bytes = 0, runs_ended = 0;
};

// One DOM's datagrams in the current (or last) run.
struct AcousticDomCounts {
  std::uint64_t written = 0;  // whole in a part file
  std::uint64_t lost = 0;     // counted in datagrams_lost
  friend bool operator==(const AcousticDomCounts&, const AcousticDomCounts&) = default;
};

enum class AcousticWriteStatus : std::uint8_t {
  Accepted,    // in the batch; in the file after the next due flush_if_due()
  Lost,        // the batch is full (flushes do not keep up with the disk): counted
  OutsideRun,  // no run open: counted
  Bad,         // not a TAES datagram (or too short/large): counted
};

class AcousticSpool {
 public:
  // Creates open/, ready/, done/, damaged/, runs/ and recovers acoustic parts left in open/.
  // Throws SpoolError when a directory cannot be made or a recovered part cannot be sealed.
  explicit AcousticSpool(AcousticSpoolConfig config);
  ~AcousticSpool();  // writes and seals what is open (a run not ended keeps no open file)
  AcousticSpool(const AcousticSpool&) = delete;
  AcousticSpool& operator=(const AcousticSpool&) = delete;

  // Starts a run (one in progress is ended first); parts continue after any already present for
  // this detector and run. `provenance` goes into every manifest (software_version completed)
  // and into runs/ until end_run(), for recovery. Throws SpoolError if that record cannot be written.
  void begin_run(std::uint32_t run, std::int32_t detector_id, RunProvenance provenance = {});
  // One TAES datagram as received (CLB header included) of DOM `dom_id`. Never blocks on the
  // disk, never throws.
  AcousticWriteStatus write(std::span<const std::uint8_t> datagram, std::uint32_t dom_id) noexcept;
  // Writes the batch once it is flush_interval old or write_buffer_bytes large, and seals a part
  // open for max_file_age. Never throws: failures are counted and logged.
  void flush_if_due(std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now()) noexcept;
  // Writes what is batched, seals the open part and writes the run's acoustic run manifest.
  // Never throws for a full disk (the batch is then counted lost); throws SpoolError when the run
  // manifest cannot be written (the next start closes the run).
  void end_run();

  std::optional<std::uint32_t> current_run() const;
  AcousticSpoolCounters counters() const;      // since construction
  AcousticSpoolCounters run_counters() const;  // since begin_run
  std::map<std::uint32_t, AcousticDomCounts> dom_counts() const;  // of the current (or last) run
  std::vector<SpoolPartInfo> sealed_parts() const;  // this process's + recovered
  std::size_t pending_bytes() const;               // batched, not yet written

  std::filesystem::path open_dir() const { return config_.directory / "open"; }
  std::filesystem::path ready_dir() const { return config_.directory / "ready"; }
  std::filesystem::path done_dir() const { return config_.directory / "done"; }
  std::filesystem::path damaged_dir() const { return config_.directory / "damaged"; }
  std::filesystem::path runs_dir() const { return config_.directory / "runs"; }

  // The counters in the node's idiom (counter_set.hpp), e.g. from run_counters(): acoustic.* totals,
  // drop.acoustic.datagrams_lost / datagrams_bad as datagrams lost (ingest.datagrams counts the
  // acoustic ones too), drop.acoustic.datagrams_outside_run as no loss (no run to keep them for).
  static void describe(const AcousticSpoolCounters& run, dataflow::CounterSet& out);

  static std::string part_file_name(std::int32_t detector_id, std::uint32_t run, std::uint32_t part);
  static std::string run_manifest_name(std::int32_t detector_id, std::uint32_t run);
  static std::string run_provenance_name(std::int32_t detector_id, std::uint32_t run);
  static std::optional<Tier0Spool::ParsedName> parse_part_file_name(const std::string& name);
  static std::optional<Tier0Spool::ParsedName> parse_run_provenance_name(const std::string& name);

 private:
  struct Record {  // one datagram of a batch
    std::uint32_t dom_id = 0;
    std::uint32_t bytes = 0;  // record bytes: length word + datagram
    std::uint64_t slice_start_ns = 0;
  };
  struct Batch {
    std::vector<std::uint8_t> bytes;
    std::vector<Record> records;
  };
  using Counter = std::uint64_t AcousticSpoolCounters::*;

  // With mutex_ held.
  void count(Counter counter, std::uint64_t n = 1) noexcept;
  void count_lost(const Record* first, const Record* last) noexcept;
  // With io_mutex_ held (the file side); they take mutex_ for the counters.
  void write_batch(const Batch& batch);
  bool open_part();
  void commit(const Batch& batch, std::size_t records, std::size_t bytes);
  void seal_part() noexcept;
  void end_run_locked(std::unique_lock<std::mutex>& io_lock);
  void note_failure(const std::string& what);
  // Recovery and names (acoustic_spool_recovery.cpp).
  void recover();
  SpoolPartInfo scan_crashed_part(const std::filesystem::path& path, const Tier0Spool::ParsedName& parsed);
  void write_run_manifest(std::int32_t detector_id, std::uint32_t run, bool recovered);
  std::uint32_t next_part_number(std::int32_t detector_id, std::uint32_t run) const;
  RunProvenance recorded_provenance(std::int32_t detector_id, std::uint32_t run) const;

  AcousticSpoolConfig config_;

  // Guards the run, the batch, the counters and sealed_.
  mutable std::mutex mutex_;
  std::optional<std::uint32_t> run_;
  std::int32_t detector_id_ = 0;
  RunProvenance provenance_;
  Batch batch_;
  std::chrono::steady_clock::time_point batch_started_;
  AcousticSpoolCounters counters_, run_counters_;
  std::map<std::uint32_t, AcousticDomCounts> dom_counts_;
  std::vector<SpoolPartInfo> sealed_;

  // Guards the open part; held while writing to the disk (never by write()).
  std::mutex io_mutex_;
  // The run the parts belong to: set by begin_run, kept while end_run writes its last batch.
  std::uint32_t file_run_ = 0;
  std::int32_t file_detector_id_ = 0;
  RunProvenance file_provenance_;
  int fd_ = -1;
  SpoolPartInfo part_;
  Adler32 adler_;
  Md5 md5_;
  std::chrono::steady_clock::time_point opened_at_;
  std::uint32_t next_part_ = 0;
  bool writes_failing_ = false;  // the last write failed (logged once per episode)
};

// Any sealed spool data file: a run file (.daq), an acoustic part (.acoustic.dqd) or a raw-data
// dump (.dump.dqd, ring_dump.hpp). The transfer agent moves them all.
bool is_spool_part_file_name(const std::string& name);

}  // namespace shoredaq::storage
