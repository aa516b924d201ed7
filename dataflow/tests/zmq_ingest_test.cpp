#include "shoredaq/dataflow/zmq_ingest.hpp"

#include <gtest/gtest.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <unistd.h>

using namespace shoredaq::dataflow;
using namespace std::chrono_literals;

namespace {

ClbHeader header(std::uint32_t dom, std::uint32_t seq) {
  ClbHeader h;
  h.data_type = DataType::Optical;
  h.run_number = 5;
  h.udp_sequence = seq;
  h.utc_seconds = 1'600'000'000;
  h.ticks_16ns = kTicksPerSlice;
  h.dom_id = dom;
  h.status1 = kStatus1WhiteRabbitOk;
  h.status2 = kStatus2Trailer;
  return h;
}

void append_record(std::vector<std::uint8_t>& out, const std::vector<std::uint8_t>& datagram) {
  const auto n = static_cast<std::uint32_t>(datagram.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(n >> (8 * i)));
  out.insert(out.end(), datagram.begin(), datagram.end());
}

std::vector<std::uint8_t> datagram(std::uint32_t dom, std::uint32_t seq, std::size_t hits,
                                   HeaderLayout layout = HeaderLayout::Standard40) {
  std::vector<Hit> h;
  for (std::size_t i = 0; i < hits; ++i) h.push_back(Hit{static_cast<std::uint8_t>(i % 31), static_cast<std::uint32_t>(i * 10), 26});
  return encode_optical_datagram(header(dom, seq), h, layout);
}

// Collects what the ingest thread hands over; waits on a condition with a deadline.
struct Collector {
  std::mutex m;
  std::condition_variable cv;
  std::vector<ParsedMessage> messages;
  std::size_t datagrams = 0;
  void operator()(ParsedMessage&& pm) {
    std::lock_guard lock(m);
    datagrams += pm.records.size();
    messages.push_back(std::move(pm));
    cv.notify_all();
  }
  bool wait_datagrams(std::size_t n) {
    std::unique_lock lock(m);
    return cv.wait_for(lock, 10s, [&] { return datagrams >= n; });
  }
};

bool wait_until(const std::function<bool()>& cond) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

IngestEndpoint endpoint(std::string address, IngestSocketKind kind = IngestSocketKind::Pull, bool bind = true) {
  IngestEndpoint e;
  e.address = std::move(address);
  e.kind = kind;
  e.bind = bind;
  return e;
}

void send(zmq::socket_t& push, const std::vector<std::uint8_t>& bytes) {
  ASSERT_TRUE(push.send(zmq::buffer(bytes), zmq::send_flags::none));
}

}  // namespace

TEST(IngestParser, AcceptsRecordsAndPointsIntoTheMessage) {
  std::vector<std::uint8_t> msg;
  append_record(msg, datagram(11, 0, 3));
  append_record(msg, datagram(12, 1, 0));
  IngestParser p;
  std::vector<ParsedRecord> out;
  EXPECT_EQ(p.parse(msg, out), 2u);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].header.dom_id, 11u);
  EXPECT_EQ(out[0].payload_size, 3 * kHitBytes);
  EXPECT_EQ(out[0].payload_offset, 4 + kClbHeaderBytes);
  EXPECT_EQ(out[1].header.udp_sequence, 1u);
  EXPECT_EQ(p.counters().datagrams, 2u);
  EXPECT_EQ(p.counters().datagram_bytes, msg.size());
  EXPECT_EQ(p.counters().rejected_bytes_total(), 0u);
}

TEST(IngestParser, CountsEveryRejectedByteByCause) {
  IngestParser p;
  std::vector<ParsedRecord> out;
  // A good record, a record with a bad payload size, one with an unknown type, a truncated header.
  std::vector<std::uint8_t> msg;
  append_record(msg, datagram(1, 0, 2));
  auto bad_size = datagram(1, 1, 2);
  bad_size.push_back(0);
  append_record(msg, bad_size);
  auto bad_type = datagram(1, 2, 1);
  bad_type[0] = 'X';
  append_record(msg, bad_type);
  append_record(msg, std::vector<std::uint8_t>{'T', 'T', 'D', 'C', 0, 0, 0, 0, 0, 0});
  // Then a length that overruns the message: everything after it is rejected too.
  const std::size_t good_and_bad = msg.size();
  msg.insert(msg.end(), {0xff, 0xff, 0x00, 0x00, 1, 2, 3});
  EXPECT_EQ(p.parse(msg, out), 1u);
  const auto& c = p.counters();
  EXPECT_EQ(c.rejected_bytes_of(IngestRejectCause::BadPayloadSize), 4 + bad_size.size());
  EXPECT_EQ(c.rejected_bytes_of(IngestRejectCause::UnknownDataType), 4 + bad_type.size());
  EXPECT_EQ(c.rejected_bytes_of(IngestRejectCause::TruncatedHeader), 14u);
  EXPECT_EQ(c.rejected_bytes_of(IngestRejectCause::BadRecordLength), msg.size() - good_and_bad);
  EXPECT_EQ(c.rejected_records_of(IngestRejectCause::BadRecordLength), 1u);
  // Accounting is complete: accepted + rejected = received.
  EXPECT_EQ(c.datagram_bytes + c.rejected_bytes_total(), msg.size());

  // Two stray bytes where a length should be.
  std::vector<std::uint8_t> tail;
  append_record(tail, datagram(1, 3, 1));
  tail.push_back(7);
  tail.push_back(7);
  EXPECT_EQ(p.parse(tail, out), 1u);
  EXPECT_EQ(p.counters().rejected_bytes_of(IngestRejectCause::TruncatedLength), 2u);
  EXPECT_EQ(p.counters().messages, 2u);
}

TEST(IngestParser, AutoDetectsLegacyLayoutOnceAndKeepsIt) {
  IngestParser p(HeaderLayoutMode::Auto);
  std::vector<std::uint8_t> msg;
  append_record(msg, datagram(3, 0, 4, HeaderLayout::Legacy28));
  append_record(msg, datagram(3, 1, 2, HeaderLayout::Legacy28));
  std::vector<ParsedRecord> out;
  EXPECT_EQ(p.parse(msg, out), 2u);
  ASSERT_TRUE(p.layout());
  EXPECT_EQ(*p.layout(), HeaderLayout::Legacy28);
  EXPECT_EQ(out[0].payload_size, 4 * kHitBytes);
  EXPECT_EQ(out[1].payload_offset, msg.size() - 2 * kHitBytes);
}

TEST(IngestParser, LayoutModeNames) {
  EXPECT_EQ(parse_header_layout_mode("auto"), HeaderLayoutMode::Auto);
  EXPECT_EQ(parse_header_layout_mode("28"), HeaderLayoutMode::Legacy28);
  EXPECT_EQ(parse_header_layout_mode("40"), HeaderLayoutMode::Standard40);
  EXPECT_FALSE(parse_header_layout_mode("41"));
}

TEST(ZmqIngest, ReceivesGoodRecordsOverInproc) {
  zmq::context_t ctx;
  Collector got;
  ZmqIngestConfig cfg;
  cfg.endpoints.push_back(endpoint("inproc://ingest-good"));
  ZmqIngest ingest(ctx, cfg, [&](ParsedMessage&& m) { got(std::move(m)); });
  ingest.start();
  zmq::socket_t push(ctx, zmq::socket_type::push);
  push.set(zmq::sockopt::linger, 100);
  push.connect("inproc://ingest-good");
  for (std::uint32_t i = 0; i < 10; ++i) {
    std::vector<std::uint8_t> msg;
    append_record(msg, datagram(100 + i, 0, i));
    append_record(msg, datagram(100 + i, 1, 1));
    send(push, msg);
  }
  ASSERT_TRUE(got.wait_datagrams(20));
  {
    std::lock_guard lock(got.m);
    ASSERT_EQ(got.messages.size(), 10u);
    const ClbDatagram d = got.messages[7].datagram(0);
    EXPECT_EQ(d.header.dom_id, 107u);
    ASSERT_EQ(d.hit_count(), 7u);
    EXPECT_EQ(d.hit(6).time_ns, 60u);
    EXPECT_GT(got.messages[0].receive_unix_ns, 0u);
  }
  ASSERT_TRUE(wait_until([&] { return ingest.counters().datagrams == 20; }));
  EXPECT_EQ(ingest.counters().messages, 10u);
  EXPECT_EQ(ingest.counters().rejected_bytes_total(), 0u);
  ingest.stop();
  EXPECT_FALSE(ingest.running());
}

TEST(ZmqIngest, GarbageAndOverrunningLengthsAreCountedNotDelivered) {
  zmq::context_t ctx;
  Collector got;
  ZmqIngestConfig cfg;
  cfg.endpoints.push_back(endpoint("inproc://ingest-garbage"));
  RateLimitedLog log(nullptr, 10s, 1);
  ZmqIngest ingest(ctx, cfg, [&](ParsedMessage&& m) { got(std::move(m)); }, &log);
  ingest.start();
  zmq::socket_t push(ctx, zmq::socket_type::push);
  push.set(zmq::sockopt::linger, 100);
  push.connect("inproc://ingest-garbage");
  std::size_t garbage_bytes = 0;
  for (int i = 0; i < 50; ++i) {
    std::vector<std::uint8_t> junk(13 + i, static_cast<std::uint8_t>(0xA5 + i));
    garbage_bytes += junk.size();
    send(push, junk);
  }
  std::vector<std::uint8_t> overrun = {0x00, 0x10, 0x00, 0x00, 'T', 'T', 'D', 'C'};
  send(push, overrun);
  std::vector<std::uint8_t> good;
  append_record(good, datagram(9, 0, 2));
  send(push, good);  // order within one PUSH/PULL pair is kept: the good one arrives last
  ASSERT_TRUE(got.wait_datagrams(1));
  ASSERT_TRUE(wait_until([&] { return ingest.counters().messages == 52; }));
  const IngestCounters c = ingest.counters();
  EXPECT_EQ(c.datagrams, 1u);
  EXPECT_EQ(c.rejected_bytes_total(), garbage_bytes + overrun.size());
  EXPECT_EQ(c.bytes, garbage_bytes + overrun.size() + good.size());
  EXPECT_GE(c.rejected_records_of(IngestRejectCause::BadRecordLength), 1u);
  EXPECT_GT(log.suppressed_total(), 0u);  // 50 similar complaints did not all reach the log
  std::lock_guard lock(got.m);
  EXPECT_EQ(got.messages.size(), 1u);  // messages with nothing valid are not handed on
}

TEST(ZmqIngest, IpcPullAndSubEndpointsWithPerEndpointCounters) {
  const auto dir = std::filesystem::temp_directory_path() / ("shoredaq-ingest-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string pull_ep = "ipc://" + (dir / "pull").string();
  const std::string sub_ep = "ipc://" + (dir / "sub").string();
  {
    zmq::context_t ctx;
    Collector got;
    ZmqIngestConfig cfg;
    cfg.endpoints.push_back(endpoint(pull_ep));
    IngestEndpoint sub = endpoint(sub_ep, IngestSocketKind::Sub, /*bind=*/false);
    cfg.endpoints.push_back(sub);
    zmq::socket_t pub(ctx, zmq::socket_type::pub);
    pub.set(zmq::sockopt::linger, 100);
    pub.bind(sub_ep);
    ZmqIngest ingest(ctx, cfg, [&](ParsedMessage&& m) { got(std::move(m)); });
    ingest.start();
    zmq::socket_t push(ctx, zmq::socket_type::push);
    push.set(zmq::sockopt::linger, 100);
    push.connect(pull_ep);
    std::vector<std::uint8_t> msg;
    append_record(msg, datagram(1, 0, 5));
    send(push, msg);
    ASSERT_TRUE(got.wait_datagrams(1));
    // PUB drops until the subscription has arrived: publish until one gets through.
    std::vector<std::uint8_t> pmsg;
    append_record(pmsg, datagram(2, 0, 1));
    ASSERT_TRUE(wait_until([&] {
      pub.send(zmq::buffer(pmsg), zmq::send_flags::dontwait);
      return ingest.counters(1).datagrams > 0;
    }));
    EXPECT_EQ(ingest.counters(0).datagrams, 1u);
    ingest.stop();
  }
  std::filesystem::remove_all(dir);
}

TEST(ZmqIngest, StopReturnsPromptlyWithoutTraffic) {
  zmq::context_t ctx;
  ZmqIngestConfig cfg;
  cfg.endpoints.push_back(endpoint("inproc://ingest-idle"));
  cfg.poll_interval = 20ms;
  ZmqIngest ingest(ctx, cfg, [](ParsedMessage&&) {});
  ingest.start();
  ASSERT_TRUE(wait_until([&] { return ingest.last_poll_unix_ns() != 0; }));
  const auto t0 = std::chrono::steady_clock::now();
  ingest.stop();
  // Generous: the bound is one poll interval; this only guards against a hang.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST(ZmqIngest, BadEndpointThrowsAtStart) {
  zmq::context_t ctx;
  ZmqIngestConfig cfg;
  cfg.endpoints.push_back(endpoint("nonsense://x"));
  ZmqIngest ingest(ctx, cfg, [](ParsedMessage&&) {});
  EXPECT_THROW(ingest.start(), zmq::error_t);
  EXPECT_FALSE(ingest.running());
}

TEST(ZmqIngest, MessageOverTheSizeLimitIsCountedAndTheNextPeerGetsThrough) {
  const auto dir = std::filesystem::temp_directory_path() / ("shoredaq-ingest-big-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string ep = "ipc://" + (dir / "pull").string();
  {
    zmq::context_t ctx;
    Collector got;
    ZmqIngestConfig cfg;
    cfg.endpoints.push_back(endpoint(ep));
    cfg.max_message_bytes = 1000;
    cfg.hard_max_message_bytes = 3000;
    ZmqIngest ingest(ctx, cfg, [&](ParsedMessage&& m) { got(std::move(m)); });
    ingest.start();
    const auto counted = [&](IngestRejectCause c) { return ingest.counters().rejected_records_of(c); };

    // Over the limit, under the hard limit: received, rejected whole, its records and bytes counted.
    zmq::socket_t big_sender(ctx, zmq::socket_type::push);
    big_sender.set(zmq::sockopt::linger, 0);
    big_sender.connect(ep);
    std::vector<std::uint8_t> big;
    append_record(big, datagram(1, 0, 150));  // 40 + 900 bytes
    append_record(big, datagram(1, 1, 150));
    ASSERT_GT(big.size(), 1000u);
    send(big_sender, big);
    ASSERT_TRUE(wait_until([&] { return counted(IngestRejectCause::OversizeMessage) == 2; }));
    EXPECT_EQ(ingest.counters().rejected_bytes_of(IngestRejectCause::OversizeMessage), big.size());

    // Over the hard limit: libzmq closes the connection; the disconnect is what is counted.
    std::vector<std::uint8_t> huge;
    for (int i = 0; i < 4; ++i) append_record(huge, datagram(1, static_cast<std::uint32_t>(2 + i), 150));
    ASSERT_GT(huge.size(), 3000u);
    send(big_sender, huge);
    // The sender is still there: the only way its connection closes is the oversize message.
    ASSERT_TRUE(wait_until([&] { return counted(IngestRejectCause::PeerDisconnected) == 1; }));
    EXPECT_EQ(ingest.counters().rejected_bytes_of(IngestRejectCause::PeerDisconnected), 0u);  // size unknown

    zmq::socket_t next(ctx, zmq::socket_type::push);
    next.set(zmq::sockopt::linger, 100);
    next.connect(ep);
    std::vector<std::uint8_t> small;
    append_record(small, datagram(2, 0, 10));
    send(next, small);
    ASSERT_TRUE(got.wait_datagrams(1));
    // The counters are raised after the sink has the message: wait for them, then check exactly.
    EXPECT_TRUE(wait_until([&] { return ingest.counters().messages >= 2 && ingest.counters().datagrams >= 1; }));
    const IngestCounters c = ingest.counters();
    EXPECT_EQ(c.messages, 2u);  // the rejected big one and the small one; the huge one never arrived
    EXPECT_EQ(c.datagrams, 1u);
    EXPECT_EQ(to_string(IngestRejectCause::PeerDisconnected), "peer_disconnected");
    ingest.stop();
  }
  std::filesystem::remove_all(dir);
}
