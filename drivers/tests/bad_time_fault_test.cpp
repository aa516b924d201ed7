// The DU simulator's bad-slice-time fault (FaultConfig::bad_time_*): extra, restamped copies of a
// DOM's datagram, first in their slice, counted; the true datagrams untouched.

#include <gtest/gtest.h>

#include <memory>

#include "shoredaq/drivers/du_simulator.hpp"
#include "reference_detector.hpp"

namespace shoredaq::drivers {
namespace {

using test_support::detector133;

DuSimConfig config(dataflow::HeaderLayout layout = dataflow::HeaderLayout::Standard40) {
  DuSimConfig c;
  c.detector = detector133();
  c.dus = {5};
  c.run_number = 3;
  c.start_unix_ns = 1'700'000'000'000'000'000ull;
  c.seed = 9;
  c.header_layout = layout;
  return c;
}

dataflow::ClbDatagram parse(const SimDatagram& dg, dataflow::HeaderLayout layout) {
  auto r = dataflow::parse_clb_datagram(dg.bytes, {layout, false});
  EXPECT_TRUE(r);
  return r.datagram;
}

}  // namespace

TEST(DuSimulatorFaults, BadTimeCopiesCreepAheadFirstInTheirSlices) {
  for (const auto layout : {dataflow::HeaderLayout::Standard40, dataflow::HeaderLayout::Legacy28}) {
    DuSimConfig c = config(layout);
    DuSimulator reference(c);
    const std::uint32_t dom = reference.modules()[4]->id;
    c.faults.bad_time_dom = dom;
    c.faults.bad_time_offset_s = 55;
    c.faults.bad_time_step_s = 55;
    c.faults.bad_time_at_slice = 2;
    c.faults.bad_time_count = 3;
    DuSimulator sim(c);
    for (std::uint32_t frame = 0; frame < 6; ++frame) {
      const SimulatedSlice good = reference.next_slice();
      const SimulatedSlice s = sim.next_slice();
      const bool bad = frame >= 2 && frame < 5;
      ASSERT_EQ(s.datagrams.size(), good.datagrams.size() + (bad ? 1 : 0));
      EXPECT_EQ(s.counters.bad_time, bad ? 1u : 0u);
      // The true datagrams follow unchanged.
      for (std::size_t i = 0; i < good.datagrams.size(); ++i)
        EXPECT_EQ(s.datagrams[i + (bad ? 1 : 0)].bytes, good.datagrams[i].bytes);
      if (!bad) continue;
      const SimDatagram& copy = s.datagrams.front();
      EXPECT_EQ(copy.fault, DatagramFault::BadTime);
      const auto d = parse(copy, layout);
      const auto original = std::find_if(good.datagrams.begin(), good.datagrams.end(),
                                         [&](const SimDatagram& g) { return g.dom_id == dom; });
      const auto o = parse(*original, layout);
      EXPECT_EQ(d.header.dom_id, dom);
      EXPECT_EQ(d.header.udp_sequence, 0u);
      const std::uint64_t k = frame - 2;
      EXPECT_EQ(d.header.slice_start_ns(), o.header.slice_start_ns() + (k + 1) * 55'000'000'000ull);
      EXPECT_TRUE(std::equal(d.payload.begin(), d.payload.end(), o.payload.begin(), o.payload.end()));
    }
  }
}

TEST(DuSimulatorFaults, BadTimeCanPointToThePastAndSkipsASilentDom) {
  DuSimConfig c = config();
  DuSimulator probe(c);
  const std::uint32_t dom = probe.modules()[0]->id;
  c.faults.bad_time_dom = dom;
  c.faults.bad_time_offset_s = -3600;
  DuSimulator sim(c);
  const SimulatedSlice s = sim.next_slice();
  ASSERT_EQ(s.counters.bad_time, 1u);
  EXPECT_EQ(parse(s.datagrams.front(), c.header_layout).header.slice_start_ns(),
            sim.slice_start_unix_ns(0) - 3'600'000'000'000ull);
  c.faults.silent_dom = dom;
  DuSimulator silent(c);
  EXPECT_EQ(silent.next_slice().counters.bad_time, 0u);
}

}  // namespace shoredaq::drivers
