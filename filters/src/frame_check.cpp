#include "shoredaq/filters/frame_check.hpp"

#include "shoredaq/formats/clb_datagram.hpp"

namespace shoredaq::filters {

std::uint32_t check_frame(const dataflow::DomFrame& frame, std::size_t max_hits_per_frame) noexcept {
  return scan_frame(frame, max_hits_per_frame).defects;
}

FrameScanner::FrameScanner(const dataflow::DomFrame& frame, std::size_t max_hits_per_frame) noexcept {
  if (!frame.status.complete()) frame_defects_ |= kDefectEudp;
  if (frame.hit_count() > max_hits_per_frame) frame_defects_ |= kDefectSize;
  if (frame.hits.size() % dataflow::kHitBytes != 0) frame_defects_ |= kDefectSize;  // torn record
}

FrameScan FrameScanner::finish() const noexcept {
  FrameScan scan;
  scan.defects = frame_defects_ | pmt_defects_ | (not_pmt_ ? kDefectEpmt : 0u);
  for (unsigned ch = 0; ch < dataflow::kPmtsPerDom; ++ch) scan.channel_counts[ch] = hits_per_byte_[ch];
  return scan;
}

FrameScan scan_frame(const dataflow::DomFrame& frame, std::size_t max_hits_per_frame) noexcept {
  FrameScanner scanner(frame, max_hits_per_frame);
  const std::size_t n = frame.hit_count();
  const std::uint8_t* p = frame.hits.data();
  for (std::size_t i = 0; i < n; ++i, p += dataflow::kHitBytes)
    scanner.add(p[0], dataflow::decode_hit_time(p));
  return scanner.finish();
}

}  // namespace shoredaq::filters
