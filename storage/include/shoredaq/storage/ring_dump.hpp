#pragma once
// Raw-data dumps (issue 12): a UTC window of the raw slice ring (raw_slice_ring.hpp) written as a
// sealed, checksummed `.dqd` into the Tier-0 spool, so shore-transfer ships it and
// `shoredaq replay` (or du-sim --replay) plays it.
//
//   KM3NeT_<det 8>_<run 8>_<number 4>.dump.dqd   records [uint32 LE length][CLB datagram], in
//                                                slice order; run = the first slice's run
// It is written in spool/open/, fsync'ed, renamed into spool/ready/ and given a manifest
// `<file>.json` like every spool file (tier0_manifest.hpp; data_type "dumps", format
// "clb-records") with a "dump" object: id, reason, the requested and the dumped window, slices,
// missing slices (none stored for a 100 ms step of the window) and datagrams.
//
// A slice goes into the ring as records rebuilt from the Timeslice the builder emitted: per DOM
// frame its hits in the order received, split into datagrams, carrying the frame's status words
// (the trailer on the last datagram when the frame had one; a frame with a gap keeps a gap), and
// the slice's TMCH packets as received. Replayed, the builder makes the same frames of them, so
// the filters make the same events.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "shoredaq/formats/timeslice.hpp"
#include "shoredaq/storage/raw_slice_ring.hpp"
#include "shoredaq/storage/tier0_manifest.hpp"

namespace shoredaq::storage {

// Appends the slice as .dqd records to `out`; returns the records written.
std::uint32_t encode_slice_records(const dataflow::Timeslice& slice, std::vector<std::uint8_t>& out);

struct DumpRequest {
  std::string id;                 // unique per node, e.g. "20261206T081500Z-3"
  std::uint64_t from_ns = 0, to_ns = 0;  // requested UTC window [from, to)
  std::string reason;
};

struct DumpWindow {
  std::uint64_t from_ns = 0, to_ns = 0;  // after clipping
  bool clipped = false;
  std::string refusal;  // non-empty: nothing can be dumped, and why
};

// The window clipped to the ring's holdings (oldest slice start .. newest slice end) and to
// `max_seconds`; refused when empty or entirely before the ring (the reason names the ring's
// length, e.g. "window ends before the oldest slice in the ring (the ring holds 60 s)").
DumpWindow clip_dump_window(std::uint64_t from_ns, std::uint64_t to_ns, const RingFill& fill, std::uint32_t ring_seconds,
                            std::uint32_t max_seconds);

struct DumpOutput {
  std::filesystem::path spool_dir;
  RunProvenance provenance;  // of the node's current or last run
  bool fsync = true;
};

struct DumpResult {
  bool ok = false;
  std::string error;  // why it failed
  std::string file;   // name in ready/
  std::uint64_t from_ns = 0, to_ns = 0;  // dumped window
  std::uint64_t slices = 0, missing_slices = 0, datagrams = 0, bytes = 0;
  std::string adler32, md5;
  double seconds = 0;  // wall time of the dump
};

// Writes the slices of `window` (slice starts in [from, to)). Never throws: failures come back in
// `error` and leave nothing in ready/ (a part written in open/ is removed).
DumpResult write_ring_dump(const RawSliceRing& ring, const DumpRequest& request, const DumpWindow& window,
                           const DumpOutput& output);

// The dump file names.
std::string dump_file_name(std::int32_t detector_id, std::uint32_t run, std::uint32_t number);
bool is_dump_file_name(const std::string& name);

// Start-up: dump files a crash left in spool/open/ are moved to spool/damaged/ as `<name>.partial`
// (never shipped). Returns their names.
std::vector<std::string> set_aside_interrupted_dumps(const std::filesystem::path& spool_dir);

}  // namespace shoredaq::storage
