#pragma once
// Frame checks (DOMAIN.md section 2): a DOM frame with any defect goes to the error stream, not to
// the triggers.

#include <cstdint>

#include "shoredaq/filters/summary.hpp"
#include "shoredaq/formats/timeslice.hpp"

namespace shoredaq::filters {

// Defect bits of one frame (0 = good).
inline constexpr std::uint32_t kDefectEpmt = 1u << 0;  // a hit with channel >= 31
inline constexpr std::uint32_t kDefectEtdc = 1u << 1;  // a hit time > 1.05e8 ns
inline constexpr std::uint32_t kDefectTime = 1u << 2;  // hit times decrease within one channel
inline constexpr std::uint32_t kDefectEudp = 1u << 3;  // missing datagrams or trailer
inline constexpr std::uint32_t kDefectSize = 1u << 4;  // more hits than the configured maximum
inline constexpr std::uint32_t kMaxHitTimeNs = 105'000'000;

// A frame that never arrived (the builder fills missing DOMs with daq == 0 and no hits): it is
// counted as missing, not as a defect.
inline bool frame_missing(const dataflow::DomFrame& frame) noexcept {
  return frame.status.daq == 0 && frame.hits.empty();
}

// The defect bits of one frame; reads every hit once.
std::uint32_t check_frame(const dataflow::DomFrame& frame, std::size_t max_hits_per_frame) noexcept;

// check_frame and count_hits_per_channel (summary.hpp) in the same single read of the hits.
struct FrameScan {
  std::uint32_t defects = 0;
  ChannelCounts channel_counts{};
};
FrameScan scan_frame(const dataflow::DomFrame& frame, std::size_t max_hits_per_frame) noexcept;

}  // namespace shoredaq::filters
