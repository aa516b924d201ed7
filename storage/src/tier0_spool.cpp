#include "shoredaq/storage/tier0_spool.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <algorithm>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "shoredaq/dataflow/online_format.hpp"

namespace shoredaq::storage {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string errno_text(const std::string& what, const fs::path& path) {
  return what + " " + path.string() + ": " + std::strerror(errno);
}

void fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw SpoolError(errno_text("open directory", dir));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw SpoolError(errno_text("fsync directory", dir));
}

void write_all(int fd, const std::uint8_t* data, std::size_t size, const fs::path& path) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw SpoolError(errno_text("write", path));
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

// Writes a file next to its final name, fsyncs it, renames it into place (atomic for readers).
void write_file_atomically(const fs::path& path, const std::string& text, bool sync) {
  // Appended piecewise: g++ 12 -O3 gives a false -Wrestrict on "." + string + ".tmp".
  std::string tmp_name(1, '.');
  tmp_name.append(path.filename().string()).append(".tmp");
  const fs::path tmp = path.parent_path() / tmp_name;
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) throw SpoolError(errno_text("create", tmp));
  try {
    write_all(fd, reinterpret_cast<const std::uint8_t*>(text.data()), text.size(), tmp);
    if (sync && ::fsync(fd) != 0) throw SpoolError(errno_text("fsync", tmp));
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) throw SpoolError(errno_text("rename", tmp));
}

json part_to_json(const SpoolPartInfo& p, std::int32_t detector_id) {
  json j{{"file", p.file},
         {"detector_id", detector_id},
         {"run", p.run},
         {"part", p.part},
         {"size_bytes", p.bytes},
         {"events", p.events},
         {"summary_slices", p.summary_slices},
         {"adler32", p.adler32},
         {"md5", p.md5},
         {"recovered", p.recovered}};
  if (p.events + p.summary_slices > 0) {
    j["first_frame"] = p.first_frame;
    j["last_frame"] = p.last_frame;
  } else {
    j["first_frame"] = nullptr;
    j["last_frame"] = nullptr;
  }
  if (p.damaged_bytes != 0) j["damaged_bytes"] = p.damaged_bytes;
  return j;
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

// Frame index of an online event or summary slice: preamble (8), version (2), detector, run, frame.
std::optional<std::uint32_t> online_frame_of(std::span<const std::uint8_t> object) {
  constexpr std::size_t kFrameOffset = dataflow::kOnlinePreambleBytes + dataflow::kOnlineVersionBytes + 8;
  if (object.size() < kFrameOffset + 4) return std::nullopt;
  const std::uint8_t* p = object.data() + kFrameOffset;
  return std::uint32_t{p[0]} | (std::uint32_t{p[1]} << 8) | (std::uint32_t{p[2]} << 16) | (std::uint32_t{p[3]} << 24);
}

}  // namespace

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

Tier0Spool::Tier0Spool(Tier0SpoolConfig config) : config_(std::move(config)) {
  for (const auto& dir : {open_dir(), ready_dir(), done_dir(), damaged_dir()}) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw SpoolError("cannot create " + dir.string() + ": " + ec.message());
  }
  recover();
}

Tier0Spool::~Tier0Spool() {
  try {
    if (fd_ >= 0) seal_part();
  } catch (const std::exception& e) {
    spdlog::error("tier-0 spool: sealing at shutdown failed: {} (recovered at next start)", e.what());
  }
}

std::uint32_t Tier0Spool::next_part_number(std::uint32_t run) const {
  std::uint32_t next = 0;
  for (const auto& dir : {open_dir(), ready_dir(), done_dir()}) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const auto parsed = parse_part_file_name(entry.path().filename().string());
      if (parsed && parsed->detector_id == config_.detector_id && parsed->run == run) {
        next = std::max(next, parsed->part + 1);
      }
    }
  }
  return next;
}

void Tier0Spool::begin_run(std::uint32_t run) {
  if (run_) end_run();
  run_ = run;
  next_part_ = next_part_number(run);
}

void Tier0Spool::open_part() {
  part_ = SpoolPartInfo{};
  part_.run = *run_;
  part_.part = next_part_++;
  part_.file = part_file_name(config_.detector_id, part_.run, part_.part);
  const fs::path path = open_dir() / part_.file;
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd_ < 0) {
    ++counters_.write_errors;
    throw SpoolError(errno_text("create", path));
  }
  adler_ = Adler32{};
  md5_ = Md5{};
  buffer_.clear();
  opened_at_ = std::chrono::steady_clock::now();
}

void Tier0Spool::flush() {
  if (buffer_.empty()) return;
  try {
    write_all(fd_, buffer_.data(), buffer_.size(), open_dir() / part_.file);
  } catch (...) {
    ++counters_.write_errors;
    throw;
  }
  buffer_.clear();
}

void Tier0Spool::seal_part() {
  flush();
  const fs::path from = open_dir() / part_.file;
  const fs::path to = ready_dir() / part_.file;
  if (config_.fsync && ::fsync(fd_) != 0) {
    ++counters_.write_errors;
    throw SpoolError(errno_text("fsync", from));
  }
  ::close(fd_);
  fd_ = -1;
  part_.adler32 = adler_.hex();
  part_.md5 = md5_.hex();
  if (::rename(from.c_str(), to.c_str()) != 0) {
    ++counters_.write_errors;
    throw SpoolError(errno_text("rename", from));
  }
  write_file_atomically(ready_dir() / (part_.file + ".json"), part_to_json(part_, config_.detector_id).dump(2) + "\n",
                        config_.fsync);
  if (config_.fsync) {
    fsync_dir(ready_dir());
    fsync_dir(open_dir());
  }
  ++counters_.parts_sealed;
  sealed_.push_back(part_);
}

void Tier0Spool::append_object(const std::vector<std::uint8_t>& object, std::uint32_t frame, bool is_event) {
  if (!run_) throw SpoolError("tier-0 spool: data written outside a run");
  roll_if_due();
  if (fd_ >= 0 && part_.bytes > 0 && part_.bytes + object.size() > config_.max_file_bytes) seal_part();
  if (fd_ < 0) open_part();
  const std::span<const std::uint8_t> bytes(object);
  adler_.update(bytes);
  md5_.update(bytes);
  if (part_.events + part_.summary_slices == 0) {
    part_.first_frame = part_.last_frame = frame;
  } else {
    part_.first_frame = std::min(part_.first_frame, frame);
    part_.last_frame = std::max(part_.last_frame, frame);
  }
  (is_event ? part_.events : part_.summary_slices) += 1;
  part_.bytes += object.size();
  (is_event ? counters_.events_written : counters_.summaries_written) += 1;
  counters_.bytes_written += object.size();
  buffer_.insert(buffer_.end(), object.begin(), object.end());
  if (buffer_.size() >= config_.write_buffer_bytes) flush();
}

void Tier0Spool::write_event(const dataflow::Event& event) {
  scratch_.clear();
  dataflow::encode_online_event(event, scratch_);
  append_object(scratch_, event.header.frame_index, true);
}

void Tier0Spool::write_summary(const dataflow::SummarySlice& summary) {
  scratch_.clear();
  dataflow::encode_online_summary_slice(summary, scratch_);
  append_object(scratch_, summary.header.frame_index, false);
}

void Tier0Spool::write_slice(std::span<const dataflow::Event> events, const dataflow::SummarySlice* summary) {
  if (summary != nullptr) write_summary(*summary);
  for (const auto& e : events) write_event(e);
}

void Tier0Spool::roll_if_due() {
  if (fd_ >= 0 && std::chrono::steady_clock::now() - opened_at_ >= config_.max_file_age) seal_part();
}

void Tier0Spool::end_run() {
  if (!run_) return;
  if (fd_ >= 0) seal_part();
  write_run_manifest(*run_, false);
  ++counters_.runs_ended;
  run_.reset();
}

void Tier0Spool::write_run_manifest(std::uint32_t run, bool recovered) {
  std::map<std::uint32_t, json> parts;  // by part number
  for (const auto& dir : {ready_dir(), done_dir()}) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      const auto parsed = parse_part_file_name(name);
      if (!parsed || parsed->detector_id != config_.detector_id || parsed->run != run) continue;
      auto manifest = read_json(dir / (name + ".json"));
      json j = manifest ? *manifest : json{{"file", name}, {"manifest_missing", true}};
      j["file"] = name;
      parts[parsed->part] = std::move(j);
    }
  }
  json list = json::array();
  std::uint64_t events = 0, slices = 0, bytes = 0;
  for (auto& [number, j] : parts) {
    events += j.value("events", std::uint64_t{0});
    slices += j.value("summary_slices", std::uint64_t{0});
    bytes += j.value("size_bytes", std::uint64_t{0});
    list.push_back(std::move(j));
  }
  const json manifest{{"detector_id", config_.detector_id},
                      {"run", run},
                      {"state", recovered ? "recovered after a crash" : "ended"},
                      {"parts", std::move(list)},
                      {"events", events},
                      {"summary_slices", slices},
                      {"size_bytes", bytes}};
  write_file_atomically(ready_dir() / run_manifest_name(config_.detector_id, run), manifest.dump(2) + "\n",
                        config_.fsync);
  if (config_.fsync) fsync_dir(ready_dir());
}

bool Tier0Spool::ack(const std::string& file_name) {
  if (!parse_part_file_name(file_name)) return false;
  const fs::path from = ready_dir() / file_name;
  if (!fs::exists(from)) return false;
  if (::rename(from.c_str(), (done_dir() / file_name).c_str()) != 0) throw SpoolError(errno_text("rename", from));
  const fs::path manifest = ready_dir() / (file_name + ".json");
  if (fs::exists(manifest)) {
    if (::rename(manifest.c_str(), (done_dir() / (file_name + ".json")).c_str()) != 0) {
      throw SpoolError(errno_text("rename", manifest));
    }
  }
  if (config_.fsync) {
    fsync_dir(done_dir());
    fsync_dir(ready_dir());
  }
  ++counters_.acks;
  return true;
}

bool Tier0Spool::transferred(std::uint32_t run) const {
  const std::string name = run_manifest_name(config_.detector_id, run);
  auto manifest = read_json(ready_dir() / name);
  if (!manifest) manifest = read_json(done_dir() / name);
  if (!manifest || !manifest->contains("parts") || !(*manifest)["parts"].is_array()) return false;
  for (const auto& part : (*manifest)["parts"]) {
    if (!part.contains("file") || !part["file"].is_string()) return false;
    const std::string file = part["file"].get<std::string>();
    if (!parse_part_file_name(file) || !fs::exists(done_dir() / file)) return false;
  }
  return true;
}

// Reads a part that a crash left behind: counts and checksums its whole objects; a torn tail is
// kept in damaged/ and cut off, so the part ends on an object boundary.
SpoolPartInfo Tier0Spool::scan_crashed_part(const fs::path& path, const ParsedName& parsed) {
  const std::string name = path.filename().string();
  SpoolPartInfo info;
  info.file = name;
  info.run = parsed.run;
  info.part = parsed.part;
  info.recovered = true;
  Adler32 adler;
  Md5 md5;
  std::uint64_t good_bytes = 0;
  try {
    dataflow::OnlineFileReader reader(path);
    dataflow::OnlineObject object;
    while (reader.next(object)) {
      const bool is_event = object.type == dataflow::online_type::kEvent;
      const bool is_summary = object.type == dataflow::online_type::kSummarySlice;
      const auto frame = online_frame_of(object.bytes);
      if ((!is_event && !is_summary) || !frame) break;
      if (info.events + info.summary_slices == 0) {
        info.first_frame = info.last_frame = *frame;
      } else {
        info.first_frame = std::min(info.first_frame, *frame);
        info.last_frame = std::max(info.last_frame, *frame);
      }
      (is_event ? info.events : info.summary_slices) += 1;
      adler.update(object.bytes);
      md5.update(object.bytes);
      good_bytes += object.bytes.size();
    }
  } catch (const std::exception& e) {
    spdlog::error("tier-0 spool: cannot read leftover {}: {}", path.string(), e.what());
  }
  std::error_code ec;
  const std::uint64_t size = fs::file_size(path, ec);
  if (!ec && size > good_bytes) {
    info.damaged_bytes = size - good_bytes;
    const fs::path partial = damaged_dir() / (name + ".partial");
    std::ifstream in(path, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(good_bytes));
    std::string tail(static_cast<std::size_t>(info.damaged_bytes), '\0');
    in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
    write_file_atomically(partial, tail, config_.fsync);
    fs::resize_file(path, good_bytes, ec);
    if (ec) throw SpoolError("cannot truncate " + path.string() + ": " + ec.message());
    spdlog::warn("tier-0 spool: {} had a torn tail of {} bytes, kept as {}", name, info.damaged_bytes,
                 partial.string());
    counters_.damaged_bytes += info.damaged_bytes;
  }
  info.bytes = good_bytes;
  info.adler32 = adler.hex();
  info.md5 = md5.hex();
  if (config_.fsync) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
  }
  return info;
}

// A crash can stop the writer at any point of a part's life, and each leaves its own trace:
//  - parts in open/ (the usual case): every whole object is kept, sealed into ready/ flagged
//    recovered, a torn tail moves to damaged/;
//  - a part in ready/ without its manifest (killed between the rename and the manifest);
//  - a run with parts but no run manifest (killed between two parts, or before end_run).
// At start-up no run is open, so every run without a run manifest was cut short: close it.
void Tier0Spool::recover() {
  std::set<std::uint32_t> runs;       // of this detector, with parts anywhere
  std::set<std::uint32_t> reopened;   // whose part list changed now: their manifest is rewritten
  std::error_code ec;
  std::vector<fs::path> leftovers;
  for (const auto& entry : fs::directory_iterator(open_dir(), ec)) leftovers.push_back(entry.path());
  std::sort(leftovers.begin(), leftovers.end());
  for (const fs::path& path : leftovers) {
    const std::string name = path.filename().string();
    const auto parsed = parse_part_file_name(name);
    if (!parsed) {
      // Not ours to seal: keep it, but out of the way and loudly.
      const fs::path to = damaged_dir() / (name + ".unknown");
      fs::rename(path, to, ec);
      spdlog::warn("tier-0 spool: unexpected file {} moved to {}", path.string(), to.string());
      continue;
    }
    const SpoolPartInfo info = scan_crashed_part(path, *parsed);
    if (::rename(path.c_str(), (ready_dir() / name).c_str()) != 0) throw SpoolError(errno_text("rename", path));
    write_file_atomically(ready_dir() / (name + ".json"), part_to_json(info, parsed->detector_id).dump(2) + "\n",
                          config_.fsync);
    spdlog::warn("tier-0 spool: recovered {} ({} events, {} summary slices) after a crash", name, info.events,
                 info.summary_slices);
    ++counters_.parts_recovered;
    sealed_.push_back(info);
    if (parsed->detector_id == config_.detector_id) reopened.insert(parsed->run);
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
    if (parsed->detector_id == config_.detector_id) runs.insert(parsed->run);
    const fs::path manifest = ready_dir() / (path.filename().string() + ".json");
    if (fs::exists(manifest)) continue;
    const SpoolPartInfo info = scan_crashed_part(path, *parsed);
    write_file_atomically(manifest, part_to_json(info, parsed->detector_id).dump(2) + "\n", config_.fsync);
    spdlog::warn("tier-0 spool: {} was sealed without its manifest (crash); manifest rebuilt", path.string());
    ++counters_.parts_recovered;
    sealed_.push_back(info);
    if (parsed->detector_id == config_.detector_id) reopened.insert(parsed->run);
  }
  for (const auto& entry : fs::directory_iterator(done_dir(), ec)) {
    const auto parsed = parse_part_file_name(entry.path().filename().string());
    if (parsed && parsed->detector_id == config_.detector_id) runs.insert(parsed->run);
  }
  for (const std::uint32_t run : runs) {
    const std::string name = run_manifest_name(config_.detector_id, run);
    const bool closed = fs::exists(ready_dir() / name) || fs::exists(done_dir() / name);
    if (!closed || reopened.contains(run)) write_run_manifest(run, true);
  }
}

}  // namespace shoredaq::storage
