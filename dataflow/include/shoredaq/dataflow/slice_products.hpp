#pragma once
// What the filters made of one timeslice, as the writer hands it to every sink (DESIGN.md section 1,
// "the writer -> sinks"), in frame order: the run's events (trigger counters assigned), the summary
// slice, and the timeslices kept (prescaled L0/L1/L2/SN slices, the error stream). Plain data.

#include <cstdint>
#include <string_view>
#include <vector>

#include "shoredaq/dataflow/event.hpp"
#include "shoredaq/dataflow/summary_slice.hpp"
#include "shoredaq/dataflow/timeslice.hpp"

namespace shoredaq::dataflow {

// Which stream a kept timeslice belongs to; the online types are 1001 (errors) .. 1005 (SN).
enum class TimesliceKind : std::uint8_t { Error, L0, L1, L2, SN };
std::string_view to_string(TimesliceKind kind) noexcept;
std::int32_t online_type_of(TimesliceKind kind) noexcept;

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
  std::uint64_t event_bytes_online = 0;  // online-format size of `events` (computed once, by the writer)
};

}  // namespace shoredaq::dataflow
