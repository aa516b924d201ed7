#pragma once
// Frame checks (DOMAIN.md section 2): a DOM frame with any defect goes to the error stream, not to
// the triggers.

#include <array>
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

// scan_frame hit by hit, for a loop that reads the hits for something else as well (L0).
class FrameScanner {
 public:
  FrameScanner(const dataflow::DomFrame& frame, std::size_t max_hits_per_frame) noexcept;
  void add(unsigned channel, std::uint32_t time_ns) noexcept {
    ++hits_per_byte_[channel];  // indexed by the raw channel byte: no branch per hit
    const std::uint32_t is_pmt_mask = 0u - static_cast<std::uint32_t>(channel < dataflow::kPmtsPerDom);
    not_pmt_ |= ~is_pmt_mask;  // channels >= 31 set EPMT only
    pmt_defects_ |= is_pmt_mask & ((time_ns > kMaxHitTimeNs ? kDefectEtdc : 0u) |
                                   (time_ns < last_time_[channel] ? kDefectTime : 0u));
    last_time_[channel] = time_ns;
  }
  FrameScan finish() const noexcept;
  // A defect of the frame as a whole (incomplete, too many hits, torn), known before any hit.
  bool frame_defective() const noexcept { return frame_defects_ != 0; }

 private:
  std::uint32_t frame_defects_ = 0, pmt_defects_ = 0, not_pmt_ = 0;
  std::array<std::uint32_t, 256> hits_per_byte_{};
  std::array<std::uint32_t, 256> last_time_{};
};

}  // namespace shoredaq::filters
