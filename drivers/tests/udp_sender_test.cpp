// du-sim's UDP sink: one datagram per CLB datagram routed by data type, unrouted and bad-length
// datagrams counted, framed records, the rate limit as a lower bound on the time taken, a refused
// destination counted, and a stop during pacing. Loopback only; plain sockets receive.

#include "shoredaq/drivers/udp_sender.hpp"

#include <gtest/gtest.h>
#include <sys/time.h>

#include <atomic>
#include <chrono>

#include "shoredaq/formats/record_stream.hpp"
#include "udp_test_support.hpp"

namespace shoredaq::drivers {
namespace {

using namespace std::chrono_literals;

// A bound loopback UDP socket the test reads with a receive timeout (a deadline, never a sleep).
class Listener {
 public:
  Listener() : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    const int buffer = 4 << 20;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &buffer, sizeof buffer);
    timeval timeout{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("bind");
    socklen_t length = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &length);
    port_ = ntohs(a.sin_port);
  }
  ~Listener() { close(); }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  UdpEndpoint endpoint() const { return {"127.0.0.1", port_}; }
  // The next datagram, or nullopt after the 10 s receive timeout.
  std::optional<std::vector<std::uint8_t>> receive() const {
    std::vector<std::uint8_t> buffer(65536);
    const ssize_t n = ::recv(fd_, buffer.data(), buffer.size(), 0);
    if (n < 0) return std::nullopt;
    buffer.resize(static_cast<std::size_t>(n));
    return buffer;
  }

 private:
  int fd_;
  std::uint16_t port_ = 0;
};

std::vector<std::uint8_t> acoustic_datagram() {
  auto d = udp_test::optical(3, 0, 2);
  std::memcpy(d.data(), "TAES", 4);
  return d;
}

TEST(UdpFeedSender, SendsOneDatagramPerCLBDatagramToThePortOfItsType) {
  Listener optical, monitoring;
  UdpSenderConfig config;
  config.optical = optical.endpoint();
  config.monitoring = monitoring.endpoint();  // no acoustic destination
  UdpFeedSender sender(config);

  std::vector<SimDatagram> slice;
  const auto add = [&](std::vector<std::uint8_t> bytes, DatagramFault fault = DatagramFault::None) {
    SimDatagram d;
    d.bytes = std::move(bytes);
    d.fault = fault;
    slice.push_back(std::move(d));
  };
  add(udp_test::optical(1, 0));
  add(udp_test::monitoring(1));
  add(udp_test::optical(1, 1), DatagramFault::BadLengthRecord);
  add(acoustic_datagram());
  add({0x01, 0x02});  // no type tag: to the optical port, whose receiver counts it
  sender.write(slice);

  EXPECT_EQ(optical.receive(), slice[0].bytes);
  EXPECT_EQ(optical.receive(), slice[2].bytes);  // a bad length cannot exist on UDP: sent intact
  EXPECT_EQ(optical.receive(), slice[4].bytes);
  EXPECT_EQ(monitoring.receive(), slice[1].bytes);
  const auto& c = sender.udp_counters();
  EXPECT_EQ(c.datagrams_sent, 4u);
  EXPECT_EQ(c.unrouted, 1u);  // TAES: no acoustic destination
  EXPECT_EQ(c.bad_length_sent_intact, 1u);
  EXPECT_EQ(c.datagrams_failed, 0u);
  EXPECT_EQ(c.bytes_sent, slice[0].bytes.size() + slice[1].bytes.size() + slice[2].bytes.size() + 2);
  EXPECT_EQ(sender.counters().records, 5u);
  EXPECT_EQ(sender.counters().messages, 4u);
}

TEST(UdpFeedSender, SendsTheRecordsOfAFramedStream) {
  Listener optical;
  UdpSenderConfig config;
  config.optical = optical.endpoint();
  UdpFeedSender sender(config);
  std::vector<std::uint8_t> stream;
  const std::vector<std::vector<std::uint8_t>> datagrams{udp_test::optical(2, 0), udp_test::optical(2, 1, 100)};
  for (const auto& d : datagrams) dataflow::append_record(stream, d);
  sender.send_framed(stream);
  EXPECT_EQ(optical.receive(), datagrams[0]);
  EXPECT_EQ(optical.receive(), datagrams[1]);
  EXPECT_EQ(sender.udp_counters().datagrams_sent, 2u);
}

TEST(UdpFeedSender, TheRateLimitSpacesTheBursts) {
  Listener optical;
  UdpSenderConfig config;
  config.optical = optical.endpoint();
  config.rate_limit_datagrams_per_s = 2000;
  config.burst_datagrams = 4;
  UdpFeedSender sender(config);
  std::vector<std::vector<std::uint8_t>> datagrams;
  for (std::uint32_t i = 0; i < 40; ++i) datagrams.push_back(udp_test::optical(4, i));
  std::vector<std::span<const std::uint8_t>> spans(datagrams.begin(), datagrams.end());
  const auto t0 = std::chrono::steady_clock::now();
  sender.send(spans);
  const auto took = std::chrono::steady_clock::now() - t0;
  // The last burst of 4 may not start before 36 datagrams' worth of the limit: a lower bound the
  // pacer guarantees, however slow the machine.
  EXPECT_GE(took, 36 * 500us);
  for (const auto& d : datagrams) EXPECT_EQ(optical.receive(), d);
}

TEST(UdpFeedSender, ADestinationWithoutReceiverIsCountedAsRefused) {
  UdpEndpoint closed;
  {
    Listener gone;
    closed = gone.endpoint();
  }  // the port is closed now: loopback answers "port unreachable"
  UdpSenderConfig config;
  config.optical = closed;
  UdpFeedSender sender(config);
  std::vector<std::vector<std::uint8_t>> datagrams(20, udp_test::optical(5, 0));
  std::vector<std::span<const std::uint8_t>> spans(datagrams.begin(), datagrams.end());
  for (int i = 0; i < 20; ++i) sender.send(std::span(spans).subspan(static_cast<std::size_t>(i), 1));
  const auto& c = sender.udp_counters();
  EXPECT_GT(c.refused, 0u);
  EXPECT_EQ(c.datagrams_sent + c.datagrams_failed, 20u);  // every datagram accounted for
}

TEST(UdpFeedSender, AStopDuringPacingAbandonsTheRestAndCountsIt) {
  Listener optical;
  std::atomic<bool> stop{true};
  UdpSenderConfig config;
  config.optical = optical.endpoint();
  config.rate_limit_datagrams_per_s = 1;  // one per second: a whole write would take minutes
  UdpFeedSender sender(config, &stop);
  std::vector<std::vector<std::uint8_t>> datagrams(100, udp_test::optical(6, 0));
  std::vector<std::span<const std::uint8_t>> spans(datagrams.begin(), datagrams.end());
  sender.send(spans);
  EXPECT_EQ(sender.counters().dropped_on_stop, 100u);
  EXPECT_EQ(sender.udp_counters().datagrams_sent, 0u);
}

TEST(UdpFeedSender, NeedsADestination) {
  EXPECT_THROW(UdpFeedSender(UdpSenderConfig{}), std::invalid_argument);
  UdpSenderConfig config;
  config.optical = UdpEndpoint{"no-such-host.invalid", 56015};
  EXPECT_THROW(UdpFeedSender{config}, std::invalid_argument);
}

TEST(UdpEndpoint, ParsesHostPortAndBracketedIPv6) {
  EXPECT_EQ(parse_udp_endpoint("127.0.0.1:56015"), (UdpEndpoint{"127.0.0.1", 56015}));
  EXPECT_EQ(parse_udp_endpoint("daq-node:0"), (UdpEndpoint{"daq-node", 0}));
  EXPECT_EQ(parse_udp_endpoint("[::1]:56017"), (UdpEndpoint{"::1", 56017}));
  EXPECT_EQ(to_string(UdpEndpoint{"::", 5}), "[::]:5");
  for (const char* bad : {"", "host", "host:", ":5", "host:65536", "host:-1", "::1:5", "[::1]5", "host:5x"})
    EXPECT_THROW(parse_udp_endpoint(bad), std::invalid_argument) << bad;
  EXPECT_EQ(default_clb_port(dataflow::DataType::Optical), 56015);
  EXPECT_EQ(default_clb_port(dataflow::DataType::Monitoring), 56017);
  EXPECT_EQ(parse_data_type_name("monitoring"), dataflow::DataType::Monitoring);
  EXPECT_FALSE(parse_data_type_name("TTDC"));
}

}  // namespace
}  // namespace shoredaq::drivers
