#pragma once
// The Tier-0 spool (DESIGN.md section 4): per run, rolling files
// `KM3NeT_<det 8 digits>_<run 8 digits>_<part 4 digits>.daq` of preamble-framed online events and
// summary slices, so the collaboration's readers work on them unchanged.
//   spool/open/   the part being written
//   spool/ready/  sealed parts (fsync, atomic rename, directory fsync) + `<file>.json` manifest
//                 (size, counts, frame range, adler32, md5); `<run prefix>.run.json` lists every
//                 part once the run ended
//   spool/done/   parts the transfer agent has confirmed at the computing centre (moved there by
//                 the agent, or by ack()); only then may the store prune the run
// At start-up, leftovers in open/ from a crash are sealed (their valid objects) and any torn tail
// is kept as `<file>.partial` in spool/damaged/ — nothing is dropped silently.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "shoredaq/dataflow/event.hpp"
#include "shoredaq/dataflow/summary_slice.hpp"
#include "shoredaq/storage/checksums.hpp"

namespace shoredaq::storage {

struct Tier0SpoolConfig {
  std::filesystem::path directory;                       // the spool root
  std::int32_t detector_id = 0;
  std::uint64_t max_file_bytes = std::uint64_t{2} << 30;  // roll when the next object would pass this
  std::chrono::seconds max_file_age{3600};                // roll a part open this long
  std::size_t write_buffer_bytes = std::size_t{1} << 20;  // bytes gathered before a write(2)
  bool fsync = true;                                      // off only in tests/benchmarks
};

struct SpoolPartInfo {
  std::string file;  // file name (no directory)
  std::uint32_t run = 0;
  std::uint32_t part = 0;
  std::uint64_t bytes = 0;
  std::uint64_t events = 0;
  std::uint64_t summary_slices = 0;
  std::uint32_t first_frame = 0, last_frame = 0;  // meaningful when events + summary_slices > 0
  std::string adler32, md5;
  bool recovered = false;           // sealed at start-up after a crash
  std::uint64_t damaged_bytes = 0;  // torn tail kept in damaged/ (recovery only)
};

struct Tier0SpoolCounters {
  std::uint64_t events_written = 0, summaries_written = 0, bytes_written = 0;
  std::uint64_t parts_sealed = 0, parts_recovered = 0, damaged_bytes = 0;
  std::uint64_t runs_ended = 0, acks = 0;
  std::uint64_t write_errors = 0;  // I/O failures (each also throws)
};

class SpoolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Tier0Spool {
 public:
  // Creates open/, ready/, done/, damaged/ and recovers leftovers in open/. Throws SpoolError.
  explicit Tier0Spool(Tier0SpoolConfig config);
  ~Tier0Spool();  // seals the open part (a clean stop without end_run leaves no open file)
  Tier0Spool(const Tier0Spool&) = delete;
  Tier0Spool& operator=(const Tier0Spool&) = delete;

  // Starts a run; a run already in progress is ended first. Parts continue after any already
  // present for this run number (e.g. recovered ones).
  void begin_run(std::uint32_t run);
  // One slice's output, in frame order. Throws SpoolError on I/O failure (counted).
  void write_slice(std::span<const dataflow::Event> events, const dataflow::SummarySlice* summary);
  void write_event(const dataflow::Event& event);
  void write_summary(const dataflow::SummarySlice& summary);
  // Seals a part open longer than max_file_age (call from a timer; writes call it too).
  void roll_if_due();
  // Seals the open part and writes the end-of-run manifest listing every part of the run.
  void end_run();

  // The transfer agent's confirmation: moves ready/<file> and its manifest into done/.
  // False if the file is not in ready/.
  bool ack(const std::string& file_name);
  // True when the run has its end-of-run manifest and every listed part is in done/.
  bool transferred(std::uint32_t run) const;

  std::optional<std::uint32_t> current_run() const noexcept { return run_; }
  std::vector<SpoolPartInfo> sealed_parts() const noexcept { return sealed_; }  // this process's + recovered
  const Tier0SpoolCounters& counters() const noexcept { return counters_; }
  const Tier0SpoolConfig& config() const noexcept { return config_; }

  std::filesystem::path open_dir() const { return config_.directory / "open"; }
  std::filesystem::path ready_dir() const { return config_.directory / "ready"; }
  std::filesystem::path done_dir() const { return config_.directory / "done"; }
  std::filesystem::path damaged_dir() const { return config_.directory / "damaged"; }

  static std::string part_file_name(std::int32_t detector_id, std::uint32_t run, std::uint32_t part);
  static std::string run_manifest_name(std::int32_t detector_id, std::uint32_t run);
  // Parses a part file name; nullopt if it is not one.
  struct ParsedName {
    std::int32_t detector_id;
    std::uint32_t run, part;
  };
  static std::optional<ParsedName> parse_part_file_name(const std::string& name);

 private:
  void append_object(const std::vector<std::uint8_t>& object, std::uint32_t frame, bool is_event);
  void open_part();
  void seal_part();
  void flush();
  void recover();
  SpoolPartInfo scan_crashed_part(const std::filesystem::path& path, const ParsedName& parsed);
  void write_run_manifest(std::uint32_t run, bool recovered);
  std::uint32_t next_part_number(std::uint32_t run) const;

  Tier0SpoolConfig config_;
  Tier0SpoolCounters counters_;
  std::optional<std::uint32_t> run_;
  // The open part.
  int fd_ = -1;
  SpoolPartInfo part_;
  Adler32 adler_;
  Md5 md5_;
  std::vector<std::uint8_t> buffer_;
  std::chrono::steady_clock::time_point opened_at_;
  std::uint32_t next_part_ = 0;
  std::vector<SpoolPartInfo> sealed_;
  std::vector<std::uint8_t> scratch_;
};

}  // namespace shoredaq::storage
