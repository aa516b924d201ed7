// Fuzz target: the ingest path behind the sockets: record stream -> IngestParser -> TimesliceBuilder.
// The first 4 input bytes choose the builder's limits (so small bounds get exercised), the rest is
// one message. Invariants: every received byte is either accepted or counted as rejected; every
// accepted datagram is either in a slice or counted (dropped / monitoring / acoustic); emitted
// slices come in strictly increasing frame order with one frame per expected DOM, sorted by id;
// the builder never holds more than max_open_slices; implausible-time drops add up per DOM.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "shoredaq/dataflow/timeslice_builder.hpp"
#include "shoredaq/dataflow/zmq_ingest.hpp"

namespace sd = shoredaq::dataflow;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  sd::TimesliceBuilderConfig config;
  config.run_number = 1;
  config.expected_doms = {1, 2, 3};
  config.max_open_slices = 1 + data[0] % 8;
  config.expiry_lag_slices = data[1] % 12;
  config.max_time_jump_slices = 1 + data[2] % 64;
  config.expiry_wall_ns = (data[3] & 1) != 0 ? 1000 : 0;
  config.max_frame_bytes = (data[3] & 2) != 0 ? 64 : std::size_t{1} << 20;
  const auto layout = (data[3] & 4) != 0 ? sd::HeaderLayoutMode::Auto : sd::HeaderLayoutMode::Standard40;
  config.time_quorum_doms = 1 + (data[3] >> 3) % 4;
  config.max_wall_clock_offset_s = (data[3] & 0x80) != 0 ? 1 : 0;
  const std::span<const std::uint8_t> message(data + 4, size - 4);

  std::uint64_t last_frame = 0;
  std::uint64_t datagrams_in_slices = 0;
  sd::TimesliceBuilder builder(config, [&](sd::Timeslice&& t) {
    if (t.header.frame_index <= last_frame) std::abort();
    last_frame = t.header.frame_index;
    if (t.frames.size() != 3) std::abort();
    for (std::size_t i = 0; i < 3; ++i) {
      if (t.frames[i].dom_id != i + 1) std::abort();
      if (t.frames[i].hits.size() % sd::kHitBytes != 0) std::abort();
      datagrams_in_slices += t.frames[i].status.datagrams_received();
    }
  });
  sd::IngestParser parser(layout);
  std::vector<sd::ParsedRecord> records;
  parser.parse(message, records);
  const auto& ic = parser.counters();
  if (ic.datagram_bytes + ic.rejected_bytes_total() != message.size()) std::abort();
  if (ic.datagrams != records.size()) std::abort();
  std::uint64_t now = 0;
  for (const sd::ParsedRecord& r : records) {
    if (r.payload_offset + std::uint64_t{r.payload_size} > message.size()) std::abort();
    sd::ClbDatagram d;
    d.header = r.header;
    d.layout = r.layout;
    d.payload = message.subspan(r.payload_offset, r.payload_size);
    builder.add(d, now += 400);
    if (builder.open_slices() > config.max_open_slices) std::abort();
  }
  builder.flush(now);
  const auto& bc = builder.counters();
  if (bc.datagrams_accepted != datagrams_in_slices) std::abort();
  if (bc.datagrams_accepted + bc.dropped_total() + bc.monitoring_datagrams + bc.acoustic_datagrams != records.size()) {
    std::abort();
  }
  if (builder.open_slices() != 0) std::abort();
  std::uint64_t per_dom = 0;
  for (const auto& d : builder.implausible_time_doms()) per_dom += d.count;
  std::uint64_t implausible = 0;
  for (std::size_t r = 0; r < sd::kBuilderDropReasonCount; ++r) {
    if (sd::is_implausible_time(static_cast<sd::BuilderDropReason>(r))) implausible += bc.dropped[r];
  }
  if (per_dom != bc.implausible_time_datagrams || implausible != per_dom) std::abort();
  return 0;
}
