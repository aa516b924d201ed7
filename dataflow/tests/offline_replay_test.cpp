#include "shoredaq/dataflow/offline_replay.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <unistd.h>

using namespace shoredaq::dataflow;

namespace {

constexpr std::uint32_t kRun = 4;

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() / ("shoredaq-replay-" + std::to_string(::getpid()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

// Slices 0..n-1 of `doms`, each DOM split into two datagrams sent in reverse order for odd slices.
std::vector<std::vector<std::uint8_t>> feed(std::uint32_t n, const std::vector<std::uint32_t>& doms) {
  std::vector<std::vector<std::uint8_t>> out;
  for (std::uint32_t s = 0; s < n; ++s) {
    for (std::uint32_t dom : doms) {
      std::vector<std::vector<std::uint8_t>> parts;
      for (std::uint32_t seq = 0; seq < 2; ++seq) {
        ClbHeader h;
        h.run_number = kRun;
        h.udp_sequence = seq;
        h.utc_seconds = 1'700'000'000 + s / 10;
        h.ticks_16ns = (s % 10) * kTicksPerSlice;
        h.dom_id = dom;
        h.status1 = kStatus1WhiteRabbitOk;
        h.status2 = seq == 1 ? kStatus2Trailer : 0;
        std::vector<Hit> hits(seq + 1 + s % 3, Hit{static_cast<std::uint8_t>(seq), 100 * seq, 20});
        parts.push_back(encode_optical_datagram(h, hits));
      }
      if (s % 2 == 1) std::swap(parts[0], parts[1]);
      for (auto& p : parts) out.push_back(std::move(p));
    }
  }
  return out;
}

TimesliceBuilderConfig builder_config(std::vector<std::uint32_t> doms) {
  TimesliceBuilderConfig c;
  c.run_number = kRun;
  c.expected_doms = std::move(doms);
  return c;
}

}  // namespace

TEST(OfflineReplay, SameSlicesInOneThreadAndWithWorkers) {
  TempDir dir;
  const std::vector<std::uint32_t> doms = {5, 6, 7};
  const auto datagrams = feed(25, doms);
  const auto file = dir.path / "feed.dqd";
  write_dqd_file(file, datagrams);

  std::vector<std::pair<std::uint32_t, std::size_t>> single, threaded;
  ReplayOptions opt;
  opt.chunk_bytes = 500;  // many chunks
  const auto r1 = replay_dqd_file<std::size_t>(
      file, builder_config(doms), opt, [](const Timeslice& t) { return t.hit_count(); },
      [&](ProcessedSlice<std::size_t>&& p) { single.emplace_back(p.info.header.frame_index, p.result); });
  opt.workers = 3;
  const auto r2 = replay_dqd_file<std::size_t>(
      file, builder_config(doms), opt, [](const Timeslice& t) { return t.hit_count(); },
      [&](ProcessedSlice<std::size_t>&& p) { threaded.emplace_back(p.info.header.frame_index, p.result); });

  ASSERT_EQ(single.size(), 25u);
  EXPECT_EQ(single, threaded);
  for (std::uint32_t i = 0; i < 25; ++i) {
    EXPECT_EQ(single[i].first, i + 1);
    EXPECT_EQ(single[i].second, doms.size() * (3 + 2 * (i % 3)));
  }
  for (const auto* r : {&r1, &r2}) {
    EXPECT_EQ(r->slices_written, 25u);
    EXPECT_EQ(r->builder.slices_complete, 25u);
    EXPECT_EQ(r->ingest.datagrams, datagrams.size());
    EXPECT_EQ(r->file_error, RecordError::None);
  }
}

TEST(OfflineReplay, BadDatagramsCountedAndTruncatedFileReported) {
  TempDir dir;
  const std::vector<std::uint32_t> doms = {5};
  auto datagrams = feed(3, doms);
  datagrams[1].push_back(0);  // bad payload size: slice 0 of DOM 5 loses its trailer datagram
  const auto file = dir.path / "bad.dqd";
  write_dqd_file(file, datagrams);
  {
    std::ofstream out(file, std::ios::binary | std::ios::app);
    const char overrun[] = {0x00, 0x01, 0x00, 0x00, 'T', 'T'};
    out.write(overrun, sizeof overrun);
  }
  std::vector<std::uint32_t> frames;
  std::vector<bool> complete;
  const auto r = replay_dqd_file<int>(
      file, builder_config(doms), ReplayOptions{}, [](const Timeslice&) { return 0; },
      [&](ProcessedSlice<int>&& p) {
        frames.push_back(p.info.header.frame_index);
        complete.push_back(p.info.complete());
      });
  EXPECT_EQ(frames, (std::vector<std::uint32_t>{1, 2, 3}));
  EXPECT_EQ(complete, (std::vector<bool>{false, true, true}));
  EXPECT_EQ(r.ingest.rejected_records_of(IngestRejectCause::BadPayloadSize), 1u);
  EXPECT_NE(r.file_error, RecordError::None);
  EXPECT_EQ(r.builder.slices_expired, 1u);  // expired at the end of the file (flush)
}
