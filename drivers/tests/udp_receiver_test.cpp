// UdpReceiver on 127.0.0.1 ephemeral ports: exact counts per socket, bad datagrams by the ZeroMQ
// ingest's causes, truncation, another data type on a port, kernel drops (SO_RXQ_OVFL and /proc),
// the receive buffer grant, bounded stop, and the same records as dataflow::IngestParser gives
// for the same feed. Every wait has a deadline; the senders wait for the receiver's counts
// between small windows, so no test depends on the kernel buffer size or on scheduling.

#include "shoredaq/drivers/udp_receiver.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <system_error>

#include "shoredaq/formats/detector.hpp"
#include "shoredaq/formats/record_stream.hpp"
#include "shoredaq/drivers/du_simulator.hpp"
#include "shoredaq/drivers/udp_sender.hpp"
#include "udp_test_support.hpp"

namespace shoredaq::drivers {
namespace {

using dataflow::DataType;
using dataflow::IngestRejectCause;
using namespace std::chrono_literals;

UdpPortConfig loopback_port(DataType type) {
  UdpPortConfig p;
  p.data_type = type;
  p.bind = UdpEndpoint{"127.0.0.1", 0};
  p.receive_buffer_bytes = 4 << 20;
  return p;
}

// Collects what the receiver hands its sink (on the receiver thread).
struct Collected {
  std::mutex mutex;
  std::vector<dataflow::ParsedMessage> messages;
  UdpReceiver::MessageSink sink() {
    return [this](dataflow::ParsedMessage&& m) {
      std::lock_guard lock(mutex);
      messages.push_back(std::move(m));
    };
  }
  // Every accepted datagram of socket `endpoint`, in arrival order.
  std::vector<std::vector<std::uint8_t>> datagrams(std::size_t endpoint) {
    std::lock_guard lock(mutex);
    std::vector<std::vector<std::uint8_t>> out;
    for (const auto& m : messages) {
      if (m.endpoint != endpoint) continue;
      for (std::size_t i = 0; i < m.records.size(); ++i) out.push_back(udp_test::datagram_bytes(m, i));
    }
    return out;
  }
};

// Sends in windows of `window` datagrams, each time waiting until the receiver has counted them.
void send_windowed(const udp_test::Sender& sender, const UdpReceiver& receiver, std::size_t socket,
                   const std::vector<std::vector<std::uint8_t>>& datagrams, std::size_t window = 16) {
  const std::uint64_t before = receiver.counters(socket).datagrams;
  for (std::size_t i = 0; i < datagrams.size(); i += window) {
    const std::size_t end = std::min(datagrams.size(), i + window);
    for (std::size_t k = i; k < end; ++k) sender.send(receiver.sockets()[socket].bound.port, datagrams[k]);
    ASSERT_TRUE(udp_test::wait_until([&] { return receiver.counters(socket).datagrams >= before + end; }))
        << "the receiver got " << receiver.counters(socket).datagrams - before << " of " << end;
  }
}

TEST(UdpReceiver, CountsEveryDatagramPerSocketAndHandsOnTheRecords) {
  Collected got;
  UdpReceiverConfig config;
  config.ports = {loopback_port(DataType::Optical), loopback_port(DataType::Monitoring)};
  config.endpoint_index_base = 3;
  UdpReceiver receiver(config, got.sink());
  receiver.start();
  const auto sockets = receiver.sockets();
  ASSERT_EQ(sockets.size(), 2u);
  EXPECT_EQ(sockets[0].bound.host, "127.0.0.1");
  EXPECT_NE(sockets[0].bound.port, 0);
  EXPECT_NE(sockets[0].bound.port, sockets[1].bound.port);

  std::vector<std::vector<std::uint8_t>> optical, monitoring;
  std::uint64_t optical_bytes = 0;
  for (std::uint32_t i = 0; i < 100; ++i) {
    optical.push_back(udp_test::optical(808'000'000 + i % 3, i, 1 + i % 40));
    optical_bytes += optical.back().size();
  }
  for (std::uint32_t i = 0; i < 18; ++i) monitoring.push_back(udp_test::monitoring(808'000'000 + i));
  udp_test::Sender sender;
  send_windowed(sender, receiver, 0, optical);
  send_windowed(sender, receiver, 1, monitoring);
  receiver.stop();

  const UdpSocketCounters o = receiver.counters(0), m = receiver.counters(1);
  EXPECT_EQ(o.datagrams, 100u);
  EXPECT_EQ(o.bytes, optical_bytes);
  EXPECT_EQ(o.ingest.datagrams, 100u);
  EXPECT_EQ(o.ingest.datagram_bytes, optical_bytes + 100 * dataflow::kRecordLengthBytes);
  EXPECT_EQ(o.ingest.rejected_bytes_total(), 0u);
  EXPECT_GE(o.messages, 1u);
  EXPECT_EQ(o.messages, o.ingest.messages);
  EXPECT_EQ(m.datagrams, 18u);
  EXPECT_EQ(m.ingest.datagrams, 18u);
  EXPECT_EQ(m.other_data_type, 0u);
  EXPECT_EQ(o.kernel_drops(), 0u);
  EXPECT_EQ(m.kernel_drops(), 0u);
  EXPECT_EQ(receiver.counters().datagrams, 118u);  // the sum over sockets

  EXPECT_EQ(got.datagrams(3), optical);  // endpoint = base + socket index; order kept per socket
  EXPECT_EQ(got.datagrams(4), monitoring);
  std::lock_guard lock(got.mutex);
  for (const auto& msg : got.messages) EXPECT_GT(msg.receive_unix_ns, 0u);
}

TEST(UdpReceiver, BadDatagramsAreCountedByTheZeroMqIngestCauses) {
  Collected got;
  UdpReceiverConfig config;
  config.ports = {loopback_port(DataType::Optical), loopback_port(DataType::Monitoring)};
  UdpReceiver receiver(config, got.sink());
  receiver.start();

  auto unknown = udp_test::optical(1, 0);
  std::memcpy(unknown.data(), "XXXX", 4);
  auto odd_payload = udp_test::optical(1, 1);
  odd_payload.resize(odd_payload.size() - 2);  // not a whole number of 6-byte hits
  auto short_header = udp_test::optical(1, 3);
  short_header.resize(10);  // "TTDC" and 6 bytes of the header
  const std::vector<std::uint8_t> empty;
  auto short_monitoring = udp_test::monitoring(1);
  short_monitoring.resize(200);
  udp_test::Sender sender;
  send_windowed(sender, receiver, 0, {unknown, odd_payload, short_header, empty, udp_test::optical(1, 2)}, 1);
  send_windowed(sender, receiver, 1, {short_monitoring}, 1);
  receiver.stop();

  const auto o = receiver.counters(0).ingest;
  EXPECT_EQ(o.datagrams, 1u);
  EXPECT_EQ(o.rejected_records_of(IngestRejectCause::UnknownDataType), 1u);
  EXPECT_EQ(o.rejected_records_of(IngestRejectCause::BadPayloadSize), 1u);
  EXPECT_EQ(o.rejected_records_of(IngestRejectCause::TruncatedHeader), 2u);  // 10 bytes, and 0 bytes
  // Record bytes, as on the ZeroMQ path: the datagram plus its 4-byte length.
  EXPECT_EQ(o.rejected_bytes_of(IngestRejectCause::TruncatedHeader), 10u + 4 + 0 + 4);
  EXPECT_EQ(receiver.counters(1).ingest.rejected_records_of(IngestRejectCause::BadMonitoringSize), 1u);
  EXPECT_EQ(receiver.counters(0).datagrams, 5u);
  EXPECT_EQ(got.datagrams(0), std::vector<std::vector<std::uint8_t>>{udp_test::optical(1, 2)});
}

TEST(UdpReceiver, DatagramsLongerThanTheSlotAreCountedAsTruncatedAndDropped) {
  Collected got;
  UdpReceiverConfig config;
  config.ports = {loopback_port(DataType::Optical)};
  config.max_datagram_bytes = 2048;
  UdpReceiver receiver(config, got.sink());
  receiver.start();
  const auto big = udp_test::optical(5, 0, 500);  // 40 + 3000 bytes
  const auto fits = udp_test::optical(5, 1, 300);  // 40 + 1800 bytes
  udp_test::Sender sender;
  send_windowed(sender, receiver, 0, {big, fits}, 1);
  receiver.stop();
  const auto c = receiver.counters(0);
  EXPECT_EQ(c.datagrams, 2u);
  EXPECT_EQ(c.truncated_datagrams, 1u);
  EXPECT_EQ(c.ingest.datagrams, 1u);
  EXPECT_EQ(c.ingest.rejected_bytes_total(), 0u);  // never half-parsed
  EXPECT_EQ(got.datagrams(0), std::vector<std::vector<std::uint8_t>>{fits});
}

TEST(UdpReceiver, AnotherDataTypeOnAPortIsAcceptedAndCountedOrDroppedWhenStrict) {
  for (const bool accept : {true, false}) {
    SCOPED_TRACE(accept ? "accepting" : "strict");
    Collected got;
    UdpReceiverConfig config;
    config.ports = {loopback_port(DataType::Optical)};
    config.ports[0].accept_other_data_types = accept;
    UdpReceiver receiver(config, got.sink());
    receiver.start();
    udp_test::Sender sender;
    send_windowed(sender, receiver, 0, {udp_test::monitoring(9), udp_test::optical(9, 0)}, 1);
    receiver.stop();
    const auto c = receiver.counters(0);
    EXPECT_EQ(c.other_data_type, 1u);
    EXPECT_EQ(c.other_data_type_dropped, accept ? 0u : 1u);
    EXPECT_EQ(c.ingest.datagrams, accept ? 2u : 1u);
    EXPECT_EQ(got.datagrams(0).size(), accept ? 2u : 1u);
  }
}

TEST(UdpReceiver, KernelDropsAreCountedFromSoRxqOvflAndProc) {
  Collected got;
  UdpReceiverConfig config;
  config.ports = {loopback_port(DataType::Optical)};
  config.ports[0].receive_buffer_bytes = 1;  // the kernel's minimum: a few datagrams
  config.ports[0].force_receive_buffer = false;
  config.kernel_stats_interval = 5ms;
  UdpReceiver receiver(config, got.sink());
  receiver.open();  // bound, not read yet: the kernel queue fills and drops
  const std::uint16_t port = receiver.sockets()[0].bound.port;
  udp_test::Sender sender;
  constexpr std::uint64_t kSent = 200;
  for (std::uint32_t i = 0; i < kSent; ++i) sender.send(port, udp_test::optical(1, i, 150));
  receiver.start();
  // /proc knows about every drop at once; SO_RXQ_OVFL only with the next datagram queued after them.
  ASSERT_TRUE(udp_test::wait_until([&] {
    const auto c = receiver.counters(0);
    return c.datagrams + c.kernel_drops_proc == kSent;
  })) << receiver.counters(0).datagrams << " received, " << receiver.counters(0).kernel_drops_proc << " dropped";
  const std::uint64_t received_before = receiver.counters(0).datagrams;
  const std::uint64_t dropped = kSent - received_before;
  ASSERT_GT(dropped, 0u);
  ASSERT_GT(received_before, 0u);
  sender.send(port, udp_test::optical(1, 999, 1));  // carries the drop count
  ASSERT_TRUE(udp_test::wait_until([&] { return receiver.counters(0).datagrams == received_before + 1; }));
  receiver.stop();
  const auto c = receiver.counters(0);
  EXPECT_EQ(c.kernel_drops_rxq_ovfl, dropped);  // = sent - received
  EXPECT_EQ(c.kernel_drops_proc, dropped);
  EXPECT_EQ(c.kernel_drops(), dropped);
  EXPECT_EQ(c.ingest.datagrams, received_before + 1);
}

TEST(UdpReceiver, ReportsTheReceiveBufferTheKernelGranted) {
  std::uint64_t rmem_max = 0;
  std::ifstream("/proc/sys/net/core/rmem_max") >> rmem_max;
  ASSERT_GT(rmem_max, 0u);
  UdpReceiverConfig config;
  config.ports = {loopback_port(DataType::Optical), loopback_port(DataType::Optical)};
  config.ports[0].receive_buffer_bytes = 64 * 1024;
  config.ports[0].force_receive_buffer = false;
  config.ports[1].receive_buffer_bytes = static_cast<int>(rmem_max + (1 << 20));
  config.ports[1].force_receive_buffer = false;
  UdpReceiver receiver(config, nullptr);
  receiver.open();
  const auto s = receiver.sockets();
  EXPECT_EQ(s[0].receive_buffer_requested, 64 * 1024);
  EXPECT_EQ(s[0].receive_buffer_granted, std::min<int>(64 * 1024, static_cast<int>(rmem_max)));
  EXPECT_FALSE(s[1].receive_buffer_forced);
  EXPECT_EQ(static_cast<std::uint64_t>(s[1].receive_buffer_granted), rmem_max);  // capped without SO_RCVBUFFORCE
  EXPECT_GT(s[0].inode, 0u);
  receiver.stop();
}

TEST(UdpReceiver, StopWakesTheThreadWithoutWaitingForThePollTimeout) {
  UdpReceiverConfig config;
  config.ports = {loopback_port(DataType::Optical)};
  config.poll_interval = std::chrono::hours(1);
  config.kernel_stats_interval = std::chrono::milliseconds(0);
  UdpReceiver receiver(config, nullptr);
  receiver.start();
  ASSERT_TRUE(receiver.running());
  auto stopped = std::async(std::launch::async, [&] { receiver.stop(); });
  ASSERT_EQ(stopped.wait_for(30s), std::future_status::ready);  // far below the hour of the poll timeout
  EXPECT_FALSE(receiver.running());
  receiver.stop();  // idempotent
  receiver.start();  // and startable again, on fresh sockets
  EXPECT_TRUE(receiver.running());
  receiver.stop();
}

TEST(UdpReceiver, ABadAddressOrABusyPortIsAnErrorAtOpenNamingIt) {
  UdpReceiverConfig config;
  config.ports = {loopback_port(DataType::Optical)};
  UdpReceiver first(config, nullptr);
  first.open();
  config.ports[0].bind.port = first.sockets()[0].bound.port;
  UdpReceiver second(config, nullptr);
  try {
    second.open();
    FAIL() << "bound a port already in use";
  } catch (const std::system_error& e) {
    EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(config.ports[0].bind.port)), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(second.running());
  config.ports[0].bind = UdpEndpoint{"no-such-host.invalid", 0};
  UdpReceiver third(config, nullptr);
  EXPECT_THROW(third.open(), std::invalid_argument);
}

// The same DU simulator feed, once through UDP (one datagram per CLB datagram, each type to its
// port) and once through dataflow::IngestParser as a record stream: identical records.
TEST(UdpReceiver, GivesTheSameRecordsAsTheIngestParserForTheSameFeed) {
  DuSimConfig sim_config;
  sim_config.detector = std::make_shared<const dataflow::Detector>(
      dataflow::Detector::load(SHOREDAQ_TESTDATA_DIR "/detx/KM3NeT_00000133_20221025.detx"));
  sim_config.dus = {9};
  sim_config.start_unix_ns = 1'700'000'000'000'000'000ull;
  sim_config.seed = 4;
  sim_config.monitoring_packets = true;
  DuSimulator sim(sim_config);
  std::vector<std::vector<std::uint8_t>> by_type[2];  // optical, monitoring
  for (int s = 0; s < 2; ++s) {
    for (const SimDatagram& d : sim.next_slice().datagrams) {
      const auto type = peek_data_type(d.bytes.data(), d.bytes.size());
      by_type[type == DataType::Monitoring ? 1 : 0].push_back(d.bytes);
    }
  }
  ASSERT_GT(by_type[0].size(), 100u);
  ASSERT_EQ(by_type[1].size(), 36u);  // 18 DOMs x 2 slices

  Collected got;
  UdpReceiverConfig config;
  config.ports = {loopback_port(DataType::Optical), loopback_port(DataType::Monitoring)};
  UdpReceiver receiver(config, got.sink());
  receiver.start();
  udp_test::Sender sender;
  send_windowed(sender, receiver, 0, by_type[0], 32);
  send_windowed(sender, receiver, 1, by_type[1], 32);
  receiver.stop();

  for (std::size_t socket = 0; socket < 2; ++socket) {
    SCOPED_TRACE(socket == 0 ? "optical" : "monitoring");
    std::vector<std::uint8_t> stream;
    for (const auto& d : by_type[socket]) dataflow::append_record(stream, d);
    dataflow::IngestParser parser(dataflow::HeaderLayoutMode::Standard40);
    dataflow::ParsedMessage direct;
    direct.message = zmq::message_t(stream.data(), stream.size());
    parser.parse(direct.bytes(), direct.records);

    std::vector<dataflow::ClbDatagram> via_udp;
    std::lock_guard lock(got.mutex);
    for (const auto& m : got.messages) {
      if (m.endpoint != socket) continue;
      for (std::size_t i = 0; i < m.records.size(); ++i) via_udp.push_back(m.datagram(i));
    }
    ASSERT_EQ(via_udp.size(), direct.records.size());
    for (std::size_t i = 0; i < via_udp.size(); ++i)
      ASSERT_TRUE(udp_test::same_record(via_udp[i], direct.datagram(i))) << "record " << i;
    const auto c = receiver.counters(socket).ingest;
    EXPECT_EQ(c.datagrams, parser.counters().datagrams);
    EXPECT_EQ(c.datagram_bytes, parser.counters().datagram_bytes);
    EXPECT_EQ(c.rejected_records, parser.counters().rejected_records);
  }
}

TEST(UdpReceiver, ReceivesOnIPv6) {
  Collected got;
  UdpReceiverConfig config;
  config.ports = {loopback_port(DataType::Optical)};
  config.ports[0].bind = UdpEndpoint{"::1", 0};
  UdpReceiver receiver(config, got.sink());
  receiver.start();
  const auto bound = receiver.sockets()[0].bound;
  EXPECT_EQ(bound.host, "::1");
  UdpSenderConfig sender_config;
  sender_config.optical = bound;
  UdpFeedSender sender(sender_config);
  const auto datagram = udp_test::optical(3, 0);
  const std::span<const std::uint8_t> one[] = {datagram};
  sender.send(one);
  ASSERT_TRUE(udp_test::wait_until([&] { return receiver.counters(0).ingest.datagrams == 1; }));
  EXPECT_TRUE(read_kernel_udp_stats(receiver.sockets()[0].inode));  // found in /proc/self/net/udp6
  receiver.stop();
  EXPECT_EQ(got.datagrams(0), std::vector<std::vector<std::uint8_t>>{datagram});
}

TEST(ProcNetUdp, FindsTheSocketByInode) {
  const std::string text =
      "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"
      "  123: 0100007F:DAF7 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 0\n"
      "  456: 00000000:DACF 00000000:0000 07 00000000:00001A00 00:00000000 00000000   100        0 98765 2 0000000000000000 17\n";
  const auto s = parse_proc_net_udp(text, 98765);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->drops, 17u);
  EXPECT_EQ(s->rx_queue_bytes, 0x1A00u);
  EXPECT_FALSE(parse_proc_net_udp(text, 1));
  EXPECT_FALSE(parse_proc_net_udp("garbage\nmore garbage 1 2 3\n", 1));
}

TEST(ProcNetUdp, ReadsALiveSocket) {
  UdpReceiverConfig config;
  config.ports = {loopback_port(DataType::Optical)};
  UdpReceiver receiver(config, nullptr);
  receiver.open();
  const auto s = read_kernel_udp_stats(receiver.sockets()[0].inode);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->drops, 0u);
  receiver.stop();
}

}  // namespace
}  // namespace shoredaq::drivers
