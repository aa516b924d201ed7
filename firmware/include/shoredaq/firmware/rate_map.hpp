#pragma once
// /ratemap.json: the latest summary slice of the run laid out on the detector, for the live page's
// DU x floor grid. One entry per optical module of the detector the run was configured with (base
// modules have no PMTs and are left out), in detector order:
//   {"run": 7, "frame_index": 1234, "detector_id": 133, "dus": [1, 2], "max_floor": 18,
//    "doms": [{"id": 806451572, "du": 1, "floor": 1, "rate_hz": 223456,
//              "flags": ["incomplete", "hrv"], "hrv_mask": 4, "pmt_khz": [7.2, 7.1, ...]}, ...]}
// flags: "missing" (no datagram of the DOM in the slice; then rate_hz is 0 and pmt_khz empty),
// "incomplete" (datagrams lost or no trailer), "hrv" (a PMT under high-rate veto; hrv_mask says
// which channels), "wr_unlocked" (White Rabbit not locked). pmt_khz: the 31 PMT rates by channel,
// in kHz to 0.1 (the rate codes are 2.7 % apart anyway). Before the first slice of a run,
// frame_index is null and no DOM carries rates or flags.

#include <cstdint>

#include <nlohmann/json.hpp>

#include "shoredaq/formats/detector.hpp"
#include "shoredaq/formats/summary_slice.hpp"

namespace shoredaq::firmware {

// latest: the run's latest summary slice, or null when there is none yet.
nlohmann::json rate_map_json(const dataflow::Detector& detector, const dataflow::SummarySlice* latest, std::uint32_t run);

}  // namespace shoredaq::firmware
