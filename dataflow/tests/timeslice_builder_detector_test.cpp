// Expected DOMs from a detector model (kept apart: it needs the detector model's implementation).
#include <gtest/gtest.h>

#include "shoredaq/dataflow/timeslice_builder.hpp"

using namespace shoredaq::dataflow;

TEST(TimesliceBuilder, ExpectedDomsOfDetectorSkipBaseAndDisabled) {
  Module base;
  base.id = 5;
  base.floor = 0;
  Module a;
  a.id = 9;
  a.floor = 1;
  a.pmts.resize(31);
  Module b = a;
  b.id = 7;
  Module c = a;
  c.id = 8;
  Detector det(14, {base, a, b, c});
  const std::uint32_t disabled[] = {8};
  EXPECT_EQ(TimesliceBuilderConfig::expected_doms_of(det, disabled), (std::vector<std::uint32_t>{7, 9}));
}
