#pragma once
// Helpers for the UDP tests: a plain loopback UDP sender, datagram builders, deadline waits and
// field-by-field comparison of parsed records.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <stdexcept>
#include <thread>
#include <vector>

#include "shoredaq/formats/clb_datagram.hpp"
#include "shoredaq/dataflow/zmq_ingest.hpp"

namespace udp_test {

using namespace std::chrono_literals;

inline bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return condition();
}

// An unconnected IPv4 UDP socket that sends to 127.0.0.1:port.
class Sender {
 public:
  Sender() : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    if (fd_ < 0) throw std::runtime_error("socket");
  }
  ~Sender() { ::close(fd_); }
  Sender(const Sender&) = delete;
  Sender& operator=(const Sender&) = delete;

  void send(std::uint16_t port, std::span<const std::uint8_t> bytes) const {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(port);
    if (::sendto(fd_, bytes.data(), bytes.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to) !=
        static_cast<ssize_t>(bytes.size()))
      throw std::runtime_error("sendto failed");
  }

 private:
  int fd_;
};

inline shoredaq::dataflow::ClbHeader header(std::uint32_t dom, std::uint32_t sequence, bool trailer = false,
                                            shoredaq::dataflow::DataType type = shoredaq::dataflow::DataType::Optical) {
  shoredaq::dataflow::ClbHeader h;
  h.data_type = type;
  h.run_number = 7;
  h.udp_sequence = sequence;
  h.utc_seconds = 1'700'000'000;
  h.ticks_16ns = 0;
  h.dom_id = dom;
  h.status1 = shoredaq::dataflow::kStatus1WhiteRabbitOk;
  h.status2 = trailer ? shoredaq::dataflow::kStatus2Trailer : 0;
  return h;
}

// A TTDC datagram of `hits` hits (distinct content per sequence number).
inline std::vector<std::uint8_t> optical(std::uint32_t dom, std::uint32_t sequence, std::size_t hits = 10) {
  std::vector<shoredaq::dataflow::Hit> h;
  for (std::size_t i = 0; i < hits; ++i)
    h.push_back({static_cast<std::uint8_t>(i % 31), static_cast<std::uint32_t>(sequence * 1000 + i * 7), 26});
  return shoredaq::dataflow::encode_optical_datagram(header(dom, sequence), h);
}

inline std::vector<std::uint8_t> monitoring(std::uint32_t dom) {
  shoredaq::dataflow::MonitoringPacket p;
  p.header = header(dom, 0, false, shoredaq::dataflow::DataType::Monitoring);
  for (std::size_t i = 0; i < p.hit_counts.size(); ++i) p.hit_counts[i] = static_cast<std::uint32_t>(700 + i);
  return shoredaq::dataflow::encode_monitoring_packet(p);
}

// The datagram bytes of record i of a parsed message (header + payload).
inline std::vector<std::uint8_t> datagram_bytes(const shoredaq::dataflow::ParsedMessage& m, std::size_t i) {
  const auto& r = m.records[i];
  const std::size_t header_bytes = r.layout == shoredaq::dataflow::HeaderLayout::Legacy28
                                       ? shoredaq::dataflow::kLegacyClbHeaderBytes
                                       : shoredaq::dataflow::kClbHeaderBytes;
  const auto bytes = m.bytes().subspan(r.payload_offset - header_bytes, header_bytes + r.payload_size);
  return {bytes.begin(), bytes.end()};
}

// Two parsed records are the same datagram: every header field, the layout and the payload bytes.
inline bool same_record(const shoredaq::dataflow::ClbDatagram& a, const shoredaq::dataflow::ClbDatagram& b) {
  const auto& x = a.header;
  const auto& y = b.header;
  return x.data_type == y.data_type && x.run_number == y.run_number && x.udp_sequence == y.udp_sequence &&
         x.utc_seconds == y.utc_seconds && x.ticks_16ns == y.ticks_16ns && x.dom_id == y.dom_id &&
         x.status1 == y.status1 && x.status2 == y.status2 && x.status3 == y.status3 && x.status4 == y.status4 &&
         a.layout == b.layout &&
         std::equal(a.payload.begin(), a.payload.end(), b.payload.begin(), b.payload.end());
}

}  // namespace udp_test
