#pragma once
// The drivers tests' reference detector: detector 133 (ARCA-21) from the reference data, loaded
// once per test program.

#include <memory>
#include <string>

#include "shoredaq/formats/detector.hpp"

namespace shoredaq::drivers::test_support {

inline const std::string kDetx133 = std::string(SHOREDAQ_TESTDATA_DIR) + "/detx/KM3NeT_00000133_20221025.detx";

inline std::shared_ptr<const dataflow::Detector> detector133() {
  static const auto det = std::make_shared<const dataflow::Detector>(dataflow::Detector::load(kDetx133));
  return det;
}

}  // namespace shoredaq::drivers::test_support
