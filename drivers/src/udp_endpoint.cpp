#include "shoredaq/drivers/udp_endpoint.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>
#include <stdexcept>

namespace shoredaq::drivers {

UdpEndpoint parse_udp_endpoint(std::string_view text) {
  const auto fail = [&](const char* why) {
    return std::invalid_argument("UDP address \"" + std::string(text) + "\": " + why + " (expected HOST:PORT or [IPv6]:PORT)");
  };
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') throw fail("bad brackets");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) throw fail("no port");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) throw fail("an IPv6 address needs brackets");
  }
  if (host.empty()) throw fail("no host");
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || value > 65535) throw fail("bad port");
  return UdpEndpoint{std::string(host), static_cast<std::uint16_t>(value)};
}

std::string to_string(const UdpEndpoint& endpoint) {
  const bool v6 = endpoint.host.find(':') != std::string::npos;
  return (v6 ? "[" + endpoint.host + "]" : endpoint.host) + ":" + std::to_string(endpoint.port);
}

SocketAddress resolve_udp(const UdpEndpoint& endpoint, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_protocol = IPPROTO_UDP;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  addrinfo* found = nullptr;
  const std::string port = std::to_string(endpoint.port);
  const int rc = ::getaddrinfo(endpoint.host.empty() ? nullptr : endpoint.host.c_str(), port.c_str(), &hints, &found);
  if (rc != 0 || found == nullptr) {
    throw std::invalid_argument("UDP address " + to_string(endpoint) + ": " + ::gai_strerror(rc));
  }
  SocketAddress a;
  std::memcpy(&a.storage, found->ai_addr, found->ai_addrlen);
  a.length = found->ai_addrlen;
  ::freeaddrinfo(found);
  return a;
}

UdpEndpoint endpoint_of(const sockaddr* address, socklen_t length) {
  char host[INET6_ADDRSTRLEN] = {};
  UdpEndpoint e;
  if (address->sa_family == AF_INET && length >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    sockaddr_in v4;
    std::memcpy(&v4, address, sizeof v4);
    ::inet_ntop(AF_INET, &v4.sin_addr, host, sizeof host);
    e.port = ntohs(v4.sin_port);
  } else if (address->sa_family == AF_INET6 && length >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    sockaddr_in6 v6;
    std::memcpy(&v6, address, sizeof v6);
    ::inet_ntop(AF_INET6, &v6.sin6_addr, host, sizeof host);
    e.port = ntohs(v6.sin6_port);
  }
  e.host = host;
  return e;
}

std::string_view data_type_name(dataflow::DataType type) noexcept {
  switch (type) {
    case dataflow::DataType::Optical: return "optical";
    case dataflow::DataType::Acoustic: return "acoustic";
    case dataflow::DataType::Monitoring: return "monitoring";
  }
  return "unknown";
}

std::optional<dataflow::DataType> parse_data_type_name(std::string_view name) noexcept {
  if (name == "optical") return dataflow::DataType::Optical;
  if (name == "acoustic") return dataflow::DataType::Acoustic;
  if (name == "monitoring") return dataflow::DataType::Monitoring;
  return std::nullopt;
}

std::uint16_t default_clb_port(dataflow::DataType type) noexcept {
  switch (type) {
    case dataflow::DataType::Optical: return 56015;
    case dataflow::DataType::Acoustic: return 56016;
    case dataflow::DataType::Monitoring: return 56017;
  }
  return 0;
}

std::optional<dataflow::DataType> peek_data_type(const std::uint8_t* bytes, std::size_t size) noexcept {
  if (size < 4) return std::nullopt;
  if (std::memcmp(bytes, "TTDC", 4) == 0) return dataflow::DataType::Optical;
  if (std::memcmp(bytes, "TMCH", 4) == 0) return dataflow::DataType::Monitoring;
  if (std::memcmp(bytes, "TAES", 4) == 0) return dataflow::DataType::Acoustic;
  return std::nullopt;
}

}  // namespace shoredaq::drivers
