#pragma once
// The supernova alerts in the run files ("keep every stream"). The collaboration has no online
// object for them, so, like the TMCH packets (monitoring_record.hpp), each alert goes into the
// slice that raised it as a preamble-framed object of shoredaq's own:
//
//   int32 length (whole object), int32 type = 3002      the preamble every online object has
//   int16 version = 1
//   20-byte header: detector, run, frame index, UTC seconds, 16 ns ticks   (the slice's, LE)
//   uint32 LE byte count n, then the n bytes of the SNEWS 2.0-style JSON message as sent
//
// Readers that walk a file by its preambles pass over it; recovery and frame ranges read the header
// where every online object has it; `shore-events runfile` lists the alerts.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shoredaq/formats/online_format.hpp"
#include "shoredaq/formats/timeslice.hpp"

namespace shoredaq::storage {

// Not a collaboration type code: shoredaq's, beside the TMCH wrapper's 3001.
inline constexpr std::int32_t kOnlineSupernovaAlertType = 3002;
inline constexpr std::int16_t kOnlineSupernovaAlertVersion = 1;
inline constexpr std::size_t kOnlineSupernovaAlertFixedBytes =
    dataflow::kOnlinePreambleBytes + dataflow::kOnlineVersionBytes + dataflow::kOnlineHeaderBytes + 4;

struct OnlineSupernovaAlert {
  dataflow::SliceHeader header;
  std::string_view message;  // points into the decoded bytes
};

// Appends one object. Throws std::invalid_argument for a message the format cannot hold (> 2 GiB).
void encode_online_supernova_alert(const dataflow::SliceHeader& header, std::string_view message,
                                   std::vector<std::uint8_t>& out);
dataflow::OnlineDecodeResult<OnlineSupernovaAlert> decode_online_supernova_alert(std::span<const std::uint8_t> bytes) noexcept;

}  // namespace shoredaq::storage
