#pragma once
// Reading the configuration's TOML (internal to firmware/src): the section reader that remembers
// which keys were consumed so the rest can be refused by name, and the checks shared by the
// sections (endpoints, addresses, CURVE). config.cpp reads the sections with them.

#include <arpa/inet.h>
#include <sys/un.h>

#include <toml++/toml.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "shoredaq/firmware/config.hpp"

namespace shoredaq::firmware::config_detail {


[[noreturn]] inline void fail(const std::string& key, const std::string& why) { throw ConfigError(key + ": " + why); }

// Reads the keys of one table, remembering which were consumed so the rest can be rejected.
class SectionReader {
 public:
  SectionReader(const toml::table* table, std::string name) : table_(table), name_(std::move(name)) {}

  std::string path(std::string_view key) const { return name_.empty() ? std::string(key) : name_ + "." + std::string(key); }

  const toml::node* take(std::string_view key) {
    seen_.insert(std::string(key));
    return table_ ? table_->get(key) : nullptr;
  }

  template <typename Int>
  void integer(std::string_view key, Int& out, std::int64_t min, std::int64_t max) {
    const toml::node* n = take(key);
    if (!n) return;
    // value_exact, and only of an integer: toml++'s value<int64_t>() of a float converts it, which is
    // undefined for 7.8e124 (found by fuzz_config).
    const auto v = n->is_integer() ? n->value_exact<std::int64_t>() : std::nullopt;
    if (!v) fail(path(key), "expected an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
    if (*v < min || *v > max)
      fail(path(key), std::to_string(*v) + " is out of range; allowed [" + std::to_string(min) + ", " + std::to_string(max) + "]");
    out = static_cast<Int>(*v);
  }

  void real(std::string_view key, double& out, double min, double max) {
    const toml::node* n = take(key);
    if (!n) return;
    std::optional<double> v;
    if (n->is_floating_point()) v = n->value_exact<double>();
    if (n->is_integer()) v = static_cast<double>(*n->value_exact<std::int64_t>());
    std::ostringstream range;
    range << "[" << min << ", " << max << "]";
    if (!v) fail(path(key), "expected a number in " + range.str());
    if (!(*v >= min && *v <= max)) {
      std::ostringstream value;
      value << *v;
      fail(path(key), value.str() + " is out of range; allowed " + range.str());
    }
    out = *v;
  }

  // A file mode written as an octal string ("0660"), as chmod takes it.
  void file_mode(std::string_view key, unsigned& out) {
    const toml::node* n = take(key);
    if (!n) return;
    if (!n->is_string()) fail(path(key), "expected an octal file mode as a string, such as \"0660\"");
    const std::string text = *n->value<std::string>();
    if (text.empty() || text.size() > 4 || text.find_first_not_of("01234567") != std::string::npos)
      fail(path(key), "\"" + text + "\" is not an octal file mode such as \"0660\"");
    const unsigned mode = static_cast<unsigned>(std::stoul(text, nullptr, 8));
    if (mode > 0777) fail(path(key), "\"" + text + "\": only permission bits (at most 0777) are allowed");
    if ((mode & 0600) != 0600) fail(path(key), "\"" + text + "\": the owner (the daemon) needs read and write (0600)");
    out = mode;
  }

  void boolean(std::string_view key, bool& out) {
    const toml::node* n = take(key);
    if (!n) return;
    if (!n->is_boolean()) fail(path(key), "expected true or false");
    out = *n->value<bool>();
  }

  void string(std::string_view key, std::string& out, bool allow_empty = true) {
    const toml::node* n = take(key);
    if (!n) return;
    if (!n->is_string()) fail(path(key), "expected a string");
    out = *n->value<std::string>();
    if (!allow_empty && out.empty()) fail(path(key), "must not be empty");
  }

  void file_path(std::string_view key, std::filesystem::path& out) {
    std::string s = out.string();
    string(key, s);
    out = s;
  }

  template <typename Enum>
  void choice(std::string_view key, Enum& out, std::initializer_list<std::pair<std::string_view, Enum>> options) {
    const toml::node* n = take(key);
    if (!n) return;
    std::string allowed;
    for (const auto& [name, value] : options) allowed += (allowed.empty() ? "" : ", ") + std::string("\"") + std::string(name) + "\"";
    if (!n->is_string()) fail(path(key), "expected one of " + allowed);
    const std::string v = *n->value<std::string>();
    for (const auto& [name, value] : options) {
      if (v == name) {
        out = value;
        return;
      }
    }
    fail(path(key), "\"" + v + "\" is not allowed; expected one of " + allowed);
  }

  void string_list(std::string_view key, std::vector<std::string>& out) {
    const toml::node* n = take(key);
    if (!n) return;
    const toml::array* a = n->as_array();
    if (!a) fail(path(key), "expected an array of strings");
    std::vector<std::string> values;
    for (const auto& e : *a) {
      if (!e.is_string()) fail(path(key), "expected an array of strings");
      values.push_back(*e.value<std::string>());
      if (values.back().empty()) fail(path(key), "an entry is empty");
    }
    out = std::move(values);
  }

  template <typename Int>
  void integer_list(std::string_view key, std::vector<Int>& out, std::int64_t min, std::int64_t max) {
    const toml::node* n = take(key);
    if (!n) return;
    const toml::array* a = n->as_array();
    const std::string range = "[" + std::to_string(min) + ", " + std::to_string(max) + "]";
    if (!a) fail(path(key), "expected an array of integers in " + range);
    std::vector<Int> values;
    for (const auto& e : *a) {
      const auto v = e.is_integer() ? e.value_exact<std::int64_t>() : std::nullopt;
      if (!v) fail(path(key), "expected an array of integers in " + range);
      if (*v < min || *v > max) fail(path(key), std::to_string(*v) + " is out of range; allowed " + range);
      values.push_back(static_cast<Int>(*v));
    }
    out = std::move(values);
  }

  // Every key not consumed is a typo or an unsupported setting.
  void reject_unknown() const {
    if (!table_) return;
    for (const auto& [k, v] : *table_) {
      if (!seen_.contains(std::string(k.str()))) {
        std::string known;
        for (const auto& s : seen_) known += (known.empty() ? "" : ", ") + s;
        fail(path(k.str()), "unknown key (known keys: " + known + ")");
      }
    }
  }

 private:
  const toml::table* table_;
  std::string name_;
  std::set<std::string> seen_;
};

inline const toml::table* section(const toml::table& root, std::string_view name) {
  const toml::node* n = root.get(name);
  if (!n) return nullptr;
  if (!n->is_table()) fail(std::string(name), "expected a table [" + std::string(name) + "]");
  return n->as_table();
}

inline bool is_ipv4_literal(const std::string& host) {
  in_addr a{};
  return ::inet_pton(AF_INET, host.c_str(), &a) == 1;
}
inline bool is_ip_literal(const std::string& host) {
  in6_addr a{};
  return is_ipv4_literal(host) || ::inet_pton(AF_INET6, host.c_str(), &a) == 1;
}

// What ZeroMQ would refuse only when the socket binds or connects (at `start`, after the run
// number is taken): checked here so --check-config and configure name the key instead.
inline void check_endpoint(const std::string& key, const std::string& endpoint) {
  const auto bad = [&](const std::string& why) { fail(key, "\"" + endpoint + "\": " + why); };
  if (endpoint.rfind("tcp://", 0) == 0) {
    const std::string rest = endpoint.substr(6);
    const auto colon = rest.rfind(':');
    if (colon == std::string::npos || colon == 0) bad("expected tcp://HOST:PORT");
    std::string host = rest.substr(0, colon);
    const std::string port = rest.substr(colon + 1);
    if (port != "*") {
      if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
          std::stoul(port) > 65535)
        bad("port \"" + port + "\" is not a number in [0, 65535] (or *)");
    }
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
      in6_addr a{};
      if (::inet_pton(AF_INET6, host.c_str(), &a) != 1) bad("\"" + host + "\" is not an IPv6 address");
      return;
    }
    // A host that looks like an IPv4 address must be one (999.1.1.1 would only fail at bind);
    // names (interfaces to bind, hosts to connect to) and "*" pass.
    if (host.find_first_not_of("0123456789.") == std::string::npos && !is_ipv4_literal(host))
      bad("\"" + host + "\" is not an IPv4 address");
    if (host.find_first_of(" /\\\t") != std::string::npos) bad("\"" + host + "\" is not a host name");
    return;
  }
  if (endpoint.rfind("ipc://", 0) == 0) {
    const std::string p = endpoint.substr(6);
    if (p.empty()) bad("expected ipc://PATH");
    // The kernel's limit for a Unix socket path (sun_path, with its terminating NUL).
    if (p.size() >= sizeof(sockaddr_un{}.sun_path))
      bad("the path is " + std::to_string(p.size()) + " characters; a Unix socket path has at most " +
          std::to_string(sizeof(sockaddr_un{}.sun_path) - 1));
    return;
  }
  if (endpoint.rfind("inproc://", 0) == 0 && endpoint.size() > 9) return;
  fail(key, "\"" + endpoint + "\" is not a ZeroMQ endpoint (tcp://, ipc:// or inproc://)");
}

// A CURVE server socket needs the node's key pair and an allow-list; inproc:// has no security
// handshake at all, so CURVE there would be a setting that silently does nothing.
inline void check_curve(const NodeConfig& c, const std::string& section, const std::vector<std::string>& endpoints,
                 const std::filesystem::path& allowed_keys) {
  if (allowed_keys.empty())
    fail(section + ".curve_allowed_keys", "CURVE needs an allow-list of client public keys (a file or a directory of *.pub)");
  if (c.security.server_secret_key_file.empty())
    fail("security.server_secret_key_file", "CURVE on " + section + " needs the node's secret key file (shorectl keygen)");
  for (const auto& e : endpoints) {
    if (e.rfind("inproc://", 0) == 0)
      fail(section + (section == "ingest" ? ".endpoints" : ".endpoint"), "CURVE does not work over inproc:// (\"" + e + "\"); use tcp:// or ipc://");
  }
}

inline toml::table parse_toml(std::string_view text) {
  try {
    return toml::parse(text);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << "TOML syntax error at line " << e.source().begin.line << ", column " << e.source().begin.column << ": "
       << e.description();
    throw ConfigError(os.str());
  }
}

inline constexpr std::int64_t kMaxI64 = std::numeric_limits<std::int64_t>::max();

// [ring] (config_ring.cpp): the raw-data ring buffer and its dumps.
void read_ring_section(const toml::table& root, NodeConfig& c);
void read_topology_section(const toml::table& root, NodeConfig& c);  // config_topology.cpp

}  // namespace shoredaq::firmware::config_detail
