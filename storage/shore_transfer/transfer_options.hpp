#pragma once
// shore-transfer's settings: a TOML file (shore-transfer.example.toml documents every key, its
// default and range) and command-line options of the same names, which win over the file.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

#include "shoredaq/storage/tier0_transfer.hpp"
#include "xrootd_remote.hpp"

namespace shoredaq::transfer {

struct TransferOptions {
  // [transfer]
  std::filesystem::path spool_dir = "/var/lib/shoredaq/spool";  // the node's spool (ready/, done/)
  std::string endpoint;                                         // root://host[:port] (required)
  std::string path_template = storage::kDefaultRemotePathTemplate;
  unsigned parallel = 2;                      // files sent at once, 1..64
  std::uint64_t bandwidth_limit_kib_s = 0;    // all transfers together, KiB/s; 0 = no limit
  std::uint64_t retry_initial_ms = 10'000;    // wait after a file's first failure (then doubled)
  std::uint64_t retry_max_ms = 600'000;       // cap of that wait
  std::uint32_t alarm_after_failures = 5;     // failed attempts in a row at one file that raise the alarm
  std::uint64_t poll_interval_ms = 2'000;     // how often ready/ is looked at, and the status file written
  std::uint64_t connect_timeout_s = 15;       // a server that does not answer counts as down after this
  std::uint64_t request_timeout_s = 120;      // one request (a write, a checksum) may take this long
  std::uint64_t chunk_kib = 4'096;            // bytes per write request (smaller under a low bandwidth limit)
  std::string log_level = "info";             // trace, debug, info, warn, error
  // [retention] of done/ (files verified at the computing centre)
  std::uint64_t retention_max_age_days = 30;  // 0 = keep regardless of age
  std::uint64_t retention_max_gib = 0;        // 0 = no size limit

  storage::Tier0TransferConfig agent_config() const;
  XrootdTimeouts timeouts() const;
};

// Reads a TOML file into `options`. Unknown keys and out-of-range values are refused with the
// key's path (std::runtime_error).
void load_options_file(const std::filesystem::path& file, TransferOptions& options);
// Cross-checks of the final options (endpoint, template, ranges); throws std::runtime_error.
void check_options(const TransferOptions& options);

}  // namespace shoredaq::transfer
