#pragma once
// Helpers shared by the storage tests: a fresh temporary directory and synthetic events.

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include "shoredaq/formats/clb_datagram.hpp"
#include "shoredaq/formats/event.hpp"
#include "shoredaq/formats/slice_products.hpp"
#include "shoredaq/formats/summary_slice.hpp"
#include "shoredaq/storage/event_store.hpp"

namespace shoredaq::storage::testing {

// A store for a test: 4 MiB to start, no disk reserve (test disks can be full), no fsync.
inline EventStoreConfig small_store_config(const std::filesystem::path& dir, std::int32_t detector) {
  EventStoreConfig c;
  c.directory = dir;
  c.initial_map_bytes = 4 << 20;
  c.disk_reserve_bytes = 0;
  c.sync = SyncMode::NoSync;
  c.detector_id = detector;
  return c;
}

class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("shoredaq-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline dataflow::SliceHeader slice_header(std::int32_t detector, std::uint32_t run, std::uint32_t frame) {
  return dataflow::SliceHeader{detector, run, frame, 1'700'000'000u + frame / 10, (frame % 10) * 625'000u};
}

// An event of the given slice with `snapshot_hits` hits (a third of them triggered): 10 B per
// snapshot hit + 18 B per triggered hit + ~150 B of table, so 20..180 hits give ~0.4..3 KB.
inline dataflow::Event make_event(std::int32_t detector, std::uint32_t run, std::uint32_t frame, std::uint32_t number,
                                  std::size_t snapshot_hits, std::uint64_t mask = dataflow::trigger_bit(dataflow::kTriggerBit3DMuon)) {
  dataflow::Event e;
  e.header = slice_header(detector, run, frame);
  e.event_number = number;
  e.trigger_counter = std::uint64_t{frame} * 100 + number;
  e.trigger_mask = mask;
  e.overlays = 1;
  std::uint32_t time = 1000 + number * 5000;
  for (std::size_t i = 0; i < snapshot_hits; ++i) {
    const dataflow::SnapshotHit s{10'000u + static_cast<std::uint32_t>(i % 18),
                                  dataflow::Hit{static_cast<std::uint8_t>(i % 31), time, 25}};
    time += 3;
    e.snapshot.push_back(s);
    if (i % 3 == 0) e.triggered.push_back({s.dom_id, s.hit, mask});
  }
  e.stamps.received_unix_ns = 1;
  e.stamps.completed_unix_ns = 2;
  e.filtered_unix_ns = 3;
  return e;
}

inline std::vector<dataflow::Event> make_slice_events(std::int32_t detector, std::uint32_t run, std::uint32_t frame,
                                                      std::size_t count, std::size_t snapshot_hits = 30) {
  std::vector<dataflow::Event> events;
  for (std::uint32_t n = 0; n < count; ++n) events.push_back(make_event(detector, run, frame, n, snapshot_hits));
  return events;
}

inline dataflow::SummarySlice make_summary(std::int32_t detector, std::uint32_t run, std::uint32_t frame,
                                           std::size_t doms = 18) {
  dataflow::SummarySlice s;
  s.header = slice_header(detector, run, frame);
  for (std::uint32_t d = 0; d < doms; ++d) {
    dataflow::SummaryFrame f;
    f.dom_id = 10'000 + d;
    f.status.daq = dataflow::FrameStatus::make_daq(2, 1);
    f.status.fifo = dataflow::kStatus2Trailer;
    for (unsigned c = 0; c < dataflow::kPmtsPerDom; ++c) f.rate_codes[c] = static_cast<std::uint8_t>(50 + c);
    s.frames.push_back(f);
  }
  return s;
}

// A timeslice of `doms` DOMs with `hits_per_dom` hits each (channel-ordered times).
inline dataflow::Timeslice make_timeslice(std::int32_t detector, std::uint32_t run, std::uint32_t frame,
                                          std::size_t doms = 4, std::size_t hits_per_dom = 5) {
  dataflow::Timeslice t;
  t.header = slice_header(detector, run, frame);
  for (std::uint32_t d = 0; d < doms; ++d) {
    dataflow::DomFrame f;
    f.dom_id = 10'000 + d;
    f.status.daq = dataflow::FrameStatus::make_daq(1, 0);
    f.status.fifo = dataflow::kStatus2Trailer;
    f.hits.resize(hits_per_dom * dataflow::kHitBytes);
    for (std::size_t h = 0; h < hits_per_dom; ++h) {
      dataflow::encode_hit(dataflow::Hit{static_cast<std::uint8_t>(h % 31), static_cast<std::uint32_t>(1000 + 10 * h), 26},
                           f.hits.data() + h * dataflow::kHitBytes);
    }
    t.frames.push_back(std::move(f));
  }
  return t;
}

// A TMCH packet of `dom_id` for the slice `header` starts, as a CLB would send it.
inline dataflow::RawMonitoring make_monitoring(const dataflow::SliceHeader& header, std::uint32_t dom_id) {
  dataflow::MonitoringPacket m;
  m.header.data_type = dataflow::DataType::Monitoring;
  m.header.run_number = header.run;
  m.header.utc_seconds = header.utc_seconds;
  m.header.ticks_16ns = header.ticks_16ns;
  m.header.dom_id = dom_id;
  m.header.status1 = dataflow::kStatus1WhiteRabbitOk;
  for (unsigned c = 0; c < dataflow::kPmtsPerDom; ++c) m.hit_counts[c] = 700 + c;
  m.temperature_c = 30.25;
  m.humidity_pct = 17.5;
  m.slice_duration = 100'000;
  return dataflow::RawMonitoring{dom_id, dataflow::encode_monitoring_packet(m)};
}

// What the writer hands a sink for one slice: a summary, `events` events, the timeslices of
// `kinds`, and a TMCH packet for each of `monitoring_doms` DOMs.
inline dataflow::SliceProducts make_products(std::int32_t detector, std::uint32_t run, std::uint32_t frame,
                                             std::size_t events, const std::vector<dataflow::TimesliceKind>& kinds,
                                             std::size_t monitoring_doms) {
  dataflow::SliceProducts p;
  p.header = slice_header(detector, run, frame);
  p.summary = make_summary(detector, run, frame);
  p.events = make_slice_events(detector, run, frame, events);
  for (const auto kind : kinds) p.timeslices.push_back({kind, make_timeslice(detector, run, frame)});
  for (std::uint32_t d = 0; d < monitoring_doms; ++d) p.monitoring.push_back(make_monitoring(p.header, 10'000 + d));
  return p;
}

}  // namespace shoredaq::storage::testing
