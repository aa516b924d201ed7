#pragma once
// Offline replay (`shoredaq replay`, and the reference the HIL tests compare the live node with):
// the records of a .dqd file go through the same IngestParser, TimesliceBuilder, processor and
// writer as live data. The builder runs on data time only (no wall-clock expiry), and nothing is
// dropped for lack of room: with workers the pipeline runs lossless, without them everything runs
// in the calling thread. Results reach the writer in frame order either way.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "shoredaq/dataflow/pipeline.hpp"
#include "shoredaq/formats/record_stream.hpp"
#include "shoredaq/dataflow/timeslice_builder.hpp"
#include "shoredaq/dataflow/zmq_ingest.hpp"

namespace shoredaq::dataflow {

struct ReplayOptions {
  HeaderLayoutMode layout = HeaderLayoutMode::Auto;
  std::size_t workers = 0;               // 0: everything in the calling thread
  std::size_t chunk_bytes = 1u << 20;    // records are re-framed into chunks of about this size
  bool check_channels = false;
};

struct ReplayReport {
  IngestCounters ingest;
  TimesliceBuilderCounters builder;
  std::vector<DomCount> implausible_time_doms;  // TimesliceBuilder::implausible_time_doms()
  std::uint64_t slices_written = 0;
  std::uint64_t slices_dropped = 0;     // processor errors (nothing else drops offline)
  RecordError file_error = RecordError::None;  // a bad length in the file ends the replay there
  std::uint64_t file_error_offset = 0;
};

// Re-frames a .dqd file's records into chunks (whole records, about `chunk_bytes` each) so they
// can be parsed like ZeroMQ messages.
class DqdChunker {
 public:
  DqdChunker(const std::filesystem::path& path, std::size_t chunk_bytes);
  // The next chunk; false at the end (or at a file error: see error()).
  bool next(std::vector<std::uint8_t>& chunk);
  RecordError error() const noexcept { return reader_.error(); }
  std::uint64_t offset() const noexcept { return reader_.offset(); }

 private:
  DqdFileReader reader_;
  std::size_t chunk_bytes_;
};

template <class Result, class Processor, class Writer>
ReplayReport replay_dqd_file(const std::filesystem::path& path, TimesliceBuilderConfig builder_config,
                             const ReplayOptions& options, Processor&& processor, Writer&& writer) {
  builder_config.expiry_wall_ns = 0;  // data time only: a replay must not depend on how fast it runs
  builder_config.max_wall_clock_offset_s = 0;  // nor on when it runs (recorded data has old times)
  ReplayReport report;
  IngestParser parser(options.layout, options.check_channels);
  DqdChunker chunker(path, options.chunk_bytes);
  std::vector<std::uint8_t> chunk;

  if (options.workers == 0) {
    std::uint64_t sequence = 0;
    TimesliceBuilder builder(builder_config, [&](Timeslice&& t) {
      ProcessedSlice<Result> p;
      p.info = SliceInfo::of(t, sequence++);
      try {
        p.result = processor(t);
      } catch (...) {
        ++report.slices_dropped;
        return;
      }
      p.processed_unix_ns = unix_now_ns();
      p.monitoring = std::move(t.monitoring);
      writer(std::move(p));
      ++report.slices_written;
    });
    std::vector<ParsedRecord> records;
    while (chunker.next(chunk)) {
      records.clear();
      parser.parse(chunk, records);
      const std::uint64_t now = unix_now_ns();
      for (const ParsedRecord& r : records) {
        ClbDatagram d;
        d.header = r.header;
        d.layout = r.layout;
        d.payload = std::span<const std::uint8_t>(chunk).subspan(r.payload_offset, r.payload_size);
        builder.add(d, now);
      }
    }
    builder.flush(unix_now_ns());
    report.builder = builder.counters();
    report.implausible_time_doms = builder.implausible_time_doms();
  } else {
    PipelineConfig config;
    config.builder = builder_config;
    config.workers = options.workers;
    config.lossless = true;
    Pipeline<Result> pipeline(
        config, [&](const Timeslice& t) { return processor(t); },
        [&](ProcessedSlice<Result>&& p) {
          writer(std::move(p));
          ++report.slices_written;  // writer thread only
        });
    pipeline.start();
    while (chunker.next(chunk)) {
      ParsedMessage m;
      m.message = zmq::message_t(chunk.data(), chunk.size());
      parser.parse(m.bytes(), m.records);
      m.receive_unix_ns = unix_now_ns();
      while (pipeline.feed(std::move(m), std::chrono::seconds(1)) == QueueStatus::Timeout) {
      }
    }
    // Lossless: the drain takes as long as the processing does.
    pipeline.stop(std::chrono::hours(24));
    const PipelineStats st = pipeline.stats();
    report.builder = st.builder;
    report.implausible_time_doms = st.implausible_time_doms;
    report.slices_dropped = st.processor_errors;
  }
  report.ingest = parser.counters();
  report.file_error = chunker.error();
  report.file_error_offset = report.file_error == RecordError::None ? 0 : chunker.offset();
  return report;
}

}  // namespace shoredaq::dataflow
