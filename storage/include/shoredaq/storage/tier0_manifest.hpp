#pragma once
// The Tier-0 manifest of a sealed spool file: what a file catalogue (Rucio) needs to register it
// (scope, name, bytes, adler32, md5, guid) and what a physicist needs to find it (detector, run,
// frames, UTC range, events per trigger, data type, format and software version, provenance).
// The contract is the JSON schema storage/schema/tier0_manifest.schema.json; the spool writes
// manifests (`ready/<file>.json`), shore-transfer reads them, and validate_tier0_manifest() here
// checks the same rules as the schema, so a manifest the node writes is one the catalogue accepts.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shoredaq::storage {

inline constexpr int kTier0ManifestVersion = 1;
inline constexpr int kTier0FormatVersion = 1;  // layout of a .daq part: preamble-framed online objects
inline constexpr const char* kTier0Format = "km3net-online";
// The acoustic parts (acoustic_spool.hpp): records [uint32 LE length][CLB datagram], as a .dqd file.
inline constexpr const char* kTier0RecordsFormat = "clb-records";
inline constexpr const char* kDefaultRucioScope = "km3net";

// What the spool cannot know about a run: told by run control with Tier0Spool::begin_run().
struct RunProvenance {
  std::string scope = kDefaultRucioScope;  // Rucio scope of the run's files (1..25 of [A-Za-z0-9_.-])
  std::string run_type;                    // e.g. "physics", "calibration"; "" = not told (null)
  std::string software_version;            // "" = this build's shoredaq::version()
  std::string run_setup_hash;              // of the run setup (trigger parameters); "" = unknown (null)
  std::string detector_file_hash;          // of the .detx in use; "" = unknown (null)
  std::string data_tier = "raw";           // catalogue tier of the files
  friend bool operator==(const RunProvenance&, const RunProvenance&) = default;
};

// The data types a spool file may hold (the manifest's "data_type").
enum class Tier0DataType : std::uint8_t { Events, Summaries, Timeslices, Acoustic, Dumps };
const char* to_string(Tier0DataType type) noexcept;

// Events of a part per trigger (DOMAIN.md trigger mask bits); an event with several bits set
// counts once under each.
struct TriggerEventCounts {
  std::uint64_t shower_3d = 0, mx_shower = 0, muon_3d = 0, nanobeacon = 0, factory_limit = 0;
  void add_event(std::uint64_t trigger_mask) noexcept;
  TriggerEventCounts& operator+=(const TriggerEventCounts& other) noexcept;
  friend bool operator==(const TriggerEventCounts&, const TriggerEventCounts&) = default;
};

// Timeslices of a part per stream, indexed by dataflow::TimesliceKind (error, L0, L1, L2, SN:
// online types 1001..1005). In the manifest: "timeslices": {"error": n, "l0": n, ...}.
inline constexpr std::size_t kTimesliceKinds = 5;
inline constexpr std::array<const char*, kTimesliceKinds> kTimesliceKindKeys{"error", "l0", "l1", "l2", "sn"};
struct TimesliceCounts {
  std::array<std::uint64_t, kTimesliceKinds> per_kind{};
  std::uint64_t total() const noexcept;
  TimesliceCounts& operator+=(const TimesliceCounts& other) noexcept;
  friend bool operator==(const TimesliceCounts&, const TimesliceCounts&) = default;
};

// Rucio's rules: a scope is 1..25 of [A-Za-z0-9_.-]; a name is [A-Za-z0-9][A-Za-z0-9.\-_]{1,250}.
bool is_valid_rucio_scope(std::string_view scope) noexcept;
bool is_valid_rucio_name(std::string_view name) noexcept;
// 8 lower-case hex digits, zero-padded (how the manifests, xrootd and Rucio write adler32).
bool is_valid_adler32_hex(std::string_view text) noexcept;
// Parses 1..8 hex digits of either case (a server may not zero-pad); nullopt otherwise.
std::optional<std::uint32_t> parse_adler32_hex(std::string_view text) noexcept;

// A random (version 4) UUID from std::random_device, canonical lower-case 8-4-4-4-12 form.
// std::random_device is the kernel's generator on Linux: unique enough for file GUIDs.
std::string make_guid_v4();

// UTC in ISO 8601 with nanoseconds, e.g. "2023-11-14T22:13:20.100000000Z".
std::string format_utc_ns(std::uint64_t unix_ns);

// The rules of the schema, checked on a manifest's JSON text; each problem names its field.
// Empty = valid.
std::vector<std::string> validate_tier0_manifest(std::string_view json_text);

// What shore-transfer needs of a manifest to move its file. parse fails (nullopt, `error` says
// why) only when the transfer itself is impossible: no valid name, byte count or adler32.
struct Tier0TransferManifest {
  std::string name;  // the file name, also its Rucio name
  std::string scope;
  std::uint64_t bytes = 0;
  std::string adler32;  // 8 lower-case hex digits
  std::int32_t detector_id = 0;
  std::uint32_t run = 0;
  std::string data_type;
};
std::optional<Tier0TransferManifest> parse_tier0_transfer_manifest(std::string_view json_text, std::string* error);

}  // namespace shoredaq::storage
