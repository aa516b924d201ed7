#pragma once
// Summary slice (DOMAIN.md section 5): per DOM per slice, the single rate of each PMT as a rate
// code and the frame's status words; written for every slice, also for defective frames.

#include <array>
#include <cstdint>

#include "shoredaq/formats/summary_slice.hpp"
#include "shoredaq/formats/timeslice.hpp"

namespace shoredaq::filters {

using ChannelCounts = std::array<std::uint32_t, dataflow::kPmtsPerDom>;

// Hits per channel (channels >= 31 are not counted).
ChannelCounts count_hits_per_channel(const dataflow::DomFrame& frame) noexcept;

// Rate of a channel = hits / slice duration (100 ms), encoded as a rate code.
dataflow::SummaryFrame summarise_frame(const dataflow::DomFrame& frame, const ChannelCounts& counts) noexcept;
dataflow::SummarySlice summarise(const dataflow::Timeslice& slice);

}  // namespace shoredaq::filters
