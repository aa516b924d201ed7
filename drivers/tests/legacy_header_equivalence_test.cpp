// The same simulated feed with the 40-byte and the legacy 28-byte CLB header, parsed with its
// layout, through the TimesliceBuilder and the DataFilter, gives the same timeslices and the same
// events: the builder infers a legacy frame's end from its sequence numbers and the DOM's next
// slice (or the end of the stream), where the 40-byte header has a trailer bit. (Only the daq
// words differ: with 12 header bytes less, a legacy datagram holds more hits, so a frame needs
// fewer datagrams.)

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "shoredaq/dataflow/timeslice_builder.hpp"
#include "shoredaq/drivers/du_simulator.hpp"
#include "shoredaq/filters/data_filter.hpp"

namespace shoredaq::drivers {
namespace {

using dataflow::HeaderLayout;

std::shared_ptr<const dataflow::Detector> detector133() {
  static auto det = std::make_shared<const dataflow::Detector>(
      dataflow::Detector::load(SHOREDAQ_TESTDATA_DIR "/detx/KM3NeT_00000133_20221025.detx"));
  return det;
}

struct FeedResult {
  std::vector<dataflow::Timeslice> slices;
  std::vector<dataflow::Event> events;
  dataflow::TimesliceBuilderCounters builder;
  filters::FilterCounters filter;
};

FeedResult feed_through_builder_and_filter(HeaderLayout layout, std::uint32_t slices) {
  DuSimConfig c;
  c.detector = detector133();
  c.dus = {5, 9};
  c.run_number = 14;
  c.start_unix_ns = 1'700'000'000'000'000'000ull;
  c.seed = 2024;
  c.muon.rate_hz = 40;
  c.muon.light_yield_pe_m = 150;
  c.faults.reorder = true;  // datagrams of a slice shuffled: frames still complete in both
  c.header_layout = layout;
  DuSimulator sim(c);

  dataflow::TimesliceBuilderConfig bc;
  bc.detector_id = c.detector->id();
  bc.run_number = c.run_number;
  for (const auto* m : sim.modules()) bc.expected_doms.push_back(m->id);
  bc.expiry_wall_ns = 0;
  FeedResult r;
  dataflow::TimesliceBuilder builder(bc, [&](dataflow::Timeslice&& t) { r.slices.push_back(std::move(t)); });
  for (std::uint32_t k = 0; k < slices; ++k) {
    const SimulatedSlice s = sim.next_slice();
    for (const SimDatagram& dg : s.datagrams) {
      const auto parsed = dataflow::parse_clb_datagram(dg.bytes, {layout, false});
      EXPECT_TRUE(parsed);
      builder.add(parsed.datagram, 0);
    }
  }
  builder.flush(0);
  r.builder = builder.counters();
  const filters::DataFilter filter(*c.detector, filters::TriggerParameters{});
  for (const auto& t : r.slices) {
    auto result = filter.process(t);
    r.filter += result.counters;
    for (auto& e : result.events) r.events.push_back(std::move(e));
  }
  return r;
}

}  // namespace

TEST(LegacyHeader, SameFeedGivesTheSameSlicesAndEventsAsTheStandardHeader) {
  constexpr std::uint32_t kSlices = 30;
  const FeedResult standard = feed_through_builder_and_filter(HeaderLayout::Standard40, kSlices);
  const FeedResult legacy = feed_through_builder_and_filter(HeaderLayout::Legacy28, kSlices);

  ASSERT_EQ(standard.slices.size(), kSlices);
  ASSERT_EQ(legacy.slices.size(), kSlices);
  for (std::size_t i = 0; i < kSlices; ++i) {
    EXPECT_EQ(legacy.slices[i].header, standard.slices[i].header) << i;
    ASSERT_EQ(legacy.slices[i].frames.size(), standard.slices[i].frames.size());
    for (std::size_t d = 0; d < standard.slices[i].frames.size(); ++d) {
      const auto& a = standard.slices[i].frames[d];
      const auto& b = legacy.slices[i].frames[d];
      EXPECT_EQ(b.dom_id, a.dom_id);
      EXPECT_TRUE(a.status.complete());
      EXPECT_TRUE(b.status.complete()) << "slice " << i << " DOM " << a.dom_id;
      EXPECT_EQ(b.status.status, a.status.status);
      EXPECT_EQ(b.status.fifo, a.status.fifo);
      EXPECT_EQ(b.hits, a.hits);
    }
  }
  EXPECT_EQ(legacy.builder.slices_complete, kSlices);
  EXPECT_EQ(legacy.builder.frames_incomplete, 0u);
  EXPECT_EQ(legacy.builder.frames_completeness_inferred, kSlices * standard.slices[0].frames.size());
  EXPECT_EQ(standard.builder.frames_completeness_inferred, 0u);
  EXPECT_EQ(legacy.filter.frames_eudp, 0u);
  EXPECT_EQ(legacy.filter.frames_good, standard.filter.frames_good);
  EXPECT_EQ(legacy.filter.l1_hits, standard.filter.l1_hits);

  ASSERT_GT(standard.events.size(), 0u);
  EXPECT_EQ(legacy.events, standard.events);
  EXPECT_EQ(legacy.filter.events, standard.filter.events);
}

}  // namespace shoredaq::drivers
