#pragma once
// What the filters made of one timeslice, as the writer hands it to every sink (DESIGN.md section 1,
// "the writer -> sinks"), in frame order: the run's events (trigger counters assigned), the summary
// slice, the timeslices kept (prescaled L0/L1/L2/SN slices, the error stream) and the DOMs'
// monitoring packets of the slice. Plain data.

#include <cstdint>
#include <string>
#include <vector>

#include "shoredaq/formats/event.hpp"
#include "shoredaq/formats/online_format.hpp"
#include "shoredaq/formats/summary_slice.hpp"
#include "shoredaq/formats/timeslice.hpp"

namespace shoredaq::dataflow {

// A kept timeslice and its stream (online_format.hpp: types 1001 errors .. 1005 SN).
struct TaggedTimeslice {
  TimesliceKind kind = TimesliceKind::L1;
  Timeslice slice;
};

struct SliceProducts {
  SliceHeader header;  // detector, run, frame index, UTC of the slice start
  SliceStamps stamps;  // node-local: received, completed
  std::vector<Event> events;
  SummarySlice summary;
  std::vector<TaggedTimeslice> timeslices;
  std::vector<RawMonitoring> monitoring;  // TMCH packets received since the previous slice (each keeps its time)
  // SNEWS 2.0-style JSON of each supernova alert the node raised at this slice (usually none):
  // the alert stream publishes it as topic sn.<det>, the ControlHost dispatcher as IO_SN.
  std::vector<std::string> supernova_alerts;
  std::uint64_t event_bytes_online = 0;  // online-format size of `events` (computed once, by the writer)
};

}  // namespace shoredaq::dataflow
