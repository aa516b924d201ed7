#pragma once
// The acoustic stream as a sink of the run (dataflow/sink.hpp). TAES datagrams are not part of a
// timeslice: the builder hands each one to on_datagram() as it arrives (its thread; never blocks),
// which batches it in the AcousticSpool (acoustic_spool.hpp) and, when configured, publishes it on
// ZeroMQ for the acoustic positioning system (acoustic_publisher.hpp). The writer's calls give the
// stream its run life cycle: begin_run/end_run open and close the run's acoustic parts, and every
// write() or idle() writes the batch to disk once it is due, on the writer's (or its queue's)
// thread, never on the builder's.

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "shoredaq/formats/clb_datagram.hpp"
#include "shoredaq/formats/sink.hpp"
#include "shoredaq/storage/acoustic_publisher.hpp"
#include "shoredaq/storage/acoustic_spool.hpp"

namespace shoredaq::storage {

class AcousticSink final : public dataflow::Sink {
 public:
  // `spool` (null: the datagrams are not kept on disk) outlives the sink; `publisher` may be null.
  AcousticSink(AcousticSpool* spool, std::unique_ptr<AcousticPublisher> publisher, RunProvenance provenance = {});

  // Builder thread: one TAES datagram as parsed (header and payload re-joined as received).
  void on_datagram(const dataflow::ClbDatagram& datagram) noexcept;

  std::string_view name() const noexcept override { return "acoustic"; }
  void begin_run(const dataflow::RunRecord& run) override;
  dataflow::SinkWrite write(const dataflow::SliceProducts& slice) override;
  void idle() override;
  void end_run(dataflow::RunRecord& record) override;
  void counters(dataflow::CounterSet& out) const override;
  std::string problem() const override;

  // The counter names (all zero): the shape of the node's metrics before a run.
  static void describe_empty(dataflow::CounterSet& out);

 private:
  void flush() noexcept;

  AcousticSpool* spool_;
  AcousticSpoolCounters baseline_;  // the spool's at construction: the counters span the session's runs
  RunProvenance provenance_;
  std::vector<std::uint8_t> scratch_;  // builder thread only
  mutable std::mutex publish_mutex_;   // the publisher's counters are read from other threads
  std::unique_ptr<AcousticPublisher> publisher_;
  mutable std::mutex problem_mutex_;
  std::string problem_;
};

}  // namespace shoredaq::storage
