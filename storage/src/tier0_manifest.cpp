#include "shoredaq/storage/tier0_manifest.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "shoredaq/formats/event.hpp"

namespace shoredaq::storage {

using nlohmann::json;

const char* to_string(Tier0DataType type) noexcept {
  switch (type) {
    case Tier0DataType::Events: return "events";
    case Tier0DataType::Summaries: return "summaries";
    case Tier0DataType::Timeslices: return "timeslices";
    case Tier0DataType::Acoustic: return "acoustic";
    case Tier0DataType::Dumps: return "dumps";
  }
  return "unknown";
}

void TriggerEventCounts::add_event(std::uint64_t mask) noexcept {
  using namespace dataflow;
  if (mask & trigger_bit(kTriggerBit3DShower)) ++shower_3d;
  if (mask & trigger_bit(kTriggerBitMXShower)) ++mx_shower;
  if (mask & trigger_bit(kTriggerBit3DMuon)) ++muon_3d;
  if (mask & trigger_bit(kTriggerBitNanobeacon)) ++nanobeacon;
  if (mask & trigger_bit(kTriggerBitFactoryLimit)) ++factory_limit;
}

TriggerEventCounts& TriggerEventCounts::operator+=(const TriggerEventCounts& o) noexcept {
  shower_3d += o.shower_3d;
  mx_shower += o.mx_shower;
  muon_3d += o.muon_3d;
  nanobeacon += o.nanobeacon;
  factory_limit += o.factory_limit;
  return *this;
}

std::uint64_t TimesliceCounts::total() const noexcept {
  std::uint64_t n = 0;
  for (const std::uint64_t k : per_kind) n += k;
  return n;
}

TimesliceCounts& TimesliceCounts::operator+=(const TimesliceCounts& o) noexcept {
  for (std::size_t k = 0; k < kTimesliceKinds; ++k) per_kind[k] += o.per_kind[k];
  return *this;
}

namespace {

bool is_alnum(char c) noexcept {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
bool is_lower_hex(char c) noexcept { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }
bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// "YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z", the schema's pattern.
bool is_utc_text(std::string_view t) noexcept {
  static constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:dd";
  if (t.size() < kShape.size() + 1 || t.back() != 'Z') return false;
  for (std::size_t i = 0; i < kShape.size(); ++i) {
    if (kShape[i] == 'd' ? !is_digit(t[i]) : t[i] != kShape[i]) return false;
  }
  const std::string_view rest = t.substr(kShape.size(), t.size() - kShape.size() - 1);
  if (rest.empty()) return true;
  if (rest[0] != '.' || rest.size() < 2 || rest.size() > 10) return false;
  for (std::size_t i = 1; i < rest.size(); ++i) {
    if (!is_digit(rest[i])) return false;
  }
  return true;
}

bool is_guid_v4(std::string_view t) noexcept {
  if (t.size() != 36) return false;
  for (std::size_t i = 0; i < t.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? t[i] != '-' : !is_lower_hex(t[i])) return false;
  }
  return t[14] == '4' && (t[19] == '8' || t[19] == '9' || t[19] == 'a' || t[19] == 'b');
}

bool is_tier_text(std::string_view t) noexcept {
  if (t.empty() || t.size() > 32) return false;
  for (const char c : t) {
    if (!((c >= 'a' && c <= 'z') || is_digit(c) || c == '_')) return false;
  }
  return true;
}

const std::set<std::string>& data_types() {
  static const std::set<std::string> kTypes{"events", "summaries", "timeslices", "acoustic", "dumps"};
  return kTypes;
}

}  // namespace

bool is_valid_rucio_scope(std::string_view scope) noexcept {
  if (scope.empty() || scope.size() > 25) return false;
  for (const char c : scope) {
    if (!is_alnum(c) && c != '_' && c != '.' && c != '-') return false;
  }
  return true;
}

bool is_valid_rucio_name(std::string_view name) noexcept {
  if (name.size() < 2 || name.size() > 251 || !is_alnum(name[0])) return false;
  for (const char c : name.substr(1)) {
    if (!is_alnum(c) && c != '.' && c != '-' && c != '_') return false;
  }
  return true;
}

bool is_valid_adler32_hex(std::string_view text) noexcept {
  if (text.size() != 8) return false;
  for (const char c : text) {
    if (!is_lower_hex(c)) return false;
  }
  return true;
}

std::optional<std::uint32_t> parse_adler32_hex(std::string_view text) noexcept {
  if (text.empty() || text.size() > 8) return std::nullopt;
  std::uint32_t value = 0;
  for (const char c : text) {
    std::uint32_t digit = 0;
    if (c >= '0' && c <= '9') {
      digit = static_cast<std::uint32_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      digit = static_cast<std::uint32_t>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      digit = static_cast<std::uint32_t>(c - 'A' + 10);
    } else {
      return std::nullopt;
    }
    value = (value << 4) | digit;
  }
  return value;
}

std::string make_guid_v4() {
  std::random_device device;
  std::array<std::uint8_t, 16> bytes{};
  for (std::size_t i = 0; i < bytes.size(); i += 4) {
    const std::uint32_t r = device();
    for (std::size_t k = 0; k < 4; ++k) bytes[i + k] = static_cast<std::uint8_t>(r >> (8 * k));
  }
  bytes[6] = static_cast<std::uint8_t>((bytes[6] & 0x0f) | 0x40);  // version 4
  bytes[8] = static_cast<std::uint8_t>((bytes[8] & 0x3f) | 0x80);  // RFC 4122 variant
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kDigits[bytes[i] >> 4]);
    out.push_back(kDigits[bytes[i] & 0xf]);
  }
  return out;
}

std::string format_utc_ns(std::uint64_t unix_ns) {
  const auto seconds = static_cast<std::time_t>(unix_ns / 1'000'000'000u);
  std::tm tm{};
  ::gmtime_r(&seconds, &tm);
  char text[48];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%09uZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<unsigned>(unix_ns % 1'000'000'000u));
  return text;
}

std::vector<std::string> validate_tier0_manifest(std::string_view json_text) {
  std::vector<std::string> problems;
  const json m = json::parse(json_text.begin(), json_text.end(), nullptr, false);
  if (m.is_discarded() || !m.is_object()) return {"not a JSON object"};
  auto problem = [&problems](const std::string& key, const std::string& what) { problems.push_back(key + ": " + what); };
  auto string_field = [&](const std::string& key, bool nullable) -> std::optional<std::string> {
    if (!m.contains(key)) {
      problem(key, "missing");
    } else if (m[key].is_string()) {
      return m[key].get<std::string>();
    } else if (!(nullable && m[key].is_null())) {
      problem(key, nullable ? "not a string or null" : "not a string");
    }
    return std::nullopt;
  };
  auto count_field = [&](const json& object, const std::string& key, const std::string& path, bool nullable) {
    if (!object.contains(key)) {
      problem(path, "missing");
    } else if (!(object[key].is_number_unsigned() || (nullable && object[key].is_null()))) {
      problem(path, "not a non-negative integer");
    }
  };

  static const std::set<std::string> kKnown{
      "manifest_version", "scope", "name", "file", "bytes", "size_bytes", "adler32", "md5", "guid", "detector_id",
      "run", "part", "first_frame", "last_frame", "utc_start", "utc_end", "events", "summary_slices",
      "events_per_trigger", "data_type", "data_tier", "format", "format_version", "software_version", "run_type",
      "run_setup_hash", "detector_file_hash", "recovered", "damaged_bytes", "timeslices", "monitoring_packets", "supernova_alerts",
      "datagrams", "datagrams_per_dom", "dump"};
  for (const auto& [key, value] : m.items()) {
    if (!kKnown.contains(key)) problem(key, "unknown field");
  }

  if (!m.contains("manifest_version") || m["manifest_version"] != kTier0ManifestVersion) {
    problem("manifest_version", "must be " + std::to_string(kTier0ManifestVersion));
  }
  if (const auto scope = string_field("scope", false); scope && !is_valid_rucio_scope(*scope)) {
    problem("scope", "'" + *scope + "' breaks Rucio's scope rule [A-Za-z0-9_.-]{1,25}");
  }
  const auto name = string_field("name", false);
  if (name && !is_valid_rucio_name(*name)) {
    problem("name", "'" + *name + "' breaks Rucio's name rule [A-Za-z0-9][A-Za-z0-9.-_]{1,250}");
  }
  if (const auto file = string_field("file", false); file && name && *file != *name) problem("file", "differs from name");
  count_field(m, "bytes", "bytes", false);
  count_field(m, "size_bytes", "size_bytes", false);
  if (m.contains("bytes") && m.contains("size_bytes") && m["bytes"] != m["size_bytes"]) {
    problem("size_bytes", "differs from bytes");
  }
  if (const auto a = string_field("adler32", false); a && !is_valid_adler32_hex(*a)) {
    problem("adler32", "'" + *a + "' is not 8 lower-case hex digits");
  }
  if (const auto md5 = string_field("md5", false); md5) {
    bool ok = md5->size() == 32;
    for (const char c : *md5) ok = ok && is_lower_hex(c);
    if (!ok) problem("md5", "not 32 lower-case hex digits");
  }
  if (const auto guid = string_field("guid", false); guid && !is_guid_v4(*guid)) {
    problem("guid", "'" + *guid + "' is not a canonical version 4 UUID");
  }
  if (!m.contains("detector_id") || !m["detector_id"].is_number_integer()) problem("detector_id", "not an integer");
  count_field(m, "run", "run", false);
  count_field(m, "part", "part", false);
  count_field(m, "first_frame", "first_frame", true);
  count_field(m, "last_frame", "last_frame", true);
  for (const char* key : {"utc_start", "utc_end"}) {
    if (const auto t = string_field(key, true); t && !is_utc_text(*t)) problem(key, "'" + *t + "' is not UTC ISO 8601 (…Z)");
  }
  count_field(m, "events", "events", false);
  count_field(m, "summary_slices", "summary_slices", false);
  if (!m.contains("events_per_trigger") || !m["events_per_trigger"].is_object()) {
    problem("events_per_trigger", "missing or not an object");
  } else {
    const json& per = m["events_per_trigger"];
    static const std::set<std::string> kTriggers{"3d_shower", "mx_shower", "3d_muon", "nanobeacon", "factory_limit"};
    for (const auto& trigger : kTriggers) count_field(per, trigger, "events_per_trigger." + trigger, false);
    for (const auto& [key, value] : per.items()) {
      if (!kTriggers.contains(key)) problem("events_per_trigger." + key, "unknown trigger");
    }
  }
  if (const auto t = string_field("data_type", false); t && !data_types().contains(*t)) {
    problem("data_type", "'" + *t + "' is none of events, summaries, timeslices, acoustic, dumps");
  }
  if (const auto t = string_field("data_tier", false); t && !is_tier_text(*t)) problem("data_tier", "not [a-z0-9_]{1,32}");
  if (const auto f = string_field("format", false); f && *f != kTier0Format && *f != kTier0RecordsFormat) {
    problem("format", "must be " + std::string(kTier0Format) + " or " + kTier0RecordsFormat);
  }
  // Optional: the run files' other streams, the acoustic parts' datagrams.
  if (m.contains("timeslices")) {
    if (!m["timeslices"].is_object()) {
      problem("timeslices", "not an object");
    } else {
      const json& per = m["timeslices"];
      for (const char* kind : kTimesliceKindKeys) count_field(per, kind, std::string("timeslices.") + kind, false);
      for (const auto& [key, value] : per.items()) {
        if (std::find(kTimesliceKindKeys.begin(), kTimesliceKindKeys.end(), key) == kTimesliceKindKeys.end()) {
          problem("timeslices." + key, "unknown timeslice stream");
        }
      }
    }
  }
  if (m.contains("monitoring_packets")) count_field(m, "monitoring_packets", "monitoring_packets", false);
  if (m.contains("supernova_alerts")) count_field(m, "supernova_alerts", "supernova_alerts", false);
  if (m.contains("datagrams")) count_field(m, "datagrams", "datagrams", false);
  if (m.contains("datagrams_per_dom")) {
    if (!m["datagrams_per_dom"].is_object()) {
      problem("datagrams_per_dom", "not an object");
    } else {
      for (const auto& [key, value] : m["datagrams_per_dom"].items()) {
        const bool numeric_key = !key.empty() && key.size() <= 10 &&
                                 std::all_of(key.begin(), key.end(), [](char c) { return is_digit(c); });
        if (!numeric_key) problem("datagrams_per_dom." + key, "not a DOM id");
        if (!value.is_number_unsigned()) problem("datagrams_per_dom." + key, "not a non-negative integer");
      }
    }
  }
  // Raw-data dumps (ring_dump.hpp): why and what window.
  if (m.contains("dump")) {
    const json& d = m["dump"];
    if (!d.is_object()) {
      problem("dump", "not an object");
    } else {
      for (const char* key : {"id", "reason"}) {
        if (!d.contains(key) || !d[key].is_string() || d[key].get<std::string>().empty())
          problem(std::string("dump.") + key, "missing or not a non-empty string");
      }
      for (const char* key : {"slices", "missing_slices"}) count_field(d, key, std::string("dump.") + key, false);
    }
  }
  if (!m.contains("format_version") || !m["format_version"].is_number_unsigned() || m["format_version"] == 0) {
    problem("format_version", "not a positive integer");
  }
  if (const auto v = string_field("software_version", false); v && v->empty()) problem("software_version", "empty");
  for (const char* key : {"run_type", "run_setup_hash", "detector_file_hash"}) {
    if (const auto v = string_field(key, true); v && v->empty()) problem(key, "empty (null when unknown)");
  }
  if (!m.contains("recovered") || !m["recovered"].is_boolean()) problem("recovered", "missing or not a boolean");
  if (m.contains("damaged_bytes") && !m["damaged_bytes"].is_number_unsigned()) {
    problem("damaged_bytes", "not a non-negative integer");
  }
  return problems;
}

std::optional<Tier0TransferManifest> parse_tier0_transfer_manifest(std::string_view json_text, std::string* error) {
  auto fail = [error](const std::string& why) -> std::optional<Tier0TransferManifest> {
    if (error != nullptr) *error = why;
    return std::nullopt;
  };
  const json m = json::parse(json_text.begin(), json_text.end(), nullptr, false);
  if (m.is_discarded() || !m.is_object()) return fail("manifest is not a JSON object");
  Tier0TransferManifest t;
  // Manifests written before the catalogue fields existed carry only file/size_bytes.
  const char* name_key = m.contains("name") ? "name" : "file";
  const char* bytes_key = m.contains("bytes") ? "bytes" : "size_bytes";
  if (!m.contains(name_key) || !m[name_key].is_string()) return fail("manifest has no file name");
  t.name = m[name_key].get<std::string>();
  if (!is_valid_rucio_name(t.name)) return fail("file name '" + t.name + "' breaks Rucio's name rule");
  if (!m.contains(bytes_key) || !m[bytes_key].is_number_unsigned()) return fail("manifest has no byte count");
  t.bytes = m[bytes_key].get<std::uint64_t>();
  if (!m.contains("adler32") || !m["adler32"].is_string() || !is_valid_adler32_hex(m["adler32"].get<std::string>())) {
    return fail("manifest has no valid adler32 (8 lower-case hex digits)");
  }
  t.adler32 = m["adler32"].get<std::string>();
  t.scope = m.contains("scope") && m["scope"].is_string() ? m["scope"].get<std::string>() : std::string(kDefaultRucioScope);
  // Both may appear in the remote path: nothing outside their rules gets there.
  if (!is_valid_rucio_scope(t.scope)) return fail("scope '" + t.scope + "' breaks Rucio's scope rule");
  if (m.contains("detector_id") && m["detector_id"].is_number_integer()) t.detector_id = m["detector_id"].get<std::int32_t>();
  if (m.contains("run") && m["run"].is_number_unsigned()) t.run = m["run"].get<std::uint32_t>();
  t.data_type = m.contains("data_type") && m["data_type"].is_string() ? m["data_type"].get<std::string>() : "events";
  if (!data_types().contains(t.data_type)) return fail("unknown data_type '" + t.data_type + "'");
  return t;
}

}  // namespace shoredaq::storage
