#include "transfer_options.hpp"

#include <set>
#include <stdexcept>

#include <toml++/toml.h>

namespace shoredaq::transfer {

namespace {

[[noreturn]] void refuse(const std::string& key, const std::string& why) {
  throw std::runtime_error("shore-transfer config: " + key + ": " + why);
}

template <typename T>
void read_integer(const toml::table& table, const std::string& section, const char* key, T& out, std::int64_t min,
                  std::int64_t max) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return;
  const auto value = node->value<std::int64_t>();
  if (!node->is_integer() || !value) refuse(section + "." + key, "not an integer");
  if (*value < min || *value > max) {
    refuse(section + "." + key, std::to_string(*value) + " is outside " + std::to_string(min) + ".." + std::to_string(max));
  }
  out = static_cast<T>(*value);
}

void read_string(const toml::table& table, const std::string& section, const char* key, std::string& out) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return;
  if (!node->is_string()) refuse(section + "." + key, "not a string");
  out = *node->value<std::string>();
}

void refuse_unknown(const toml::table& table, const std::string& section, const std::set<std::string>& known) {
  for (const auto& [key, value] : table) {
    if (!known.contains(std::string(key.str()))) refuse(section + "." + std::string(key.str()), "unknown key");
  }
}

}  // namespace

void load_options_file(const std::filesystem::path& file, TransferOptions& o) {
  toml::table root;
  try {
    root = toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    throw std::runtime_error("shore-transfer config " + file.string() + ": " + std::string(e.description()));
  }
  for (const auto& [key, value] : root) {
    const std::string name(key.str());
    if (name != "transfer" && name != "retention") refuse(name, "unknown section (sections: transfer, retention)");
    if (!value.is_table()) refuse(name, "not a table");
  }
  if (const toml::table* t = root["transfer"].as_table()) {
    refuse_unknown(*t, "transfer",
                   {"spool_dir", "endpoint", "path_template", "parallel", "bandwidth_limit_kib_s", "retry_initial_ms",
                    "retry_max_ms", "alarm_after_failures", "poll_interval_ms", "connect_timeout_s", "request_timeout_s",
                    "chunk_kib", "log_level"});
    std::string spool = o.spool_dir.string();
    read_string(*t, "transfer", "spool_dir", spool);
    o.spool_dir = spool;
    read_string(*t, "transfer", "endpoint", o.endpoint);
    read_string(*t, "transfer", "path_template", o.path_template);
    read_integer(*t, "transfer", "parallel", o.parallel, 1, 64);
    read_integer(*t, "transfer", "bandwidth_limit_kib_s", o.bandwidth_limit_kib_s, 0, 100'000'000);
    read_integer(*t, "transfer", "retry_initial_ms", o.retry_initial_ms, 10, 86'400'000);
    read_integer(*t, "transfer", "retry_max_ms", o.retry_max_ms, 10, 86'400'000);
    read_integer(*t, "transfer", "alarm_after_failures", o.alarm_after_failures, 1, 1'000'000);
    read_integer(*t, "transfer", "poll_interval_ms", o.poll_interval_ms, 10, 3'600'000);
    read_integer(*t, "transfer", "connect_timeout_s", o.connect_timeout_s, 1, 3'600);
    read_integer(*t, "transfer", "request_timeout_s", o.request_timeout_s, 1, 65'535);
    read_integer(*t, "transfer", "chunk_kib", o.chunk_kib, 16, 65'536);
    read_string(*t, "transfer", "log_level", o.log_level);
  }
  if (const toml::table* r = root["retention"].as_table()) {
    refuse_unknown(*r, "retention", {"max_age_days", "max_gib"});
    read_integer(*r, "retention", "max_age_days", o.retention_max_age_days, 0, 36'500);
    read_integer(*r, "retention", "max_gib", o.retention_max_gib, 0, 1'000'000'000);
  }
}

void check_options(const TransferOptions& o) {
  if (o.endpoint.empty()) refuse("transfer.endpoint", "required (root://host[:port])");
  if (!is_xrootd_endpoint(o.endpoint)) refuse("transfer.endpoint", "'" + o.endpoint + "' is not root://host[:port]");
  if (const auto problem = storage::check_remote_path_template(o.path_template)) refuse("transfer.path_template", *problem);
  if (o.parallel < 1 || o.parallel > 64) refuse("transfer.parallel", "outside 1..64");
  // The file's ranges again, for values given on the command line.
  auto within = [](const char* key, std::uint64_t value, std::uint64_t min, std::uint64_t max) {
    if (value < min || value > max) {
      refuse(key, std::to_string(value) + " is outside " + std::to_string(min) + ".." + std::to_string(max));
    }
  };
  within("transfer.retry_initial_ms", o.retry_initial_ms, 10, 86'400'000);
  within("transfer.retry_max_ms", o.retry_max_ms, 10, 86'400'000);
  within("transfer.alarm_after_failures", o.alarm_after_failures, 1, 1'000'000);
  within("transfer.poll_interval_ms", o.poll_interval_ms, 10, 3'600'000);
  within("transfer.connect_timeout_s", o.connect_timeout_s, 1, 3'600);
  within("transfer.request_timeout_s", o.request_timeout_s, 1, 65'535);
  within("transfer.chunk_kib", o.chunk_kib, 16, 65'536);
  within("transfer.bandwidth_limit_kib_s", o.bandwidth_limit_kib_s, 0, 100'000'000);
  within("retention.max_age_days", o.retention_max_age_days, 0, 36'500);
  within("retention.max_gib", o.retention_max_gib, 0, 1'000'000'000);
  if (o.retry_max_ms < o.retry_initial_ms) refuse("transfer.retry_max_ms", "below retry_initial_ms");
  if (o.spool_dir.empty()) refuse("transfer.spool_dir", "empty");
  static const std::set<std::string> kLevels{"trace", "debug", "info", "warn", "error"};
  if (!kLevels.contains(o.log_level)) refuse("transfer.log_level", "'" + o.log_level + "' (trace, debug, info, warn, error)");
}

storage::Tier0TransferConfig TransferOptions::agent_config() const {
  storage::Tier0TransferConfig c;
  c.spool_dir = spool_dir;
  c.endpoint = endpoint;
  c.path_template = path_template;
  c.backoff.initial = std::chrono::milliseconds{retry_initial_ms};
  c.backoff.max = std::chrono::milliseconds{retry_max_ms};
  c.alarm_after_failures = alarm_after_failures;
  c.chunk_bytes = static_cast<std::size_t>(chunk_kib) << 10;
  c.retention.max_age = std::chrono::hours{24 * retention_max_age_days};
  c.retention.max_bytes = retention_max_gib << 30;
  return c;
}

XrootdTimeouts TransferOptions::timeouts() const {
  return XrootdTimeouts{std::chrono::seconds{connect_timeout_s}, std::chrono::seconds{request_timeout_s}};
}

}  // namespace shoredaq::transfer
