#pragma once
// UDP addresses as operators write them ("HOST:PORT", "[IPv6]:PORT") and the CLB data types that
// each have a port of their own (DOMAIN.md section 2): used by the UDP receiver, the bridge and
// du-sim's UDP sender.

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "shoredaq/formats/clb_datagram.hpp"

namespace shoredaq::drivers {

struct UdpEndpoint {
  std::string host;        // IPv4/IPv6 literal or host name ("0.0.0.0", "::", "127.0.0.1", "daq-node")
  std::uint16_t port = 0;  // 0: an ephemeral port (receivers only)
  friend bool operator==(const UdpEndpoint&, const UdpEndpoint&) = default;
};

// "HOST:PORT" or "[V6]:PORT"; throws std::invalid_argument naming the text.
UdpEndpoint parse_udp_endpoint(std::string_view text);
std::string to_string(const UdpEndpoint& endpoint);  // the inverse (IPv6 hosts in brackets)

// A resolved socket address (the first getaddrinfo result).
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  int family() const noexcept { return storage.ss_family; }
  const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&storage); }
};
// `passive`: for bind() (an empty host = every address). Throws std::invalid_argument when the
// host does not resolve.
SocketAddress resolve_udp(const UdpEndpoint& endpoint, bool passive);
// The numeric host and port of an address (e.g. of a bound socket, from getsockname).
UdpEndpoint endpoint_of(const sockaddr* address, socklen_t length);

// "optical" (TTDC), "acoustic" (TAES), "monitoring" (TMCH).
std::string_view data_type_name(dataflow::DataType type) noexcept;
std::optional<dataflow::DataType> parse_data_type_name(std::string_view name) noexcept;
// The port CLBs send each data type to: 56015 optical and 56017 monitoring (public CLB readers),
// 56016 acoustic (DESIGN.md section 1; unconfirmed, so every port is configurable).
std::uint16_t default_clb_port(dataflow::DataType type) noexcept;
// The data type named by the first four bytes of a datagram (TTDC/TAES/TMCH), if any.
std::optional<dataflow::DataType> peek_data_type(const std::uint8_t* bytes, std::size_t size) noexcept;

}  // namespace shoredaq::drivers
