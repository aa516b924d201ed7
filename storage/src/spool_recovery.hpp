#pragma once
// The file-level side shared by the Tier-0 spool (tier0_spool_recovery.cpp) and the acoustic
// spool (acoustic_spool_recovery.cpp), internal to storage/src. Both keep their parts in the same
// directories with the same life cycle (open/ -> ready/ + manifest -> done/, provenance in runs/),
// so finding parts, closing runs and recovering after a crash are one piece of code; what differs
// (file names, how a part is read, what a manifest counts, the log prefix) is passed in.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "shoredaq/storage/checksums.hpp"
#include "shoredaq/storage/tier0_spool.hpp"

namespace shoredaq::storage::spool_files {

using ParsedName = Tier0Spool::ParsedName;
// A spool's static name functions (parse_part_file_name, run_manifest_name, ...).
using NameParser = std::optional<ParsedName> (*)(const std::string& name);
using RunFileNamer = std::string (*)(std::int32_t detector_id, std::uint32_t run);

// Creates each directory (and its parents). Throws SpoolError.
void create_spool_dirs(std::initializer_list<std::filesystem::path> dirs);

// One past the highest part number of the run in `dirs` (0 when it has none).
std::uint32_t next_part_number(std::initializer_list<std::filesystem::path> dirs, NameParser parse_part,
                               std::int32_t detector_id, std::uint32_t run);

// The manifests of the run's parts in ready/ and done/, by part number, each with its "file"; a
// part whose manifest is missing is listed as {"file", "manifest_missing": true}.
std::map<std::uint32_t, nlohmann::json> run_part_manifests(const std::filesystem::path& ready_dir,
                                                           const std::filesystem::path& done_dir,
                                                           NameParser parse_part, std::int32_t detector_id,
                                                           std::uint32_t run);
// Writes the run manifest `name` into ready/ atomically (and fsyncs ready/ when `sync`).
void write_run_manifest_file(const std::filesystem::path& ready_dir, const std::string& name,
                             const nlohmann::json& manifest, bool sync);

// The provenance begin_run() kept at `record`, completed; the defaults without a record (a spool
// from before provenance existed).
RunProvenance recorded_provenance(const std::filesystem::path& record);

// The start of a crashed part's description, before its content is read.
SpoolPartInfo recovered_part_info(const std::filesystem::path& path, const ParsedName& parsed,
                                  Tier0DataType data_type, RunProvenance provenance);
// The end of it, once its first `good_bytes` (whole objects or records) were checksummed: the torn
// tail goes to damaged/ (keep_torn_tail), sizes, checksums and guid are set, the part is fsync'ed
// when `sync`. Throws SpoolError when the part cannot be cut.
void finish_recovered_part(SpoolPartInfo& info, const std::filesystem::path& path, std::uint64_t good_bytes,
                           const Adler32& adler, const Md5& md5, const std::filesystem::path& damaged_dir, bool sync,
                           std::string_view spool_name);

// What an entry of open/ is to the spool recovering it.
enum class OpenEntry : std::uint8_t {
  NotOurs,    // not looked at (another spool's part: it recovers its own)
  LeftAlone,  // looked at but kept where it is (another spool's part, a ring dump)
  Unknown,    // nobody's: moved to damaged/<name>.unknown, loudly
  Part,       // one of ours: sealed into ready/
};

// A spool's start-up recovery: what differs between the spools.
struct SpoolRecovery {
  std::string_view spool_name;  // words the log lines: "tier-0 spool", "acoustic spool"
  std::filesystem::path open_dir, ready_dir, done_dir, damaged_dir, runs_dir;
  bool fsync = true;
  NameParser parse_part = nullptr;            // the spool's part names (others share the directories)
  NameParser parse_run_provenance = nullptr;  // its provenance records in runs/
  RunFileNamer run_manifest_name = nullptr;
  std::function<OpenEntry(const std::string& name)> classify_open_entry;
  // A leftover with no whole object in it is deleted rather than sealed (its bytes are in
  // damaged/ already); otherwise it is sealed empty.
  bool drop_empty_parts = false;
  std::function<SpoolPartInfo(const std::filesystem::path& path, const ParsedName& parsed)> scan_crashed_part;
  std::function<std::string(const SpoolPartInfo& part)> describe_counts;  // "12 datagrams", for the log
  std::function<void(std::int32_t detector_id, std::uint32_t run, bool recovered)> write_run_manifest;
};

// The fields both spools fill alike: directories and the spool's static name functions.
template <class Spool>
SpoolRecovery recovery_of(const Spool& spool, std::string_view spool_name, bool fsync) {
  SpoolRecovery recovery;
  recovery.spool_name = spool_name;
  recovery.open_dir = spool.open_dir();
  recovery.ready_dir = spool.ready_dir();
  recovery.done_dir = spool.done_dir();
  recovery.damaged_dir = spool.damaged_dir();
  recovery.runs_dir = spool.runs_dir();
  recovery.fsync = fsync;
  recovery.parse_part = &Spool::parse_part_file_name;
  recovery.parse_run_provenance = &Spool::parse_run_provenance_name;
  recovery.run_manifest_name = &Spool::run_manifest_name;
  return recovery;
}

// A crash can stop the writer at any point of a part's life, and each leaves its own trace:
//  - parts in open/ (the usual case): every whole object is kept, sealed into ready/ flagged
//    recovered, a torn tail moves to damaged/;
//  - a part in ready/ without its manifest (killed between the rename and the manifest);
//  - a run with parts but no run manifest (killed between two parts, or before end_run).
// At construction no run is open, so every run without a run manifest was cut short: it is
// closed, and every provenance record of the spool is removed. The detector of each part comes
// from its file name, so recovery needs no configured detector. Returns the parts sealed or given
// a manifest, in order. Throws SpoolError.
std::vector<SpoolPartInfo> recover_spool(const SpoolRecovery& spool);

}  // namespace shoredaq::storage::spool_files
