#include "spool_recovery.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <set>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "tier0_spool_files.hpp"

namespace shoredaq::storage::spool_files {

namespace fs = std::filesystem;
using nlohmann::json;

void create_spool_dirs(std::initializer_list<fs::path> dirs) {
  for (const auto& dir : dirs) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw SpoolError("cannot create " + dir.string() + ": " + ec.message());
  }
}

std::uint32_t next_part_number(std::initializer_list<fs::path> dirs, NameParser parse_part, std::int32_t detector_id,
                               std::uint32_t run) {
  std::uint32_t next = 0;
  for (const auto& dir : dirs) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const auto parsed = parse_part(entry.path().filename().string());
      if (parsed && parsed->detector_id == detector_id && parsed->run == run) next = std::max(next, parsed->part + 1);
    }
  }
  return next;
}

std::map<std::uint32_t, json> run_part_manifests(const fs::path& ready_dir, const fs::path& done_dir,
                                                 NameParser parse_part, std::int32_t detector_id, std::uint32_t run) {
  std::map<std::uint32_t, json> parts;
  for (const auto& dir : {ready_dir, done_dir}) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      const auto parsed = parse_part(name);
      if (!parsed || parsed->detector_id != detector_id || parsed->run != run) continue;
      auto manifest = read_json(dir / (name + ".json"));
      json j = manifest ? *manifest : json{{"file", name}, {"manifest_missing", true}};
      j["file"] = name;
      parts[parsed->part] = std::move(j);
    }
  }
  return parts;
}

void write_run_manifest_file(const fs::path& ready_dir, const std::string& name, const json& manifest, bool sync) {
  write_file_atomically(ready_dir / name, manifest.dump(2) + "\n", sync);
  if (sync) fsync_dir(ready_dir);
}

RunProvenance recorded_provenance(const fs::path& record) {
  const auto j = read_json(record);
  return completed(j ? provenance_from_json(*j) : RunProvenance{});
}

SpoolPartInfo recovered_part_info(const fs::path& path, const ParsedName& parsed, Tier0DataType data_type,
                                  RunProvenance provenance) {
  SpoolPartInfo info;
  info.data_type = data_type;
  info.file = path.filename().string();
  info.detector_id = parsed.detector_id;
  info.run = parsed.run;
  info.part = parsed.part;
  info.recovered = true;
  info.provenance = std::move(provenance);
  return info;
}

void finish_recovered_part(SpoolPartInfo& info, const fs::path& path, std::uint64_t good_bytes, const Adler32& adler,
                           const Md5& md5, const fs::path& damaged_dir, bool sync, std::string_view spool_name) {
  info.damaged_bytes = keep_torn_tail(path, good_bytes, damaged_dir, sync, spool_name);
  info.bytes = good_bytes;
  info.adler32 = adler.hex();
  info.md5 = md5.hex();
  info.guid = make_guid_v4();
  if (sync) fsync_file(path);
}

namespace {

using RunKey = std::pair<std::int32_t, std::uint32_t>;  // detector, run

void write_part_manifest(const SpoolRecovery& spool, const fs::path& path, const SpoolPartInfo& info) {
  write_file_atomically(path, part_to_json(info).dump(2) + "\n", spool.fsync);
}

// Seals the parts left in open/ into ready/; adds the runs whose part list changed to `reopened`.
void recover_open_parts(const SpoolRecovery& spool, std::set<RunKey>& reopened, std::vector<SpoolPartInfo>& recovered) {
  std::error_code ec;
  std::vector<std::pair<fs::path, OpenEntry>> leftovers;
  for (const auto& entry : fs::directory_iterator(spool.open_dir, ec)) {
    const OpenEntry kind = spool.classify_open_entry(entry.path().filename().string());
    if (kind != OpenEntry::NotOurs) leftovers.emplace_back(entry.path(), kind);
  }
  std::sort(leftovers.begin(), leftovers.end());
  for (const auto& [path, kind] : leftovers) {
    const std::string name = path.filename().string();
    if (kind == OpenEntry::LeftAlone) continue;
    if (kind == OpenEntry::Unknown) {
      // Not ours to seal: keep it, but out of the way and loudly.
      const fs::path to = spool.damaged_dir / (name + ".unknown");
      fs::rename(path, to, ec);
      spdlog::warn("{}: unexpected file {} moved to {}", spool.spool_name, path.string(), to.string());
      continue;
    }
    const auto parsed = spool.parse_part(name);
    const SpoolPartInfo info = spool.scan_crashed_part(path, *parsed);
    if (spool.drop_empty_parts && info.bytes == 0) {  // nothing whole in it: the tail is in damaged/ already
      fs::remove(path, ec);
      continue;
    }
    const fs::path sealed = spool.ready_dir / name;
    if (::rename(path.c_str(), sealed.c_str()) != 0) throw SpoolError(errno_text("rename", path, errno));
    write_part_manifest(spool, spool.ready_dir / (name + ".json"), info);
    spdlog::warn("{}: recovered {} ({}) after a crash", spool.spool_name, name, spool.describe_counts(info));
    recovered.push_back(info);
    reopened.insert({parsed->detector_id, parsed->run});
  }
  // Entries looked at and left alone count too: the sync does not depend on what they were.
  if (!leftovers.empty() && spool.fsync) {
    fsync_dir(spool.ready_dir);
    fsync_dir(spool.open_dir);
    fsync_dir(spool.damaged_dir);
  }
}

// Rebuilds the manifest of a part in ready/ sealed without one; adds every run with a part in
// ready/ to `runs`.
void recover_ready_manifests(const SpoolRecovery& spool, std::set<RunKey>& runs, std::set<RunKey>& reopened,
                             std::vector<SpoolPartInfo>& recovered) {
  std::error_code ec;
  std::vector<fs::path> ready;
  for (const auto& entry : fs::directory_iterator(spool.ready_dir, ec)) ready.push_back(entry.path());
  std::sort(ready.begin(), ready.end());
  for (const fs::path& path : ready) {
    const auto parsed = spool.parse_part(path.filename().string());
    if (!parsed) continue;
    runs.insert({parsed->detector_id, parsed->run});
    const fs::path manifest = spool.ready_dir / (path.filename().string() + ".json");
    if (fs::exists(manifest)) continue;
    const SpoolPartInfo info = spool.scan_crashed_part(path, *parsed);
    write_part_manifest(spool, manifest, info);
    spdlog::warn("{}: {} was sealed without its manifest (crash); manifest rebuilt", spool.spool_name,
                 path.string());
    recovered.push_back(info);
    reopened.insert({parsed->detector_id, parsed->run});
  }
}

}  // namespace

std::vector<SpoolPartInfo> recover_spool(const SpoolRecovery& spool) {
  std::set<RunKey> runs;      // with parts anywhere
  std::set<RunKey> reopened;  // whose part list changed now: their manifest is rewritten
  std::vector<SpoolPartInfo> recovered;
  recover_open_parts(spool, reopened, recovered);
  recover_ready_manifests(spool, runs, reopened, recovered);
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(spool.done_dir, ec)) {
    const auto parsed = spool.parse_part(entry.path().filename().string());
    if (parsed) runs.insert({parsed->detector_id, parsed->run});
  }
  for (const auto& [detector_id, run] : runs) {
    const std::string name = spool.run_manifest_name(detector_id, run);
    const bool closed = fs::exists(spool.ready_dir / name) || fs::exists(spool.done_dir / name);
    if (!closed || reopened.contains({detector_id, run})) spool.write_run_manifest(detector_id, run, true);
  }
  // No run is open at construction: every provenance record belongs to a run closed above (or
  // one that never wrote a byte). A run resumed by begin_run() records its provenance again.
  // Only the spool's own: the other spool keeps its records there too.
  std::vector<fs::path> records;
  for (const auto& entry : fs::directory_iterator(spool.runs_dir, ec)) records.push_back(entry.path());
  for (const fs::path& record : records) {
    if (spool.parse_run_provenance(record.filename().string())) fs::remove(record, ec);
  }
  return recovered;
}

}  // namespace shoredaq::storage::spool_files
