// `[ingest] udp` in the run's wiring: the receiver's config from the node's, no ZeroMQ ingest when
// only UDP is configured, and the receiver's counters as the loss alarm and /metrics see them.
#include <gtest/gtest.h>

#include "shoredaq/firmware/config.hpp"
#include "shoredaq/firmware/node_counters.hpp"
#include "shoredaq/firmware/run_session.hpp"

using namespace shoredaq;
using namespace shoredaq::firmware;

namespace {
dataflow::Detector one_dom_detector() {
  dataflow::Module m;
  m.id = 808447066;
  m.du = 1;
  m.floor = 1;
  m.pmts.resize(dataflow::kPmtsPerDom);
  return dataflow::Detector(133, {m});
}
}  // namespace

TEST(UdpIngestWiring, ReceiverConfigFollowsTheNodeConfig) {
  const NodeConfig c = parse_config(
      "[ingest]\nendpoints = [\"ipc:///tmp/a\", \"ipc:///tmp/b\"]\nheader_layout = \"28\"\nudp_receive_buffer_mb = 8\n"
      "udp = [\"optical@127.0.0.1:56015\", \"monitoring@[::1]:0\"]\n");
  const drivers::UdpReceiverConfig u = live_udp_config(c);
  ASSERT_EQ(u.ports.size(), 2u);
  EXPECT_EQ(u.ports[0].data_type, dataflow::DataType::Optical);
  EXPECT_EQ(u.ports[0].bind, (drivers::UdpEndpoint{"127.0.0.1", 56015}));
  EXPECT_EQ(u.ports[1].data_type, dataflow::DataType::Monitoring);
  EXPECT_EQ(u.ports[1].bind, (drivers::UdpEndpoint{"::1", 0}));
  EXPECT_EQ(u.ports[0].header_layout, dataflow::HeaderLayoutMode::Legacy28);
  EXPECT_EQ(u.ports[1].receive_buffer_bytes, 8 << 20);
  EXPECT_EQ(u.endpoint_index_base, 2u);  // numbered after the ZeroMQ endpoints
  EXPECT_TRUE(live_pipeline_config(c, one_dom_detector(), 1, {}).ingest.has_value());
}

TEST(UdpIngestWiring, OnlyUdpMeansNoZeroMqIngest) {
  const NodeConfig c = parse_config("[ingest]\nendpoints = []\nudp = [\"optical@127.0.0.1:0\"]\n");
  EXPECT_FALSE(live_pipeline_config(c, one_dom_detector(), 1, {}).ingest.has_value());
  EXPECT_EQ(live_udp_config(c).endpoint_index_base, 0u);
}

TEST(UdpIngestWiring, CountersAreNamedAndWeighedAsDataLoss) {
  drivers::UdpSocketCounters c;
  c.datagrams = 1000;  // every datagram the kernel handed over, rejected ones included
  c.bytes = 123456;
  c.kernel_drops_rxq_ovfl = 7;
  c.kernel_drops_proc = 9;  // the larger of the two sources counts
  c.truncated_datagrams = 2;
  c.other_data_type = 4;
  c.other_data_type_dropped = 3;
  c.ingest.rejected_records[static_cast<std::size_t>(dataflow::IngestRejectCause::TruncatedHeader)] = 5;
  c.ingest.rejected_bytes[static_cast<std::size_t>(dataflow::IngestRejectCause::TruncatedHeader)] = 50;
  dataflow::CounterSet set;
  describe_udp(c, set);
  EXPECT_EQ(set.value("udp.datagrams"), 1000u);
  EXPECT_EQ(set.value("udp.bytes"), 123456u);
  EXPECT_EQ(set.value("udp.other_data_type"), 4u);
  EXPECT_EQ(set.value("udp.kernel_drops", true), 9u);
  EXPECT_EQ(set.value("udp.truncated_datagrams", true), 2u);
  EXPECT_EQ(set.value("udp.other_data_type_dropped", true), 3u);
  EXPECT_EQ(set.value("udp.truncated_header.records", true), 5u);
  EXPECT_EQ(set.value("udp.truncated_header.bytes", true), 50u);
  EXPECT_EQ(set.flat().count("drop.udp.peer_disconnected.records"), 0u);  // no peers over UDP

  const LossTotals t = loss_totals(set, {});
  // Offered: what arrived plus what the kernel dropped before the node saw it.
  EXPECT_EQ(t.datagrams_offered, 1009u);
  EXPECT_EQ(t.datagrams_lost.at("udp.kernel_drops"), 9u);
  EXPECT_EQ(t.datagrams_lost.at("udp.truncated_datagrams"), 2u);
  EXPECT_EQ(t.datagrams_lost.at("udp.other_data_type_dropped"), 3u);
  EXPECT_EQ(t.datagrams_lost.at("udp.truncated_header.records"), 5u);
  EXPECT_EQ(t.datagrams_lost.count("udp.truncated_header.bytes"), 0u);  // the same loss, not counted twice
}
