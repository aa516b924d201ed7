#pragma once
// The collaboration's online objects (DOMAIN.md section 3): preamble-framed timeslices, summary
// slices and events as the collaboration's data writer, dispatcher and readers exchange them.
// Integers are little-endian; a hit keeps the CLB's 6 raw bytes (big-endian time).
//
// Decoders never read past the given bytes and never trust a count before checking that the bytes
// for it are there; a bad object is an error value, not an exception. Encoders append to a buffer.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "shoredaq/formats/chunked_file_reader.hpp"
#include "shoredaq/formats/event.hpp"
#include "shoredaq/formats/summary_slice.hpp"
#include "shoredaq/formats/timeslice.hpp"

namespace shoredaq::dataflow {

// Object type codes of the preamble.
namespace online_type {
inline constexpr std::int32_t kSuperframe = 101;
inline constexpr std::int32_t kSummaryFrame = 201;
inline constexpr std::int32_t kTimesliceError = 1001;
inline constexpr std::int32_t kTimesliceL0 = 1002;
inline constexpr std::int32_t kTimesliceL1 = 1003;
inline constexpr std::int32_t kTimesliceL2 = 1004;
inline constexpr std::int32_t kTimesliceSN = 1005;
inline constexpr std::int32_t kSummarySlice = 2001;
inline constexpr std::int32_t kEvent = 10001;
}  // namespace online_type

inline constexpr std::int16_t kOnlineTimesliceVersion = 1;
inline constexpr std::int16_t kOnlineSummarySliceVersion = 6;
inline constexpr std::int16_t kOnlineEventVersion = 4;

inline constexpr std::size_t kOnlinePreambleBytes = 8;      // int32 length, int32 type
inline constexpr std::size_t kOnlineVersionBytes = 2;       // int16 class version
inline constexpr std::size_t kOnlineHeaderBytes = 20;       // detector, run, frame, seconds, ticks
inline constexpr std::size_t kOnlineFrameStatusBytes = 20;  // daq, status, fifo, status 3, status 4
inline constexpr std::size_t kOnlineEmptySuperframeBytes = 56;
inline constexpr std::size_t kOnlineSummaryFrameBytes = 55;
inline constexpr std::size_t kOnlineTriggeredHitBytes = 18;
inline constexpr std::size_t kOnlineSnapshotHitBytes = 10;

// Which selection a timeslice holds; the preamble type is 1001 + the enumerator's value.
enum class TimesliceKind : std::uint8_t { Error = 0, L0 = 1, L1 = 2, L2 = 3, SN = 4 };
constexpr std::int32_t online_type_of(TimesliceKind kind) noexcept {
  return online_type::kTimesliceError + static_cast<std::int32_t>(kind);
}
std::optional<TimesliceKind> timeslice_kind_of(std::int32_t type) noexcept;
std::string_view to_string(TimesliceKind kind) noexcept;
// "timeslice L1", "event", ... or "unknown" (for logs and listings).
std::string_view online_type_name(std::int32_t type) noexcept;

struct OnlineTimeslice {
  TimesliceKind kind = TimesliceKind::L1;
  Timeslice slice;
};

enum class OnlineError : std::uint8_t {
  None,
  Truncated,                // fewer bytes than the object (or a part of it) needs
  BadLength,                // preamble length smaller than the preamble itself
  WrongType,                // not the object type asked for
  UnsupportedVersion,       // a class version this decoder does not know
  BadCount,                 // a negative count, or one the remaining bytes cannot hold
  LengthMismatch,           // the content does not fill exactly the preamble's length
  InconsistentFrameHeader,  // a superframe's header differs from its timeslice's header
};
std::string_view to_string(OnlineError e) noexcept;

template <typename T>
struct OnlineDecodeResult {
  OnlineError error = OnlineError::None;
  T value{};
  std::size_t bytes_used = 0;  // the object's length from its preamble (when known)
  explicit operator bool() const noexcept { return error == OnlineError::None; }
};

struct OnlinePreamble {
  std::int32_t length = 0;  // the whole object, preamble included
  std::int32_t type = 0;
};

// Reads the first 8 bytes; checks only that the length covers the preamble and fits `bytes`.
OnlineDecodeResult<OnlinePreamble> decode_online_preamble(std::span<const std::uint8_t> bytes) noexcept;

// One superframe (type 101); `header` receives its own header.
struct OnlineSuperframe {
  SliceHeader header;
  DomFrame frame;
};
OnlineDecodeResult<OnlineSuperframe> decode_online_superframe(std::span<const std::uint8_t> bytes);
OnlineDecodeResult<OnlineTimeslice> decode_online_timeslice(std::span<const std::uint8_t> bytes);
OnlineDecodeResult<SummarySlice> decode_online_summary_slice(std::span<const std::uint8_t> bytes);
// Event::event_number and the node-local stamps are not part of the online format (left 0).
OnlineDecodeResult<Event> decode_online_event(std::span<const std::uint8_t> bytes);

// Encoders append one object to `out`. They throw std::invalid_argument for data the format
// cannot hold (a frame whose hit bytes are not a whole number of hits, counts above int32).
void encode_online_header(const SliceHeader& header, std::vector<std::uint8_t>& out);
void encode_online_frame_status(const FrameStatus& status, std::vector<std::uint8_t>& out);
void encode_online_superframe(const SliceHeader& header, const DomFrame& frame, std::vector<std::uint8_t>& out);
void encode_online_timeslice(const Timeslice& slice, TimesliceKind kind, std::vector<std::uint8_t>& out);
void encode_online_summary_slice(const SummarySlice& slice, std::vector<std::uint8_t>& out);
void encode_online_event(const Event& event, std::vector<std::uint8_t>& out);

std::size_t online_timeslice_size(const Timeslice& slice) noexcept;
std::size_t online_summary_slice_size(const SummarySlice& slice) noexcept;
std::size_t online_event_size(const Event& event) noexcept;

// One preamble-framed object inside a buffer.
struct OnlineObject {
  std::int32_t type = 0;
  std::span<const std::uint8_t> bytes;  // the whole object, preamble included
  std::optional<TimesliceKind> timeslice_kind() const noexcept { return timeslice_kind_of(type); }
};

// Walks consecutive objects of a buffer (e.g. a run file read into memory, a dispatcher payload).
// A bad preamble ends the walk with an error; the objects before it stay valid.
class OnlineObjectReader {
 public:
  explicit OnlineObjectReader(std::span<const std::uint8_t> bytes) noexcept : bytes_(bytes) {}
  bool next(OnlineObject& object) noexcept;
  OnlineError error() const noexcept { return error_; }
  std::size_t objects_read() const noexcept { return objects_; }
  std::size_t offset() const noexcept { return offset_; }
  std::size_t bytes_rejected() const noexcept { return error_ == OnlineError::None ? 0 : bytes_.size() - offset_; }

 private:
  std::span<const std::uint8_t> bytes_;
  std::size_t offset_ = 0;
  std::size_t objects_ = 0;
  OnlineError error_ = OnlineError::None;
};

// Streams the objects of a run file with a bounded buffer (objects up to max_object_bytes).
// Throws std::runtime_error if the file cannot be opened.
class OnlineFileReader {
 public:
  explicit OnlineFileReader(const std::filesystem::path& path, std::size_t max_object_bytes = std::size_t{1} << 30);
  ~OnlineFileReader();
  OnlineFileReader(const OnlineFileReader&) = delete;
  OnlineFileReader& operator=(const OnlineFileReader&) = delete;

  // The next object, valid until the following call; false at the end of the file or on an error.
  bool next(OnlineObject& object);
  OnlineError error() const noexcept { return error_; }
  bool read_failed() const noexcept { return read_failed_; }
  std::uint64_t objects_read() const noexcept { return objects_; }
  std::uint64_t offset() const noexcept { return offset_; }

 private:
  bool fill(std::size_t wanted);

  ChunkedFileReader file_;
  std::size_t max_object_bytes_;
  std::uint64_t offset_ = 0;
  std::uint64_t objects_ = 0;
  OnlineError error_ = OnlineError::None;
  bool read_failed_ = false;
};

}  // namespace shoredaq::dataflow
