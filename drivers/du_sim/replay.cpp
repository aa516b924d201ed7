// du-sim --replay: stream a .dqd file's records to ZeroMQ and/or UDP, grouped into slices by the
// header time (a datagram of a newer slice starts the next group; late ones ride with the current
// group). With --realtime one group per 100 ms; with --loop the file plays again, its slice times
// shifted past the previous pass; with --skip-slices the first pass leaves out the file's first slices.

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "du_sim.hpp"
#include "shoredaq/formats/record_stream.hpp"

namespace du_sim {

namespace {
std::uint32_t load_be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}
void store_be32(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 24), p[1] = static_cast<std::uint8_t>(v >> 16);
  p[2] = static_cast<std::uint8_t>(v >> 8), p[3] = static_cast<std::uint8_t>(v);
}
}  // namespace

int run_replay(const Options& o, std::size_t header_bytes) {
  if (o.endpoint.empty() && o.udp.empty() && o.udp_monitoring.empty() && o.udp_acoustic.empty())
    throw std::runtime_error("--replay needs --endpoint or --udp");
  const auto zmq_sender = make_zmq_sender(o);
  const auto udp_sender = make_udp_sender(o);
  const bool show_progress = o.progress || isatty(STDERR_FILENO);

  constexpr std::uint64_t kSliceNs = 100'000'000;
  std::uint64_t first_slice_ns = 0, last_slice_ns = 0, shift_per_loop_ns = 0;
  std::uint64_t slices = 0, datagrams = 0, hits = 0, unreadable = 0, skipped = 0;
  bool seen_first = false;
  double max_lag_ms = 0;
  std::uint64_t behind_slices = 0;
  const auto wall_start = Clock::now();
  auto last_progress = wall_start;
  shoredaq::dataflow::RecordWriter batch(o.batch_bytes + 70'000);  // ZeroMQ: flushed at batch_bytes
  shoredaq::dataflow::RecordWriter udp_group;                        // UDP: the whole group, paced as one

  auto send_group = [&] {
    if (batch.empty() && udp_group.empty()) return;
    if (o.realtime) {
      // The skipped slices' time passes too: a DU that starts late sends its first slice late.
      const auto due = wall_start + std::chrono::milliseconds(100) * static_cast<std::int64_t>(o.skip_slices + slices + 1);
      const double lag_ms = std::chrono::duration<double, std::milli>(Clock::now() - due).count();
      if (lag_ms > 0) max_lag_ms = std::max(max_lag_ms, lag_ms), behind_slices += lag_ms > 100;
      std::this_thread::sleep_until(due);
    }
    if (zmq_sender) zmq_sender->send_framed(batch.bytes(), batch.record_count());
    if (udp_sender) udp_sender->send_framed(udp_group.bytes());
    batch.clear();
    udp_group.clear();
    ++slices;
  };
  auto append = [&](std::span<const std::uint8_t> datagram) {
    if (zmq_sender) batch.append(datagram);
    if (udp_sender) udp_group.append(datagram);
  };

  for (unsigned loop = 0; loop < std::max(1u, o.loops) && !g_stop.load(); ++loop) {
    shoredaq::dataflow::DqdFileReader reader(o.replay);
    std::span<const std::uint8_t> rec;
    std::uint64_t group_ns = 0;
    bool group_open = false;
    std::vector<std::uint8_t> restamped;
    // First pass: while the records are still in the slices left out (a record too short to say
    // its slice goes with the one it came in).
    bool in_skipped_slices = loop == 0 && o.skip_slices > 0;
    while (!g_stop.load() && reader.next(rec)) {
      if (rec.size() < 20) {  // not even the time stamp: pass it on unchanged, the node counts it
        if (in_skipped_slices) {
          ++skipped;
          continue;
        }
        append(rec);
        ++unreadable;
        continue;
      }
      const std::uint64_t slice_ns = std::uint64_t{load_be32(rec.data() + 12)} * 1'000'000'000ull +
                                     std::uint64_t{load_be32(rec.data() + 16)} * 16ull;
      if (loop == 0) {
        if (!seen_first) first_slice_ns = slice_ns, seen_first = true;
        last_slice_ns = std::max(last_slice_ns, slice_ns);
        in_skipped_slices = slice_ns < first_slice_ns + std::uint64_t{o.skip_slices} * kSliceNs;
        if (in_skipped_slices) {
          ++skipped;
          continue;
        }
      }
      if (group_open && slice_ns > group_ns) {
        send_group();
        group_open = false;
      }
      if (!group_open) group_ns = slice_ns, group_open = true;
      if (loop > 0) {  // restamp: this pass starts one file duration after the previous one
        const std::uint64_t t = slice_ns + loop * shift_per_loop_ns;
        restamped.assign(rec.begin(), rec.end());
        store_be32(restamped.data() + 12, static_cast<std::uint32_t>(t / 1'000'000'000ull));
        store_be32(restamped.data() + 16, static_cast<std::uint32_t>((t % 1'000'000'000ull) / 16));
        append(restamped);
      } else {
        append(rec);
      }
      ++datagrams;
      if (rec.size() > header_bytes) hits += (rec.size() - header_bytes) / shoredaq::dataflow::kHitBytes;
      if (zmq_sender && batch.size() >= o.batch_bytes) {  // a big slice goes out in several messages
        zmq_sender->send_framed(batch.bytes(), batch.record_count());
        batch.clear();
      }
      if (show_progress && seconds_since(last_progress) >= 1.0) {
        last_progress = Clock::now();
        std::fprintf(stderr, "du-sim replay: pass %u, %llu slices, %.3g hits\n", loop + 1,
                     static_cast<unsigned long long>(slices), static_cast<double>(hits));
      }
    }
    send_group();
    if (reader.error() != shoredaq::dataflow::RecordError::None)
      std::fprintf(stderr, "du-sim replay: %s at byte %llu of %s (rest of the file skipped)\n",
                   std::string(to_string(reader.error())).c_str(), static_cast<unsigned long long>(reader.offset()),
                   o.replay.c_str());
    if (loop == 0) shift_per_loop_ns = last_slice_ns - first_slice_ns + kSliceNs;
  }
  shoredaq::drivers::SinkCounters c;
  for (shoredaq::drivers::FeedSink* sink : {static_cast<shoredaq::drivers::FeedSink*>(zmq_sender.get()),
                                            static_cast<shoredaq::drivers::FeedSink*>(udp_sender.get())}) {
    if (sink == nullptr) continue;
    sink->finish();
    const auto& s = sink->counters();
    c.records += s.records, c.messages += s.messages, c.bytes += s.bytes;
    c.hwm_blocked += s.hwm_blocked, c.hwm_dropped += s.hwm_dropped, c.dropped_on_stop += s.dropped_on_stop;
  }
  const double wall = seconds_since(wall_start);
  nlohmann::json j;
  j["replay"] = o.replay;
  j["slices"] = slices;
  j["datagrams"] = datagrams;
  j["hits"] = hits;
  j["unreadable_records"] = unreadable;
  j["skipped_datagrams"] = skipped;
  j["output"] = {{"records", c.records}, {"messages", c.messages}, {"bytes", c.bytes},
                 {"hwm_blocked", c.hwm_blocked}, {"hwm_dropped", c.hwm_dropped}, {"dropped_on_stop", c.dropped_on_stop}};
  if (udp_sender) j["udp"] = udp_json(udp_sender->udp_counters());
  j["wall_seconds"] = wall;
  j["hits_per_s"] = wall > 0 ? hits / wall : 0.0;
  if (o.realtime) j["realtime"] = {{"max_lag_ms", max_lag_ms}, {"slices_behind", behind_slices}};
  if (o.json) {
    std::cout << j.dump() << '\n';
  } else {
    std::printf("du-sim replay summary\n  %s: %llu slices, %llu datagrams, %llu hits in %.2f s (%.2f M hits/s)\n",
                o.replay.c_str(), static_cast<unsigned long long>(slices), static_cast<unsigned long long>(datagrams),
                static_cast<unsigned long long>(hits), wall, wall > 0 ? hits / wall / 1e6 : 0.0);
    std::printf("  output: %llu records, %.1f MB, %llu ZeroMQ messages / UDP datagrams, HWM blocked %llu / dropped %llu\n",
                static_cast<unsigned long long>(c.records), c.bytes / 1e6, static_cast<unsigned long long>(c.messages),
                static_cast<unsigned long long>(c.hwm_blocked), static_cast<unsigned long long>(c.hwm_dropped));
    if (udp_sender) {
      const auto& u = udp_sender->udp_counters();
      std::printf("  UDP: %llu datagrams sent, %llu failed, ENOBUFS %llu, refused %llu, unrouted %llu\n",
                  static_cast<unsigned long long>(u.datagrams_sent), static_cast<unsigned long long>(u.datagrams_failed),
                  static_cast<unsigned long long>(u.enobufs), static_cast<unsigned long long>(u.refused),
                  static_cast<unsigned long long>(u.unrouted));
    }
    if (o.realtime)
      std::printf("  real time: max lag %.1f ms, %llu slices more than 100 ms late\n", max_lag_ms,
                  static_cast<unsigned long long>(behind_slices));
  }
  return 0;
}

}  // namespace du_sim
