#include "shoredaq/storage/acoustic_sink.hpp"

#include <spdlog/spdlog.h>

namespace shoredaq::storage {

AcousticSink::AcousticSink(AcousticSpool* spool, std::unique_ptr<AcousticPublisher> publisher, RunProvenance provenance)
    : spool_(spool),
      baseline_(spool != nullptr ? spool->counters() : AcousticSpoolCounters{}),
      provenance_(std::move(provenance)),
      publisher_(std::move(publisher)) {}

void AcousticSink::on_datagram(const dataflow::ClbDatagram& datagram) noexcept {
  try {
    scratch_.clear();
    dataflow::encode_clb_header(datagram.header, datagram.layout, scratch_);
    scratch_.insert(scratch_.end(), datagram.payload.begin(), datagram.payload.end());
  } catch (const std::bad_alloc&) {
    return;  // the spool never saw it; the builder counted it (acoustic_datagrams)
  }
  if (spool_ != nullptr) spool_->write(scratch_, datagram.header.dom_id);
  if (publisher_) {
    std::lock_guard lock(publish_mutex_);
    publisher_->publish(scratch_);
  }
}

void AcousticSink::begin_run(const dataflow::RunRecord& run) {
  if (spool_ != nullptr) spool_->begin_run(run.run, run.detector_id, provenance_);
}

dataflow::SinkWrite AcousticSink::write(const dataflow::SliceProducts&) {
  flush();
  return {};  // the slice itself is not this sink's to keep
}

void AcousticSink::idle() { flush(); }

void AcousticSink::flush() noexcept {
  if (spool_ != nullptr) spool_->flush_if_due();
}

void AcousticSink::end_run(dataflow::RunRecord& record) {
  if (spool_ == nullptr) return;
  try {
    spool_->end_run();
  } catch (const SpoolError& e) {
    spdlog::error("acoustic spool: cannot close run {}: {}", record.run, e.what());
    std::lock_guard lock(problem_mutex_);
    problem_ = std::string("acoustic spool: ") + e.what();
  }
}

void AcousticSink::counters(dataflow::CounterSet& out) const {
  AcousticSpoolCounters since;  // since the session began (a cycled run does not start it afresh)
  if (spool_ != nullptr) {
    const auto now = spool_->counters();
    since.datagrams_written = now.datagrams_written - baseline_.datagrams_written;
    since.bytes_written = now.bytes_written - baseline_.bytes_written;
    since.parts_sealed = now.parts_sealed - baseline_.parts_sealed;
    since.write_errors = now.write_errors - baseline_.write_errors;
    since.datagrams_lost = now.datagrams_lost - baseline_.datagrams_lost;
    since.datagrams_bad = now.datagrams_bad - baseline_.datagrams_bad;
    since.datagrams_outside_run = now.datagrams_outside_run - baseline_.datagrams_outside_run;
  }
  AcousticSpool::describe(since, out);
  AcousticPublisherCounters p;
  if (publisher_) {
    std::lock_guard lock(publish_mutex_);
    p = publisher_->counters();
  }
  out.total("acoustic", "datagrams_published", p.datagrams_sent);
  // The spool keeps them: what a slow subscriber misses is not lost.
  out.drop("acoustic", "datagrams_not_published", p.datagrams_dropped + p.send_errors, dataflow::LossUnit::NotLoss);
}

std::string AcousticSink::problem() const {
  std::lock_guard lock(problem_mutex_);
  return problem_;
}

void AcousticSink::describe_empty(dataflow::CounterSet& out) {
  AcousticSpool::describe({}, out);
  out.total("acoustic", "datagrams_published", 0);
  out.drop("acoustic", "datagrams_not_published", 0, dataflow::LossUnit::NotLoss);
}

}  // namespace shoredaq::storage
