// `[ingest] udp` entries: "TYPE@ADDRESS:PORT", read once into typed values (config.hpp).
#include <arpa/inet.h>

#include <string>
#include <vector>

#include "shoredaq/firmware/config.hpp"

namespace shoredaq::firmware {
namespace {

struct DataTypeName {
  std::string_view name;
  dataflow::DataType type;
};
constexpr DataTypeName kDataTypes[] = {{"optical", dataflow::DataType::Optical},
                                       {"monitoring", dataflow::DataType::Monitoring},
                                       {"acoustic", dataflow::DataType::Acoustic}};

}  // namespace

UdpPortSetting parse_udp_port_setting(std::string_view text) {
  const auto bad = [&](const std::string& why) -> ConfigError {
    return ConfigError("\"" + std::string(text) + "\": " + why + " (expected TYPE@ADDRESS:PORT, e.g. \"optical@0.0.0.0:56015\")");
  };
  UdpPortSetting s;
  const auto at = text.find('@');
  if (at == std::string_view::npos) throw bad("no data type");
  const std::string_view type = text.substr(0, at);
  bool known = false;
  for (const auto& t : kDataTypes) {
    if (type == t.name) {
      s.data_type = t.type;
      known = true;
    }
  }
  if (!known) throw bad("data type \"" + std::string(type) + "\" is not optical, monitoring or acoustic");
  const std::string_view rest = text.substr(at + 1);
  const auto colon = rest.rfind(':');
  if (colon == std::string_view::npos || colon == 0) throw bad("no ADDRESS:PORT");
  std::string host(rest.substr(0, colon));
  const std::string port(rest.substr(colon + 1));
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos || std::stoul(port) > 65535)
    throw bad("port \"" + port + "\" is not a number in [0, 65535]");
  s.port = static_cast<std::uint16_t>(std::stoul(port));
  // Only address literals: a node binds its own interfaces, and a typo must fail here, not at start.
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    in6_addr a6{};
    if (::inet_pton(AF_INET6, host.c_str(), &a6) != 1) throw bad("\"" + host + "\" is not an IPv6 address");
  } else {
    in_addr a4{};
    if (::inet_pton(AF_INET, host.c_str(), &a4) != 1)
      throw bad("\"" + host + "\" is not an IPv4 address (IPv6 goes in brackets: [::1])");
  }
  s.address = host;
  return s;
}

std::vector<UdpPortSetting> parse_udp_port_settings(const std::vector<std::string>& entries, const std::string& key) {
  std::vector<UdpPortSetting> out;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const std::string entry_key = key + "[" + std::to_string(i) + "]";
    try {
      out.push_back(parse_udp_port_setting(entries[i]));
    } catch (const ConfigError& e) {
      throw ConfigError(entry_key + ": " + e.what());
    }
    // Two sockets cannot bind one address and port (port 0: the kernel picks a new one each).
    for (std::size_t j = 0; j + 1 < out.size(); ++j) {
      if (out[i].port != 0 && out[j].port == out[i].port && out[j].address == out[i].address)
        throw ConfigError(entry_key + ": \"" + entries[i] + "\": the same address and port as " + key + "[" + std::to_string(j) + "]");
    }
  }
  return out;
}

std::string to_string(const UdpPortSetting& setting) {
  std::string type;
  for (const auto& t : kDataTypes) {
    if (t.type == setting.data_type) type = t.name;
  }
  const bool v6 = setting.address.find(':') != std::string::npos;
  return type + "@" + (v6 ? "[" + setting.address + "]" : setting.address) + ":" + std::to_string(setting.port);
}

}  // namespace shoredaq::firmware
