#pragma once
// File helpers of the Tier-0 spool (internal to storage/src): error texts, small files written
// durably (manifests), manifest JSON (storage/schema/tier0_manifest.schema.json), the run's
// provenance record, and the header fields of an online object.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>

#include <nlohmann/json.hpp>

#include "shoredaq/storage/tier0_spool.hpp"

namespace shoredaq::storage::spool_files {

// "<what> <path>: <strerror(error)>"
std::string errno_text(const std::string& what, const std::filesystem::path& path, int error);

// Throws SpoolError.
void fsync_dir(const std::filesystem::path& dir);
// Writes a file next to its final name, fsyncs it (when `sync`), renames it into place (atomic
// for readers). Throws SpoolError.
void write_file_atomically(const std::filesystem::path& path, const std::string& text, bool sync);

// A part a crash left in open/: cuts `path` back to its first `good_bytes` (its whole objects or
// records) and keeps the torn tail as <damaged_dir>/<name>.partial, so nothing read from the disk
// is thrown away. Returns the bytes moved (0: the file was whole). Throws SpoolError when the file
// cannot be cut. `spool_name` words the log line ("tier-0 spool", "acoustic spool").
std::uint64_t keep_torn_tail(const std::filesystem::path& path, std::uint64_t good_bytes,
                             const std::filesystem::path& damaged_dir, bool sync, std::string_view spool_name);
// fsync(2) of a file by its path, best effort (a recovered part before it is listed as sealed).
void fsync_file(const std::filesystem::path& path) noexcept;

// The part's manifest (every field of the schema).
nlohmann::json part_to_json(const SpoolPartInfo& part);
// {"error": n, "l0": n, "l1": n, "l2": n, "sn": n}; reading skips what is missing (older manifests).
nlohmann::json timeslices_to_json(const TimesliceCounts& counts);
TimesliceCounts timeslices_from_json(const nlohmann::json& j);
std::optional<nlohmann::json> read_json(const std::filesystem::path& path);

// A run's provenance as kept in spool/runs/ while the run is open (recovery reads it back).
nlohmann::json provenance_to_json(const RunProvenance& provenance);
RunProvenance provenance_from_json(const nlohmann::json& j);
// The provenance with its defaults filled in (software_version = this build's version).
RunProvenance completed(RunProvenance provenance);

// Moves a sealed part and its manifest from ready/ into done/ (data first: a manifest in done/
// means the data got there) and syncs both directories. Throws SpoolError. False when the part
// is not in ready/.
bool move_part_to_done(const std::filesystem::path& spool_dir, const std::string& file_name, bool sync);

// Header fields of an online event or summary slice: preamble (8), version (2), detector, run,
// frame, UTC seconds, 16 ns ticks; an event's trigger mask follows the header and its counter.
std::optional<std::uint32_t> online_frame_of(std::span<const std::uint8_t> object);
std::optional<std::uint64_t> online_slice_start_ns_of(std::span<const std::uint8_t> object);
std::optional<std::uint64_t> online_event_trigger_mask_of(std::span<const std::uint8_t> object);

}  // namespace shoredaq::storage::spool_files
