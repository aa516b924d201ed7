#include "shoredaq/firmware/run_writer.hpp"

#include <spdlog/spdlog.h>

#include "shoredaq/filters/event_builder.hpp"

namespace shoredaq::firmware {
namespace {

dataflow::TimesliceKind kind_of(filters::PrescaledSlice::Kind k) {
  switch (k) {
    case filters::PrescaledSlice::Kind::L0: return dataflow::TimesliceKind::L0;
    case filters::PrescaledSlice::Kind::L1: return dataflow::TimesliceKind::L1;
    case filters::PrescaledSlice::Kind::L2: return dataflow::TimesliceKind::L2;
    case filters::PrescaledSlice::Kind::SN: return dataflow::TimesliceKind::SN;
  }
  return dataflow::TimesliceKind::L1;
}

// The filters' result as the plain data every sink sees (moved, not copied).
std::shared_ptr<const dataflow::SliceProducts> products_of(dataflow::ProcessedSlice<filters::FilterResult>&& p,
                                                           std::vector<std::string> supernova_alerts) {
  auto out = std::make_shared<dataflow::SliceProducts>();
  out->header = p.info.header;
  out->stamps = p.info.stamps;
  out->events = std::move(p.result.events);
  out->summary = std::move(p.result.summary);
  for (auto& t : p.result.prescaled) out->timeslices.push_back({kind_of(t.kind), std::move(t.slice)});
  if (!p.result.error_frames.frames.empty())
    out->timeslices.push_back({dataflow::TimesliceKind::Error, std::move(p.result.error_frames)});
  out->monitoring = std::move(p.monitoring);
  out->supernova_alerts = std::move(supernova_alerts);
  for (const auto& e : out->events) out->event_bytes_online += filters::online_event_bytes(e);
  return out;
}

}  // namespace

RunWriter::RunWriter(dataflow::RunRecord record, std::vector<WriterSink> sinks)
    : record_(std::move(record)), sinks_(std::move(sinks)), latency_(latency_buckets_seconds()) {}

void RunWriter::begin_run() {
  for (auto& s : sinks_) s.sink->begin_run(record_);
}

std::uint32_t RunWriter::run() const {
  std::lock_guard lock(mutex_);
  return record_.run;
}

void RunWriter::cycle_if_due(const dataflow::SliceHeader& header) {
  const std::uint64_t start_ns = header.slice_start_ns();
  if (!run_first_slice_ns_) run_first_slice_ns_ = start_ns;
  const char* reason = nullptr;
  if (cycle_.max_duration_ns != 0 && start_ns >= *run_first_slice_ns_ + cycle_.max_duration_ns) reason = "max_duration";
  if (reason == nullptr && cycle_.max_bytes != 0 && run_stored_bytes_ >= cycle_.max_bytes) reason = "max_bytes";
  if (reason == nullptr) return;
  dataflow::RunRecord ended;
  {
    std::lock_guard lock(mutex_);
    ended = record_;
    ended.first_frame = counters_.first_frame;
    ended.last_frame = counters_.last_frame;
  }
  ended.stop_reason = reason;
  for (auto& s : sinks_) s.sink->end_run(ended);
  dataflow::RunRecord next = cycle_.next_run(ended);
  {
    std::lock_guard lock(mutex_);
    record_ = std::move(next);
    counters_.trigger_counter = 0;
    counters_.first_frame = counters_.last_frame = 0;
    run_has_frames_ = false;
    ++counters_.runs_cycled;
  }
  // This slice is the new run's frame 1.
  frame_offset_ = header.frame_index - 1;
  run_first_slice_ns_ = start_ns;
  run_stored_bytes_ = 0;
  for (auto& s : sinks_) s.sink->begin_run(record_);
}

void RunWriter::renumber(dataflow::ProcessedSlice<filters::FilterResult>& slice) const {
  const std::uint32_t run = record_.run;  // writer thread: record_ changes only here
  const auto apply = [&](dataflow::SliceHeader& h) {
    h.run = run;
    h.frame_index -= frame_offset_;
  };
  apply(slice.info.header);
  for (auto& e : slice.result.events) apply(e.header);
  apply(slice.result.summary.header);
  for (auto& t : slice.result.prescaled) apply(t.slice.header);
  apply(slice.result.error_frames.header);
}

void RunWriter::write(dataflow::ProcessedSlice<filters::FilterResult>&& slice, bool paused,
                      std::vector<std::string> supernova_alerts) {
  if (cycle_.next_run) cycle_if_due(slice.info.header);
  // The run's own numbers on every header: after a cycle, or when the CLBs carry another run number
  // than the node's (a run the node resumed by itself after a restart).
  renumber(slice);
  const std::uint32_t frame = slice.info.header.frame_index;
  if (paused) {
    std::lock_guard lock(mutex_);
    ++counters_.slices_paused;
    counters_.filter += slice.result.counters;
    return;
  }
  const filters::FilterCounters filter_counters = slice.result.counters;
  // Frame order is guaranteed by the pipeline's reorder stage, so the counter is continuous. It
  // numbers the run's triggers, whether or not the store can keep them.
  std::uint64_t next_counter;
  {
    std::lock_guard lock(mutex_);
    next_counter = counters_.trigger_counter;
  }
  filters::assign_trigger_counters(slice.result.events, next_counter);
  const auto products = products_of(std::move(slice), std::move(supernova_alerts));

  bool primary_accepted = true;
  bool has_primary = false;
  std::uint64_t primary_bytes = 0;
  std::string refusal;
  for (auto& s : sinks_) {
    const dataflow::SinkWrite w = s.sink->write_shared(products);
    if (s.primary) {
      has_primary = true;
      primary_accepted = w.accepted;
      primary_bytes = w.bytes;
    }
    if (!w.accepted) refusal = std::string(s.sink->name()) + ": " + w.message;
  }
  const std::uint64_t done_ns = dataflow::unix_now_ns();

  std::lock_guard lock(mutex_);
  counters_.trigger_counter = next_counter;
  counters_.filter += filter_counters;
  if (!refusal.empty()) {
    counters_.last_sink_error = refusal;
    // Refusals repeat every slice while the cause lasts: log at most every 10 s.
    if (done_ns - last_error_log_ns_ > 10'000'000'000ull) {
      last_error_log_ns_ = done_ns;
      spdlog::error("ALARM: slice {} of run {} refused by {}", frame, record_.run, refusal);
    }
  }
  if (has_primary && !primary_accepted) {
    ++counters_.slices_refused;
    return;
  }
  if (!run_has_frames_ || frame < counters_.first_frame) counters_.first_frame = frame;
  run_has_frames_ = true;
  if (frame > counters_.last_frame) counters_.last_frame = frame;
  ++counters_.slices_written;
  counters_.events += products->events.size();
  counters_.stored_bytes += primary_bytes;
  run_stored_bytes_ += primary_bytes;
  counters_.event_bytes_online += products->event_bytes_online;
  for (const auto& e : products->events) {
    if (e.trigger_mask & dataflow::trigger_bit(dataflow::kTriggerBit3DShower)) ++counters_.events_3d_shower;
    if (e.trigger_mask & dataflow::trigger_bit(dataflow::kTriggerBitMXShower)) ++counters_.events_mx_shower;
    if (e.trigger_mask & dataflow::trigger_bit(dataflow::kTriggerBit3DMuon)) ++counters_.events_3d_muon;
    if (e.trigger_mask & dataflow::trigger_bit(dataflow::kTriggerBitFactoryLimit)) ++counters_.events_factory_limit;
  }
  const std::uint64_t completed = products->stamps.completed_unix_ns;
  if (completed != 0 && done_ns >= completed) latency_.observe(static_cast<double>(done_ns - completed) * 1e-9);
}

void RunWriter::idle() {
  for (auto& s : sinks_) s.sink->idle();
}

void RunWriter::snews(const dataflow::SnewsMessage& message) {
  for (auto& s : sinks_) s.sink->snews(message);
}

void RunWriter::end_run(dataflow::RunRecord& record) {
  for (auto& s : sinks_) s.sink->end_run(record);
}

RunWriterCounters RunWriter::counters() const {
  std::lock_guard lock(mutex_);
  return counters_;
}

void RunWriter::describe(dataflow::CounterSet& out) const {
  describe_writer(counters(), out);
  for (const auto& s : sinks_) s.sink->counters(out);
}

std::vector<std::string> RunWriter::problems() const {
  std::vector<std::string> out;
  for (const auto& s : sinks_) {
    if (auto p = s.sink->problem(); !p.empty()) out.push_back(std::string(s.sink->name()) + ": " + p);
  }
  return out;
}

void describe_writer(const RunWriterCounters& w, dataflow::CounterSet& out) {
  out.total("", "slices_written", w.slices_written);
  out.total("", "events", w.events);
  out.total("events", "3d_shower", w.events_3d_shower);
  out.total("events", "mx_shower", w.events_mx_shower);
  out.total("events", "3d_muon", w.events_3d_muon);
  out.total("events", "factory_limit", w.events_factory_limit);
  out.total("", "event_bytes_online", w.event_bytes_online);
  out.total("", "stored_bytes", w.stored_bytes);
  out.total("filter", "hits_in", w.filter.hits_in);
  out.total("filter", "l0_hits", w.filter.l0_hits);
  out.total("filter", "l1_hits", w.filter.l1_hits);
  out.total("filter", "l2_hits", w.filter.l2_hits);
  out.total("filter", "frames_defective", w.filter.frames_defective);
  out.total("filter", "frames_missing", w.filter.frames_missing);
  out.total("filter", "frames_unknown_dom", w.filter.frames_unknown_dom);
  out.total("filter", "hits_vetoed", w.filter.hits_vetoed);
  out.total("filter", "triggers_3d_shower", w.filter.triggers_3d_shower);
  out.total("filter", "triggers_mx_shower", w.filter.triggers_mx_shower);
  out.total("filter", "triggers_3d_muon", w.filter.triggers_3d_muon);
  // The operator paused the run: filtered, deliberately not written.
  out.drop("writer", "slices_paused", w.slices_paused, dataflow::LossUnit::NotLoss);
}

}  // namespace shoredaq::firmware
