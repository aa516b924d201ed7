#include "shoredaq/filters/frame_check.hpp"

#include <array>

namespace shoredaq::filters {

std::uint32_t check_frame(const dataflow::DomFrame& frame, std::size_t max_hits_per_frame) noexcept {
  std::uint32_t defects = 0;
  if (!frame.status.complete()) defects |= kDefectEudp;
  const std::size_t n = frame.hit_count();
  if (n > max_hits_per_frame) defects |= kDefectSize;
  if (frame.hits.size() % dataflow::kHitBytes != 0) defects |= kDefectSize;  // torn record
  std::array<std::uint32_t, 32> last_time{};
  const std::uint8_t* p = frame.hits.data();
  for (std::size_t i = 0; i < n; ++i, p += dataflow::kHitBytes) {
    const unsigned channel = p[0];
    const std::uint32_t t = (std::uint32_t{p[1]} << 24) | (std::uint32_t{p[2]} << 16) |
                            (std::uint32_t{p[3]} << 8) | std::uint32_t{p[4]};
    if (channel >= dataflow::kPmtsPerDom) {
      defects |= kDefectEpmt;
      continue;
    }
    if (t > kMaxHitTimeNs) defects |= kDefectEtdc;
    if (t < last_time[channel]) defects |= kDefectTime;
    last_time[channel] = t;
  }
  return defects;
}

}  // namespace shoredaq::filters
