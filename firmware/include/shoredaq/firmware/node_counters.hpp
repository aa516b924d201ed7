#pragma once
// The node's counters in the one idiom (dataflow/counter_set.hpp): the pipeline's stages described
// here, the writer and its sinks by themselves. Every drop names its cause and what it costs, which
// is how health (LossMonitor) tells lost datagrams from lost slices from a sink refusing data, and
// what /status, /metrics and the run record show.

#include "shoredaq/formats/counter_set.hpp"
#include "shoredaq/dataflow/pipeline.hpp"
#include "shoredaq/drivers/udp_receiver.hpp"
#include "shoredaq/firmware/loss_monitor.hpp"

namespace shoredaq::firmware {

// Ingest, builder and pipeline queues (names as in /status: "builder.slices_expired", drops as
// "builder.time_jump", ...), plus "slices" (every slice built).
void describe_pipeline(const dataflow::PipelineStats& stats, dataflow::CounterSet& out);

// The CLB UDP receiver, summed over its sockets: "udp.datagrams" (every datagram the kernel handed
// over), "udp.bytes", ... and its losses as drops of stage "udp": kernel_drops (receive buffer
// full), truncated_datagrams, other_data_type_dropped and the parser's rejects by cause
// ("udp.truncated_header.records"), named as the ZeroMQ ingest's.
void describe_udp(const drivers::UdpSocketCounters& counters, dataflow::CounterSet& out);

// What LossMonitor judges, from the node's lifetime counter totals and the per-DOM counts of
// implausible slice times.
LossTotals loss_totals(const dataflow::CounterSet& totals, const std::vector<dataflow::DomCount>& implausible_time_doms);

}  // namespace shoredaq::firmware
