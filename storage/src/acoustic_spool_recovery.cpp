// The acoustic spool's file-level side: names, run manifests, and the recovery of what a crash left
// behind (the writing side is acoustic_spool.cpp).

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <utility>

#include <spdlog/spdlog.h>

#include "shoredaq/formats/clb_datagram.hpp"
#include "shoredaq/formats/record_stream.hpp"
#include "shoredaq/storage/acoustic_spool.hpp"
#include "shoredaq/storage/ring_dump.hpp"
#include "tier0_spool_files.hpp"

namespace shoredaq::storage {

namespace fs = std::filesystem;
using nlohmann::json;
using spool_files::errno_text;
using spool_files::read_json;
using spool_files::write_file_atomically;
using spool_files::keep_torn_tail;
using spool_files::fsync_file;
using ParsedName = Tier0Spool::ParsedName;

namespace {

constexpr std::size_t kPartNameBytes = 42;        // KM3NeT_DDDDDDDD_RRRRRRRR_PPPP.acoustic.dqd
constexpr std::size_t kProvenanceNameBytes = 49;  // KM3NeT_DDDDDDDD_RRRRRRRR.acoustic.provenance.json

std::uint32_t load_be32(const std::uint8_t* p) noexcept {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}

}  // namespace

std::string AcousticSpool::part_file_name(std::int32_t detector_id, std::uint32_t run, std::uint32_t part) {
  char name[64];
  std::snprintf(name, sizeof name, "KM3NeT_%08d_%08u_%04u.acoustic.dqd", detector_id, run, part);
  return name;
}

std::string AcousticSpool::run_manifest_name(std::int32_t detector_id, std::uint32_t run) {
  char name[64];
  std::snprintf(name, sizeof name, "KM3NeT_%08d_%08u.acoustic.run.json", detector_id, run);
  return name;
}

std::string AcousticSpool::run_provenance_name(std::int32_t detector_id, std::uint32_t run) {
  char name[64];
  std::snprintf(name, sizeof name, "KM3NeT_%08d_%08u.acoustic.provenance.json", detector_id, run);
  return name;
}

std::optional<ParsedName> AcousticSpool::parse_part_file_name(const std::string& name) {
  int det = 0;
  unsigned run = 0, part = 0;
  int consumed = 0;
  if (name.size() != kPartNameBytes ||
      std::sscanf(name.c_str(), "KM3NeT_%8d_%8u_%4u.acoustic.dqd%n", &det, &run, &part, &consumed) != 3 ||
      consumed != static_cast<int>(name.size())) {
    return std::nullopt;
  }
  return ParsedName{det, run, part};
}

std::optional<ParsedName> AcousticSpool::parse_run_provenance_name(const std::string& name) {
  int det = 0;
  unsigned run = 0;
  int consumed = 0;
  if (name.size() != kProvenanceNameBytes ||
      std::sscanf(name.c_str(), "KM3NeT_%8d_%8u.acoustic.provenance.json%n", &det, &run, &consumed) != 2 ||
      consumed != static_cast<int>(name.size())) {
    return std::nullopt;
  }
  return ParsedName{det, run, 0};
}

bool is_spool_part_file_name(const std::string& name) {
  return Tier0Spool::parse_part_file_name(name).has_value() || AcousticSpool::parse_part_file_name(name).has_value() ||
         is_dump_file_name(name);
}

RunProvenance AcousticSpool::recorded_provenance(std::int32_t detector_id, std::uint32_t run) const {
  const auto record = read_json(runs_dir() / run_provenance_name(detector_id, run));
  return spool_files::completed(record ? spool_files::provenance_from_json(*record) : RunProvenance{});
}

std::uint32_t AcousticSpool::next_part_number(std::int32_t detector_id, std::uint32_t run) const {
  std::uint32_t next = 0;
  for (const auto& dir : {open_dir(), ready_dir(), done_dir()}) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const auto parsed = parse_part_file_name(entry.path().filename().string());
      if (parsed && parsed->detector_id == detector_id && parsed->run == run) next = std::max(next, parsed->part + 1);
    }
  }
  return next;
}

void AcousticSpool::write_run_manifest(std::int32_t detector_id, std::uint32_t run, bool recovered) {
  std::map<std::uint32_t, json> parts;  // by part number
  for (const auto& dir : {ready_dir(), done_dir()}) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      const auto parsed = parse_part_file_name(name);
      if (!parsed || parsed->detector_id != detector_id || parsed->run != run) continue;
      auto manifest = read_json(dir / (name + ".json"));
      json j = manifest ? *manifest : json{{"file", name}, {"manifest_missing", true}};
      j["file"] = name;
      parts[parsed->part] = std::move(j);
    }
  }
  json list = json::array();
  std::uint64_t datagrams = 0, bytes = 0;
  std::map<std::string, std::uint64_t> per_dom;
  for (auto& [number, j] : parts) {
    datagrams += j.value("datagrams", std::uint64_t{0});
    bytes += j.value("size_bytes", std::uint64_t{0});
    if (j.contains("datagrams_per_dom") && j["datagrams_per_dom"].is_object()) {
      for (const auto& [dom, n] : j["datagrams_per_dom"].items()) {
        if (n.is_number_unsigned()) per_dom[dom] += n.get<std::uint64_t>();
      }
    }
    list.push_back(std::move(j));
  }
  const json manifest{{"detector_id", detector_id},
                      {"run", run},
                      {"data_type", "acoustic"},
                      {"state", recovered ? "recovered after a crash" : "ended"},
                      {"parts", std::move(list)},
                      {"datagrams", datagrams},
                      {"datagrams_per_dom", per_dom},
                      {"size_bytes", bytes}};
  write_file_atomically(ready_dir() / run_manifest_name(detector_id, run), manifest.dump(2) + "\n", config_.fsync);
  if (config_.fsync) spool_files::fsync_dir(ready_dir());
}

// Reads a part that a crash left behind: counts and checksums its whole TAES records; a torn or
// foreign tail is kept in damaged/ and cut off, so the part ends on a record boundary.
SpoolPartInfo AcousticSpool::scan_crashed_part(const fs::path& path, const ParsedName& parsed) {
  const std::string name = path.filename().string();
  SpoolPartInfo info;
  info.data_type = Tier0DataType::Acoustic;
  info.file = name;
  info.detector_id = parsed.detector_id;
  info.run = parsed.run;
  info.part = parsed.part;
  info.recovered = true;
  info.provenance = recorded_provenance(parsed.detector_id, parsed.run);
  Adler32 adler;
  Md5 md5;
  std::uint64_t good_bytes = 0;
  try {
    dataflow::DqdFileReader reader(path, std::size_t{1} << 20, static_cast<std::uint32_t>(config_.max_datagram_bytes));
    std::span<const std::uint8_t> datagram;
    std::uint8_t length[dataflow::kRecordLengthBytes];
    while (reader.next(datagram)) {
      if (datagram.size() < 24 || std::memcmp(datagram.data(), "TAES", 4) != 0) break;
      const std::uint64_t start_ns = std::uint64_t{load_be32(datagram.data() + 12)} * 1'000'000'000ull +
                                     std::uint64_t{load_be32(datagram.data() + 16)} * dataflow::kTickNs;
      const std::uint64_t end_ns = start_ns + dataflow::kSliceDurationNs;
      if (info.datagrams == 0) {
        info.utc_start_ns = start_ns;
        info.utc_end_ns = end_ns;
      } else {
        info.utc_start_ns = std::min(info.utc_start_ns, start_ns);
        info.utc_end_ns = std::max(info.utc_end_ns, end_ns);
      }
      ++info.datagrams;
      ++info.datagrams_per_dom[load_be32(datagram.data() + 20)];
      const auto n = static_cast<std::uint32_t>(datagram.size());
      for (std::size_t i = 0; i < sizeof length; ++i) length[i] = static_cast<std::uint8_t>(n >> (8 * i));
      adler.update(std::span<const std::uint8_t>(length, sizeof length));
      md5.update(std::span<const std::uint8_t>(length, sizeof length));
      adler.update(datagram);
      md5.update(datagram);
      good_bytes = reader.offset();
    }
  } catch (const std::exception& e) {
    spdlog::error("acoustic spool: cannot read leftover {}: {}", path.string(), e.what());
  }
  info.damaged_bytes = keep_torn_tail(path, good_bytes, damaged_dir(), config_.fsync, "acoustic spool");
  counters_.damaged_bytes += info.damaged_bytes;
  info.bytes = good_bytes;
  info.adler32 = adler.hex();
  info.md5 = md5.hex();
  info.guid = make_guid_v4();
  if (config_.fsync) fsync_file(path);
  return info;
}

// As the Tier-0 spool's recovery (tier0_spool_recovery.cpp), for acoustic parts: parts in open/
// are sealed flagged recovered, a part in ready/ without its manifest gets one, and every run
// without an acoustic run manifest is closed. No run is open at construction.
void AcousticSpool::recover() {
  using RunKey = std::pair<std::int32_t, std::uint32_t>;
  std::set<RunKey> runs, reopened;
  std::error_code ec;
  std::vector<fs::path> leftovers;
  for (const auto& entry : fs::directory_iterator(open_dir(), ec)) {
    if (parse_part_file_name(entry.path().filename().string())) leftovers.push_back(entry.path());
  }
  std::sort(leftovers.begin(), leftovers.end());
  for (const fs::path& path : leftovers) {
    const std::string name = path.filename().string();
    const auto parsed = parse_part_file_name(name);
    const SpoolPartInfo info = scan_crashed_part(path, *parsed);
    if (info.bytes == 0) {  // nothing whole in it: the tail is in damaged/ already
      fs::remove(path, ec);
      continue;
    }
    if (::rename(path.c_str(), (ready_dir() / name).c_str()) != 0) throw SpoolError(errno_text("rename", path, errno));
    write_file_atomically(ready_dir() / (name + ".json"), spool_files::part_to_json(info).dump(2) + "\n", config_.fsync);
    spdlog::warn("acoustic spool: recovered {} ({} datagrams) after a crash", name, info.datagrams);
    ++counters_.parts_recovered;
    sealed_.push_back(info);
    reopened.insert({parsed->detector_id, parsed->run});
  }
  if (!leftovers.empty() && config_.fsync) {
    spool_files::fsync_dir(ready_dir());
    spool_files::fsync_dir(open_dir());
    spool_files::fsync_dir(damaged_dir());
  }
  std::vector<fs::path> ready;
  for (const auto& entry : fs::directory_iterator(ready_dir(), ec)) ready.push_back(entry.path());
  std::sort(ready.begin(), ready.end());
  for (const fs::path& path : ready) {
    const auto parsed = parse_part_file_name(path.filename().string());
    if (!parsed) continue;
    runs.insert({parsed->detector_id, parsed->run});
    const fs::path manifest = ready_dir() / (path.filename().string() + ".json");
    if (fs::exists(manifest)) continue;
    const SpoolPartInfo info = scan_crashed_part(path, *parsed);
    write_file_atomically(manifest, spool_files::part_to_json(info).dump(2) + "\n", config_.fsync);
    spdlog::warn("acoustic spool: {} was sealed without its manifest (crash); manifest rebuilt", path.string());
    ++counters_.parts_recovered;
    sealed_.push_back(info);
    reopened.insert({parsed->detector_id, parsed->run});
  }
  for (const auto& entry : fs::directory_iterator(done_dir(), ec)) {
    const auto parsed = parse_part_file_name(entry.path().filename().string());
    if (parsed) runs.insert({parsed->detector_id, parsed->run});
  }
  for (const auto& [detector_id, run] : runs) {
    const std::string name = run_manifest_name(detector_id, run);
    const bool closed = fs::exists(ready_dir() / name) || fs::exists(done_dir() / name);
    if (!closed || reopened.contains({detector_id, run})) write_run_manifest(detector_id, run, true);
  }
  std::vector<fs::path> records;
  for (const auto& entry : fs::directory_iterator(runs_dir(), ec)) records.push_back(entry.path());
  for (const fs::path& record : records) {
    if (parse_run_provenance_name(record.filename().string())) fs::remove(record, ec);
  }
}

}  // namespace shoredaq::storage
