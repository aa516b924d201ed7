#pragma once
// A triggered event as the filters produce it and the store, spool and publishers carry it
// (DOMAIN.md section 3 for the online layout: 18-byte triggered hits, 10-byte snapshot hits).

#include <cstdint>
#include <vector>

#include "shoredaq/formats/clb_datagram.hpp"
#include "shoredaq/formats/timeslice.hpp"

namespace shoredaq::dataflow {

// Trigger mask bits (test with mask & trigger_bit(k)).
inline constexpr unsigned kTriggerBit3DShower = 1;
inline constexpr unsigned kTriggerBitMXShower = 2;
inline constexpr unsigned kTriggerBit3DMuon = 4;
inline constexpr unsigned kTriggerBitNanobeacon = 5;
inline constexpr unsigned kTriggerBitFactoryLimit = 31;
constexpr std::uint64_t trigger_bit(unsigned bit) noexcept { return std::uint64_t{1} << bit; }

struct SnapshotHit {
  std::uint32_t dom_id = 0;
  Hit hit;  // raw (uncalibrated) time since the slice start, as the DOM sent it
  friend bool operator==(const SnapshotHit&, const SnapshotHit&) = default;
};

struct TriggeredHit {
  std::uint32_t dom_id = 0;
  Hit hit;
  std::uint64_t trigger_mask = 0;  // the triggers this hit fired
  friend bool operator==(const TriggeredHit&, const TriggeredHit&) = default;
};

struct Event {
  SliceHeader header;                // the header of the slice the event belongs to
  std::uint32_t event_number = 0;    // index within its slice (store key part)
  std::uint64_t trigger_counter = 0; // per run
  std::uint64_t trigger_mask = 0;    // OR of the parts' masks
  std::uint32_t overlays = 0;        // merged parts
  std::vector<TriggeredHit> triggered;  // a subset of the snapshot
  std::vector<SnapshotHit> snapshot;
  SliceStamps stamps;                // node-local latency stamps (not in the online format)
  std::uint64_t filtered_unix_ns = 0;
  friend bool operator==(const Event& a, const Event& b) {
    return a.header == b.header && a.trigger_counter == b.trigger_counter &&
           a.trigger_mask == b.trigger_mask && a.overlays == b.overlays &&
           a.triggered == b.triggered && a.snapshot == b.snapshot;
  }
};

}  // namespace shoredaq::dataflow
