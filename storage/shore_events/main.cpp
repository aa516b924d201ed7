// shore-events: reads a shoredaq event store (read-only; safe beside a running daemon).
//   shore-events --store DIR runs [--json]
//   shore-events --store DIR events --run N [--from F --to F] [--json]
//   shore-events --store DIR summary --run N [--json]
//   shore-events --store DIR verify
//   shore-events --store DIR export --run N --format online > file
// Exit codes: 0 ok, 1 verify found a problem / run not found, 2 cannot open the store, 3 usage.

#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "shoredaq/dataflow/fb_codec.hpp"
#include "shoredaq/dataflow/online_format.hpp"
#include "shoredaq/storage/event_store.hpp"

namespace sd = shoredaq::dataflow;
namespace st = shoredaq::storage;
using nlohmann::json;

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

int cmd_runs(const st::EventStoreReader& reader, bool as_json) {
  const auto runs = reader.runs();
  if (as_json) {
    json out = json::array();
    for (const auto& r : runs) out.push_back(run_to_json(r));
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::printf("%10s %-8s %10s %10s %10s %10s %12s\n", "run", "state", "first", "last", "slices", "events",
              "event_bytes");
  for (const auto& r : runs) {
    std::printf("%10u %-8s %10u %10u %10llu %10llu %12llu\n", r.run, std::string(sd::to_string(r.state)).c_str(),
                r.first_frame, r.last_frame,
                static_cast<unsigned long long>(r.counter(st::kCounterStoredSlices)),
                static_cast<unsigned long long>(r.counter(st::kCounterStoredEvents)),
                static_cast<unsigned long long>(r.counter(st::kCounterStoredEventBytes)));
  }
  return 0;
}

int cmd_events(const st::EventStoreReader& reader, std::uint32_t run, std::uint32_t from, std::uint32_t to,
               bool as_json) {
  int status = 0;
  if (!as_json) {
    std::printf("%10s %10s %6s %12s %18s %8s %9s %9s\n", "run", "frame", "event", "trig_counter", "trigger_mask",
                "overlays", "triggered", "snapshot");
  }
  reader.for_each_event(run, from, to, [&](const st::EventKey& key, std::span<const std::uint8_t> bytes) {
    const auto decoded = sd::decode_event_fb(bytes);
    if (!decoded) {
      std::cerr << "event " << key.run << "/" << key.frame << "/" << key.event_number
                << ": " << sd::to_string(decoded.error) << "\n";
      status = 1;
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
  return status;
}

int cmd_summary(const st::EventStoreReader& reader, std::uint32_t run, bool as_json) {
  const auto record = reader.run(run);
  if (!record) {
    std::cerr << "run " << run << " not in the store\n";
    return 1;
  }
  std::map<std::string, std::uint64_t> per_trigger;
  std::uint64_t events = 0, triggered_hits = 0, snapshot_hits = 0, event_bytes = 0, bad = 0;
  std::uint64_t latency_count = 0, latency_sum_ns = 0, latency_max_ns = 0;
  reader.for_each_event(run, 0, UINT32_MAX, [&](const st::EventKey&, std::span<const std::uint8_t> bytes) {
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
  reader.for_each_summary(run, 0, UINT32_MAX, [&](std::uint32_t, std::uint32_t, std::span<const std::uint8_t> b) {
    ++summaries;
    summary_bytes += b.size();
    return true;
  });
  json out = run_to_json(*record);
  out["stored"] = {{"events", events},
                   {"event_bytes", event_bytes},
                   {"triggered_hits", triggered_hits},
                   {"snapshot_hits", snapshot_hits},
                   {"summary_slices", summaries},
                   {"summary_bytes", summary_bytes},
                   {"undecodable_events", bad},
                   {"events_per_trigger", per_trigger}};
  if (latency_count != 0) {
    out["stored"]["complete_to_commit_ms_mean"] = static_cast<double>(latency_sum_ns) / latency_count / 1e6;
    out["stored"]["complete_to_commit_ms_max"] = static_cast<double>(latency_max_ns) / 1e6;
  }
  if (as_json) {
    std::cout << out.dump(2) << "\n";
    return bad == 0 ? 0 : 1;
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
  return bad == 0 ? 0 : 1;
}

int cmd_verify(const st::EventStoreReader& reader) {
  const auto report = reader.verify();
  std::cout << "checked " << report.events_checked << " events, " << report.summaries_checked << " summaries, "
            << report.runs_checked << " runs\n";
  for (const auto& p : report.problems) std::cout << "PROBLEM: " << p << "\n";
  std::cout << (report.ok() ? "store OK\n" : "store has problems\n");
  return report.ok() ? 0 : 1;
}

// Online objects in frame order: each slice's summary, then its events.
int cmd_export(const st::EventStoreReader& reader, std::uint32_t run) {
  const auto record = reader.run(run);
  if (!record) {
    std::cerr << "run " << run << " not in the store\n";
    return 1;
  }
  constexpr std::uint32_t kFramesPerChunk = 1000;  // bounds memory for long runs
  std::vector<std::uint8_t> out;
  int status = 0;
  std::uint64_t events = 0, summaries = 0;
  for (std::uint64_t from = record->first_frame; from <= record->last_frame; from += kFramesPerChunk) {
    const auto to = static_cast<std::uint32_t>(std::min<std::uint64_t>(from + kFramesPerChunk - 1, record->last_frame));
    std::map<std::uint32_t, std::vector<std::uint8_t>> per_frame;
    reader.for_each_summary(run, static_cast<std::uint32_t>(from), to,
                            [&](std::uint32_t, std::uint32_t frame, std::span<const std::uint8_t> bytes) {
                              const auto d = sd::decode_summary_slice_fb(bytes);
                              if (!d) {
                                status = 1;
                                return true;
                              }
                              sd::encode_online_summary_slice(d.value, per_frame[frame]);
                              ++summaries;
                              return true;
                            });
    reader.for_each_event(run, static_cast<std::uint32_t>(from), to,
                          [&](const st::EventKey& key, std::span<const std::uint8_t> bytes) {
                            const auto d = sd::decode_event_fb(bytes);
                            if (!d) {
                              status = 1;
                              return true;
                            }
                            sd::encode_online_event(d.value.event, per_frame[key.frame]);
                            ++events;
                            return true;
                          });
    for (const auto& [frame, bytes] : per_frame) {
      if (std::fwrite(bytes.data(), 1, bytes.size(), stdout) != bytes.size()) {
        std::cerr << "write failed\n";
        return 1;
      }
    }
  }
  std::fflush(stdout);
  std::cerr << "exported run " << run << ": " << summaries << " summary slices, " << events << " events\n";
  if (status != 0) std::cerr << "some buffers failed verification and were skipped\n";
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"shore-events: read a shoredaq event store"};
  std::string store;
  bool as_json = false;
  std::uint32_t run = 0, from = 0, to = UINT32_MAX;
  std::string format = "online";
  app.add_option("--store,-s", store, "store directory (the LMDB environment)")->required();
  app.require_subcommand(1);
  auto* runs = app.add_subcommand("runs", "list the runs");
  runs->add_flag("--json", as_json, "JSON output");
  auto* events = app.add_subcommand("events", "list the events of a run");
  events->add_option("--run", run, "run number")->required();
  events->add_option("--from", from, "first frame index");
  events->add_option("--to", to, "last frame index");
  events->add_flag("--json", as_json, "one JSON object per event and line, with hits");
  auto* summary = app.add_subcommand("summary", "summary of one run");
  summary->add_option("--run", run, "run number")->required();
  summary->add_flag("--json", as_json, "JSON output");
  app.add_subcommand("verify", "check keys, buffers and counts; exit 1 on a problem");
  auto* exp = app.add_subcommand("export", "write a run as online-format objects to stdout");
  exp->add_option("--run", run, "run number")->required();
  exp->add_option("--format", format, "output format")->check(CLI::IsMember({"online"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 3;
  }
  try {
    const auto reader = st::EventStoreReader::open(store);
    const std::string cmd = app.get_subcommands().front()->get_name();
    if (cmd == "runs") return cmd_runs(reader, as_json);
    if (cmd == "events") return cmd_events(reader, run, from, to, as_json);
    if (cmd == "summary") return cmd_summary(reader, run, as_json);
    if (cmd == "verify") return cmd_verify(reader);
    if (cmd == "export") return cmd_export(reader, run);
  } catch (const st::StoreError& e) {
    std::cerr << "shore-events: " << e.what() << "\n";
    return 2;
  }
  return 3;
}
