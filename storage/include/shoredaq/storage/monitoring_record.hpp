#pragma once
// The TMCH monitoring packets in the run files. The collaboration has no online object for them:
// its run files carry events, summary slices and timeslices only, and TMCH travels as raw packets
// (ControlHost tag IO_MONIT, one packet per message) to the monitoring and the database; the one
// file form its tools read (km3pipe's TMCHRepump) is raw packets back to back, without a frame
// or slice. So the run files wrap each packet, as received, in a preamble-framed object of a type
// of our own, beside the slice's other objects:
//
//   int32 length (whole object), int32 type = 3001      the preamble every online object has
//   int16 version = 1
//   20-byte header: detector, run, frame index, UTC seconds, 16 ns ticks   (the slice's, LE)
//   int32 DOM id
//   uint32 LE byte count n, then the n bytes of the TMCH datagram as received (CLB big-endian)
//
// Why this shape: the packet stays in the slice's part (a slice is whole in one file, so the
// spool's crash, full-disk and manifest rules hold unchanged); readers that walk a file by its
// preambles (OnlineFileReader, km3pipe's DAQPump) pass over it; the header sits where every online
// object has it (frame ranges and recovery read it the same way); and the tail is exactly one
// .dqd record, so `shore-events runfile FILE --export monitoring` gives a file that replays.

#include <cstdint>
#include <span>
#include <vector>

#include "shoredaq/formats/online_format.hpp"
#include "shoredaq/formats/slice_products.hpp"
#include "shoredaq/formats/timeslice.hpp"

namespace shoredaq::storage {

// Not a collaboration type code: shoredaq's, chosen clear of 101..10001.
inline constexpr std::int32_t kOnlineMonitoringType = 3001;
inline constexpr std::int16_t kOnlineMonitoringVersion = 1;
// Preamble, version, header, DOM id, byte count: the bytes before the datagram.
inline constexpr std::size_t kOnlineMonitoringFixedBytes = dataflow::kOnlinePreambleBytes +
                                                           dataflow::kOnlineVersionBytes +
                                                           dataflow::kOnlineHeaderBytes + 4 + 4;

struct OnlineMonitoring {
  dataflow::SliceHeader header;
  std::uint32_t dom_id = 0;
  std::span<const std::uint8_t> datagram;  // points into the decoded bytes
};

// Appends one object. Throws std::invalid_argument for a datagram the format cannot hold (> 2 GiB).
void encode_online_monitoring(const dataflow::SliceHeader& header, const dataflow::RawMonitoring& packet,
                              std::vector<std::uint8_t>& out);
std::size_t online_monitoring_size(const dataflow::RawMonitoring& packet) noexcept;
// Checks the preamble, version and byte count; the datagram itself is not parsed
// (dataflow::parse_monitoring_packet does that).
dataflow::OnlineDecodeResult<OnlineMonitoring> decode_online_monitoring(std::span<const std::uint8_t> bytes) noexcept;

}  // namespace shoredaq::storage
