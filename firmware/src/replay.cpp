#include "shoredaq/firmware/replay.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <sstream>
#include <stdexcept>
#include <zmq.hpp>

#include "shoredaq/dataflow/offline_replay.hpp"
#include "shoredaq/formats/record_stream.hpp"
#include "shoredaq/formats/run_record.hpp"
#include "shoredaq/filters/trigger_parameters.hpp"
#include "shoredaq/firmware/node_counters.hpp"
#include "shoredaq/firmware/run_setup.hpp"
#include "shoredaq/storage/event_store_sink.hpp"

namespace shoredaq::firmware {
namespace {

dataflow::HeaderLayoutMode layout_mode(HeaderLayoutSetting s) {
  switch (s) {
    case HeaderLayoutSetting::Standard40: return dataflow::HeaderLayoutMode::Standard40;
    case HeaderLayoutSetting::Legacy28: return dataflow::HeaderLayoutMode::Legacy28;
    case HeaderLayoutSetting::Auto: break;
  }
  return dataflow::HeaderLayoutMode::Auto;
}

// The run number of the first datagram that parses (optical or monitoring).
std::optional<std::uint32_t> first_run_number(const std::filesystem::path& input, dataflow::HeaderLayoutMode mode) {
  dataflow::DqdFileReader reader(input);
  dataflow::IngestParser parser(mode);
  std::span<const std::uint8_t> datagram;
  std::vector<std::uint8_t> one;
  std::vector<dataflow::ParsedRecord> records;
  for (int i = 0; i < 1000 && reader.next(datagram); ++i) {
    one.clear();
    dataflow::append_record(one, datagram);
    records.clear();
    if (parser.parse(one, records) > 0) return records.front().header.run_number;
  }
  return std::nullopt;
}

}  // namespace

double ReplaySummary::reduction_factor() const noexcept {
  if (writer.event_bytes_online == 0) return 0;
  return static_cast<double>(writer.filter.hits_in * dataflow::kHitBytes) / static_cast<double>(writer.event_bytes_online);
}

double ReplaySummary::hits_per_second() const noexcept {
  return wall_seconds > 0 ? static_cast<double>(writer.filter.hits_in) / wall_seconds : 0;
}

ReplaySummary run_replay(const ReplayOptions& options) {
  // The same loader as `configure`: the same files refused with the same words.
  RunSetup setup;
  try {
    setup = load_run_setup(RunSetupRequest{options.detector_file.string(), options.run_setup.string(), {}},
                           filters::TriggerParameters{}, NodeConfig{}.max_input_file_bytes());
  } catch (const RunSetupError& e) {
    throw std::runtime_error(e.what());
  }
  const dataflow::Detector& detector = *setup.detector;
  const auto mode = layout_mode(options.header_layout);

  ReplaySummary summary;
  if (options.run) {
    summary.run = *options.run;
  } else {
    auto run = first_run_number(options.input, mode);
    if (!run) throw std::runtime_error(options.input.string() + ": no valid datagram");
    summary.run = *run;
  }

  std::unique_ptr<storage::EventStore> store;
  dataflow::RunRecord record;
  record.run = summary.run;
  record.detector_id = detector.id();
  record.start_unix_ns = dataflow::unix_now_ns();
  record.run_setup = setup.run_setup_text;
  record.run_setup_hash = setup.run_setup_hash;
  record.detector_file = options.detector_file.string();
  std::vector<WriterSink> sinks;
  if (!options.store.empty()) {
    storage::EventStoreConfig sc;
    sc.directory = options.store;
    sc.sync = storage::SyncMode::NoMetaSync;
    sc.disk_reserve_bytes = 0;
    store = std::make_unique<storage::EventStore>(sc);
    if (store->reader().run(summary.run))
      throw std::runtime_error(options.store.string() + ": run " + std::to_string(summary.run) + " is already stored");
    auto r = store->put_run_record(record);
    if (!r) throw std::runtime_error("cannot write the run record: " + r.message);
    sinks.push_back({std::make_unique<storage::EventStoreSink>(*store), true});
  }

  RunWriter writer(record, std::move(sinks));
  writer.begin_run();
  dataflow::TimesliceBuilderConfig bc;
  bc.detector_id = detector.id();
  bc.run_number = summary.run;
  bc.expected_doms = dataflow::TimesliceBuilderConfig::expected_doms_of(detector);
  bc.expiry_lag_slices = options.expiry_lag_slices;
  bc.max_open_slices = 64;
  dataflow::ReplayOptions ro;
  ro.layout = mode;
  ro.workers = options.workers;

  // The dataflow's replay drives the same parser, builder (data time only) and frame-ordered writer
  // as the live pipeline; the processor and writer are the node's.
  const auto t0 = std::chrono::steady_clock::now();
  const dataflow::ReplayReport report = dataflow::replay_dqd_file<filters::FilterResult>(
      options.input, bc, ro, [filter = setup.filter](const dataflow::Timeslice& t) { return filter->process(t); },
      [&writer](dataflow::ProcessedSlice<filters::FilterResult>&& p) { writer.write(std::move(p)); });
  summary.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (report.file_error != dataflow::RecordError::None) {
    spdlog::warn("{}: stopped reading at byte {}: {}", options.input.string(), report.file_error_offset,
                 dataflow::to_string(report.file_error));
  }
  summary.drained = true;
  summary.ingest = report.ingest;
  summary.pipeline.ingest = report.ingest;
  summary.pipeline.builder = report.builder;
  summary.pipeline.processor_errors = report.slices_dropped;
  summary.pipeline.implausible_time_doms = report.implausible_time_doms;
  writer.end_run(record);
  summary.writer = writer.counters();
  describe_pipeline(summary.pipeline, summary.counters);
  writer.describe(summary.counters);

  if (store) {
    record.state = dataflow::RunOutcome::Stopped;
    record.stop_unix_ns = dataflow::unix_now_ns();
    record.first_frame = summary.writer.first_frame;
    record.last_frame = summary.writer.last_frame;
    for (const auto& [k, v] : summary.counters.flat()) record.counters[k] = v;
    auto r = store->put_run_record(record);
    if (!r) throw std::runtime_error("cannot write the end-of-run record: " + r.message);
  }
  return summary;
}

std::string format_replay_summary(const ReplaySummary& s) {
  std::ostringstream os;
  const auto& f = s.writer.filter;
  os << "run                " << s.run << "\n"
     << "datagrams          " << s.ingest.datagrams << " (" << s.ingest.rejected_bytes_total() << " bytes rejected)\n"
     << "slices             " << s.slices() << " (" << s.pipeline.builder.slices_complete << " complete, "
     << s.pipeline.builder.slices_expired << " expired), " << s.writer.slices_written << " written\n"
     << "hits               " << f.hits_in << "\n"
     << "L0 hits            " << f.l0_hits << "\n"
     << "L1 hits            " << f.l1_hits << "\n"
     << "events             " << s.writer.events << "\n"
     << "  3D shower (1)    " << s.writer.events_3d_shower << "\n"
     << "  MX shower (2)    " << s.writer.events_mx_shower << "\n"
     << "  3D muon (4)      " << s.writer.events_3d_muon << "\n"
     << "  factory limit    " << s.writer.events_factory_limit << "\n"
     << "event bytes        " << s.writer.event_bytes_online << " (online format)\n";
  os.precision(4);
  os << "reduction factor   " << s.reduction_factor() << " (input hit bytes / event bytes)\n"
     << "hits/s             " << s.hits_per_second() << " (" << s.wall_seconds << " s wall)\n";
  return os.str();
}

}  // namespace shoredaq::firmware
