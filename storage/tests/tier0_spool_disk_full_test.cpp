// The Tier-0 spool on a full disk: short writes, EINTR and ENOSPC injected through the write hook,
// and a real kernel limit (RLIMIT_FSIZE) in a child process. Whatever happens, a sealed part
// matches its manifest byte for byte, holds whole slices only, and every slice is either in a part
// once or counted as lost.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <map>
#include <numeric>

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

namespace {

constexpr std::int32_t kDetector = 133;
constexpr std::size_t kEventsPerSlice = 3;

// A disk with `space_left` bytes; writes pass at most `max_chunk` bytes; every `eintr_every`-th
// call is interrupted. Writes go to the real file, so the test reads back what the spool wrote.
struct FakeDisk {
  std::size_t space_left = SIZE_MAX;
  std::size_t max_chunk = SIZE_MAX;
  unsigned eintr_every = 0;
  unsigned calls = 0;
  unsigned refused = 0;

  ssize_t write(int fd, const void* data, std::size_t bytes) {
    ++calls;
    if (eintr_every != 0 && calls % eintr_every == 0) {
      errno = EINTR;
      return -1;
    }
    if (space_left == 0) {
      ++refused;
      errno = ENOSPC;
      return -1;
    }
    const ssize_t n = ::write(fd, data, std::min({bytes, max_chunk, space_left}));
    if (n > 0) space_left -= static_cast<std::size_t>(n);
    return n;
  }
};

Tier0SpoolConfig config_on(const fs::path& dir, FakeDisk& disk) {
  Tier0SpoolConfig c;
  c.directory = dir;
  c.fsync = false;
  c.write_buffer_bytes = 4096;
  c.write = [&disk](int fd, const void* data, std::size_t bytes) { return disk.write(fd, data, bytes); };
  return c;
}

SpoolSliceResult write_frame(Tier0Spool& spool, std::uint32_t run, std::uint32_t frame) {
  const auto events = make_slice_events(kDetector, run, frame, kEventsPerSlice);
  const auto summary = make_summary(kDetector, run, frame);
  return spool.write_slice(events, &summary);
}

std::vector<std::uint32_t> frames_with(const std::map<std::uint32_t, SpoolSliceStatus>& results, bool lost) {
  std::vector<std::uint32_t> out;
  for (const auto& [frame, status] : results) {
    if ((status == SpoolSliceStatus::Lost) == lost) out.push_back(frame);
  }
  return out;
}

// Each slice is whole in the files: its summary and all its events.
void expect_whole_slices(const st::SpoolContents& contents) {
  for (const std::uint32_t frame : contents.summary_frames) {
    EXPECT_EQ(std::count(contents.event_frames.begin(), contents.event_frames.end(), frame),
              static_cast<std::ptrdiff_t>(kEventsPerSlice))
        << "frame " << frame;
  }
  EXPECT_EQ(contents.event_frames.size(), contents.summary_frames.size() * kEventsPerSlice);
}

}  // namespace

TEST(Tier0SpoolDiskFull, ShortWritesAndInterruptsResumeWhereTheyStopped) {
  TempDir dir("spool-short");
  FakeDisk disk;
  disk.max_chunk = 1000;
  disk.eintr_every = 3;
  auto config = config_on(dir.path(), disk);
  config.max_file_bytes = 40'000;
  Tier0Spool spool(config);
  spool.begin_run(1, kDetector);
  for (std::uint32_t f = 0; f < 30; ++f) EXPECT_EQ(write_frame(spool, 1, f).status, SpoolSliceStatus::Accepted) << f;
  spool.end_run();

  const auto contents = check_sealed_parts(spool.ready_dir());
  EXPECT_GT(contents.parts, 1u);
  std::vector<std::uint32_t> all(30);
  std::iota(all.begin(), all.end(), 0u);
  EXPECT_EQ(contents.summary_frames, all);
  expect_whole_slices(contents);
  EXPECT_GT(spool.counters().partial_writes, 0u);
  EXPECT_EQ(spool.counters().write_errors, 0u);  // an interrupted call is no error
  EXPECT_EQ(spool.counters().slices_written, 30u);
  EXPECT_EQ(spool.counters().slices_lost, 0u);
}

// The hostile tester's case: a write stops part-way (ENOSPC); once space is back, writing must
// resume at that byte, not start the buffer again (which put its head twice in the sealed part).
TEST(Tier0SpoolDiskFull, PartialWriteThenDiskFullResumesAtTheByteWhereItStopped) {
  TempDir dir("spool-resume");
  FakeDisk disk;
  disk.space_left = 6'000;  // inside a slice: the write of the second buffer stops part-way
  Tier0Spool spool(config_on(dir.path(), disk));
  spool.begin_run(2, kDetector);
  std::uint32_t frame = 0;
  unsigned pending = 0;
  for (; frame < 8; ++frame) {
    const auto result = write_frame(spool, 2, frame);
    ASSERT_NE(result.status, SpoolSliceStatus::Lost) << frame;
    if (result.status == SpoolSliceStatus::Pending) {
      ++pending;
      EXPECT_NE(result.reason.find("No space left"), std::string::npos) << result.reason;
    }
  }
  ASSERT_GT(pending, 0u);
  ASSERT_TRUE(spool.writes_failing());
  EXPECT_GT(spool.counters().partial_writes, 0u);
  disk.space_left = SIZE_MAX;
  for (; frame < 12; ++frame) EXPECT_EQ(write_frame(spool, 2, frame).status, SpoolSliceStatus::Accepted) << frame;
  EXPECT_FALSE(spool.writes_failing());
  spool.end_run();

  const auto contents = check_sealed_parts(spool.ready_dir());
  std::vector<std::uint32_t> all(12);
  std::iota(all.begin(), all.end(), 0u);
  EXPECT_EQ(contents.summary_frames, all);  // each slice once, in order: no duplicated head
  expect_whole_slices(contents);
  EXPECT_GT(spool.counters().write_errors, 0u);
  EXPECT_EQ(spool.counters().slices_lost, 0u);  // the failed writes were retried: nothing lost
  EXPECT_EQ(spool.counters().slices_written, 12u);
}

TEST(Tier0SpoolDiskFull, FullDiskRefusesWholeSlicesPastThePendingBoundAndCountsThemExactly) {
  TempDir dir("spool-bound");
  FakeDisk disk;
  disk.space_left = 10'000;
  auto config = config_on(dir.path(), disk);
  config.max_pending_bytes = 20'000;
  Tier0Spool spool(config);
  spool.begin_run(3, kDetector);
  std::map<std::uint32_t, SpoolSliceStatus> results;
  std::uint32_t frame = 0;
  for (; frame < 40; ++frame) {
    results[frame] = write_frame(spool, 3, frame).status;
    EXPECT_LE(spool.pending_bytes(), config.max_pending_bytes) << frame;
  }
  const std::size_t refused_while_full = frames_with(results, true).size();
  ASSERT_GT(refused_while_full, 0u);
  ASSERT_TRUE(std::any_of(results.begin(), results.end(),
                          [](const auto& r) { return r.second == SpoolSliceStatus::Pending; }));
  // Space comes back: the pending slices are written and the spool carries on.
  disk.space_left = SIZE_MAX;
  for (; frame < 50; ++frame) {
    results[frame] = write_frame(spool, 3, frame).status;
    EXPECT_EQ(results[frame], SpoolSliceStatus::Accepted) << frame;
  }
  spool.end_run();

  const auto contents = check_sealed_parts(spool.ready_dir());
  EXPECT_EQ(contents.summary_frames, frames_with(results, false));
  expect_whole_slices(contents);
  const std::uint64_t lost = refused_while_full;
  for (const auto* counters : {&spool.counters(), &spool.run_counters()}) {
    EXPECT_EQ(counters->slices_lost, lost);
    EXPECT_EQ(counters->summaries_lost, lost);
    EXPECT_EQ(counters->events_lost, lost * kEventsPerSlice);
    EXPECT_EQ(counters->slices_written, 50u - lost);
    EXPECT_EQ(counters->bytes_written, contents.bytes);
  }
}

// The run ends while the disk is still full: the part is sealed with its whole slices, the head of
// a slice written part-way is cut off, and the unwritten slices are counted as lost.
TEST(Tier0SpoolDiskFull, DiskStillFullAtEndOfRunSealsWholeSlicesAndCountsTheRestLost) {
  TempDir dir("spool-end-full");
  FakeDisk disk;
  disk.space_left = 10'000;
  Tier0Spool spool(config_on(dir.path(), disk));
  spool.begin_run(4, kDetector);
  std::map<std::uint32_t, SpoolSliceStatus> results;
  for (std::uint32_t f = 0; f < 10; ++f) results[f] = write_frame(spool, 4, f).status;
  ASSERT_TRUE(spool.writes_failing());
  spool.end_run();

  const auto parts = st::files_in(spool.ready_dir(), ".daq");
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_LT(fs::file_size(spool.ready_dir() / parts[0]), 10'000u);  // the torn slice head was cut off
  EXPECT_TRUE(fs::is_empty(spool.open_dir()));
  const auto contents = check_sealed_parts(spool.ready_dir());
  expect_whole_slices(contents);
  ASSERT_FALSE(contents.summary_frames.empty());
  const auto& c = spool.run_counters();
  EXPECT_EQ(c.slices_written, contents.summary_frames.size());
  EXPECT_EQ(c.slices_written + c.slices_lost, 10u);
  EXPECT_EQ(c.events_lost, c.slices_lost * kEventsPerSlice);
  EXPECT_GT(c.slices_lost, 0u);
  // The slices in the file are the first ones, in order.
  for (std::size_t i = 0; i < contents.summary_frames.size(); ++i) EXPECT_EQ(contents.summary_frames[i], i);
  const auto run_manifest = st::read_json(spool.ready_dir() / Tier0Spool::run_manifest_name(kDetector, 4));
  EXPECT_EQ(run_manifest["summary_slices"].get<std::uint64_t>(), c.slices_written);
}

// Nothing reached the disk: no empty part is sealed, and the part number is used again later.
TEST(Tier0SpoolDiskFull, PartWithNothingWrittenIsNotSealed) {
  TempDir dir("spool-none");
  FakeDisk disk;
  disk.space_left = 0;
  auto config = config_on(dir.path(), disk);
  config.write_buffer_bytes = 1;  // every slice meets the full disk at once
  Tier0Spool spool(config);
  spool.begin_run(5, kDetector);
  for (std::uint32_t f = 0; f < 3; ++f) EXPECT_EQ(write_frame(spool, 5, f).status, SpoolSliceStatus::Pending) << f;
  spool.end_run();
  EXPECT_TRUE(st::files_in(spool.ready_dir(), ".daq").empty());
  EXPECT_TRUE(fs::is_empty(spool.open_dir()));
  EXPECT_EQ(spool.counters().slices_lost, 3u);
  EXPECT_EQ(spool.counters().parts_sealed, 0u);

  disk.space_left = SIZE_MAX;
  spool.begin_run(5, kDetector);
  EXPECT_EQ(write_frame(spool, 5, 3).status, SpoolSliceStatus::Accepted);
  spool.end_run();
  EXPECT_EQ(st::files_in(spool.ready_dir(), ".daq"),
            (std::vector<std::string>{Tier0Spool::part_file_name(kDetector, 5, 0)}));
  EXPECT_EQ(check_sealed_parts(spool.ready_dir()).summary_frames, (std::vector<std::uint32_t>{3}));
}

namespace {

// One line of the child's report through a pipe.
struct ChildRecord {
  std::uint32_t run = 0;
  std::uint32_t frame = 0;       // kCountersFrame: the counters of the run that just ended
  std::uint32_t status = 0;      // SpoolSliceStatus
  std::uint32_t unused = 0;
  std::uint64_t slices_lost = 0, slices_written = 0, partial_writes = 0, write_errors = 0;
};
constexpr std::uint32_t kCountersFrame = 0xffffffffu;

// The child: writes with the kernel refusing to let a file grow past `limit_bytes` (EFBIG and short
// writes, SIGXFSZ ignored). Run 40: the limit is lifted half-way and the run ends normally. Run 41:
// the run ends while the limit still holds.
[[noreturn]] void spool_under_file_size_limit(const fs::path& dir, int report_fd) {
  auto send = [report_fd](const ChildRecord& r) {
    if (::write(report_fd, &r, sizeof r) != static_cast<ssize_t>(sizeof r)) ::_exit(3);
  };
  auto send_counters = [&send](std::uint32_t run, const Tier0SpoolCounters& c) {
    send(ChildRecord{run, kCountersFrame, 0, 0, c.slices_lost, c.slices_written, c.partial_writes, c.write_errors});
  };
  try {
    ::signal(SIGXFSZ, SIG_IGN);
    rlimit unlimited{};
    if (::getrlimit(RLIMIT_FSIZE, &unlimited) != 0) ::_exit(4);
    rlimit limited = unlimited;
    limited.rlim_cur = 40'000;
    Tier0SpoolConfig config;
    config.directory = dir;
    config.fsync = true;
    config.write_buffer_bytes = 4096;
    config.max_pending_bytes = 16'000;
    Tier0Spool spool(config);

    if (::setrlimit(RLIMIT_FSIZE, &limited) != 0) ::_exit(5);
    spool.begin_run(40, kDetector);
    for (std::uint32_t f = 0; f < 70; ++f) {
      if (f == 50 && ::setrlimit(RLIMIT_FSIZE, &unlimited) != 0) ::_exit(6);
      send(ChildRecord{40, f, static_cast<std::uint32_t>(write_frame(spool, 40, f).status)});
    }
    spool.end_run();
    send_counters(40, spool.run_counters());

    if (::setrlimit(RLIMIT_FSIZE, &limited) != 0) ::_exit(7);
    spool.begin_run(41, kDetector);
    for (std::uint32_t f = 0; f < 30; ++f) {
      send(ChildRecord{41, f, static_cast<std::uint32_t>(write_frame(spool, 41, f).status)});
    }
    spool.end_run();
    send_counters(41, spool.run_counters());
  } catch (...) {
    ::_exit(2);
  }
  ::_exit(0);
}

}  // namespace

TEST(Tier0SpoolDiskFull, KernelFileSizeLimitNeverCorruptsASealedPart) {
  TempDir dir("spool-rlimit");
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(report[0]);
    spool_under_file_size_limit(dir.path(), report[1]);
  }
  ::close(report[1]);
  std::map<std::uint32_t, std::map<std::uint32_t, SpoolSliceStatus>> results;  // run -> frame -> status
  std::map<std::uint32_t, ChildRecord> counters;                               // run -> counters
  ChildRecord record;
  while (::read(report[0], &record, sizeof record) == static_cast<ssize_t>(sizeof record)) {
    if (record.frame == kCountersFrame) {
      counters[record.run] = record;
    } else {
      results[record.run][record.frame] = static_cast<SpoolSliceStatus>(record.status);
    }
  }
  ::close(report[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  ASSERT_EQ(counters.size(), 2u);

  // Run 40: the kernel refused writes (short writes, then EFBIG) until the limit was lifted.
  const auto run40 = check_sealed_parts(dir.path() / "ready", "KM3NeT_00000133_00000040_");
  expect_whole_slices(run40);
  EXPECT_EQ(run40.summary_frames, frames_with(results[40], false));
  const auto lost40 = frames_with(results[40], true);
  EXPECT_GT(lost40.size(), 0u);  // the pending bound was reached
  EXPECT_EQ(counters[40].slices_lost, lost40.size());
  EXPECT_EQ(counters[40].slices_written, 70u - lost40.size());
  EXPECT_GT(counters[40].partial_writes, 0u);
  EXPECT_GT(counters[40].write_errors, 0u);

  // Run 41: ended under the limit; the part holds the first slices whole, the rest is counted lost.
  const auto run41 = check_sealed_parts(dir.path() / "ready", "KM3NeT_00000133_00000041_");
  expect_whole_slices(run41);
  ASSERT_FALSE(run41.summary_frames.empty());
  for (std::size_t i = 0; i < run41.summary_frames.size(); ++i) EXPECT_EQ(run41.summary_frames[i], i);
  EXPECT_EQ(counters[41].slices_written, run41.summary_frames.size());
  EXPECT_EQ(counters[41].slices_written + counters[41].slices_lost, 30u);
  EXPECT_GT(counters[41].slices_lost, 0u);
  EXPECT_LE(run41.bytes, 40'000u);
  EXPECT_TRUE(fs::is_empty(dir.path() / "open"));
}

// Every stream of a slice (summary, events, timeslices, TMCH packets) is one unit on a full disk:
// past the pending bound whole slices are refused with all their objects, the run ends while the
// disk is still full, and what is in the sealed parts is whole slices, counted per kind.
TEST(Tier0SpoolDiskFull, EveryStreamOfASliceIsWrittenOrLostTogether) {
  TempDir dir("spool-streams-full");
  FakeDisk disk;
  disk.space_left = 30'000;
  auto config = config_on(dir.path(), disk);
  config.max_pending_bytes = 40'000;
  Tier0Spool spool(config);
  spool.begin_run(6, kDetector);
  constexpr std::size_t kDoms = 2;
  const std::vector<dataflow::TimesliceKind> kinds{dataflow::TimesliceKind::L1, dataflow::TimesliceKind::SN};
  std::map<std::uint32_t, SpoolSliceStatus> results;
  for (std::uint32_t f = 0; f < 30; ++f) {
    results[f] = spool.write_slice(st::make_products(kDetector, 6, f, kEventsPerSlice, kinds, kDoms)).status;
  }
  ASSERT_TRUE(spool.writes_failing());
  spool.end_run();

  const auto contents = check_sealed_parts(spool.ready_dir());
  expect_whole_slices(contents);
  ASSERT_FALSE(contents.summary_frames.empty());
  // A frame in the file has all its objects; one not in the file has none of them.
  for (const auto& frames : {contents.timeslice_frames[static_cast<std::size_t>(dataflow::TimesliceKind::L1)],
                             contents.timeslice_frames[static_cast<std::size_t>(dataflow::TimesliceKind::SN)]}) {
    EXPECT_EQ(frames, contents.summary_frames);
  }
  std::vector<std::uint32_t> expected_monitoring;
  for (const std::uint32_t f : contents.summary_frames) expected_monitoring.insert(expected_monitoring.end(), kDoms, f);
  EXPECT_EQ(contents.monitoring_frames, expected_monitoring);
  const auto& c = spool.run_counters();
  EXPECT_GT(c.slices_lost, 0u);
  EXPECT_GT(frames_with(results, true).size(), 0u);  // some refused whole while the disk was full
  EXPECT_EQ(c.slices_written + c.slices_lost, 30u);
  EXPECT_EQ(c.timeslices_written, 2 * c.slices_written);
  EXPECT_EQ(c.timeslices_lost, 2 * c.slices_lost);
  EXPECT_EQ(c.monitoring_written, kDoms * c.slices_written);
  EXPECT_EQ(c.monitoring_lost, kDoms * c.slices_lost);
}
