// EventStore throughput and commit latency against raw LMDB MDB_APPEND of the same bytes, in the
// same run and on the same disk (DESIGN.md section 7: "raw LMDB append of the same bytes").
//   bench_store [--slices N] [--events-per-slice K] [--doms D] [--rounds R] [--nosync] [--dir PATH]
// Events are 200 B .. 2 KB (random hit counts, fixed seed); one transaction per slice with the
// slice's summary (D DOMs). The store checksums every record (XXH3-64, store schema 2); the raw
// baseline appends the bare FlatBuffers. Full durability (fsync per commit) unless --nosync.
// Prints events/s, MB/s, commit latency p50/p99/max, the ratio (the integrity issue asks >= 0.9),
// and the speed of a checksum scrub pass and of a deep verify over the store just written.

#include <lmdb.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "shoredaq/formats/fb_codec.hpp"
#include "shoredaq/storage/event_store.hpp"
#include "shoredaq/storage/store_scrubber.hpp"

namespace sd = shoredaq::dataflow;
namespace st = shoredaq::storage;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::uint32_t slices = 600;
  std::uint32_t events_per_slice = 20;
  std::uint32_t doms = 360;  // 20 DUs
  int rounds = 3;  // fresh stores this often; the figures sum over all rounds
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
  // Store only: a full scrub pass and a deep verify of what was written.
  double scrub_seconds = 0, verify_seconds = 0;
  std::uint64_t scrub_bytes = 0, verify_bytes = 0;
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

class StoreSide {
 public:
  StoreSide(const Options& o, const fs::path& dir) : store_(config(o, dir)) {}

  bool commit(const std::vector<Slice>& slices, std::uint32_t i, Figures& f) {
    const auto t0 = Clock::now();
    const auto r = store_.commit_slice(1, i, slices[i].events, &slices[i].summary);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (!r) {
      std::fprintf(stderr, "commit failed: %s\n", r.message.c_str());
      return false;
    }
    f.latency_ms.push_back(ms);
    f.seconds += ms / 1e3;
    f.events += r.events;
    f.bytes += r.bytes;
    return true;
  }

  // A full checksum scrub pass and a deep verify of what was written.
  void scrub_and_verify(Figures& f) {
    st::StoreScrubber scrubber(store_.reader());
    const auto scrub_start = Clock::now();
    for (bool done = false; !done;) {
      const auto step = scrubber.scrub_step(std::uint64_t{8} << 20);
      f.scrub_bytes += step.bytes_checked;
      done = step.pass_completed;
    }
    f.scrub_seconds = std::chrono::duration<double>(Clock::now() - scrub_start).count();
    const auto verify_start = Clock::now();
    const auto report = store_.reader().verify(st::VerifyOptions{.deep = true});
    f.verify_seconds = std::chrono::duration<double>(Clock::now() - verify_start).count();
    f.verify_bytes = report.bytes_checked;
    if (!report.ok()) std::fprintf(stderr, "deep verify of the bench store failed: %s\n", report.problems.front().c_str());
  }

 private:
  static st::EventStoreConfig config(const Options& o, const fs::path& dir) {
    st::EventStoreConfig c;
    c.directory = dir;
    c.initial_map_bytes = std::size_t{1} << 30;
    c.disk_reserve_bytes = 0;
    c.sync = o.nosync ? st::SyncMode::NoSync : st::SyncMode::Full;
    c.detector_id = 14;
    return c;
  }
  st::EventStore store_;
};

// The same FlatBuffer bytes, pre-encoded, appended with plain LMDB calls: the floor for the store.
class RawSide {
 public:
  RawSide(const Options& o, const std::vector<Slice>& slices, const fs::path& dir) : event_bytes_(slices.size()) {
    summary_bytes_.resize(slices.size());
    for (std::size_t i = 0; i < slices.size(); ++i) {
      for (const auto& e : slices[i].events) event_bytes_[i].push_back(sd::encode_event_fb(e, 1));
      summary_bytes_[i] = sd::encode_summary_slice_fb(slices[i].summary);
    }
    fs::create_directories(dir);
    mdb_env_create(&env_);
    mdb_env_set_maxdbs(env_, 4);
    mdb_env_set_mapsize(env_, std::size_t{1} << 30);
    if (mdb_env_open(env_, dir.c_str(), o.nosync ? MDB_NOSYNC : 0, 0640) != 0) {
      std::fprintf(stderr, "raw env open failed\n");
      std::exit(1);
    }
    MDB_txn* txn = nullptr;
    mdb_txn_begin(env_, nullptr, 0, &txn);
    mdb_dbi_open(txn, "events", MDB_CREATE, &events_);
    mdb_dbi_open(txn, "summaries", MDB_CREATE, &summaries_);
    mdb_txn_commit(txn);
  }
  ~RawSide() { mdb_env_close(env_); }
  RawSide(const RawSide&) = delete;
  RawSide& operator=(const RawSide&) = delete;

  bool commit(std::uint32_t i, Figures& f) {
    const auto t0 = Clock::now();
    MDB_txn* txn = nullptr;
    mdb_txn_begin(env_, nullptr, 0, &txn);
    std::uint64_t bytes = 0;
    for (std::uint32_t n = 0; n < event_bytes_[i].size(); ++n) {
      std::uint8_t key[12] = {0, 0, 0, 1};
      for (int b = 0; b < 4; ++b) {
        key[4 + b] = static_cast<std::uint8_t>(i >> (24 - 8 * b));
        key[8 + b] = static_cast<std::uint8_t>(n >> (24 - 8 * b));
      }
      MDB_val k{12, key}, v{event_bytes_[i][n].size(), event_bytes_[i][n].data()};
      mdb_put(txn, events_, &k, &v, MDB_APPEND);
      bytes += v.mv_size;
    }
    std::uint8_t skey[8] = {0, 0, 0, 1};
    for (int b = 0; b < 4; ++b) skey[4 + b] = static_cast<std::uint8_t>(i >> (24 - 8 * b));
    MDB_val k{8, skey}, v{summary_bytes_[i].size(), summary_bytes_[i].data()};
    mdb_put(txn, summaries_, &k, &v, MDB_APPEND);
    bytes += v.mv_size;
    if (mdb_txn_commit(txn) != 0) {
      std::fprintf(stderr, "raw commit failed\n");
      return false;
    }
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    f.latency_ms.push_back(ms);
    f.seconds += ms / 1e3;
    f.events += event_bytes_[i].size();
    f.bytes += bytes;
    return true;
  }

 private:
  std::vector<std::vector<std::vector<std::uint8_t>>> event_bytes_;
  std::vector<std::vector<std::uint8_t>> summary_bytes_;
  MDB_env* env_ = nullptr;
  MDB_dbi events_ = 0, summaries_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--slices") o.slices = static_cast<std::uint32_t>(std::stoul(next()));
    else if (a == "--events-per-slice") o.events_per_slice = static_cast<std::uint32_t>(std::stoul(next()));
    else if (a == "--doms") o.doms = static_cast<std::uint32_t>(std::stoul(next()));
    else if (a == "--rounds") o.rounds = std::max(1, std::stoi(next()));
    else if (a == "--nosync") o.nosync = true;
    else if (a == "--dir") o.dir = next();
    else {
      std::fprintf(stderr, "usage: bench_store [--slices N] [--events-per-slice K] [--doms D] [--rounds R] [--nosync] [--dir PATH]\n");
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
  // Raw and store commit the same slice one after the other (the order alternating), so both meet
  // the same disk: on a shared machine fsync times swing tenfold within seconds, and measuring one
  // side after the other compares the weather, not the code. Each side sums its own commit times.
  Figures raw_figures, store_figures;
  for (int round = 0; round < o.rounds; ++round) {
    fs::remove_all(base);
    RawSide raw(o, slices, base / "raw");
    StoreSide store(o, base / "store");
    for (std::uint32_t i = 0; i < slices.size(); ++i) {
      const bool raw_first = (i + static_cast<std::uint32_t>(round)) % 2 == 0;
      if (raw_first && !raw.commit(i, raw_figures)) return 1;
      if (!store.commit(slices, i, store_figures)) return 1;
      if (!raw_first && !raw.commit(i, raw_figures)) return 1;
    }
    if (round + 1 == o.rounds) store.scrub_and_verify(store_figures);
  }
  fs::remove_all(base);
  print("raw LMDB MDB_APPEND", raw_figures);
  print("EventStore::commit_slice", store_figures);
  std::printf("ratio checksummed EventStore / raw LMDB: events/s %.2f, MB/s %.2f (store includes FlatBuffers encoding, "
              "XXH3 checksums and the run record update; the integrity issue asks >= 0.9)\n",
              (store_figures.events / store_figures.seconds) / (raw_figures.events / raw_figures.seconds),
              (store_figures.bytes / store_figures.seconds) / (raw_figures.bytes / raw_figures.seconds));
  std::printf("scrub pass (checksums, 8 MB steps): %.0f MB/s; deep verify: %.0f MB/s (page cache warm)\n",
              store_figures.scrub_bytes / store_figures.scrub_seconds / 1e6, store_figures.verify_bytes / store_figures.verify_seconds / 1e6);
  return 0;
}
