// The acoustic spool's file-level side: names, run manifests, and the recovery of what a crash left
// behind (the writing side is acoustic_spool.cpp).

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <utility>

#include <spdlog/spdlog.h>

#include "shoredaq/formats/clb_datagram.hpp"
#include "shoredaq/formats/record_stream.hpp"
#include "shoredaq/storage/acoustic_spool.hpp"
#include "shoredaq/storage/ring_dump.hpp"
#include "spool_recovery.hpp"

namespace shoredaq::storage {

namespace fs = std::filesystem;
using nlohmann::json;
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
  return spool_files::recorded_provenance(runs_dir() / run_provenance_name(detector_id, run));
}

std::uint32_t AcousticSpool::next_part_number(std::int32_t detector_id, std::uint32_t run) const {
  return spool_files::next_part_number({open_dir(), ready_dir(), done_dir()}, parse_part_file_name, detector_id, run);
}

void AcousticSpool::write_run_manifest(std::int32_t detector_id, std::uint32_t run, bool recovered) {
  auto parts = spool_files::run_part_manifests(ready_dir(), done_dir(), parse_part_file_name, detector_id, run);
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
  spool_files::write_run_manifest_file(ready_dir(), run_manifest_name(detector_id, run), manifest, config_.fsync);
}

// Reads a part that a crash left behind: counts and checksums its whole TAES records; a torn or
// foreign tail is kept in damaged/ and cut off, so the part ends on a record boundary.
SpoolPartInfo AcousticSpool::scan_crashed_part(const fs::path& path, const ParsedName& parsed) {
  SpoolPartInfo info = spool_files::recovered_part_info(path, parsed, Tier0DataType::Acoustic,
                                                        recorded_provenance(parsed.detector_id, parsed.run));
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
  spool_files::finish_recovered_part(info, path, good_bytes, adler, md5, damaged_dir(), config_.fsync,
                                     "acoustic spool");
  counters_.damaged_bytes += info.damaged_bytes;
  return info;
}

// As the Tier-0 spool's recovery (spool_recovery.hpp), for acoustic parts only: a part with no
// whole record is deleted (its bytes are in damaged/), and the Tier-0 spool's files are not looked at.
void AcousticSpool::recover() {
  auto recovery = spool_files::recovery_of(*this, "acoustic spool", config_.fsync);
  recovery.classify_open_entry = [](const std::string& name) {
    return parse_part_file_name(name) ? spool_files::OpenEntry::Part : spool_files::OpenEntry::NotOurs;
  };
  recovery.drop_empty_parts = true;
  recovery.scan_crashed_part = std::bind_front(&AcousticSpool::scan_crashed_part, this);
  recovery.describe_counts = [](const SpoolPartInfo& part) { return std::to_string(part.datagrams) + " datagrams"; };
  recovery.write_run_manifest = std::bind_front(&AcousticSpool::write_run_manifest, this);
  const auto recovered = spool_files::recover_spool(recovery);
  counters_.parts_recovered += recovered.size();
  sealed_.insert(sealed_.end(), recovered.begin(), recovered.end());
}

}  // namespace shoredaq::storage
