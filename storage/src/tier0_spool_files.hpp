#pragma once
// File helpers of the Tier-0 spool (internal to storage/src): error texts, small files written
// durably (manifests), manifest JSON, and the frame index of an online object.

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

nlohmann::json part_to_json(const SpoolPartInfo& part);
std::optional<nlohmann::json> read_json(const std::filesystem::path& path);

// Frame index of an online event or summary slice: preamble (8), version (2), detector, run, frame.
std::optional<std::uint32_t> online_frame_of(std::span<const std::uint8_t> object);

}  // namespace shoredaq::storage::spool_files
