// The DOMs' TMCH monitoring packets travel with their slice (Timeslice::monitoring), so every
// stream that keeps them (IO_MONIT, the run files, /status) sees them in frame order; what finds no
// slice is counted.
#include "shoredaq/dataflow/timeslice_builder.hpp"

#include <gtest/gtest.h>

#include <vector>

using namespace shoredaq::dataflow;

namespace {

constexpr std::uint32_t kRun = 7;
constexpr std::uint32_t kT0Seconds = 1'700'000'000;

struct Owned {
  ClbHeader header;
  std::vector<std::uint8_t> payload;
  HeaderLayout layout = HeaderLayout::Standard40;
  ClbDatagram view() const {
    ClbDatagram d;
    d.header = header;
    d.payload = payload;
    d.layout = layout;
    return d;
  }
};

ClbHeader header(DataType type, std::uint32_t dom, std::uint32_t slice, bool trailer) {
  ClbHeader h;
  h.data_type = type;
  h.run_number = kRun;
  h.utc_seconds = kT0Seconds + slice / 10;
  h.ticks_16ns = (slice % 10) * kTicksPerSlice;
  h.dom_id = dom;
  h.status1 = kStatus1WhiteRabbitOk;
  h.status2 = trailer ? kStatus2Trailer : 0;
  return h;
}

Owned optical(std::uint32_t dom, std::uint32_t slice) { return Owned{header(DataType::Optical, dom, slice, true), {}}; }

Owned monitoring(std::uint32_t dom, std::uint32_t slice, std::uint32_t pmt0_hits) {
  MonitoringPacket p;
  p.header = header(DataType::Monitoring, dom, slice, false);
  p.hit_counts[0] = pmt0_hits;
  p.temperature_c = 31.5;
  const std::vector<std::uint8_t> bytes = encode_monitoring_packet(p);
  const auto parsed = parse_clb_datagram(bytes, ParseOptions{HeaderLayout::Standard40, false});
  EXPECT_TRUE(parsed);
  Owned o;
  o.header = parsed.datagram.header;
  o.payload.assign(parsed.datagram.payload.begin(), parsed.datagram.payload.end());
  return o;
}

}  // namespace

TEST(TimesliceBuilderMonitoring, PacketsTravelWithTheNextEmittedSlice) {
  TimesliceBuilderConfig c;
  c.run_number = kRun;
  c.expected_doms = {1, 2};
  c.expiry_wall_ns = 0;
  std::vector<Timeslice> out;
  TimesliceBuilder b(c, [&](Timeslice&& t) { out.push_back(std::move(t)); });
  b.add(monitoring(2, 0, 20).view(), 0);  // before any hit
  b.add(optical(1, 0).view(), 0);
  b.add(monitoring(1, 0, 10).view(), 0);
  b.add(optical(2, 0).view(), 0);         // slice 0 complete: emitted with both packets
  b.add(monitoring(1, 0, 11).view(), 0);  // slice 0's, after it was emitted: goes with slice 1
  b.add(monitoring(9, 1, 0).view(), 0);   // not an expected DOM
  b.add(optical(1, 1).view(), 0);
  b.add(optical(2, 1).view(), 0);
  b.add(monitoring(2, 5, 0).view(), 0);   // after the last slice
  b.flush(0);
  ASSERT_EQ(out.size(), 2u);
  ASSERT_EQ(out[0].monitoring.size(), 2u);
  EXPECT_EQ(out[0].monitoring[0].dom_id, 2u);  // arrival order
  EXPECT_EQ(out[0].monitoring[1].dom_id, 1u);
  const auto parsed = parse_monitoring_packet(out[0].monitoring[0].datagram);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed.packet.hit_counts[0], 20u);  // byte for byte the packet that came in
  EXPECT_NEAR(parsed.packet.temperature_c, 31.5, 0.01);
  ASSERT_EQ(out[1].monitoring.size(), 1u);
  const auto late = parse_monitoring_packet(out[1].monitoring[0].datagram);
  ASSERT_TRUE(late);
  EXPECT_EQ(late.packet.header.ticks_16ns, 0u);  // it still says which slice it measured
  EXPECT_EQ(late.packet.hit_counts[0], 11u);
  const auto& k = b.counters();
  EXPECT_EQ(k.monitoring_datagrams, 5u);
  EXPECT_EQ(k.monitoring_attached, 3u);
  EXPECT_EQ(k.monitoring_unattached, 2u);  // the unknown DOM, and the one after the last slice
}
