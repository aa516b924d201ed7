#include "shoredaq/storage/tier0_spool_sink.hpp"

#include <spdlog/spdlog.h>

namespace shoredaq::storage {

namespace {
void add_run(Tier0SpoolCounters& sum, const Tier0SpoolCounters& run) {
  sum.slices_written += run.slices_written;
  sum.events_written += run.events_written;
  sum.summaries_written += run.summaries_written;
  sum.bytes_written += run.bytes_written;
  sum.timeslices_written += run.timeslices_written;
  sum.monitoring_written += run.monitoring_written;
  sum.parts_sealed += run.parts_sealed;
  sum.write_errors += run.write_errors;
  sum.slices_lost += run.slices_lost;
}
}  // namespace

void Tier0SpoolSink::begin_run(const dataflow::RunRecord& run) {
  {
    std::lock_guard lock(mutex_);
    add_run(earlier_runs_, run_counters_);  // the previous run's (all zero before the first)
    run_counters_ = {};
  }
  spool_.begin_run(run.run, run.detector_id, provenance_);
  snapshot();
}

dataflow::SinkWrite Tier0SpoolSink::write(const dataflow::SliceProducts& slice) {
  dataflow::SinkWrite w;
  SpoolSliceResult r;
  try {
    r = spool_.write_slice(slice);  // every object of the slice, whole or none
    spool_.flush_if_due();  // bounds what a crash can lose to ~flush_interval
  } catch (const SpoolError& e) {
    // Not a full disk (that is a Lost result): a broken spool. The slice is lost; say why.
    r = SpoolSliceResult{SpoolSliceStatus::Lost, e.what()};
    std::lock_guard lock(mutex_);
    problem_ = e.what();
  }
  if (r.status == SpoolSliceStatus::Lost) {
    w.accepted = false;
    w.cause = "slices_write_error";
    w.message = "Tier-0 spool: " + r.reason;
  }
  {
    std::lock_guard lock(mutex_);
    if (r.status == SpoolSliceStatus::Pending) ++slices_held_;
  }
  snapshot();
  return w;
}

void Tier0SpoolSink::idle() {
  try {
    spool_.flush_if_due();
  } catch (const SpoolError& e) {
    spdlog::error("Tier-0 spool flush failed: {}", e.what());
  }
  snapshot();
}

void Tier0SpoolSink::end_run(dataflow::RunRecord& record) {
  bool sealed = true;
  try {
    spool_.end_run();  // seals the last part and writes the run manifest
  } catch (const std::exception& e) {
    sealed = false;
    spdlog::error("ALARM: sealing the run file of run {} failed: {}", record.run, e.what());
    std::lock_guard lock(mutex_);
    problem_ = e.what();
  }
  snapshot();  // sealing may still write (or, on a full disk, lose) what was held
  std::lock_guard lock(mutex_);
  record.counters["stop.spool_sealed"] = sealed ? 1 : 0;
  record.counters["spool.slices_lost"] = run_counters_.slices_lost;
  record.counters["spool.events_lost"] = run_counters_.events_lost;
  record.counters["spool.summaries_lost"] = run_counters_.summaries_lost;
  record.counters["spool.timeslices_lost"] = run_counters_.timeslices_lost;
  record.counters["spool.monitoring_lost"] = run_counters_.monitoring_lost;
}

void Tier0SpoolSink::snapshot() {
  const Tier0SpoolCounters c = spool_.run_counters();
  std::lock_guard lock(mutex_);
  run_counters_ = c;
}

void Tier0SpoolSink::counters(dataflow::CounterSet& out) const {
  std::lock_guard lock(mutex_);
  Tier0SpoolCounters all = earlier_runs_;
  add_run(all, run_counters_);
  describe(all, slices_held_, out);
}

void Tier0SpoolSink::describe(const Tier0SpoolCounters& run, std::uint64_t slices_held, dataflow::CounterSet& out) {
  out.total("spool", "slices", run.slices_written);  // whole in the run file
  out.total("spool", "events_written", run.events_written);
  out.total("spool", "summaries_written", run.summaries_written);
  out.total("spool", "timeslices_written", run.timeslices_written);  // prescaled L0/L1/L2, SN, errors
  out.total("spool", "monitoring_written", run.monitoring_written);  // TMCH packets
  out.total("spool", "bytes_written", run.bytes_written);
  out.total("spool", "parts_sealed", run.parts_sealed);
  out.total("spool", "slices_held_while_failing", slices_held);
  out.total("spool", "write_errors", run.write_errors);
  // The spool's own count: slices refused whole while the disk was full, and slices still held
  // when a part had to be sealed before space came back.
  out.drop("spool", "slices_write_error", run.slices_lost, dataflow::LossUnit::SinkSlices);
}

std::string Tier0SpoolSink::problem() const {
  std::lock_guard lock(mutex_);
  return problem_;
}

}  // namespace shoredaq::storage
