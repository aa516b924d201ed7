// EventStore throughput and commit latency against raw LMDB MDB_APPEND of the same bytes, in the
// same run and on the same disk (DESIGN.md section 7: "raw LMDB append of the same bytes").
//   bench_store [--slices N] [--events-per-slice K] [--doms D] [--nosync] [--dir PATH]
// Events are 200 B .. 2 KB (random hit counts, fixed seed); one transaction per slice with the
// slice's summary (D DOMs). Prints events/s, MB/s, commit latency p50/p99/max and the ratio.

#include <lmdb.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "shoredaq/dataflow/fb_codec.hpp"
#include "shoredaq/storage/event_store.hpp"

namespace sd = shoredaq::dataflow;
namespace st = shoredaq::storage;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::uint32_t slices = 600;
  std::uint32_t events_per_slice = 20;
  std::uint32_t doms = 360;  // 20 DUs
  bool nosync = false;
  fs::path dir = fs::temp_directory_path();
};

struct Slice {
  std::vector<sd::Event> events;
  sd::SummarySlice summary;
};

std::vector<Slice> make_workload(const Options& o) {
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> hits(8, 115);  // ~200 B .. ~2 KB per encoded event
  std::vector<Slice> slices(o.slices);
  for (std::uint32_t f = 0; f < o.slices; ++f) {
    Slice& s = slices[f];
    const sd::SliceHeader header{14, 1, f, 1'700'000'000u + f / 10, (f % 10) * 625'000u};
    for (std::uint32_t n = 0; n < o.events_per_slice; ++n) {
      sd::Event e;
      e.header = header;
      e.event_number = n;
      e.trigger_counter = std::uint64_t{f} * o.events_per_slice + n;
      e.trigger_mask = sd::trigger_bit(sd::kTriggerBit3DMuon);
      e.overlays = 1;
      const int count = hits(rng);
      for (int i = 0; i < count; ++i) {
        const sd::SnapshotHit h{static_cast<std::uint32_t>(800'000 + rng() % o.doms),
                                sd::Hit{static_cast<std::uint8_t>(rng() % 31), static_cast<std::uint32_t>(rng() % 100'000'000),
                                        static_cast<std::uint8_t>(rng() % 60)}};
        e.snapshot.push_back(h);
        if (i % 3 == 0) e.triggered.push_back({h.dom_id, h.hit, e.trigger_mask});
      }
      e.stamps.completed_unix_ns = 1;
      s.events.push_back(std::move(e));
    }
    s.summary.header = header;
    for (std::uint32_t d = 0; d < o.doms; ++d) {
      sd::SummaryFrame fr;
      fr.dom_id = 800'000 + d;
      for (auto& c : fr.rate_codes) c = static_cast<std::uint8_t>(rng());
      s.summary.frames.push_back(fr);
    }
  }
  return slices;
}

struct Figures {
  double seconds = 0;
  std::uint64_t events = 0, bytes = 0;
  std::vector<double> latency_ms;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

void print(const char* name, const Figures& f) {
  std::printf("%-26s %9.0f events/s %8.2f MB/s  commit p50 %7.3f ms  p99 %7.3f ms  max %7.3f ms  (%llu events, %.1f MB, %.2f s)\n",
              name, f.events / f.seconds, f.bytes / f.seconds / 1e6, percentile(f.latency_ms, 0.5),
              percentile(f.latency_ms, 0.99), f.latency_ms.empty() ? 0.0 : *std::max_element(f.latency_ms.begin(), f.latency_ms.end()),
              static_cast<unsigned long long>(f.events), f.bytes / 1e6, f.seconds);
}

Figures run_store(const Options& o, const std::vector<Slice>& slices, const fs::path& dir) {
  st::EventStoreConfig c;
  c.directory = dir;
  c.initial_map_bytes = std::size_t{1} << 30;
  c.disk_reserve_bytes = 0;
  c.sync = o.nosync ? st::SyncMode::NoSync : st::SyncMode::Full;
  c.detector_id = 14;
  st::EventStore store(c);
  Figures f;
  const auto start = Clock::now();
  for (std::uint32_t i = 0; i < slices.size(); ++i) {
    const auto t0 = Clock::now();
    const auto r = store.commit_slice(1, i, slices[i].events, &slices[i].summary);
    f.latency_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    if (!r) {
      std::fprintf(stderr, "commit failed: %s\n", r.message.c_str());
      break;
    }
    f.events += r.events;
    f.bytes += r.bytes;
  }
  f.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return f;
}

// The same FlatBuffer bytes, pre-encoded, appended with plain LMDB calls: the floor for the store.
Figures run_raw(const Options& o, const std::vector<Slice>& slices, const fs::path& dir) {
  std::vector<std::vector<std::vector<std::uint8_t>>> event_bytes(slices.size());
  std::vector<std::vector<std::uint8_t>> summary_bytes(slices.size());
  for (std::size_t i = 0; i < slices.size(); ++i) {
    for (const auto& e : slices[i].events) event_bytes[i].push_back(sd::encode_event_fb(e, 1));
    summary_bytes[i] = sd::encode_summary_slice_fb(slices[i].summary);
  }
  fs::create_directories(dir);
  MDB_env* env = nullptr;
  mdb_env_create(&env);
  mdb_env_set_maxdbs(env, 4);
  mdb_env_set_mapsize(env, std::size_t{1} << 30);
  if (mdb_env_open(env, dir.c_str(), o.nosync ? MDB_NOSYNC : 0, 0640) != 0) {
    std::fprintf(stderr, "raw env open failed\n");
    return {};
  }
  MDB_txn* txn = nullptr;
  MDB_dbi events = 0, summaries = 0;
  mdb_txn_begin(env, nullptr, 0, &txn);
  mdb_dbi_open(txn, "events", MDB_CREATE, &events);
  mdb_dbi_open(txn, "summaries", MDB_CREATE, &summaries);
  mdb_txn_commit(txn);
  Figures f;
  const auto start = Clock::now();
  for (std::uint32_t i = 0; i < slices.size(); ++i) {
    const auto t0 = Clock::now();
    mdb_txn_begin(env, nullptr, 0, &txn);
    for (std::uint32_t n = 0; n < event_bytes[i].size(); ++n) {
      std::uint8_t key[12] = {0, 0, 0, 1};
      for (int b = 0; b < 4; ++b) {
        key[4 + b] = static_cast<std::uint8_t>(i >> (24 - 8 * b));
        key[8 + b] = static_cast<std::uint8_t>(n >> (24 - 8 * b));
      }
      MDB_val k{12, key}, v{event_bytes[i][n].size(), event_bytes[i][n].data()};
      mdb_put(txn, events, &k, &v, MDB_APPEND);
      f.bytes += v.mv_size;
      ++f.events;
    }
    std::uint8_t skey[8] = {0, 0, 0, 1};
    for (int b = 0; b < 4; ++b) skey[4 + b] = static_cast<std::uint8_t>(i >> (24 - 8 * b));
    MDB_val k{8, skey}, v{summary_bytes[i].size(), summary_bytes[i].data()};
    mdb_put(txn, summaries, &k, &v, MDB_APPEND);
    f.bytes += v.mv_size;
    if (mdb_txn_commit(txn) != 0) {
      std::fprintf(stderr, "raw commit failed\n");
      break;
    }
    f.latency_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  f.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  mdb_env_close(env);
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--slices") o.slices = static_cast<std::uint32_t>(std::stoul(next()));
    else if (a == "--events-per-slice") o.events_per_slice = static_cast<std::uint32_t>(std::stoul(next()));
    else if (a == "--doms") o.doms = static_cast<std::uint32_t>(std::stoul(next()));
    else if (a == "--nosync") o.nosync = true;
    else if (a == "--dir") o.dir = next();
    else {
      std::fprintf(stderr, "usage: bench_store [--slices N] [--events-per-slice K] [--doms D] [--nosync] [--dir PATH]\n");
      return 2;
    }
  }
  const auto slices = make_workload(o);
  std::uint64_t event_bytes = 0, events = 0;
  for (const auto& s : slices) {
    for (const auto& e : s.events) event_bytes += sd::encode_event_fb(e).size();
    events += s.events.size();
  }
  const fs::path base = o.dir / ("shoredaq-bench-store-" + std::to_string(::getpid()));
  std::printf("bench_store: %u slices x %u events (mean event %.0f B), summary of %u DOMs per slice, %s, in %s\n",
              o.slices, o.events_per_slice, static_cast<double>(event_bytes) / events, o.doms,
              o.nosync ? "MDB_NOSYNC" : "full durability (fsync per commit)", o.dir.c_str());
  // Alternate the two, twice, so neither gets a warmer disk cache; report the better of each.
  Figures best_raw, best_store;
  for (int round = 0; round < 2; ++round) {
    fs::remove_all(base);
    const Figures raw = run_raw(o, slices, base / "raw");
    fs::remove_all(base);
    const Figures store = run_store(o, slices, base / "store");
    fs::remove_all(base);
    if (best_raw.seconds == 0 || raw.seconds < best_raw.seconds) best_raw = raw;
    if (best_store.seconds == 0 || store.seconds < best_store.seconds) best_store = store;
  }
  print("raw LMDB MDB_APPEND", best_raw);
  print("EventStore::commit_slice", best_store);
  std::printf("ratio EventStore / raw: events/s %.2f, MB/s %.2f (store includes FlatBuffers encoding and the run record update)\n",
              (best_store.events / best_store.seconds) / (best_raw.events / best_raw.seconds),
              (best_store.bytes / best_store.seconds) / (best_raw.bytes / best_raw.seconds));
  return 0;
}
