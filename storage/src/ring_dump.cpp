#include "shoredaq/storage/ring_dump.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <set>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "shoredaq/storage/checksums.hpp"
#include "full_io.hpp"
#include "tier0_spool_files.hpp"

namespace shoredaq::storage {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr std::uint64_t kSliceNs = 100'000'000ull;
// Hits per rebuilt datagram: a jumbo frame's worth (the builder reassembles any split).
constexpr std::size_t kHitsPerDatagram = 1492;
constexpr std::size_t kDumpNameBytes = 38;  // KM3NeT_dddddddd_rrrrrrrr_nnnn.dump.dqd

void put_record_length(std::vector<std::uint8_t>& out, std::size_t bytes) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(bytes >> (8 * i)));
}

void append_datagram(std::vector<std::uint8_t>& out, const dataflow::ClbHeader& header,
                     std::span<const std::uint8_t> hits) {
  const std::size_t at = out.size();
  put_record_length(out, 0);
  dataflow::encode_clb_header(header, dataflow::HeaderLayout::Standard40, out);
  out.insert(out.end(), hits.begin(), hits.end());
  const std::size_t bytes = out.size() - at - 4;
  for (int i = 0; i < 4; ++i) out[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(bytes >> (8 * i));
}

std::optional<std::pair<std::int32_t, std::uint32_t>> parse_dump_name(const std::string& name, std::uint32_t* number) {
  int det = 0;
  unsigned run = 0, n = 0;
  int consumed = 0;
  if (name.size() != kDumpNameBytes ||
      std::sscanf(name.c_str(), "KM3NeT_%8d_%8u_%4u.dump.dqd%n", &det, &run, &n, &consumed) != 3 ||
      consumed != static_cast<int>(name.size()))
    return std::nullopt;
  if (number != nullptr) *number = n;
  return std::pair{det, static_cast<std::uint32_t>(run)};
}

std::uint32_t next_dump_number(const fs::path& spool_dir, std::int32_t detector_id, std::uint32_t run) {
  std::uint32_t next = 0;
  for (const char* dir : {"open", "ready", "done", "damaged"}) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(spool_dir / dir, ec)) {
      std::string name = entry.path().filename().string();
      if (name.ends_with(".partial")) name.resize(name.size() - 8);
      std::uint32_t n = 0;
      const auto parsed = parse_dump_name(name, &n);
      if (parsed && parsed->first == detector_id && parsed->second == run) next = std::max(next, n + 1);
    }
  }
  return next;
}

}  // namespace

std::uint32_t encode_slice_records(const dataflow::Timeslice& slice, std::vector<std::uint8_t>& out) {
  std::uint32_t records = 0;
  for (const dataflow::DomFrame& frame : slice.frames) {
    if (frame.status.daq == 0 && frame.hits.empty()) continue;  // the DOM sent nothing
    dataflow::ClbHeader h;
    h.data_type = dataflow::DataType::Optical;
    h.run_number = slice.header.run;
    h.utc_seconds = slice.header.utc_seconds & 0x7fff'ffffu;
    h.ticks_16ns = slice.header.ticks_16ns;
    h.dom_id = frame.dom_id;
    h.status1 = frame.status.status;
    h.status3 = frame.status.status3;
    h.status4 = frame.status.status4;
    const std::size_t hits = frame.hit_count();
    const std::size_t datagrams = std::max<std::size_t>(1, (hits + kHitsPerDatagram - 1) / kHitsPerDatagram);
    const bool complete = frame.status.complete();
    for (std::size_t d = 0; d < datagrams; ++d) {
      const bool last = d + 1 == datagrams;
      h.udp_sequence = static_cast<std::uint32_t>(d);
      // An incomplete frame stays incomplete: no trailer, or a gap before a trailer it had.
      if (last && !complete && frame.status.trailer_seen()) ++h.udp_sequence;
      h.status2 = frame.status.fifo & dataflow::kChannelMask31;
      if (last && frame.status.trailer_seen()) h.status2 |= dataflow::kStatus2Trailer;
      const std::size_t first_hit = d * kHitsPerDatagram;
      const std::size_t n = std::min(kHitsPerDatagram, hits - std::min(hits, first_hit));
      append_datagram(out, h, std::span<const std::uint8_t>(frame.hits).subspan(first_hit * dataflow::kHitBytes,
                                                                                 n * dataflow::kHitBytes));
      ++records;
    }
  }
  for (const dataflow::RawMonitoring& m : slice.monitoring) {
    put_record_length(out, m.datagram.size());
    out.insert(out.end(), m.datagram.begin(), m.datagram.end());
    ++records;
  }
  return records;
}

DumpWindow clip_dump_window(std::uint64_t from_ns, std::uint64_t to_ns, const RingFill& fill, std::uint32_t ring_seconds,
                            std::uint32_t max_seconds) {
  DumpWindow w{from_ns, to_ns, false, {}};
  const std::string ring = "the ring holds " + std::to_string(ring_seconds) + " s";
  if (to_ns <= from_ns) {
    w.refusal = "the window is empty (--to must be after --from)";
    return w;
  }
  if (fill.slices == 0) {
    w.refusal = "the ring is empty (" + ring + ")";
    return w;
  }
  if (to_ns <= fill.oldest_ns) {
    w.refusal = "window older than the ring's " + std::to_string(ring_seconds) + " s (oldest slice " +
                format_utc_ns(fill.oldest_ns) + ")";
    return w;
  }
  const std::uint64_t cap_ns = std::uint64_t{max_seconds} * 1'000'000'000ull;
  if (w.to_ns - w.from_ns > cap_ns) {
    w.to_ns = w.from_ns + cap_ns;  // requests are capped in length, counted from their start
    w.clipped = true;
  }
  if (w.from_ns < fill.oldest_ns) {
    w.from_ns = fill.oldest_ns;
    w.clipped = true;
  }
  if (w.to_ns > fill.end_ns()) {
    w.to_ns = fill.end_ns();
    w.clipped = true;
  }
  if (w.to_ns <= w.from_ns) w.refusal = "window after the newest slice in the ring (" + ring + ")";
  return w;
}

std::string dump_file_name(std::int32_t detector_id, std::uint32_t run, std::uint32_t number) {
  char name[64];
  std::snprintf(name, sizeof name, "KM3NeT_%08d_%08u_%04u.dump.dqd", detector_id, run, number % 10000);
  return name;
}

bool is_dump_file_name(const std::string& name) { return parse_dump_name(name, nullptr).has_value(); }

std::vector<std::string> set_aside_interrupted_dumps(const fs::path& spool_dir) {
  std::vector<std::string> moved;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(spool_dir / "open", ec)) {
    const std::string name = entry.path().filename().string();
    if (!is_dump_file_name(name)) continue;
    fs::create_directories(spool_dir / "damaged", ec);
    const fs::path to = spool_dir / "damaged" / (name + ".partial");
    std::error_code rename_error;
    fs::rename(entry.path(), to, rename_error);
    if (rename_error) {
      spdlog::warn("ring dump: cannot move interrupted {} to {}: {}", entry.path().string(), to.string(), rename_error.message());
      continue;
    }
    spdlog::warn("ring dump: {} was interrupted by a crash: kept as {}", name, to.string());
    moved.push_back(name);
  }
  return moved;
}

DumpResult write_ring_dump(const RawSliceRing& ring, const DumpRequest& request, const DumpWindow& window,
                           const DumpOutput& output) {
  const auto started = std::chrono::steady_clock::now();
  DumpResult r;
  r.from_ns = window.from_ns;
  r.to_ns = window.to_ns;
  const std::vector<RingEntry> entries = ring.entries_between(window.from_ns, window.to_ns);
  if (!window.refusal.empty() || entries.empty()) {
    r.error = !window.refusal.empty() ? window.refusal : "no slice of the window is in the ring";
    return r;
  }
  const std::int32_t detector_id = entries.front().detector_id;
  const std::uint32_t run = entries.front().run;
  const std::uint32_t number = next_dump_number(output.spool_dir, detector_id, run);
  r.file = dump_file_name(detector_id, run, number);
  const fs::path open_path = output.spool_dir / "open" / r.file;
  const fs::path ready_path = output.spool_dir / "ready" / r.file;
  std::error_code ec;
  fs::create_directories(output.spool_dir / "open", ec);
  fs::create_directories(output.spool_dir / "ready", ec);
  const int fd = ::open(open_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd < 0) {
    r.error = spool_files::errno_text("create", open_path, errno);
    return r;
  }
  Adler32 adler;
  Md5 md5;
  std::set<std::uint64_t> starts;
  std::uint32_t first_frame = UINT32_MAX, last_frame = 0;
  std::uint64_t first_ns = UINT64_MAX, last_ns = 0;
  bool failed = false;
  for (const RingEntry& e : entries) {
    if (starts.contains(e.slice_start_ns)) continue;  // a slice twice (a restarted run): once is enough
    auto bytes = ring.read(e);
    if (!bytes) continue;  // overwritten meanwhile: counted among the missing
    if (!detail::write_fully(fd, bytes->data(), bytes->size())) {
      r.error = spool_files::errno_text("write", open_path, errno);
      failed = true;
      break;
    }
    adler.update(*bytes);
    md5.update(*bytes);
    starts.insert(e.slice_start_ns);
    r.datagrams += e.records;
    r.bytes += bytes->size();
    first_frame = std::min(first_frame, e.frame_index);
    last_frame = std::max(last_frame, e.frame_index);
    first_ns = std::min(first_ns, e.slice_start_ns);
    last_ns = std::max(last_ns, e.slice_start_ns);
  }
  if (!failed && starts.empty()) {
    r.error = "every slice of the window was overwritten before it could be read";
    failed = true;
  }
  if (!failed && output.fsync && ::fsync(fd) != 0) {
    r.error = spool_files::errno_text("fsync", open_path, errno);
    failed = true;
  }
  ::close(fd);
  if (failed) {
    fs::remove(open_path, ec);
    return r;
  }
  // The 100 ms steps of the window the ring did not hold.
  std::vector<std::string> missing;
  for (std::uint64_t t = (window.from_ns + kSliceNs - 1) / kSliceNs * kSliceNs; t < window.to_ns; t += kSliceNs) {
    if (starts.contains(t)) continue;
    ++r.missing_slices;
    if (missing.size() < 100) missing.push_back(format_utc_ns(t));
  }
  r.slices = starts.size();
  r.adler32 = adler.hex();
  r.md5 = md5.hex();

  SpoolPartInfo p;
  p.file = r.file;
  p.data_type = Tier0DataType::Dumps;
  p.detector_id = detector_id;
  p.run = run;
  p.part = number;
  p.bytes = r.bytes;
  p.datagrams = r.datagrams;
  p.first_frame = first_frame;
  p.last_frame = last_frame;
  p.utc_start_ns = first_ns;
  p.utc_end_ns = last_ns + kSliceNs;
  p.adler32 = r.adler32;
  p.md5 = r.md5;
  p.guid = make_guid_v4();
  p.provenance = spool_files::completed(output.provenance);
  json manifest = spool_files::part_to_json(p);
  manifest["format"] = kTier0RecordsFormat;
  manifest.erase("timeslices");
  manifest.erase("monitoring_packets");
  manifest["datagrams"] = r.datagrams;
  manifest["dump"] = json{{"id", request.id},
                          {"reason", request.reason},
                          {"requested_from", format_utc_ns(request.from_ns)},
                          {"requested_to", format_utc_ns(request.to_ns)},
                          {"from", format_utc_ns(window.from_ns)},
                          {"to", format_utc_ns(window.to_ns)},
                          {"slices", r.slices},
                          {"missing_slices", r.missing_slices},
                          {"missing_slice_starts", missing}};
  try {
    // Data first, then its manifest: the transfer agent takes a file only once its manifest is there.
    if (::rename(open_path.c_str(), ready_path.c_str()) != 0)
      throw SpoolError(spool_files::errno_text("rename", open_path, errno));
    spool_files::write_file_atomically(output.spool_dir / "ready" / (r.file + ".json"), manifest.dump(2) + "\n",
                                       output.fsync);
    if (output.fsync) {
      spool_files::fsync_dir(output.spool_dir / "ready");
      spool_files::fsync_dir(output.spool_dir / "open");
    }
  } catch (const std::exception& e) {
    r.error = e.what();
    fs::remove(open_path, ec);
    fs::remove(ready_path, ec);
    return r;
  }
  r.ok = true;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return r;
}

}  // namespace shoredaq::storage
