// The Tier-0 spool's file-level side: names, run manifests, the transfer agent's acks, and the
// recovery of what a crash left behind (the writing side is tier0_spool.cpp).

#include <algorithm>
#include <cstdio>
#include <functional>
#include <set>
#include <string>
#include <utility>

#include <spdlog/spdlog.h>

#include "shoredaq/formats/online_format.hpp"
#include "shoredaq/storage/acoustic_spool.hpp"
#include "shoredaq/storage/monitoring_record.hpp"
#include "shoredaq/storage/ring_dump.hpp"
#include "shoredaq/storage/supernova_alert_record.hpp"
#include "shoredaq/storage/tier0_spool.hpp"
#include "spool_recovery.hpp"
#include "tier0_spool_files.hpp"

namespace shoredaq::storage {

namespace fs = std::filesystem;
using nlohmann::json;
using spool_files::read_json;

std::string Tier0Spool::part_file_name(std::int32_t detector_id, std::uint32_t run, std::uint32_t part) {
  char name[64];
  std::snprintf(name, sizeof name, "KM3NeT_%08d_%08u_%04u.daq", detector_id, run, part);
  return name;
}

std::string Tier0Spool::run_manifest_name(std::int32_t detector_id, std::uint32_t run) {
  char name[64];
  std::snprintf(name, sizeof name, "KM3NeT_%08d_%08u.run.json", detector_id, run);
  return name;
}

std::string Tier0Spool::run_provenance_name(std::int32_t detector_id, std::uint32_t run) {
  char name[64];
  std::snprintf(name, sizeof name, "KM3NeT_%08d_%08u.provenance.json", detector_id, run);
  return name;
}

RunProvenance Tier0Spool::recorded_provenance(std::int32_t detector_id, std::uint32_t run) const {
  return spool_files::recorded_provenance(runs_dir() / run_provenance_name(detector_id, run));
}

std::optional<Tier0Spool::ParsedName> Tier0Spool::parse_part_file_name(const std::string& name) {
  int det = 0;
  unsigned run = 0, part = 0;
  int consumed = 0;
  if (name.size() != 33 ||
      std::sscanf(name.c_str(), "KM3NeT_%8d_%8u_%4u.daq%n", &det, &run, &part, &consumed) != 3 ||
      consumed != static_cast<int>(name.size())) {
    return std::nullopt;
  }
  return ParsedName{det, run, part};
}

std::optional<Tier0Spool::ParsedName> Tier0Spool::parse_run_provenance_name(const std::string& name) {
  int det = 0;
  unsigned run = 0;
  int consumed = 0;
  if (name.size() != 40 ||
      std::sscanf(name.c_str(), "KM3NeT_%8d_%8u.provenance.json%n", &det, &run, &consumed) != 2 ||
      consumed != static_cast<int>(name.size())) {
    return std::nullopt;
  }
  return ParsedName{det, run, 0};
}

std::optional<Tier0Spool::ParsedName> Tier0Spool::parse_run_manifest_name(const std::string& name) {
  int det = 0;
  unsigned run = 0;
  int consumed = 0;
  if (name.size() != 33 || std::sscanf(name.c_str(), "KM3NeT_%8d_%8u.run.json%n", &det, &run, &consumed) != 2 ||
      consumed != static_cast<int>(name.size())) {
    return std::nullopt;
  }
  return ParsedName{det, run, 0};
}

std::uint32_t Tier0Spool::next_part_number(std::int32_t detector_id, std::uint32_t run) const {
  return spool_files::next_part_number({open_dir(), ready_dir(), done_dir()}, parse_part_file_name, detector_id, run);
}

void Tier0Spool::write_run_manifest(std::int32_t detector_id, std::uint32_t run, bool recovered) {
  auto parts = spool_files::run_part_manifests(ready_dir(), done_dir(), parse_part_file_name, detector_id, run);
  json list = json::array();
  std::uint64_t events = 0, slices = 0, bytes = 0, monitoring = 0;
  TimesliceCounts timeslices;
  for (auto& [number, j] : parts) {
    events += j.value("events", std::uint64_t{0});
    slices += j.value("summary_slices", std::uint64_t{0});
    bytes += j.value("size_bytes", std::uint64_t{0});
    monitoring += j.value("monitoring_packets", std::uint64_t{0});
    if (j.contains("timeslices")) timeslices += spool_files::timeslices_from_json(j["timeslices"]);
    list.push_back(std::move(j));
  }
  const json manifest{{"detector_id", detector_id},
                      {"run", run},
                      {"state", recovered ? "recovered after a crash" : "ended"},
                      {"parts", std::move(list)},
                      {"events", events},
                      {"summary_slices", slices},
                      {"timeslices", spool_files::timeslices_to_json(timeslices)},
                      {"monitoring_packets", monitoring},
                      {"size_bytes", bytes}};
  spool_files::write_run_manifest_file(ready_dir(), run_manifest_name(detector_id, run), manifest, config_.fsync);
}

bool Tier0Spool::ack(const std::string& file_name) {
  if (!parse_part_file_name(file_name)) return false;
  if (!spool_files::move_part_to_done(config_.directory, file_name, config_.fsync)) return false;
  ++counters_.acks;
  ++run_counters_.acks;
  return true;
}

bool Tier0Spool::transferred(std::uint32_t run) const {
  // Detectors with a run manifest for this run number (a node normally serves one detector).
  std::set<std::int32_t> detectors;
  for (const auto& dir : {ready_dir(), done_dir()}) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const auto parsed = parse_run_manifest_name(entry.path().filename().string());
      if (parsed && parsed->run == run) detectors.insert(parsed->detector_id);
    }
  }
  if (detectors.empty()) return false;
  for (const std::int32_t detector_id : detectors) {
    const std::string name = run_manifest_name(detector_id, run);
    auto manifest = read_json(ready_dir() / name);
    if (!manifest) manifest = read_json(done_dir() / name);
    if (!manifest || !manifest->contains("parts") || !(*manifest)["parts"].is_array()) return false;
    for (const auto& part : (*manifest)["parts"]) {
      if (!part.contains("file") || !part["file"].is_string()) return false;
      const std::string file = part["file"].get<std::string>();
      if (!parse_part_file_name(file)) return false;
      // Data first, then manifest, reach done/; retention may prune the data later.
      if (!fs::exists(done_dir() / file) && !fs::exists(done_dir() / (file + ".json"))) return false;
    }
  }
  return true;
}

// Reads a part that a crash left behind: counts and checksums its whole objects; a torn tail is
// kept in damaged/ and cut off, so the part ends on an object boundary.
SpoolPartInfo Tier0Spool::scan_crashed_part(const fs::path& path, const ParsedName& parsed) {
  SpoolPartInfo info = spool_files::recovered_part_info(path, parsed, Tier0DataType::Events,
                                                        recorded_provenance(parsed.detector_id, parsed.run));
  Adler32 adler;
  Md5 md5;
  std::uint64_t good_bytes = 0;
  try {
    dataflow::OnlineFileReader reader(path);
    dataflow::OnlineObject object;
    while (reader.next(object)) {
      // Every object the writer puts in a part has the header at the same place.
      const bool is_event = object.type == dataflow::online_type::kEvent;
      const bool is_summary = object.type == dataflow::online_type::kSummarySlice;
      const bool is_monitoring = object.type == kOnlineMonitoringType;
      const bool is_alert = object.type == kOnlineSupernovaAlertType;
      const auto kind = dataflow::timeslice_kind_of(object.type);
      const auto frame = spool_files::online_frame_of(object.bytes);
      const auto start_ns = spool_files::online_slice_start_ns_of(object.bytes);
      const auto mask = is_event ? spool_files::online_event_trigger_mask_of(object.bytes) : std::optional<std::uint64_t>(0);
      if ((!is_event && !is_summary && !is_monitoring && !is_alert && !kind) || !frame || !start_ns || !mask) break;
      const std::uint64_t end_ns = *start_ns + dataflow::kSliceDurationNs;
      if (info.objects() == 0) {
        info.first_frame = info.last_frame = *frame;
        info.utc_start_ns = *start_ns;
        info.utc_end_ns = end_ns;
      } else {
        info.first_frame = std::min(info.first_frame, *frame);
        info.last_frame = std::max(info.last_frame, *frame);
        info.utc_start_ns = std::min(info.utc_start_ns, *start_ns);
        info.utc_end_ns = std::max(info.utc_end_ns, end_ns);
      }
      if (is_event) {
        info.events_per_trigger.add_event(*mask);
        ++info.events;
      } else if (is_summary) {
        ++info.summary_slices;
      } else if (is_monitoring) {
        ++info.monitoring_packets;
      } else if (is_alert) {
        ++info.supernova_alerts;
      } else {
        ++info.timeslices.per_kind[static_cast<std::size_t>(*kind)];
      }
      adler.update(object.bytes);
      md5.update(object.bytes);
      good_bytes += object.bytes.size();
    }
  } catch (const std::exception& e) {
    spdlog::error("tier-0 spool: cannot read leftover {}: {}", path.string(), e.what());
  }
  spool_files::finish_recovered_part(info, path, good_bytes, adler, md5, damaged_dir(), config_.fsync, "tier-0 spool");
  counters_.damaged_bytes += info.damaged_bytes;
  return info;
}

// The crash traces and what becomes of them: spool_recovery.hpp. open/ is shared: the acoustic
// spool recovers its own parts and the node's ring dumps set their own aside (ring_dump.hpp);
// anything else there is nobody's and is moved to damaged/.
void Tier0Spool::recover() {
  auto recovery = spool_files::recovery_of(*this, "tier-0 spool", config_.fsync);
  recovery.classify_open_entry = [](const std::string& name) {
    using spool_files::OpenEntry;
    if (AcousticSpool::parse_part_file_name(name) || is_dump_file_name(name)) return OpenEntry::LeftAlone;
    return parse_part_file_name(name) ? OpenEntry::Part : OpenEntry::Unknown;
  };
  recovery.scan_crashed_part = std::bind_front(&Tier0Spool::scan_crashed_part, this);
  recovery.describe_counts = [](const SpoolPartInfo& part) {
    return std::to_string(part.events) + " events, " + std::to_string(part.summary_slices) + " summary slices, " +
           std::to_string(part.timeslices.total()) + " timeslices, " + std::to_string(part.monitoring_packets) +
           " monitoring packets";
  };
  recovery.write_run_manifest = std::bind_front(&Tier0Spool::write_run_manifest, this);
  const auto recovered = spool_files::recover_spool(recovery);
  counters_.parts_recovered += recovered.size();
  sealed_.insert(sealed_.end(), recovered.begin(), recovered.end());
}

}  // namespace shoredaq::storage
