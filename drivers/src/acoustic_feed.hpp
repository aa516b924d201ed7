#pragma once
// The simulator's acoustic (TAES) datagrams (du_simulator.hpp, AcousticConfig): internal to drivers/.

#include <cstdint>
#include <vector>

#include "shoredaq/drivers/du_simulator.hpp"

namespace shoredaq::drivers {

inline constexpr std::size_t kAcousticSampleBytes = 3;  // signed 24-bit, big-endian

// How many datagrams a DOM sends in slice `frame` at `datagrams_per_s`: the counts of successive
// slices add up to the rate exactly (floor of the running total).
std::uint64_t acoustic_datagrams_in_slice(double datagrams_per_s, std::uint32_t frame) noexcept;

// Appends the DOM's TAES datagrams of slice `frame` to `out` (header fields from `slice_header`:
// run, slice time, DOM id; type, sequence numbers and status set here). Deterministic per
// (seed, frame, DOM). Returns how many.
std::uint64_t append_acoustic_datagrams(const AcousticConfig& config, const dataflow::ClbHeader& slice_header,
                                        dataflow::HeaderLayout layout, std::uint64_t seed, std::uint32_t frame,
                                        std::vector<SimDatagram>& out);

}  // namespace shoredaq::drivers
