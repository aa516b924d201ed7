#include "shoredaq/firmware/node_counters.hpp"

#include <string>

namespace shoredaq::firmware {

void describe_pipeline(const dataflow::PipelineStats& s, dataflow::CounterSet& out) {
  using dataflow::LossUnit;
  out.total("ingest", "messages", s.ingest.messages);
  out.total("ingest", "bytes", s.ingest.bytes);
  out.total("ingest", "datagrams", s.ingest.datagrams);
  for (std::size_t i = 0; i < dataflow::kIngestRejectCauseCount; ++i) {
    const auto cause = static_cast<dataflow::IngestRejectCause>(i);
    const std::string name(dataflow::to_string(cause));
    if (cause == dataflow::IngestRejectCause::PeerDisconnected) {
      // Mostly senders that finished; a message over the hard size limit looks the same to libzmq.
      // Counted, not a drop: nothing known was lost.
      out.total("ingest", "peer_disconnects", s.ingest.rejected_records[i]);
      continue;
    }
    out.drop("ingest", name + ".records", s.ingest.rejected_records[i], LossUnit::Datagrams);
    out.drop("ingest", name + ".bytes", s.ingest.rejected_bytes[i], LossUnit::NotLoss);  // the same loss, in bytes
  }
  out.total("builder", "datagrams", s.builder.datagrams_accepted);
  out.total("builder", "hits", s.builder.hits_accepted);
  out.total("builder", "monitoring_datagrams", s.builder.monitoring_datagrams);
  out.total("builder", "monitoring_attached", s.builder.monitoring_attached);
  // Monitoring no slice carried (an unknown DOM, after the last slice): counted, not physics data.
  out.drop("builder", "monitoring_unattached", s.builder.monitoring_unattached, LossUnit::NotLoss);
  out.total("builder", "slices_complete", s.builder.slices_complete);
  out.total("builder", "slices_expired", s.builder.slices_expired);
  out.total("builder", "slices_evicted", s.builder.slices_evicted);
  out.total("builder", "frames_incomplete", s.builder.frames_incomplete);
  out.total("builder", "frames_missing", s.builder.frames_missing);
  out.total("builder", "frames_completeness_inferred", s.builder.frames_completeness_inferred);
  out.total("builder", "implausible_time_datagrams", s.builder.implausible_time_datagrams);
  // On a farm: datagrams of DUs another ingest process builds (passed over, nothing lost).
  out.total("builder", "datagrams_other_ingest", s.builder.datagrams_other_ingest);
  // Handed to the acoustic stream (acoustic.*: written, lost, published), not to a slice.
  out.total("builder", "acoustic_datagrams", s.builder.acoustic_datagrams);
  for (std::size_t i = 0; i < dataflow::kBuilderDropReasonCount; ++i) {
    const auto reason = static_cast<dataflow::BuilderDropReason>(i);
    // A duplicate's first copy was kept: nothing is lost.
    const LossUnit unit = reason == dataflow::BuilderDropReason::Duplicate ? LossUnit::NotLoss : LossUnit::Datagrams;
    out.drop("builder", dataflow::to_string(reason), s.builder.dropped[i], unit);
  }
  out.drop("pipeline", "messages_queue_full", s.messages_dropped, LossUnit::NotLoss);  // counted as datagrams below
  out.drop("pipeline", "datagrams_queue_full", s.datagrams_dropped, LossUnit::Datagrams);
  out.drop("pipeline", "slices_queue_full", s.slices_dropped_queue_full, LossUnit::Slices);
  out.drop("pipeline", "slices_processor_error", s.processor_errors, LossUnit::Slices);
  out.drop("pipeline", "slices_aborted", s.slices_aborted, LossUnit::Slices);
  out.total("", "slices", s.builder.slices_complete + s.builder.slices_expired);
}

void describe_udp(const drivers::UdpSocketCounters& c, dataflow::CounterSet& out) {
  using dataflow::LossUnit;
  out.total("udp", "datagrams", c.datagrams);
  out.total("udp", "bytes", c.bytes);
  out.total("udp", "messages", c.messages);
  out.total("udp", "other_data_type", c.other_data_type);  // accepted unless the port is strict
  out.total("udp", "receive_errors", c.receive_errors);
  // Lost before the node saw them: the only UDP drop not already inside udp.datagrams.
  out.drop("udp", "kernel_drops", c.kernel_drops(), LossUnit::Datagrams);
  out.drop("udp", "truncated_datagrams", c.truncated_datagrams, LossUnit::Datagrams);
  out.drop("udp", "other_data_type_dropped", c.other_data_type_dropped, LossUnit::Datagrams);
  for (std::size_t i = 0; i < dataflow::kIngestRejectCauseCount; ++i) {
    const auto cause = static_cast<dataflow::IngestRejectCause>(i);
    if (cause == dataflow::IngestRejectCause::PeerDisconnected) continue;  // a ZeroMQ event; UDP has no peers
    const std::string name(dataflow::to_string(cause));
    out.drop("udp", name + ".records", c.ingest.rejected_records[i], LossUnit::Datagrams);
    out.drop("udp", name + ".bytes", c.ingest.rejected_bytes[i], LossUnit::NotLoss);  // the same loss, in bytes
  }
}

LossTotals loss_totals(const dataflow::CounterSet& totals, const std::vector<dataflow::DomCount>& implausible_time_doms) {
  LossTotals t;
  for (const auto& e : totals.entries()) {
    if (!e.drop) {
      if (e.key() == "ingest.datagrams" || e.key() == "udp.datagrams") t.datagrams_offered += e.value;
      if (e.key() == "slices") t.slices_built += e.value;
      continue;
    }
    switch (e.loss) {
      case dataflow::LossUnit::NotLoss: break;
      case dataflow::LossUnit::Datagrams:
        t.datagrams_lost[e.key()] += e.value;
        if (e.stage == "ingest") t.datagrams_offered += e.value;  // rejected before they were counted as datagrams
        if (e.key() == "udp.kernel_drops") t.datagrams_offered += e.value;  // the other UDP drops are in udp.datagrams
        break;
      case dataflow::LossUnit::Slices: t.slices_lost[e.key()] += e.value; break;
      case dataflow::LossUnit::SinkSlices: t.sink_refusals[e.key()] += e.value; break;
    }
  }
  for (const auto& d : implausible_time_doms) t.implausible_time_by_dom[d.dom_id] += d.count;
  return t;
}

}  // namespace shoredaq::firmware
