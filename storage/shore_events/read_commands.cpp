// shore-events: runs, events, summary, export. Damaged records are refused by the reader: each is
// named on stderr and the command exits 1; export writes none of a damaged run unless told to
// skip the damaged records.

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "shoredaq/formats/fb_codec.hpp"
#include "shoredaq/formats/online_format.hpp"

namespace sd = shoredaq::dataflow;
namespace st = shoredaq::storage;
using nlohmann::json;

namespace shore_events {

namespace {

json run_to_json(const sd::RunRecord& r) {
  json counters = json::object();
  for (const auto& [name, value] : r.counters) counters[name] = value;
  return json{{"run", r.run},
              {"detector_id", r.detector_id},
              {"state", std::string(sd::to_string(r.state))},
              {"start_unix_ns", r.start_unix_ns},
              {"stop_unix_ns", r.stop_unix_ns},
              {"first_frame", r.first_frame},
              {"last_frame", r.last_frame},
              {"run_setup_hash", r.run_setup_hash},
              {"detector_file", r.detector_file},
              {"detector_file_hash", r.detector_file_hash},
              {"software_version", r.software_version},
              {"config_hash", r.config_hash},
              {"host", r.host},
              {"run_type", r.run_type},
              {"start_reason", r.start_reason},
              {"stop_reason", r.stop_reason},
              {"counters", counters}};
}

json event_to_json(const st::EventKey& key, const sd::DecodedEvent& d) {
  const sd::Event& e = d.event;
  json triggered = json::array(), snapshot = json::array();
  for (const auto& h : e.triggered) {
    triggered.push_back({h.dom_id, h.hit.channel, h.hit.time_ns, h.hit.tot_ns, h.trigger_mask});
  }
  for (const auto& h : e.snapshot) snapshot.push_back({h.dom_id, h.hit.channel, h.hit.time_ns, h.hit.tot_ns});
  return json{{"run", key.run},
              {"frame", key.frame},
              {"event", key.event_number},
              {"detector_id", e.header.detector_id},
              {"utc_seconds", e.header.utc_seconds},
              {"ticks_16ns", e.header.ticks_16ns},
              {"trigger_counter", e.trigger_counter},
              {"trigger_mask", e.trigger_mask},
              {"overlays", e.overlays},
              {"triggered_hits", triggered},
              {"snapshot_hits", snapshot},
              {"received_unix_ns", e.stamps.received_unix_ns},
              {"completed_unix_ns", e.stamps.completed_unix_ns},
              {"filtered_unix_ns", e.filtered_unix_ns},
              {"committed_unix_ns", d.committed_unix_ns}};
}

}  // namespace

void merge_read_results(st::ReadResult& total, const st::ReadResult& part) {
  total.visited += part.visited;
  total.damaged += part.damaged;
  for (const auto& record : part.damaged_records) {
    if (total.damaged_records.size() < st::kMaxListedDamaged) total.damaged_records.push_back(record);
  }
}

const char* trigger_name(unsigned bit) {
  switch (bit) {
    case sd::kTriggerBit3DShower: return "3DShower";
    case sd::kTriggerBitMXShower: return "MXShower";
    case sd::kTriggerBit3DMuon: return "3DMuon";
    case sd::kTriggerBitNanobeacon: return "Nanobeacon";
    case sd::kTriggerBitFactoryLimit: return "FactoryLimit";
    default: return nullptr;
  }
}

void print_damaged(const st::ReadResult& result) {
  for (const auto& record : result.damaged_records) std::cerr << record.describe() << " (damaged record refused)\n";
  if (result.damaged > result.damaged_records.size()) {
    std::cerr << "... and " << result.damaged - result.damaged_records.size() << " more damaged records\n";
  }
}

int cmd_runs(const st::EventStoreReader& reader, bool as_json) {
  st::ReadResult damaged;
  const auto runs = reader.runs(&damaged);
  print_damaged(damaged);
  const int status = damaged.damaged == 0 ? kExitOk : kExitProblem;
  if (as_json) {
    json out = json::array();
    for (const auto& r : runs) out.push_back(run_to_json(r));
    std::cout << out.dump(2) << "\n";
    return status;
  }
  std::printf("%10s %-8s %10s %10s %10s %10s %12s  %-11s %-20s %-12s %s\n", "run", "state", "first", "last", "slices",
              "events", "event_bytes", "type", "version", "host", "start / stop reason");
  const auto or_dash = [](const std::string& v) { return v.empty() ? std::string("-") : v; };
  for (const auto& r : runs) {
    std::printf("%10u %-8s %10u %10u %10llu %10llu %12llu  %-11s %-20s %-12s %s / %s\n", r.run,
                std::string(sd::to_string(r.state)).c_str(), r.first_frame, r.last_frame,
                static_cast<unsigned long long>(r.counter(st::kCounterStoredSlices)),
                static_cast<unsigned long long>(r.counter(st::kCounterStoredEvents)),
                static_cast<unsigned long long>(r.counter(st::kCounterStoredEventBytes)), or_dash(r.run_type).c_str(),
                or_dash(r.software_version).c_str(), or_dash(r.host).c_str(), or_dash(r.start_reason).c_str(),
                or_dash(r.stop_reason).c_str());
  }
  return status;
}

int cmd_events(const st::EventStoreReader& reader, std::uint32_t run, std::uint32_t from, std::uint32_t to,
               bool as_json) {
  int status = kExitOk;
  if (!as_json) {
    std::printf("%10s %10s %6s %12s %18s %8s %9s %9s\n", "run", "frame", "event", "trig_counter", "trigger_mask",
                "overlays", "triggered", "snapshot");
  }
  const auto read = reader.for_each_event(run, from, to, [&](const st::EventKey& key, std::span<const std::uint8_t> bytes) {
    const auto decoded = sd::decode_event_fb(bytes);
    if (!decoded) {
      std::cerr << "event " << key.run << "/" << key.frame << "/" << key.event_number
                << ": " << sd::to_string(decoded.error) << "\n";
      status = kExitProblem;
      return true;
    }
    if (as_json) {
      std::cout << event_to_json(key, decoded.value).dump() << "\n";  // one JSON object per line
    } else {
      const auto& e = decoded.value.event;
      std::printf("%10u %10u %6u %12llu 0x%016llx %8u %9zu %9zu\n", key.run, key.frame, key.event_number,
                  static_cast<unsigned long long>(e.trigger_counter), static_cast<unsigned long long>(e.trigger_mask),
                  e.overlays, e.triggered.size(), e.snapshot.size());
    }
    return true;
  });
  print_damaged(read);
  return read.damaged == 0 ? status : kExitProblem;
}

int cmd_summary(const st::EventStoreReader& reader, std::uint32_t run, bool as_json) {
  const auto record = reader.run(run);
  if (!record) {
    std::cerr << "run " << run << " not in the store\n";
    return kExitProblem;
  }
  std::map<std::string, std::uint64_t> per_trigger;
  std::uint64_t events = 0, triggered_hits = 0, snapshot_hits = 0, event_bytes = 0, bad = 0;
  std::uint64_t latency_count = 0, latency_sum_ns = 0, latency_max_ns = 0;
  st::ReadResult damaged = reader.for_each_event(run, 0, UINT32_MAX, [&](const st::EventKey&, std::span<const std::uint8_t> bytes) {
    const auto decoded = sd::decode_event_fb(bytes);
    if (!decoded) {
      ++bad;
      return true;
    }
    const auto& e = decoded.value.event;
    ++events;
    event_bytes += bytes.size();
    triggered_hits += e.triggered.size();
    snapshot_hits += e.snapshot.size();
    for (unsigned bit = 0; bit < 64; ++bit) {
      if ((e.trigger_mask & sd::trigger_bit(bit)) == 0) continue;
      const char* name = trigger_name(bit);
      per_trigger[name != nullptr ? name : "bit" + std::to_string(bit)] += 1;
    }
    if (e.stamps.completed_unix_ns != 0 && decoded.value.committed_unix_ns >= e.stamps.completed_unix_ns) {
      const std::uint64_t l = decoded.value.committed_unix_ns - e.stamps.completed_unix_ns;
      ++latency_count;
      latency_sum_ns += l;
      latency_max_ns = std::max(latency_max_ns, l);
    }
    return true;
  });
  std::uint64_t summaries = 0, summary_bytes = 0;
  merge_read_results(damaged, reader.for_each_summary(run, 0, UINT32_MAX, [&](std::uint32_t, std::uint32_t, std::span<const std::uint8_t> b) {
    ++summaries;
    summary_bytes += b.size();
    return true;
  }));
  print_damaged(damaged);
  const int status = bad == 0 && damaged.damaged == 0 ? kExitOk : kExitProblem;
  json out = run_to_json(*record);
  out["stored"] = {{"events", events},
                   {"event_bytes", event_bytes},
                   {"triggered_hits", triggered_hits},
                   {"snapshot_hits", snapshot_hits},
                   {"summary_slices", summaries},
                   {"summary_bytes", summary_bytes},
                   {"undecodable_events", bad},
                   {"damaged_records", damaged.damaged},
                   {"events_per_trigger", per_trigger}};
  if (latency_count != 0) {
    out["stored"]["complete_to_commit_ms_mean"] = static_cast<double>(latency_sum_ns) / latency_count / 1e6;
    out["stored"]["complete_to_commit_ms_max"] = static_cast<double>(latency_max_ns) / 1e6;
  }
  if (as_json) {
    std::cout << out.dump(2) << "\n";
    return status;
  }
  std::cout << "run " << record->run << " (detector " << record->detector_id << ", " << sd::to_string(record->state)
            << ")\n"
            << "  frames          " << record->first_frame << " .. " << record->last_frame << "\n"
            << "  slices stored   " << record->counter(st::kCounterStoredSlices) << "\n"
            << "  summary slices  " << summaries << " (" << summary_bytes << " bytes)\n"
            << "  events          " << events << " (" << event_bytes << " bytes)\n"
            << "  triggered hits  " << triggered_hits << "\n"
            << "  snapshot hits   " << snapshot_hits << "\n";
  for (const auto& [name, n] : per_trigger) std::cout << "  events " << name << ": " << n << "\n";
  if (latency_count != 0) {
    std::printf("  complete->commit mean %.2f ms, max %.2f ms\n", static_cast<double>(latency_sum_ns) / latency_count / 1e6,
                static_cast<double>(latency_max_ns) / 1e6);
  }
  if (!record->run_setup_hash.empty()) std::cout << "  run setup hash  " << record->run_setup_hash << "\n";
  for (const auto& [name, value] : record->counters) std::cout << "  " << name << " = " << value << "\n";
  if (bad != 0) std::cout << "  UNDECODABLE events: " << bad << "\n";
  if (damaged.damaged != 0) std::cout << "  DAMAGED records refused: " << damaged.damaged << "\n";
  return status;
}

// Online objects in frame order: each slice's summary, then its events.
int cmd_export(const st::EventStoreReader& reader, std::uint32_t run, bool skip_damaged) {
  const auto record = reader.run(run);
  if (!record) {
    std::cerr << "run " << run << " not in the store\n";
    return kExitProblem;
  }
  auto ignore_event = [](const st::EventKey&, std::span<const std::uint8_t>) { return true; };
  auto ignore_summary = [](std::uint32_t, std::uint32_t, std::span<const std::uint8_t>) { return true; };
  if (!skip_damaged) {
    // Check the whole run first (checksums only), so a damaged run is refused before any byte of it
    // reaches stdout.
    st::ReadResult damaged = reader.for_each_summary(run, 0, UINT32_MAX, ignore_summary);
    merge_read_results(damaged, reader.for_each_event(run, 0, UINT32_MAX, ignore_event));
    if (damaged.damaged != 0) {
      print_damaged(damaged);
      std::cerr << "export of run " << run << " refused: " << damaged.damaged
                << " damaged record(s); --skip-damaged exports the rest\n";
      return kExitProblem;
    }
  }
  constexpr std::uint32_t kFramesPerChunk = 1000;  // bounds memory for long runs
  int status = kExitOk;
  std::uint64_t events = 0, summaries = 0;
  st::ReadResult damaged;
  for (std::uint64_t from = record->first_frame; from <= record->last_frame; from += kFramesPerChunk) {
    const auto to = static_cast<std::uint32_t>(std::min<std::uint64_t>(from + kFramesPerChunk - 1, record->last_frame));
    std::map<std::uint32_t, std::vector<std::uint8_t>> per_frame;
    std::uint64_t chunk_events = 0, chunk_summaries = 0;
    st::ReadResult chunk_damaged = reader.for_each_summary(
        run, static_cast<std::uint32_t>(from), to, [&](std::uint32_t, std::uint32_t frame, std::span<const std::uint8_t> bytes) {
          const auto d = sd::decode_summary_slice_fb(bytes);
          if (!d) {
            status = kExitProblem;
            return true;
          }
          sd::encode_online_summary_slice(d.value, per_frame[frame]);
          ++chunk_summaries;
          return true;
        });
    merge_read_results(chunk_damaged, reader.for_each_event(run, static_cast<std::uint32_t>(from), to,
                                             [&](const st::EventKey& key, std::span<const std::uint8_t> bytes) {
                                               const auto d = sd::decode_event_fb(bytes);
                                               if (!d) {
                                                 status = kExitProblem;
                                                 return true;
                                               }
                                               sd::encode_online_event(d.value.event, per_frame[key.frame]);
                                               ++chunk_events;
                                               return true;
                                             }));
    merge_read_results(damaged, chunk_damaged);
    if (chunk_damaged.damaged != 0 && !skip_damaged) {  // damaged since the check above: stop here
      std::fflush(stdout);
      print_damaged(damaged);
      std::cerr << "export of run " << run << " stopped before frame " << from << ": damaged record(s) found\n";
      return kExitProblem;
    }
    for (const auto& [frame, bytes] : per_frame) {
      if (std::fwrite(bytes.data(), 1, bytes.size(), stdout) != bytes.size()) {
        std::cerr << "write failed\n";
        return kExitProblem;
      }
    }
    events += chunk_events;
    summaries += chunk_summaries;
  }
  std::fflush(stdout);
  std::cerr << "exported run " << run << ": " << summaries << " summary slices, " << events << " events\n";
  if (status != kExitOk) std::cerr << "some buffers failed verification and were skipped\n";
  if (damaged.damaged != 0) {
    print_damaged(damaged);
    std::cerr << "skipped " << damaged.damaged << " damaged record(s)\n";
    status = kExitProblem;
  }
  return status;
}

}  // namespace shore_events
