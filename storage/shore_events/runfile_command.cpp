// shore-events runfile: what a spool file holds, without a store. The store keeps events and
// summary slices only; the run files (.daq) also keep the prescaled L0/L1/L2 timeslices, the SN
// slices, the error stream and the TMCH monitoring packets, and the acoustic parts
// (.acoustic.dqd) the TAES datagrams. Every object is decoded (a torn or undecodable one is named
// and exits 1); --export writes the objects of one kind.

#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "shoredaq/formats/clb_datagram.hpp"
#include "shoredaq/formats/online_format.hpp"
#include "shoredaq/formats/record_stream.hpp"
#include "shoredaq/storage/monitoring_record.hpp"
#include "shoredaq/storage/supernova_alert_record.hpp"
#include "shoredaq/storage/tier0_manifest.hpp"

namespace sd = shoredaq::dataflow;
namespace st = shoredaq::storage;
using nlohmann::json;

namespace shore_events {

namespace {

// Where --export writes: the file given, or stdout.
class Output {
 public:
  explicit Output(const std::string& path) {
    if (!path.empty()) {
      file_.open(path, std::ios::binary | std::ios::trunc);
      if (!file_) throw std::runtime_error("cannot create " + path);
    }
  }
  std::ostream& stream() { return file_.is_open() ? static_cast<std::ostream&>(file_) : std::cout; }
  void write(std::span<const std::uint8_t> bytes) {
    stream().write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  void write_record(std::span<const std::uint8_t> datagram) {
    std::vector<std::uint8_t> record;
    sd::append_record(record, datagram);
    write(record);
  }
  bool good() { return static_cast<bool>(stream().flush()); }

 private:
  std::ofstream file_;
};

struct Range {
  std::optional<std::uint32_t> first_frame, last_frame;
  std::optional<std::uint64_t> utc_start_ns, utc_end_ns;
  void note_frame(std::uint32_t frame) {
    first_frame = std::min(first_frame.value_or(frame), frame);
    last_frame = std::max(last_frame.value_or(frame), frame);
  }
  void note_time(std::uint64_t start_ns) {
    utc_start_ns = std::min(utc_start_ns.value_or(start_ns), start_ns);
    utc_end_ns = std::max(utc_end_ns.value_or(0), start_ns + sd::kSliceDurationNs);
  }
  void note(const sd::SliceHeader& header) {
    note_frame(header.frame_index);
    note_time(header.slice_start_ns());
  }
  void add_to(json& j) const {
    j["first_frame"] = first_frame ? json(*first_frame) : json(nullptr);
    j["last_frame"] = last_frame ? json(*last_frame) : json(nullptr);
    j["utc_start"] = utc_start_ns ? json(st::format_utc_ns(*utc_start_ns)) : json(nullptr);
    j["utc_end"] = utc_end_ns ? json(st::format_utc_ns(*utc_end_ns)) : json(nullptr);
  }
};

// Which online objects --export selects.
bool exported(const std::string& what, std::int32_t type) {
  if (what == "events") return type == sd::online_type::kEvent;
  if (what == "summaries") return type == sd::online_type::kSummarySlice;
  if (what == "monitoring") return type == st::kOnlineMonitoringType;
  const auto kind = sd::timeslice_kind_of(type);
  if (!kind) return false;
  if (what == "timeslices") return true;
  return what == st::kTimesliceKindKeys[static_cast<std::size_t>(*kind)];
}

int online_file(const std::string& path, const std::string& export_what, const std::string& out_path, bool as_json) {
  std::optional<sd::OnlineFileReader> reader;
  try {
    reader.emplace(path);
  } catch (const std::exception& e) {
    std::cerr << "shore-events: " << e.what() << "\n";
    return kExitCannotOpen;
  }
  std::optional<Output> out;
  if (!export_what.empty()) out.emplace(out_path);
  std::uint64_t events = 0, summaries = 0, monitoring = 0, unknown = 0, objects = 0, exported_objects = 0;
  st::TimesliceCounts timeslices;
  std::set<std::uint32_t> monitoring_doms;
  json supernova_alerts = json::array();  // the SNEWS-format messages, in file order
  Range range;
  std::string problem;
  sd::OnlineObject object;
  while (reader->next(object)) {
    const std::uint64_t offset = reader->offset() - object.bytes.size();
    auto fail = [&](std::string_view what, std::string_view why) {
      problem = std::string(what) + " at byte " + std::to_string(offset) + ": " + std::string(why);
    };
    if (object.type == sd::online_type::kEvent) {
      const auto e = sd::decode_online_event(object.bytes);
      if (!e) {
        fail("event", sd::to_string(e.error));
      } else {
        range.note(e.value.header);
        ++events;
      }
    } else if (object.type == sd::online_type::kSummarySlice) {
      const auto s = sd::decode_online_summary_slice(object.bytes);
      if (!s) {
        fail("summary slice", sd::to_string(s.error));
      } else {
        range.note(s.value.header);
        ++summaries;
      }
    } else if (const auto kind = object.timeslice_kind()) {
      const auto t = sd::decode_online_timeslice(object.bytes);
      if (!t) {
        fail("timeslice", sd::to_string(t.error));
      } else {
        range.note(t.value.slice.header);
        ++timeslices.per_kind[static_cast<std::size_t>(*kind)];
      }
    } else if (object.type == st::kOnlineMonitoringType) {
      const auto m = st::decode_online_monitoring(object.bytes);
      if (!m) {
        fail("monitoring object", sd::to_string(m.error));
      } else if (const auto packet = sd::parse_monitoring_packet(m.value.datagram); !packet) {
        fail("TMCH packet", sd::to_string(packet.error));
      } else {
        range.note(m.value.header);
        monitoring_doms.insert(m.value.dom_id);
        ++monitoring;
        if (out && export_what == "monitoring") {
          out->write_record(m.value.datagram);  // as received: a .dqd that replays
          ++exported_objects;
        }
      }
    } else if (object.type == st::kOnlineSupernovaAlertType) {
      const auto a = st::decode_online_supernova_alert(object.bytes);
      auto message = a ? json::parse(a.value.message, nullptr, false) : json();
      if (!a) {
        fail("supernova alert object", sd::to_string(a.error));
      } else if (!message.is_object()) {
        fail("supernova alert", "not a JSON message");
      } else {
        range.note(a.value.header);
        supernova_alerts.push_back(std::move(message));
      }
    } else {
      ++unknown;  // walked over by its preamble, like the collaboration's readers do
    }
    if (!problem.empty()) break;
    ++objects;
    if (out && export_what != "monitoring" && exported(export_what, object.type)) {
      out->write(object.bytes);
      ++exported_objects;
    }
  }
  if (problem.empty() && reader->error() != sd::OnlineError::None) {
    problem = "torn or bad object at byte " + std::to_string(reader->offset()) + ": " +
              std::string(sd::to_string(reader->error()));
  }
  if (problem.empty() && reader->read_failed()) problem = "read error at byte " + std::to_string(reader->offset());
  if (out && !out->good()) {
    std::cerr << "shore-events: writing the export failed\n";
    return kExitCannotOpen;
  }
  if (!problem.empty()) std::cerr << "shore-events: " << path << ": " << problem << "\n";

  if (as_json) {
    json j{{"file", path},
           {"format", st::kTier0Format},
           {"bytes_read", reader->offset()},
           {"objects", objects},
           {"summary_slices", summaries},
           {"events", events},
           {"timeslices", json::object()},
           {"monitoring_packets", monitoring},
           {"monitoring_doms", monitoring_doms.size()},
           {"supernova_alerts", supernova_alerts},
           {"unknown_objects", unknown},
           {"problem", problem.empty() ? json(nullptr) : json(problem)}};
    for (std::size_t k = 0; k < st::kTimesliceKinds; ++k) j["timeslices"][st::kTimesliceKindKeys[k]] = timeslices.per_kind[k];
    range.add_to(j);
    if (out) j["exported"] = exported_objects;
    // With --export to stdout the objects own stdout: the summary goes to stderr.
    (out && out_path.empty() ? std::cerr : std::cout) << j.dump() << "\n";
  } else if (!out || !out_path.empty()) {
    std::printf("%s: %llu objects (online format)\n", path.c_str(), static_cast<unsigned long long>(objects));
    if (range.first_frame) {
      std::printf("  frames %u..%u, UTC %s .. %s\n", *range.first_frame, *range.last_frame,
                  st::format_utc_ns(*range.utc_start_ns).c_str(), st::format_utc_ns(*range.utc_end_ns).c_str());
    }
    std::printf("  summary slices     %llu\n", static_cast<unsigned long long>(summaries));
    std::printf("  events             %llu\n", static_cast<unsigned long long>(events));
    static constexpr const char* kNames[] = {"timeslices error ", "timeslices L0    ", "timeslices L1    ",
                                             "timeslices L2    ", "timeslices SN    "};
    for (std::size_t k = 0; k < st::kTimesliceKinds; ++k) {
      std::printf("  %s  %llu\n", kNames[k], static_cast<unsigned long long>(timeslices.per_kind[k]));
    }
    std::printf("  monitoring (TMCH)  %llu packets of %zu DOMs\n", static_cast<unsigned long long>(monitoring),
                monitoring_doms.size());
    std::printf("  supernova alerts   %zu\n", supernova_alerts.size());
    for (const auto& a : supernova_alerts) {
      std::printf("    neutrino_time %s  p_val %.3g\n", a.value("neutrino_time", std::string("?")).c_str(), a.value("p_val", 1.0));
    }
    if (unknown != 0) std::printf("  other objects      %llu\n", static_cast<unsigned long long>(unknown));
    if (out) std::printf("  exported           %llu\n", static_cast<unsigned long long>(exported_objects));
    if (!problem.empty()) std::printf("  PROBLEM: %s\n", problem.c_str());
  }
  return problem.empty() ? kExitOk : kExitProblem;
}

const char* type_name(std::span<const std::uint8_t> datagram) {
  if (datagram.size() >= 4) {
    const std::string_view tag(reinterpret_cast<const char*>(datagram.data()), 4);
    if (tag == "TTDC") return "optical";
    if (tag == "TAES") return "acoustic";
    if (tag == "TMCH") return "monitoring";
  }
  return "unknown";
}

std::uint32_t load_be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}

int record_file(const std::string& path, const std::string& export_what, const std::string& out_path, bool as_json) {
  std::optional<sd::DqdFileReader> reader;
  try {
    reader.emplace(path);
  } catch (const std::exception& e) {
    std::cerr << "shore-events: " << e.what() << "\n";
    return kExitCannotOpen;
  }
  std::optional<Output> out;
  if (!export_what.empty()) out.emplace(out_path);
  std::map<std::string, std::uint64_t> per_type;
  std::map<std::uint32_t, std::uint64_t> per_dom;
  std::uint64_t datagrams = 0, exported_datagrams = 0;
  Range range;
  std::span<const std::uint8_t> datagram;
  while (reader->next(datagram)) {
    ++datagrams;
    ++per_type[type_name(datagram)];
    if (datagram.size() >= 24) {  // seconds, ticks and DOM id: the same in the 28- and 40-byte header
      range.note_time(std::uint64_t{load_be32(datagram.data() + 12)} * 1'000'000'000ull +
                      std::uint64_t{load_be32(datagram.data() + 16)} * sd::kTickNs);
      ++per_dom[load_be32(datagram.data() + 20)];
    }
    if (out && export_what == type_name(datagram)) {
      out->write_record(datagram);
      ++exported_datagrams;
    }
  }
  std::string problem;
  if (reader->error() != sd::RecordError::None) {
    problem = "torn or bad record at byte " + std::to_string(reader->offset()) + ": " +
              std::string(sd::to_string(reader->error()));
    std::cerr << "shore-events: " << path << ": " << problem << "\n";
  }
  if (out && !out->good()) {
    std::cerr << "shore-events: writing the export failed\n";
    return kExitCannotOpen;
  }
  if (as_json) {
    json dom_counts = json::object();
    for (const auto& [dom, n] : per_dom) dom_counts[std::to_string(dom)] = n;
    json j{{"file", path},
           {"format", st::kTier0RecordsFormat},
           {"bytes_read", reader->offset()},
           {"datagrams", datagrams},
           {"per_type", per_type},
           {"doms", per_dom.size()},
           {"datagrams_per_dom", dom_counts},
           {"problem", problem.empty() ? json(nullptr) : json(problem)}};
    range.add_to(j);
    j.erase("first_frame");  // datagrams carry a slice time, no frame index
    j.erase("last_frame");
    if (out) j["exported"] = exported_datagrams;
    (out && out_path.empty() ? std::cerr : std::cout) << j.dump() << "\n";
  } else if (!out || !out_path.empty()) {
    std::printf("%s: %llu datagrams (CLB records) of %zu DOMs\n", path.c_str(), static_cast<unsigned long long>(datagrams),
                per_dom.size());
    if (range.utc_start_ns) {
      std::printf("  UTC %s .. %s\n", st::format_utc_ns(*range.utc_start_ns).c_str(),
                  st::format_utc_ns(*range.utc_end_ns).c_str());
    }
    for (const auto& [type, n] : per_type) std::printf("  %-12s %llu\n", type.c_str(), static_cast<unsigned long long>(n));
    if (out) std::printf("  exported     %llu\n", static_cast<unsigned long long>(exported_datagrams));
    if (!problem.empty()) std::printf("  PROBLEM: %s\n", problem.c_str());
  }
  return problem.empty() ? kExitOk : kExitProblem;
}

}  // namespace

int cmd_runfile(const std::string& path, const std::string& export_what, const std::string& out_path, bool as_json) {
  const bool records = path.size() >= 4 && path.compare(path.size() - 4, 4, ".dqd") == 0;
  static const std::set<std::string> kOnlineExports{"events", "summaries", "timeslices", "error", "l0",
                                                    "l1",     "l2",        "sn",         "monitoring"};
  static const std::set<std::string> kRecordExports{"optical", "acoustic", "monitoring"};
  if (!export_what.empty() && !(records ? kRecordExports : kOnlineExports).contains(export_what)) {
    std::cerr << "shore-events: --export " << export_what << " does not apply to "
              << (records ? "a record file (.dqd): optical, acoustic, monitoring"
                          : "a run file: events, summaries, timeslices, error, l0, l1, l2, sn, monitoring")
              << "\n";
    return kExitUsage;
  }
  try {
    return records ? record_file(path, export_what, out_path, as_json) : online_file(path, export_what, out_path, as_json);
  } catch (const std::exception& e) {
    std::cerr << "shore-events: " << e.what() << "\n";
    return kExitCannotOpen;
  }
}

}  // namespace shore_events
