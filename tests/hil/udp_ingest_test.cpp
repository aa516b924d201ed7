// HIL: the node reads the CLBs' UDP itself (`[ingest] udp`, issue 10 item 1). One du-sim feed,
// written to a .dqd once, reaches a node (a) as UDP datagrams, (b) over ZeroMQ, and (c) through
// `shoredaq replay`: the three stores hold the same events and the same summary slices, and (a)
// lost nothing in the kernel or in the node. A UDP port in use refuses the start.
#include <gtest/gtest.h>

#include <algorithm>

#include "hil_support.hpp"
#include "shoredaq/formats/fb_codec.hpp"
#include "shoredaq/storage/event_store.hpp"

using namespace hil;

namespace {

constexpr std::uint32_t kRun = 7;
constexpr unsigned kSlices = 20;  // fewer than [builder] queue_slices below

// A slice completes by the frames of every DOM, never by the wall clock, and the queue between
// builder and filter holds the whole feed: however slowly a loaded machine filters, the live nodes
// (lossy queues) build and keep the same slices as the offline replay.
const std::string kBuilderToml = "[builder]\nwall_clock_expiry_ms = 600000\nqueue_slices = 64\n";

// The events of a run as shore-events prints them, without the node-local clocks.
nlohmann::json events_of(const fs::path& store, const fs::path& scratch) {
  const auto r = hil::run({program("shore-events"), "--store", store.string(), "events", "--run", std::to_string(kRun), "--json"},
                          scratch);
  nlohmann::json all = nlohmann::json::array();
  std::istringstream lines(r.out);
  std::string line;
  while (std::getline(lines, line)) {
    auto e = nlohmann::json::parse(line, nullptr, false);
    if (e.is_discarded() || !e.is_object()) continue;
    for (const char* k : {"received_unix_ns", "completed_unix_ns", "filtered_unix_ns", "committed_unix_ns"}) e.erase(k);
    all.push_back(e);
  }
  return all;
}

std::vector<shoredaq::dataflow::SummarySlice> summaries_of(const fs::path& store) {
  std::vector<shoredaq::dataflow::SummarySlice> out;
  auto reader = shoredaq::storage::EventStoreReader::open(store);
  reader.for_each_summary(kRun, 0, 0xffffffffu, [&](std::uint32_t, std::uint32_t, std::span<const std::uint8_t> b) {
    out.push_back(shoredaq::dataflow::decode_summary_slice_fb(b).value);
    return true;
  });
  return out;
}

std::uint64_t counter(const nlohmann::json& status, const std::string& key) {
  return status["counters"].value(key, std::uint64_t{0});
}

// Every drop the node counts that is not zero ("" when none).
std::string nonzero_drops(const nlohmann::json& status) {
  std::string out;
  for (const auto& [k, v] : status["drops"].items()) {
    if (v.get<std::uint64_t>() != 0) out += k + "=" + std::to_string(v.get<std::uint64_t>()) + " ";
  }
  return out;
}

// A UDP socket bound to a free loopback port (the kernel's choice); closed when destroyed.
struct BoundUdpSocket {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);  // not inherited by the node
  int port = 0;
  BoundUdpSocket() {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("bind");
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~BoundUdpSocket() { close(); }
  void close() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

}  // namespace

TEST(HilUdpIngest, UdpZeroMqAndReplayStoreTheSameFeedAndUdpLosesNothing) {
  // (a) the UDP node: optical and monitoring ports on kernel-chosen ports, no ZeroMQ at all.
  Rig udp_rig("udp-ingest", "first:1",
              "[ingest]\nendpoints = []\nudp = [\"optical@127.0.0.1:0\", \"monitoring@127.0.0.1:0\"]\n"
              "[metrics]\nenabled = true\nport = 0\n" + kBuilderToml);
  const int metrics_port = metrics_port_of(udp_rig.daemon());
  ASSERT_GT(metrics_port, 0);

  // The feed, once: 2 s of one DU at a low singles rate (a small file), with enough muons for events.
  const fs::path feed = udp_rig.tmp() / "feed.dqd";
  const auto generated = udp_rig.feed({program("du-sim"), "--detx", udp_rig.detx().string(), "--slices", std::to_string(kSlices),
                                       "--run", std::to_string(kRun), "--seed", "5", "--singles-hz", "2500", "--muon-rate-hz",
                                       "100", "--mtu", "8000", "--out", feed.string(), "--json"});
  const std::uint64_t datagrams = generated.at("datagrams_out").get<std::uint64_t>();
  const std::uint64_t feed_bytes = generated.at("output").at("bytes").get<std::uint64_t>();
  ASSERT_GT(datagrams, 0u);

  udp_rig.start_run(kRun);
  const auto running = udp_rig.status();
  const auto& sockets = running["ingest"]["udp"];
  ASSERT_EQ(sockets.size(), 2u) << running.dump(1);
  EXPECT_EQ(sockets[0]["type"], "optical");
  EXPECT_EQ(sockets[1]["type"], "monitoring");
  const int optical_port = sockets[0]["port"].get<int>();
  ASSERT_GT(optical_port, 0) << sockets.dump();
  const auto granted = sockets[0]["receive_buffer_granted_bytes"].get<std::uint64_t>();
  ASSERT_GT(granted, 0u);
  // Paced so that the socket's receive buffer holds at least 2 s of the feed: the receiver would
  // have to stall that long for the kernel to drop a datagram (at most 4 MiB/s, so about 4 s here).
  const std::uint64_t byte_rate = std::clamp<std::uint64_t>(granted / 2, 256 * 1024, 4 * 1024 * 1024);
  const auto sent = udp_rig.feed({program("du-sim"), "--replay", feed.string(), "--udp",
                                  "127.0.0.1:" + std::to_string(optical_port), "--udp-byte-rate-limit",
                                  std::to_string(byte_rate), "--json"},
                                 std::chrono::seconds(60 + 2 * feed_bytes / byte_rate));
  ASSERT_EQ(sent.at("udp").at("datagrams_sent").get<std::uint64_t>(), datagrams) << sent.dump();
  // Every datagram sent is either received or counted as a kernel drop (read at the latest at stop).
  ASSERT_TRUE(wait_until([&] { return counter(udp_rig.status(), "udp.datagrams") >= datagrams; }, 30s, 100ms))
      << udp_rig.status().dump(1);
  const std::string metrics = http_get(metrics_port, "/metrics");
  udp_rig.stop_run();
  const auto after = udp_rig.status();
  EXPECT_EQ(counter(after, "udp.datagrams"), datagrams);
  EXPECT_EQ(after["drops"].value("udp.kernel_drops", std::uint64_t{1}), 0u);
  EXPECT_EQ(nonzero_drops(after), "") << after["drops"].dump(1);
  EXPECT_EQ(counter(after, "builder.datagrams"), datagrams);
  const auto& optical = after["ingest"]["udp"][0];
  EXPECT_EQ(optical["datagrams"].get<std::uint64_t>(), datagrams) << optical.dump();
  EXPECT_EQ(optical["kernel_drops"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(after["ingest"]["udp"][1]["datagrams"].get<std::uint64_t>(), 0u);
  EXPECT_NE(metrics.find("shoredaq_udp_datagrams_total{port=\"" + std::to_string(optical_port) + "\",type=\"optical\"} " +
                         std::to_string(datagrams)),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("shoredaq_udp_kernel_drops_total{port=\"" + std::to_string(optical_port) + "\",type=\"optical\"} 0"),
            std::string::npos);
  EXPECT_NE(metrics.find("shoredaq_dropped_total{cause=\"kernel_drops\",stage=\"udp\"} 0"), std::string::npos);
  udp_rig.quit();

  // (b) the same feed over ZeroMQ into a node of its own.
  Rig zmq_rig("udp-ingest-zmq", "first:1", kBuilderToml);
  zmq_rig.start_run(kRun);
  zmq_rig.feed({program("du-sim"), "--replay", feed.string(), "--endpoint", zmq_rig.node().ingest, "--linger-ms", "5000", "--json"});
  ASSERT_TRUE(wait_until([&] { return counter(zmq_rig.status(), "ingest.datagrams") >= datagrams; }, 30s, 100ms));
  zmq_rig.stop_run();
  EXPECT_EQ(nonzero_drops(zmq_rig.status()), "");
  zmq_rig.quit();

  // (c) offline.
  const fs::path replay_store = udp_rig.tmp() / "replay";
  const auto replay = hil::run({program("shoredaq"), "replay", "--detx", udp_rig.detx().string(), "--input", feed.string(),
                                "--store", replay_store.string(), "--run", std::to_string(kRun)},
                               udp_rig.tmp().path(), 120s);
  ASSERT_EQ(replay.code, 0) << replay.err;

  const auto offline_events = events_of(replay_store, udp_rig.tmp().path());
  ASSERT_FALSE(offline_events.empty());
  EXPECT_EQ(events_of(udp_rig.node().store(), udp_rig.tmp().path()), offline_events);
  EXPECT_EQ(events_of(zmq_rig.node().store(), udp_rig.tmp().path()), offline_events);
  const auto offline_summaries = summaries_of(replay_store);
  ASSERT_EQ(offline_summaries.size(), kSlices);
  EXPECT_TRUE(summaries_of(udp_rig.node().store()) == offline_summaries);
  EXPECT_TRUE(summaries_of(zmq_rig.node().store()) == offline_summaries);
}

TEST(HilUdpIngest, APortInUseRefusesTheStartAndTheRunNumberStaysFree) {
  BoundUdpSocket taken;
  Rig rig("udp-in-use", "first:1",
          "[ingest]\nendpoints = []\nudp = [\"optical@127.0.0.1:" + std::to_string(taken.port) + "\"]\n");
  Rig::must(rig.ctl({"init"}));
  Rig::must(rig.ctl({"configure", "--detx", rig.detx().string()}));
  const auto refused = rig.ctl({"start", "--run", "9"});
  EXPECT_NE(refused.code, 0);
  EXPECT_NE((refused.out + refused.err).find("cannot open the UDP ports"), std::string::npos) << refused.out << refused.err;
  EXPECT_NE((refused.out + refused.err).find(std::to_string(taken.port)), std::string::npos);
  EXPECT_EQ(state_of(rig.node()), "Ready");
  taken.close();
  Rig::must(rig.ctl({"start", "--run", "9"}));
  EXPECT_EQ(state_of(rig.node()), "Running");
  rig.stop_run();
  rig.quit();
}
