// The Tier-0 spool's file-level side: names, run manifests, the transfer agent's acks, and the
// recovery of what a crash left behind (the writing side is tier0_spool.cpp).

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <map>
#include <set>
#include <utility>

#include <spdlog/spdlog.h>

#include "shoredaq/formats/online_format.hpp"
#include "shoredaq/storage/acoustic_spool.hpp"
#include "shoredaq/storage/monitoring_record.hpp"
#include "shoredaq/storage/ring_dump.hpp"
#include "shoredaq/storage/supernova_alert_record.hpp"
#include "shoredaq/storage/tier0_spool.hpp"
#include "tier0_spool_files.hpp"

namespace shoredaq::storage {

namespace fs = std::filesystem;
using nlohmann::json;
using spool_files::errno_text;
using spool_files::fsync_dir;
using spool_files::part_to_json;
using spool_files::read_json;
using spool_files::write_file_atomically;
using spool_files::keep_torn_tail;
using spool_files::fsync_file;

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
  const auto record = read_json(runs_dir() / run_provenance_name(detector_id, run));
  // Without a record (a spool from before provenance existed) the parts get the defaults.
  return spool_files::completed(record ? spool_files::provenance_from_json(*record) : RunProvenance{});
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
  std::uint32_t next = 0;
  for (const auto& dir : {open_dir(), ready_dir(), done_dir()}) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const auto parsed = parse_part_file_name(entry.path().filename().string());
      if (parsed && parsed->detector_id == detector_id && parsed->run == run) {
        next = std::max(next, parsed->part + 1);
      }
    }
  }
  return next;
}

void Tier0Spool::write_run_manifest(std::int32_t detector_id, std::uint32_t run, bool recovered) {
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
  write_file_atomically(ready_dir() / run_manifest_name(detector_id, run), manifest.dump(2) + "\n", config_.fsync);
  if (config_.fsync) fsync_dir(ready_dir());
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
  const std::string name = path.filename().string();
  SpoolPartInfo info;
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
  info.damaged_bytes = keep_torn_tail(path, good_bytes, damaged_dir(), config_.fsync, "tier-0 spool");
  counters_.damaged_bytes += info.damaged_bytes;
  info.bytes = good_bytes;
  info.adler32 = adler.hex();
  info.md5 = md5.hex();
  info.guid = make_guid_v4();
  if (config_.fsync) fsync_file(path);
  return info;
}

// A crash can stop the writer at any point of a part's life, and each leaves its own trace:
//  - parts in open/ (the usual case): every whole object is kept, sealed into ready/ flagged
//    recovered, a torn tail moves to damaged/;
//  - a part in ready/ without its manifest (killed between the rename and the manifest);
//  - a run with parts but no run manifest (killed between two parts, or before end_run).
// At construction no run is open, so every run without a run manifest was cut short: close it.
// The detector of each comes from the file names, so recovery needs no configured detector.
void Tier0Spool::recover() {
  using RunKey = std::pair<std::int32_t, std::uint32_t>;  // detector, run
  std::set<RunKey> runs;      // with parts anywhere
  std::set<RunKey> reopened;  // whose part list changed now: their manifest is rewritten
  std::error_code ec;
  std::vector<fs::path> leftovers;
  for (const auto& entry : fs::directory_iterator(open_dir(), ec)) leftovers.push_back(entry.path());
  std::sort(leftovers.begin(), leftovers.end());
  for (const fs::path& path : leftovers) {
    const std::string name = path.filename().string();
    // The acoustic spool shares the directories and recovers its own parts.
    if (AcousticSpool::parse_part_file_name(name)) continue;
    if (is_dump_file_name(name)) continue;  // the node's ring dumps set their own aside (ring_dump.hpp)
    const auto parsed = parse_part_file_name(name);
    if (!parsed) {
      // Not ours to seal: keep it, but out of the way and loudly.
      const fs::path to = damaged_dir() / (name + ".unknown");
      fs::rename(path, to, ec);
      spdlog::warn("tier-0 spool: unexpected file {} moved to {}", path.string(), to.string());
      continue;
    }
    const SpoolPartInfo info = scan_crashed_part(path, *parsed);
    if (::rename(path.c_str(), (ready_dir() / name).c_str()) != 0) throw SpoolError(errno_text("rename", path, errno));
    write_file_atomically(ready_dir() / (name + ".json"), part_to_json(info).dump(2) + "\n", config_.fsync);
    spdlog::warn("tier-0 spool: recovered {} ({} events, {} summary slices, {} timeslices, {} monitoring packets) "
                 "after a crash",
                 name, info.events, info.summary_slices, info.timeslices.total(), info.monitoring_packets);
    ++counters_.parts_recovered;
    sealed_.push_back(info);
    reopened.insert({parsed->detector_id, parsed->run});
  }
  if (!leftovers.empty() && config_.fsync) {
    fsync_dir(ready_dir());
    fsync_dir(open_dir());
    fsync_dir(damaged_dir());
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
    write_file_atomically(manifest, part_to_json(info).dump(2) + "\n", config_.fsync);
    spdlog::warn("tier-0 spool: {} was sealed without its manifest (crash); manifest rebuilt", path.string());
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
  // No run is open at construction: every provenance record belongs to a run closed above (or
  // one that never wrote a byte). A run resumed by begin_run() records its provenance again.
  // Only our own: the acoustic spool keeps its records there too.
  std::vector<fs::path> records;
  for (const auto& entry : fs::directory_iterator(runs_dir(), ec)) records.push_back(entry.path());
  for (const fs::path& record : records) {
    if (parse_run_provenance_name(record.filename().string())) fs::remove(record, ec);
  }
}

}  // namespace shoredaq::storage
