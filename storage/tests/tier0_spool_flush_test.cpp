// The Tier-0 spool's time-based flush (a kill -9 loses at most what came after the last flush) and
// its recovery at construction, before any detector is known.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <set>

#include "shoredaq/storage/tier0_spool.hpp"
#include "storage_test_support.hpp"
#include "tier0_spool_test_support.hpp"

using namespace shoredaq;
using namespace shoredaq::storage;
namespace st = shoredaq::storage::testing;
using st::check_sealed_parts;
using st::make_slice_events;
using st::make_summary;
using st::TempDir;
namespace fs = std::filesystem;
using std::chrono::steady_clock;

namespace {

constexpr std::int32_t kDetector = 133;

void write_frame(Tier0Spool& spool, std::uint32_t run, std::uint32_t frame, std::int32_t detector = kDetector) {
  const auto events = make_slice_events(detector, run, frame, 2);
  const auto summary = make_summary(detector, run, frame);
  ASSERT_EQ(spool.write_slice(events, &summary).status, SpoolSliceStatus::Accepted) << frame;
}

std::vector<std::uint8_t> encoded_frames(std::int32_t detector, std::uint32_t run, std::uint32_t first,
                                         std::uint32_t end) {
  std::vector<std::uint8_t> bytes;
  for (std::uint32_t f = first; f < end; ++f) {
    dataflow::encode_online_summary_slice(make_summary(detector, run, f), bytes);
    for (const auto& e : make_slice_events(detector, run, f, 2)) dataflow::encode_online_event(e, bytes);
  }
  return bytes;
}

void write_file(const fs::path& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

TEST(Tier0SpoolFlush, FlushIfDueWritesTheBufferWithoutSealing) {
  TempDir dir("spool-flush");
  Tier0SpoolConfig config;
  config.directory = dir.path();
  config.fsync = false;
  // Large enough that neither the size nor a slow test machine triggers a write on its own.
  config.write_buffer_bytes = std::size_t{1} << 20;
  config.flush_interval = std::chrono::hours(1);
  Tier0Spool spool(config);
  spool.begin_run(7, kDetector);
  const auto before = steady_clock::now();
  for (std::uint32_t f = 0; f < 3; ++f) write_frame(spool, 7, f);
  const fs::path open_part = spool.open_dir() / Tier0Spool::part_file_name(kDetector, 7, 0);
  ASSERT_TRUE(fs::exists(open_part));
  EXPECT_EQ(st::read_bytes(open_part).size(), 0u);  // buffered only

  spool.flush_if_due(before);  // the buffer is younger than the interval
  EXPECT_EQ(st::read_bytes(open_part).size(), 0u);
  EXPECT_GT(spool.pending_bytes(), 0u);

  spool.flush_if_due(steady_clock::now() + config.flush_interval);
  EXPECT_EQ(spool.pending_bytes(), 0u);
  const auto bytes = st::read_bytes(open_part);  // another fd than the spool's
  EXPECT_EQ(bytes, encoded_frames(kDetector, 7, 0, 3));
  EXPECT_TRUE(st::files_in(spool.ready_dir(), ".daq").empty());  // written, not sealed
  EXPECT_EQ(spool.counters().slices_written, 3u);
  EXPECT_EQ(spool.counters().parts_sealed, 0u);

  write_frame(spool, 7, 3);
  spool.end_run();
  EXPECT_EQ(check_sealed_parts(spool.ready_dir()).summary_frames, (std::vector<std::uint32_t>{0, 1, 2, 3}));
}

// A writer with a 1 MiB buffer (a minute of data at 2 DUs) flushes every 10 slices and is killed:
// recovery at the next start seals every slice up to the last flush.
TEST(Tier0SpoolFlush, KilledWriterLosesOnlyWhatCameAfterTheLastFlush) {
  TempDir dir("spool-kill");
  int acks[2];
  ASSERT_EQ(::pipe(acks), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(acks[0]);
    try {
      Tier0SpoolConfig config;
      config.directory = dir.path();
      config.write_buffer_bytes = std::size_t{1} << 20;
      config.flush_interval = std::chrono::hours(1);  // only the flushes below write
      Tier0Spool spool(config);
      spool.begin_run(12, kDetector);
      for (std::uint32_t f = 0;; ++f) {
        const auto events = make_slice_events(kDetector, 12, f, 2);
        const auto summary = make_summary(kDetector, 12, f);
        if (spool.write_slice(events, &summary).status != SpoolSliceStatus::Accepted) ::_exit(3);
        if (f % 10 == 9) {
          spool.flush_if_due(steady_clock::now() + config.flush_interval);
          if (::write(acks[1], &f, sizeof f) != sizeof f) ::_exit(4);  // frames up to f are in the file
        }
      }
    } catch (...) {
      ::_exit(2);
    }
  }
  ::close(acks[1]);
  std::uint32_t flushed = 0;
  for (int i = 0; i < 5; ++i) ASSERT_EQ(::read(acks[0], &flushed, sizeof flushed), static_cast<ssize_t>(sizeof flushed));
  ::kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child status " << status;
  std::uint32_t frame = 0;
  while (::read(acks[0], &frame, sizeof frame) == static_cast<ssize_t>(sizeof frame)) flushed = frame;
  ::close(acks[0]);

  Tier0SpoolConfig config;
  config.directory = dir.path();
  Tier0Spool spool(config);
  EXPECT_TRUE(fs::is_empty(spool.open_dir()));
  EXPECT_EQ(spool.counters().parts_recovered, 1u);
  const auto contents = check_sealed_parts(spool.ready_dir());
  std::set<std::uint32_t> frames(contents.summary_frames.begin(), contents.summary_frames.end());
  for (std::uint32_t f = 0; f <= flushed; ++f) ASSERT_TRUE(frames.contains(f)) << f << " of " << flushed;
  EXPECT_TRUE(fs::exists(spool.ready_dir() / Tier0Spool::run_manifest_name(kDetector, 12)));
}

// The daemon builds the spool before it knows the detector: recovery reads each leftover's
// detector from its name and closes every cut run, whatever its detector.
TEST(Tier0SpoolFlush, RecoversAtConstructionWithoutADetectorId) {
  TempDir dir("spool-nodet");
  for (const char* sub : {"open", "ready"}) fs::create_directories(dir.path() / sub);
  // A part of detector 49 and one of detector 133 left in open/ by a kill; a part of detector 77
  // sealed into ready/ but killed before its manifest and the run manifest.
  const auto part49 = Tier0Spool::part_file_name(49, 100, 0);
  const auto part133 = Tier0Spool::part_file_name(133, 101, 2);
  const auto part77 = Tier0Spool::part_file_name(77, 102, 0);
  write_file(dir.path() / "open" / part49, encoded_frames(49, 100, 0, 4));
  write_file(dir.path() / "open" / part133, encoded_frames(133, 101, 10, 12));
  write_file(dir.path() / "ready" / part77, encoded_frames(77, 102, 0, 3));

  Tier0SpoolConfig config;
  config.directory = dir.path();  // no detector id
  Tier0Spool spool(config);
  EXPECT_TRUE(fs::is_empty(spool.open_dir()));
  EXPECT_EQ(spool.counters().parts_recovered, 3u);
  const auto contents = check_sealed_parts(spool.ready_dir());
  EXPECT_EQ(contents.parts, 3u);
  struct Expected {
    std::string part;
    std::int32_t detector;
    std::uint32_t run;
    std::uint64_t summaries;
  };
  for (const auto& [part, detector, run, summaries] :
       {Expected{part49, 49, 100, 4}, Expected{part133, 133, 101, 2}, Expected{part77, 77, 102, 3}}) {
    const auto manifest = st::read_json(spool.ready_dir() / (part + ".json"));
    EXPECT_EQ(manifest["detector_id"].get<std::int32_t>(), detector) << part;
    EXPECT_EQ(manifest["summary_slices"].get<std::uint64_t>(), summaries) << part;
    EXPECT_TRUE(manifest["recovered"].get<bool>()) << part;
    const fs::path run_manifest = spool.ready_dir() / Tier0Spool::run_manifest_name(detector, run);
    ASSERT_TRUE(fs::exists(run_manifest)) << run_manifest;
    const auto r = st::read_json(run_manifest);
    EXPECT_EQ(r["detector_id"].get<std::int32_t>(), detector);
    EXPECT_EQ(r["state"], "recovered after a crash");
    ASSERT_EQ(r["parts"].size(), 1u);
    EXPECT_EQ(r["parts"][0]["file"], part);
  }

  // The detector comes with the run; parts continue after the recovered ones.
  spool.begin_run(101, 133);
  write_frame(spool, 101, 12, 133);
  spool.end_run();
  EXPECT_TRUE(fs::exists(spool.ready_dir() / Tier0Spool::part_file_name(133, 101, 3)));
  const auto run_manifest = st::read_json(spool.ready_dir() / Tier0Spool::run_manifest_name(133, 101));
  EXPECT_EQ(run_manifest["parts"].size(), 2u);
  EXPECT_EQ(run_manifest["state"], "ended");
  EXPECT_FALSE(spool.transferred(101));
  for (const auto& part : {part133, Tier0Spool::part_file_name(133, 101, 3)}) EXPECT_TRUE(spool.ack(part));
  EXPECT_TRUE(spool.transferred(101));
  EXPECT_FALSE(spool.transferred(100));  // detector 49's run 100 is not acknowledged
}
