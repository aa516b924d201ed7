#pragma once
// The filter benchmarks' reference workload (DESIGN.md section 7): DU simulator slices (7 kHz
// singles per PMT, 40K coincidences 700/70/7 Hz per DOM, atmospheric muons), 1-21 DUs from the
// ARCA-21 file (detector 133), more from the building-block file; seeded, so every benchmark sees
// the same hits.

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "shoredaq/drivers/du_simulator.hpp"

namespace bench {

// Muons crossing the simulator's can, per DU: ~3e-4 muons per m^2 per s at ARCA depth (3.5 km
// w.e.) over a ~1 km^2 building block is ~300 Hz, i.e. ~3 Hz per DU.
inline constexpr double kMuonRateHzPerDu = 3.0;

struct ReferenceFeed {
  std::shared_ptr<const shoredaq::dataflow::Detector> detector;
  std::vector<shoredaq::dataflow::Timeslice> slices;  // 20 slices for 1 DU, 4 up to 10 DUs, else 2
};

// The detector file for `dus` DUs: ARCA-21 (detector 133) up to 21, else the building block.
inline std::shared_ptr<const shoredaq::dataflow::Detector> reference_detector(int dus) {
  const auto detx = [](const char* name) { return std::string(SHOREDAQ_TESTDATA_DIR) + "/detx/" + name; };
  return std::make_shared<const shoredaq::dataflow::Detector>(shoredaq::dataflow::Detector::load(
      dus <= 21 ? detx("KM3NeT_00000133_20221025.detx") : detx("KM3NeT_-00000001_20171212.detx")));
}

// readout_block_ns: du-sim's readout order (0: its default, the CLB's nearly time-ordered one).
inline ReferenceFeed make_reference_feed(int dus, std::uint32_t readout_block_ns = 0) {
  ReferenceFeed feed;
  feed.detector = reference_detector(dus);
  shoredaq::drivers::DuSimConfig c;
  if (readout_block_ns) c.readout_block_ns = readout_block_ns;
  c.detector = feed.detector;
  const auto all = feed.detector->du_ids();
  c.dus.assign(all.begin(), all.begin() + std::min<std::size_t>(all.size(), static_cast<std::size_t>(dus)));
  c.start_unix_ns = 1'700'000'000'000'000'000ull;
  c.seed = 2024;
  c.muon.rate_hz = kMuonRateHzPerDu * dus;
  c.threads = 2;
  shoredaq::drivers::DuSimulator sim(c);
  const int slices = dus == 1 ? 20 : dus <= 10 ? 4 : 2;
  for (int k = 0; k < slices; ++k) feed.slices.push_back(sim.next_slice().truth);
  return feed;
}

}  // namespace bench
