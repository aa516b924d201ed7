#pragma once
// A hand-made detector for tests that need DOM ids and DUs but no real geometry: per DU a base
// module (floor 0, no PMTs) and optical modules on floors 1..floors with 31 PMTs at the origin.
// DOM id = 100 * DU + floor, so a test can read a DOM's place from its id.

#include <cstdint>
#include <initializer_list>
#include <utility>
#include <vector>

#include "shoredaq/formats/clb_datagram.hpp"
#include "shoredaq/formats/detector.hpp"

namespace shoredaq::dataflow::testing {

inline Detector toy_detector(std::int32_t detector_id, std::initializer_list<int> dus, int floors) {
  std::vector<Module> modules;
  for (const int du : dus) {
    for (int floor = 0; floor <= floors; ++floor) {
      Module m;
      m.id = static_cast<std::uint32_t>(100 * du + floor);
      m.du = du;
      m.floor = floor;
      if (floor > 0) m.pmts.resize(kPmtsPerDom);
      modules.push_back(std::move(m));
    }
  }
  return Detector(detector_id, std::move(modules));
}

}  // namespace shoredaq::dataflow::testing
