#pragma once
// The in-memory timeslice: what the TimesliceBuilder emits and the filters consume. Hits stay as
// the raw 6-byte CLB records (decode with decode_hit), in the order the DOM sent them: sorted per
// channel, not across channels.

#include <cstdint>
#include <vector>

#include "shoredaq/formats/clb_datagram.hpp"

namespace shoredaq::dataflow {

// The online format's frame status (DOMAIN.md section 3).
struct FrameStatus {
  std::uint32_t daq = 0;     // bits 0-15 datagrams received, bits 16-31 highest sequence number
  std::uint32_t status = 0;  // CLB status 1: bit 31 WR ok, bits 0-30 HRV per channel
  std::uint32_t fifo = 0;    // CLB status 2: bits 0-30 FIFO almost full, bit 31 trailer seen
  std::uint32_t status3 = 0;
  std::uint32_t status4 = 0;

  std::uint32_t datagrams_received() const noexcept { return daq & 0xffffu; }
  std::uint32_t highest_sequence() const noexcept { return daq >> 16; }
  bool trailer_seen() const noexcept { return (fifo & kStatus2Trailer) != 0; }
  bool white_rabbit_ok() const noexcept { return (status & kStatus1WhiteRabbitOk) != 0; }
  std::uint32_t hrv_mask() const noexcept { return status & kChannelMask31; }
  // Complete: every datagram up to the highest sequence number arrived, and the trailer.
  bool complete() const noexcept {
    return datagrams_received() == highest_sequence() + 1 && trailer_seen();
  }
  static std::uint32_t make_daq(std::uint32_t received, std::uint32_t highest_seq) noexcept {
    return (highest_seq << 16) | (received & 0xffffu);
  }
  friend bool operator==(const FrameStatus&, const FrameStatus&) = default;
};

struct DomFrame {
  std::uint32_t dom_id = 0;
  FrameStatus status;
  std::vector<std::uint8_t> hits;  // packed 6-byte CLB hits

  std::size_t hit_count() const noexcept { return hits.size() / kHitBytes; }
  Hit hit(std::size_t i) const noexcept { return decode_hit(hits.data() + i * kHitBytes); }
};

struct SliceHeader {
  std::int32_t detector_id = 0;
  std::uint32_t run = 0;
  std::uint32_t frame_index = 0;  // slices since run start
  std::uint32_t utc_seconds = 0;  // MSB = White Rabbit *not* OK (online format)
  std::uint32_t ticks_16ns = 0;
  std::uint64_t slice_start_ns() const noexcept {
    return std::uint64_t{utc_seconds & 0x7fff'ffffu} * 1'000'000'000ull + std::uint64_t{ticks_16ns} * kTickNs;
  }
  friend bool operator==(const SliceHeader&, const SliceHeader&) = default;
};

// Node-local stamps (Unix ns) for the receive -> commit latency figures; 0 = not set.
struct SliceStamps {
  std::uint64_t received_unix_ns = 0;   // first datagram of the slice
  std::uint64_t completed_unix_ns = 0;  // complete or expired
};

// A CLB monitoring (TMCH) packet as received: the whole datagram, header and payload, byte-identical
// (what IO_MONIT and the run files carry). Its own header says which slice it measured.
struct RawMonitoring {
  std::uint32_t dom_id = 0;
  std::vector<std::uint8_t> datagram;  // parse_monitoring_packet() reads it
};

struct Timeslice {
  SliceHeader header;
  std::vector<DomFrame> frames;  // one per expected DOM, sorted by DOM id; missing DOMs have daq == 0
  SliceStamps stamps;
  std::vector<RawMonitoring> monitoring;  // TMCH packets received since the previous slice, in arrival order

  std::size_t hit_count() const noexcept {
    std::size_t n = 0;
    for (const auto& f : frames) n += f.hit_count();
    return n;
  }
};

}  // namespace shoredaq::dataflow
