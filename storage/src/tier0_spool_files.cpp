#include "tier0_spool_files.hpp"

#include "full_io.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "shoredaq/formats/online_format.hpp"
#include "shoredaq/version.hpp"

#include <spdlog/spdlog.h>

namespace shoredaq::storage::spool_files {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

void write_all(int fd, const std::uint8_t* data, std::size_t size, const fs::path& path) {
  if (!detail::write_fully(fd, data, size)) throw SpoolError(errno_text("write", path, errno));
}

}  // namespace

std::string errno_text(const std::string& what, const fs::path& path, int error) {
  return what + " " + path.string() + ": " + std::strerror(error);
}

void fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw SpoolError(errno_text("open directory", dir, errno));
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (rc != 0) throw SpoolError(errno_text("fsync directory", dir, error));
}

std::uint64_t keep_torn_tail(const fs::path& path, std::uint64_t good_bytes, const fs::path& damaged_dir, bool sync,
                             std::string_view spool_name) {
  std::error_code ec;
  const std::uint64_t size = fs::file_size(path, ec);
  if (ec || size <= good_bytes) return 0;
  const std::uint64_t torn = size - good_bytes;
  const std::string name = path.filename().string();
  const fs::path partial = damaged_dir / (name + ".partial");
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(good_bytes));
  std::string tail(static_cast<std::size_t>(torn), '\0');
  in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
  write_file_atomically(partial, tail, sync);
  fs::resize_file(path, good_bytes, ec);
  if (ec) throw SpoolError("cannot truncate " + path.string() + ": " + ec.message());
  spdlog::warn("{}: {} had a torn tail of {} bytes, kept as {}", spool_name, name, torn, partial.string());
  return torn;
}

void fsync_file(const fs::path& path) noexcept {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void write_file_atomically(const fs::path& path, const std::string& text, bool sync) {
  // A temporary name of this write's own: two threads writing the same file (the transfer agent's
  // status) must not truncate or rename each other's temporary. Appended piecewise: g++ 12 -O3
  // gives a false -Wrestrict on "." + string + ".tmp".
  static std::atomic<std::uint64_t> sequence{0};
  std::string tmp_name(1, '.');
  tmp_name.append(path.filename().string())
      .append(".")
      .append(std::to_string(::getpid()))
      .append(".")
      .append(std::to_string(sequence.fetch_add(1)))
      .append(".tmp");
  const fs::path tmp = path.parent_path() / tmp_name;
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) throw SpoolError(errno_text("create", tmp, errno));
  try {
    write_all(fd, reinterpret_cast<const std::uint8_t*>(text.data()), text.size(), tmp);
    if (sync && ::fsync(fd) != 0) throw SpoolError(errno_text("fsync", tmp, errno));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());  // a full disk must not leave half-written temporaries behind
    throw;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(tmp.c_str());
    throw SpoolError(errno_text("rename", tmp, error));
  }
}

namespace {

json text_or_null(const std::string& text) { return text.empty() ? json(nullptr) : json(text); }

std::uint32_t read_u32_le(const std::uint8_t* p) noexcept {
  return std::uint32_t{p[0]} | (std::uint32_t{p[1]} << 8) | (std::uint32_t{p[2]} << 16) | (std::uint32_t{p[3]} << 24);
}

// Offsets in an online object: preamble, class version, then the 20-byte header.
constexpr std::size_t kHeaderOffset = dataflow::kOnlinePreambleBytes + dataflow::kOnlineVersionBytes;
constexpr std::size_t kFrameOffset = kHeaderOffset + 8;
constexpr std::size_t kUtcOffset = kHeaderOffset + 12;
constexpr std::size_t kTicksOffset = kHeaderOffset + 16;
constexpr std::size_t kEventTriggerMaskOffset = kHeaderOffset + 20 + 8;  // after the trigger counter

}  // namespace

json part_to_json(const SpoolPartInfo& p) {
  const bool acoustic = p.data_type == Tier0DataType::Acoustic;
  const bool has_objects = p.objects() > 0;
  // Acoustic datagrams carry a slice time but no frame index.
  const bool has_slices = has_objects && !acoustic;
  const RunProvenance& prov = p.provenance;
  json j{{"manifest_version", kTier0ManifestVersion},
         // What a catalogue registers (Rucio: scope, name, bytes, adler32, md5, guid).
         {"scope", prov.scope},
         {"name", p.file},
         {"bytes", p.bytes},
         {"adler32", p.adler32},
         {"md5", p.md5},
         {"guid", p.guid},
         // The spool's own fields (file and size_bytes predate the catalogue's name and bytes).
         {"file", p.file},
         {"size_bytes", p.bytes},
         {"detector_id", p.detector_id},
         {"run", p.run},
         {"part", p.part},
         {"first_frame", has_slices ? json(p.first_frame) : json(nullptr)},
         {"last_frame", has_slices ? json(p.last_frame) : json(nullptr)},
         {"utc_start", has_objects ? json(format_utc_ns(p.utc_start_ns)) : json(nullptr)},
         {"utc_end", has_objects ? json(format_utc_ns(p.utc_end_ns)) : json(nullptr)},
         {"events", p.events},
         {"summary_slices", p.summary_slices},
         {"events_per_trigger",
          {{"3d_shower", p.events_per_trigger.shower_3d},
           {"mx_shower", p.events_per_trigger.mx_shower},
           {"3d_muon", p.events_per_trigger.muon_3d},
           {"nanobeacon", p.events_per_trigger.nanobeacon},
           {"factory_limit", p.events_per_trigger.factory_limit}}},
         // A run file holds the triggered events with their slices' summaries (and the kept
         // timeslices and monitoring); an acoustic part the TAES datagrams.
         {"data_type", to_string(p.data_type)},
         {"data_tier", prov.data_tier},
         {"format", acoustic ? kTier0RecordsFormat : kTier0Format},
         {"format_version", kTier0FormatVersion},
         {"software_version", prov.software_version},
         {"run_type", text_or_null(prov.run_type)},
         {"run_setup_hash", text_or_null(prov.run_setup_hash)},
         {"detector_file_hash", text_or_null(prov.detector_file_hash)},
         {"recovered", p.recovered}};
  if (acoustic) {
    j["datagrams"] = p.datagrams;
    json per_dom = json::object();
    for (const auto& [dom_id, n] : p.datagrams_per_dom) per_dom[std::to_string(dom_id)] = n;
    j["datagrams_per_dom"] = std::move(per_dom);
  } else {
    j["timeslices"] = timeslices_to_json(p.timeslices);
    j["monitoring_packets"] = p.monitoring_packets;
    if (p.supernova_alerts != 0) j["supernova_alerts"] = p.supernova_alerts;  // only then: older readers see no change
  }
  if (p.damaged_bytes != 0) j["damaged_bytes"] = p.damaged_bytes;
  return j;
}

json timeslices_to_json(const TimesliceCounts& counts) {
  json j = json::object();
  for (std::size_t k = 0; k < kTimesliceKinds; ++k) j[kTimesliceKindKeys[k]] = counts.per_kind[k];
  return j;
}

TimesliceCounts timeslices_from_json(const json& j) {
  TimesliceCounts counts;
  if (!j.is_object()) return counts;
  for (std::size_t k = 0; k < kTimesliceKinds; ++k) {
    const auto it = j.find(kTimesliceKindKeys[k]);
    if (it != j.end() && it->is_number_unsigned()) counts.per_kind[k] = it->get<std::uint64_t>();
  }
  return counts;
}

json provenance_to_json(const RunProvenance& p) {
  return json{{"scope", p.scope},
              {"run_type", p.run_type},
              {"software_version", p.software_version},
              {"run_setup_hash", p.run_setup_hash},
              {"detector_file_hash", p.detector_file_hash},
              {"data_tier", p.data_tier}};
}

RunProvenance provenance_from_json(const json& j) {
  RunProvenance p;
  auto text = [&j](const char* key, std::string& out) {
    if (j.contains(key) && j[key].is_string()) out = j[key].get<std::string>();
  };
  text("scope", p.scope);
  text("run_type", p.run_type);
  text("software_version", p.software_version);
  text("run_setup_hash", p.run_setup_hash);
  text("detector_file_hash", p.detector_file_hash);
  text("data_tier", p.data_tier);
  return p;
}

RunProvenance completed(RunProvenance p) {
  if (p.software_version.empty()) p.software_version = std::string(shoredaq::version());
  if (p.scope.empty()) p.scope = kDefaultRucioScope;
  if (p.data_tier.empty()) p.data_tier = "raw";
  return p;
}

bool move_part_to_done(const fs::path& spool_dir, const std::string& file_name, bool sync) {
  const fs::path ready = spool_dir / "ready";
  const fs::path done = spool_dir / "done";
  const fs::path from = ready / file_name;
  std::error_code ec;
  if (!fs::exists(from, ec)) return false;
  if (::rename(from.c_str(), (done / file_name).c_str()) != 0) throw SpoolError(errno_text("rename", from, errno));
  const fs::path manifest = ready / (file_name + ".json");
  if (fs::exists(manifest, ec) && ::rename(manifest.c_str(), (done / (file_name + ".json")).c_str()) != 0) {
    throw SpoolError(errno_text("rename", manifest, errno));
  }
  if (sync) {
    fsync_dir(done);
    fsync_dir(ready);
  }
  return true;
}

std::optional<json> read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  try {
    return json::parse(in);
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

std::optional<std::uint32_t> online_frame_of(std::span<const std::uint8_t> object) {
  if (object.size() < kFrameOffset + 4) return std::nullopt;
  return read_u32_le(object.data() + kFrameOffset);
}

std::optional<std::uint64_t> online_slice_start_ns_of(std::span<const std::uint8_t> object) {
  if (object.size() < kTicksOffset + 4) return std::nullopt;
  dataflow::SliceHeader header;
  header.utc_seconds = read_u32_le(object.data() + kUtcOffset);
  header.ticks_16ns = read_u32_le(object.data() + kTicksOffset);
  return header.slice_start_ns();
}

std::optional<std::uint64_t> online_event_trigger_mask_of(std::span<const std::uint8_t> object) {
  if (object.size() < kEventTriggerMaskOffset + 8) return std::nullopt;
  const std::uint8_t* p = object.data() + kEventTriggerMaskOffset;
  return std::uint64_t{read_u32_le(p)} | (std::uint64_t{read_u32_le(p + 4)} << 32);
}

}  // namespace shoredaq::storage::spool_files
