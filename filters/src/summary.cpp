#include "shoredaq/filters/summary.hpp"

namespace shoredaq::filters {

ChannelCounts count_hits_per_channel(const dataflow::DomFrame& frame) noexcept {
  std::array<std::uint32_t, 256> all{};  // indexed by the raw channel byte: no branch per hit
  const std::uint8_t* p = frame.hits.data();
  const std::size_t n = frame.hit_count();
  for (std::size_t i = 0; i < n; ++i, p += dataflow::kHitBytes) ++all[p[0]];
  ChannelCounts counts{};
  for (unsigned ch = 0; ch < dataflow::kPmtsPerDom; ++ch) counts[ch] = all[ch];
  return counts;
}

dataflow::SummaryFrame summarise_frame(const dataflow::DomFrame& frame, const ChannelCounts& counts) noexcept {
  dataflow::SummaryFrame s;
  s.dom_id = frame.dom_id;
  s.status = frame.status;
  constexpr double slice_s = dataflow::kSliceDurationNs * 1e-9;
  for (unsigned ch = 0; ch < dataflow::kPmtsPerDom; ++ch)
    s.rate_codes[ch] = dataflow::encode_rate_hz(counts[ch] / slice_s);
  return s;
}

dataflow::SummarySlice summarise(const dataflow::Timeslice& slice) {
  dataflow::SummarySlice s;
  s.header = slice.header;
  s.frames.reserve(slice.frames.size());
  for (const auto& f : slice.frames) s.frames.push_back(summarise_frame(f, count_hits_per_channel(f)));
  return s;
}

}  // namespace shoredaq::filters
