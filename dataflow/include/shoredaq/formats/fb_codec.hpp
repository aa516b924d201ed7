#pragma once
// FlatBuffers conversion of the shore-side objects (DESIGN.md section 3): one buffer per object,
// file identifier set. Decoding always runs the FlatBuffers Verifier with explicit limits first, so
// bytes from a socket or a damaged store give an error, never a crash. Hits stay packed bytes:
// events in the online 18-byte (triggered) / 10-byte (snapshot) layouts, timeslices as raw
// 6-byte CLB hits.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "shoredaq/formats/event.hpp"
#include "shoredaq/formats/online_format.hpp"
#include "shoredaq/formats/run_record.hpp"
#include "shoredaq/formats/summary_slice.hpp"
#include "shoredaq/formats/timeslice.hpp"

namespace shoredaq::dataflow {

inline constexpr std::size_t kTriggeredHitBytes = 18;  // LE int32 DOM, channel, BE time, ToT, LE uint64 mask
inline constexpr std::size_t kSnapshotHitBytes = 10;   // LE int32 DOM, channel, BE time, ToT

// The four buffer kinds, by their file identifier.
enum class FbKind : std::uint8_t { Unknown, Event, Timeslice, SummarySlice, RunRecord };
FbKind identify_fb(std::span<const std::uint8_t> bytes) noexcept;
std::string_view to_string(FbKind kind) noexcept;

// TimesliceKind (error stream / L0 / L1 / L2 / SN) is the online format's; fb::TimesliceKind has
// the same values.

enum class FbError : std::uint8_t {
  None,
  TooLarge,           // more bytes than FbLimits::max_buffer_bytes
  WrongIdentifier,    // not the expected file identifier (or shorter than a header)
  VerifyFailed,       // the Verifier rejected the buffer (offsets, depth, table count)
  MissingHeader,      // a required header struct absent
  BadHitBytes,        // a packed hit vector not a whole number of hits
  BadEnum,            // an enum value outside its range
};
std::string_view to_string(FbError error) noexcept;

// Verifier limits: bytes arrive from sockets and disks, so bound the work a bad buffer can cause.
struct FbLimits {
  std::size_t max_buffer_bytes = std::size_t{1} << 30;  // 1 GiB (a 20-DU L0 slice is ~2.4 MB)
  flatbuffers::uoffset_t max_depth = 16;                // our schemas nest at most 3 tables deep
  flatbuffers::uoffset_t max_tables = 1'000'000;
};

template <class T>
struct FbDecoded {
  FbError error = FbError::None;
  T value{};
  explicit operator bool() const noexcept { return error == FbError::None; }
};

// Event: the node-local stamps are stored too; `committed_unix_ns` is the store's commit time
// (0 before commit; set in place with stamp_event_committed). The builder overloads reuse the
// caller's builder (cleared first); the result is builder.GetBufferPointer()/GetSize().
void encode_event_fb(const Event& event, flatbuffers::FlatBufferBuilder& builder,
                     std::uint64_t committed_unix_ns = 0);
std::vector<std::uint8_t> encode_event_fb(const Event& event, std::uint64_t committed_unix_ns = 0);

struct DecodedEvent {
  Event event;
  std::uint64_t committed_unix_ns = 0;
};
FbDecoded<DecodedEvent> decode_event_fb(std::span<const std::uint8_t> bytes, const FbLimits& limits = {});

// Sets the committed stamp inside an encoded (and verified or self-made) Event buffer; false if the
// buffer does not hold the field (every buffer made by encode_event_fb does).
bool stamp_event_committed(std::span<std::uint8_t> event_buffer, std::uint64_t committed_unix_ns) noexcept;

void encode_timeslice_fb(const Timeslice& slice, flatbuffers::FlatBufferBuilder& builder,
                         TimesliceKind kind = TimesliceKind::L0);
std::vector<std::uint8_t> encode_timeslice_fb(const Timeslice& slice, TimesliceKind kind = TimesliceKind::L0);
struct DecodedTimeslice {
  Timeslice timeslice;
  TimesliceKind kind = TimesliceKind::L0;
};
FbDecoded<DecodedTimeslice> decode_timeslice_fb(std::span<const std::uint8_t> bytes,
                                                const FbLimits& limits = {});

void encode_summary_slice_fb(const SummarySlice& summary, flatbuffers::FlatBufferBuilder& builder);
std::vector<std::uint8_t> encode_summary_slice_fb(const SummarySlice& summary);
FbDecoded<SummarySlice> decode_summary_slice_fb(std::span<const std::uint8_t> bytes,
                                                const FbLimits& limits = {});

void encode_run_record_fb(const RunRecord& record, flatbuffers::FlatBufferBuilder& builder);
std::vector<std::uint8_t> encode_run_record_fb(const RunRecord& record);
FbDecoded<RunRecord> decode_run_record_fb(std::span<const std::uint8_t> bytes, const FbLimits& limits = {});

// Verification only (no decoding): what `shore-events verify` runs over every stored buffer.
FbError verify_fb(FbKind kind, std::span<const std::uint8_t> bytes, const FbLimits& limits = {}) noexcept;

// Packed hit layouts, exposed for the online-format and tests.
void append_triggered_hit(const TriggeredHit& hit, std::vector<std::uint8_t>& out);
void append_snapshot_hit(const SnapshotHit& hit, std::vector<std::uint8_t>& out);
TriggeredHit read_triggered_hit(const std::uint8_t* p) noexcept;
SnapshotHit read_snapshot_hit(const std::uint8_t* p) noexcept;

}  // namespace shoredaq::dataflow
