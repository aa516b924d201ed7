#include "shoredaq/filters/frame_check.hpp"

#include <array>

namespace shoredaq::filters {

std::uint32_t check_frame(const dataflow::DomFrame& frame, std::size_t max_hits_per_frame) noexcept {
  return scan_frame(frame, max_hits_per_frame).defects;
}

FrameScan scan_frame(const dataflow::DomFrame& frame, std::size_t max_hits_per_frame) noexcept {
  FrameScan scan;
  std::uint32_t defects = 0;
  if (!frame.status.complete()) defects |= kDefectEudp;
  const std::size_t n = frame.hit_count();
  if (n > max_hits_per_frame) defects |= kDefectSize;
  if (frame.hits.size() % dataflow::kHitBytes != 0) defects |= kDefectSize;  // torn record
  // Indexed by the raw channel byte, so that no hit needs a branch; channels >= 31 set only EPMT.
  std::array<std::uint32_t, 256> hits_per_byte{};
  std::array<std::uint32_t, 256> last_time{};
  std::uint32_t pmt_defects = 0, not_pmt = 0;
  const std::uint8_t* p = frame.hits.data();
  for (std::size_t i = 0; i < n; ++i, p += dataflow::kHitBytes) {
    const unsigned channel = p[0];
    const std::uint32_t t = (std::uint32_t{p[1]} << 24) | (std::uint32_t{p[2]} << 16) |
                            (std::uint32_t{p[3]} << 8) | std::uint32_t{p[4]};
    ++hits_per_byte[channel];
    const std::uint32_t is_pmt_mask = 0u - static_cast<std::uint32_t>(channel < dataflow::kPmtsPerDom);
    not_pmt |= ~is_pmt_mask;
    pmt_defects |= is_pmt_mask & ((t > kMaxHitTimeNs ? kDefectEtdc : 0u) | (t < last_time[channel] ? kDefectTime : 0u));
    last_time[channel] = t;
  }
  scan.defects = defects | pmt_defects | (not_pmt ? kDefectEpmt : 0u);
  for (unsigned ch = 0; ch < dataflow::kPmtsPerDom; ++ch) scan.channel_counts[ch] = hits_per_byte[ch];
  return scan;
}

}  // namespace shoredaq::filters
