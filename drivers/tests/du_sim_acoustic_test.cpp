// du-sim's acoustic feed: TAES datagrams per DOM beside the optical stream (library and program,
// over a .dqd and over UDP to the acoustic port), counted in the summary.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "shoredaq/drivers/du_simulator.hpp"
#include "shoredaq/formats/clb_datagram.hpp"
#include "shoredaq/formats/record_stream.hpp"
#include "reference_detector.hpp"

using namespace shoredaq;
using namespace shoredaq::drivers;
namespace fs = std::filesystem;

namespace {

const std::string kDuSim = SHOREDAQ_BINARY_DIR "/drivers/du-sim";
const std::string kDetx = SHOREDAQ_TESTDATA_DIR "/detx/KM3NeT_00000133_20221025.detx";

using test_support::detector133;

DuSimConfig config_with_acoustic(double rate_hz) {
  DuSimConfig c;
  c.detector = detector133();
  c.dus = {5};
  c.start_unix_ns = 1'700'000'000'000'000'000ull;
  c.seed = 7;
  c.acoustic.enabled = true;
  c.acoustic.datagrams_per_s = rate_hz;
  return c;
}

bool is_acoustic(const SimDatagram& dg) { return dg.bytes.size() >= 4 && std::memcmp(dg.bytes.data(), "TAES", 4) == 0; }

std::int32_t sample(const std::uint8_t* p) {
  std::uint32_t v = (std::uint32_t{p[0]} << 16) | (std::uint32_t{p[1]} << 8) | p[2];
  if (v & 0x800000u) v |= 0xff000000u;  // sign-extend 24 bits
  return static_cast<std::int32_t>(v);
}

struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device rd;
    path = fs::temp_directory_path() / ("du_sim_acoustic_" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// A UDP socket on an ephemeral loopback port with a large receive buffer.
struct UdpPort {
  int fd = -1;
  std::uint16_t port = 0;
  UdpPort() {
    fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const int buffer = 8 << 20;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~UdpPort() { ::close(fd); }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port); }
  // Datagrams received until `expected` arrived or the deadline passed.
  std::vector<std::vector<std::uint8_t>> receive(std::size_t expected, std::chrono::seconds timeout) const {
    std::vector<std::vector<std::uint8_t>> out;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::vector<std::uint8_t> buffer(65536);
    while (out.size() < expected && std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
      if (n > 0) out.emplace_back(buffer.begin(), buffer.begin() + n);
    }
    return out;
  }
};

}  // namespace

TEST(DuSimAcoustic, EachDomSendsTaesDatagramsAtTheRateWithSequencesAndSliceTimes) {
  DuSimulator sim(config_with_acoustic(25));  // 2.5 per slice: 2, 3, 2, 3, ...
  const std::size_t doms = sim.modules().size();
  std::map<std::uint32_t, std::uint64_t> per_dom;
  std::uint64_t counted = 0;
  for (std::uint32_t k = 0; k < 10; ++k) {
    const auto slice = sim.next_slice();
    std::map<std::uint32_t, std::uint32_t> next_sequence;
    std::uint64_t in_slice = 0;
    for (const auto& dg : slice.datagrams) {
      if (!is_acoustic(dg)) continue;
      const auto parsed = dataflow::parse_clb_datagram(dg.bytes);
      ASSERT_TRUE(parsed) << dataflow::to_string(parsed.error);
      const auto& h = parsed.datagram.header;
      EXPECT_EQ(h.data_type, dataflow::DataType::Acoustic);
      EXPECT_EQ(h.dom_id, dg.dom_id);
      EXPECT_EQ(h.slice_start_ns(), sim.slice_start_unix_ns(k));
      EXPECT_EQ(h.udp_sequence, next_sequence[h.dom_id]++);
      EXPECT_TRUE(h.white_rabbit_ok());
      EXPECT_EQ(parsed.datagram.payload.size(), 128u * 3);
      ++per_dom[h.dom_id];
      ++in_slice;
    }
    EXPECT_EQ(in_slice, (k % 2 == 0 ? 2u : 3u) * doms) << k;
    EXPECT_EQ(slice.counters.acoustic_datagrams, in_slice);
    counted += slice.counters.acoustic_datagrams;
  }
  EXPECT_EQ(per_dom.size(), doms);
  for (const auto& [dom, n] : per_dom) EXPECT_EQ(n, 25u) << dom;  // 1 s at 25 Hz
  EXPECT_EQ(counted, 25 * doms);
}

TEST(DuSimAcoustic, SamplesAreATonePlusNoiseInTwentyFourBits) {
  auto config = config_with_acoustic(10);
  config.acoustic.noise_sigma = 0;
  DuSimulator sim(config);
  const auto slice = sim.next_slice();
  for (const auto& dg : slice.datagrams) {
    if (!is_acoustic(dg)) continue;
    const auto payload = dataflow::parse_clb_datagram(dg.bytes).datagram.payload;
    const double step = 2 * 3.141592653589793 * config.acoustic.tone_hz / config.acoustic.sample_rate_hz;
    for (std::size_t i = 0; i < payload.size() / 3; ++i) {
      EXPECT_NEAR(sample(payload.data() + 3 * i), config.acoustic.tone_amplitude * std::sin(step * i), 1.0) << i;
    }
    return;
  }
  ADD_FAILURE() << "no acoustic datagram";
}

TEST(DuSimAcoustic, TheOpticalStreamIsTheSameWithOrWithoutAcousticData) {
  auto plain = config_with_acoustic(10);
  plain.acoustic.enabled = false;
  const auto without = DuSimulator(plain).make_slice(3);
  const auto with = DuSimulator(config_with_acoustic(10)).make_slice(3);
  std::vector<std::vector<std::uint8_t>> optical;
  for (const auto& dg : with.datagrams) {
    if (!is_acoustic(dg)) optical.push_back(dg.bytes);
  }
  ASSERT_EQ(optical.size(), without.datagrams.size());
  for (std::size_t i = 0; i < optical.size(); ++i) EXPECT_EQ(optical[i], without.datagrams[i].bytes) << i;
  EXPECT_EQ(with.counters.hits, without.counters.hits);
}

TEST(DuSimAcoustic, ADatagramMustFitTheMtu) {
  auto config = config_with_acoustic(10);
  config.acoustic.samples_per_datagram = 1000;  // 3000 bytes > 1472
  EXPECT_THROW(DuSimulator{config}, std::invalid_argument);
  config.mtu_bytes = 9000;
  EXPECT_NO_THROW(DuSimulator{config});
}

TEST(DuSimAcoustic, TheProgramWritesAndCountsTheAcousticStream) {
  TempDir tmp;
  const auto dqd = tmp.path / "feed.dqd";
  const auto summary = tmp.path / "summary.json";
  const std::string cmd = kDuSim + " --detx " + kDetx + " --dus 9 --slices 10 --seed 5 --start-utc 1700000000" +
                          " --acoustic --acoustic-rate-hz 20 --out " + dqd.string() + " --json > " + summary.string();
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream in(summary);
  const auto j = nlohmann::json::parse(in);
  const auto doms = j["doms"].get<std::uint64_t>();
  EXPECT_EQ(j["acoustic_datagrams"], 20 * doms);  // 1 s at 20 Hz per DOM
  std::uint64_t acoustic = 0;
  for (const auto& r : dataflow::read_dqd_file(dqd)) {
    if (r.size() >= 4 && std::memcmp(r.data(), "TAES", 4) == 0) ++acoustic;
  }
  EXPECT_EQ(acoustic, 20 * doms);
  // Over UDP the acoustic datagrams need a port of their own.
  EXPECT_NE(std::system((kDuSim + " --detx " + kDetx + " --dus 9 --slices 1 --acoustic --udp 127.0.0.1:9 > /dev/null 2>&1").c_str()), 0);
}

TEST(DuSimAcoustic, OverUdpTheAcousticDatagramsGoToTheAcousticPort) {
  TempDir tmp;
  UdpPort optical, acoustic;
  const auto summary = tmp.path / "summary.json";
  const std::string cmd = kDuSim + " --detx " + kDetx + " --dus 9 --slices 3 --seed 5 --start-utc 1700000000" +
                          " --singles-hz 1000 --acoustic --acoustic-rate-hz 10 --udp " + optical.endpoint() +
                          " --udp-acoustic " + acoustic.endpoint() + " --json > " + summary.string();
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream in(summary);
  const auto j = nlohmann::json::parse(in);
  const auto expected = j["acoustic_datagrams"].get<std::size_t>();
  EXPECT_EQ(expected, 3 * j["doms"].get<std::size_t>());
  const auto received = acoustic.receive(expected, std::chrono::seconds(20));
  EXPECT_EQ(received.size(), expected);
  for (const auto& d : received) EXPECT_EQ(std::string(d.begin(), d.begin() + 4), "TAES");
  EXPECT_EQ(j["udp"]["unrouted"], 0);
}
