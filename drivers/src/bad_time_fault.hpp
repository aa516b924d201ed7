#pragma once
// The bad-slice-time fault of the DU simulator (FaultConfig::bad_time_*): extra copies of a DOM's
// datagram with a wrong slice time, as a DOM with a broken clock (or a hostile sender) would send.

#include <cstdint>
#include <vector>

#include "shoredaq/drivers/du_simulator.hpp"

namespace shoredaq::drivers {

// Puts, in front of slice `frame`'s datagram list, the bad-time copy that `faults` asks for in that
// slice (if any), and counts it in `counters.bad_time`.
void inject_bad_slice_times(const FaultConfig& faults, std::uint32_t frame, std::vector<SimDatagram>& list,
                            SliceCounters& counters);

}  // namespace shoredaq::drivers
