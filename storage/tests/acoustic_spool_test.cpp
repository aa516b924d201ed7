// The acoustic spool: TAES datagrams as .dqd records in sealed, checksummed parts beside the run
// files; write() never touches the disk; a full disk loses whole records, counted per DOM; a crash
// leaves nothing unsealed.

#include "shoredaq/storage/acoustic_spool.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <thread>

#include "shoredaq/formats/clb_datagram.hpp"
#include "shoredaq/formats/record_stream.hpp"
#include "shoredaq/storage/tier0_spool.hpp"
#include "storage_test_support.hpp"
#include "tier0_spool_test_support.hpp"

using namespace shoredaq;
using namespace shoredaq::storage;
namespace st = shoredaq::storage::testing;
namespace fs = std::filesystem;

namespace {

constexpr std::int32_t kDetector = 133;
// A time at which the default flush interval (1 s) has passed, and the part age limit (1 h) not.
std::chrono::steady_clock::time_point due() { return std::chrono::steady_clock::now() + std::chrono::seconds(2); }

// A TAES datagram of `dom` in slice `slice` with `samples` 3-byte samples (value = index).
std::vector<std::uint8_t> taes(std::uint32_t dom, std::uint32_t slice, std::size_t samples = 64) {
  dataflow::ClbHeader h;
  h.data_type = dataflow::DataType::Acoustic;
  h.run_number = 1;
  h.utc_seconds = 1'700'000'000u + slice / 10;
  h.ticks_16ns = (slice % 10) * dataflow::kTicksPerSlice;
  h.dom_id = dom;
  h.status1 = dataflow::kStatus1WhiteRabbitOk;
  std::vector<std::uint8_t> d;
  dataflow::encode_clb_header(h, dataflow::HeaderLayout::Standard40, d);
  for (std::size_t i = 0; i < samples; ++i) {
    d.push_back(static_cast<std::uint8_t>(slice));
    d.push_back(static_cast<std::uint8_t>(i >> 8));
    d.push_back(static_cast<std::uint8_t>(i));
  }
  return d;
}

AcousticSpoolConfig config_for(const fs::path& dir) {
  AcousticSpoolConfig c;
  c.directory = dir;
  c.fsync = false;
  return c;
}

// Every record of the sealed acoustic parts in ready/ (parts in name order), each part checked
// against its manifest: size, checksums, datagram counts in total and per DOM.
std::vector<std::vector<std::uint8_t>> check_acoustic_parts(const fs::path& ready) {
  std::vector<std::vector<std::uint8_t>> all;
  for (const auto& name : st::files_in(ready, ".acoustic.dqd")) {
    const auto bytes = st::read_bytes(ready / name);
    const auto manifest = st::read_json(ready / (name + ".json"));
    Adler32 adler;
    adler.update(bytes);
    Md5 md5;
    md5.update(bytes);
    EXPECT_EQ(manifest["bytes"].get<std::uint64_t>(), bytes.size()) << name;
    EXPECT_EQ(manifest["adler32"].get<std::string>(), adler.hex()) << name;
    EXPECT_EQ(manifest["md5"].get<std::string>(), md5.hex()) << name;
    EXPECT_EQ(manifest["data_type"], "acoustic") << name;
    EXPECT_TRUE(validate_tier0_manifest(manifest.dump()).empty()) << name;
    const auto records = dataflow::read_dqd_file(ready / name);
    EXPECT_EQ(manifest["datagrams"].get<std::size_t>(), records.size()) << name;
    std::map<std::string, std::uint64_t> per_dom;
    for (const auto& r : records) {
      EXPECT_TRUE(dataflow::parse_clb_datagram(r)) << name;
      ++per_dom[std::to_string(dataflow::parse_clb_datagram(r).datagram.header.dom_id)];
    }
    EXPECT_EQ(manifest["datagrams_per_dom"], nlohmann::json(per_dom)) << name;
    all.insert(all.end(), records.begin(), records.end());
  }
  return all;
}

}  // namespace

TEST(AcousticSpool, FileNames) {
  EXPECT_EQ(AcousticSpool::part_file_name(49, 1234, 7), "KM3NeT_00000049_00001234_0007.acoustic.dqd");
  const auto parsed = AcousticSpool::parse_part_file_name("KM3NeT_00000049_00001234_0007.acoustic.dqd");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->detector_id, 49);
  EXPECT_EQ(parsed->run, 1234u);
  EXPECT_EQ(parsed->part, 7u);
  EXPECT_FALSE(AcousticSpool::parse_part_file_name("KM3NeT_00000049_00001234_0007.daq"));
  EXPECT_FALSE(AcousticSpool::parse_part_file_name("KM3NeT_00000049_00001234_0007.acoustic.dqd.json"));
  EXPECT_FALSE(Tier0Spool::parse_part_file_name("KM3NeT_00000049_00001234_0007.acoustic.dqd"));
  EXPECT_TRUE(is_spool_part_file_name("KM3NeT_00000049_00001234_0007.acoustic.dqd"));
  EXPECT_TRUE(is_spool_part_file_name("KM3NeT_00000049_00001234_0007.daq"));
  EXPECT_FALSE(is_spool_part_file_name("KM3NeT_00000049_00001234.acoustic.run.json"));
  EXPECT_EQ(AcousticSpool::run_manifest_name(49, 1234), "KM3NeT_00000049_00001234.acoustic.run.json");
  EXPECT_TRUE(AcousticSpool::parse_run_provenance_name(AcousticSpool::run_provenance_name(49, 1234)));
  EXPECT_FALSE(Tier0Spool::parse_run_provenance_name(AcousticSpool::run_provenance_name(49, 1234)));
}

TEST(AcousticSpool, DatagramsAreSealedAsRecordsThatReplayWithCountsPerDom) {
  st::TempDir dir("acoustic");
  AcousticSpool spool(config_for(dir.path()));
  spool.begin_run(3, kDetector);
  std::vector<std::vector<std::uint8_t>> sent;
  for (std::uint32_t slice = 0; slice < 20; ++slice) {
    for (std::uint32_t dom = 801; dom <= 803; ++dom) {
      sent.push_back(taes(dom, slice));
      EXPECT_EQ(spool.write(sent.back(), dom), AcousticWriteStatus::Accepted);
    }
    spool.flush_if_due(due());
  }
  spool.end_run();
  EXPECT_TRUE(fs::is_empty(spool.open_dir()));
  EXPECT_EQ(check_acoustic_parts(spool.ready_dir()), sent);  // byte for byte, in order
  const auto part = st::read_json(spool.ready_dir() / (AcousticSpool::part_file_name(kDetector, 3, 0) + ".json"));
  EXPECT_EQ(part["datagrams"], 60);
  EXPECT_EQ(part["datagrams_per_dom"]["802"], 20);
  EXPECT_EQ(part["utc_start"], "2023-11-14T22:13:20.000000000Z");
  EXPECT_EQ(part["utc_end"], "2023-11-14T22:13:22.000000000Z");
  const auto run = st::read_json(spool.ready_dir() / AcousticSpool::run_manifest_name(kDetector, 3));
  EXPECT_EQ(run["datagrams"], 60);
  EXPECT_EQ(run["parts"].size(), 1u);
  const auto c = spool.run_counters();
  EXPECT_EQ(c.datagrams_written, 60u);
  EXPECT_EQ(c.datagrams_lost, 0u);
  EXPECT_EQ(c.parts_sealed, 1u);
  EXPECT_EQ(spool.dom_counts().at(801), (AcousticDomCounts{20, 0}));
  EXPECT_FALSE(fs::exists(spool.runs_dir() / AcousticSpool::run_provenance_name(kDetector, 3)));
}

TEST(AcousticSpool, PartsRollAtTheSizeLimitAndKeepEveryRecordOnce) {
  st::TempDir dir("acoustic-roll");
  auto config = config_for(dir.path());
  config.max_file_bytes = 1500;  // ~5 records of 236 bytes per part
  AcousticSpool spool(config);
  spool.begin_run(4, kDetector);
  std::vector<std::vector<std::uint8_t>> sent;
  for (std::uint32_t slice = 0; slice < 30; ++slice) {
    sent.push_back(taes(900, slice));
    spool.write(sent.back(), 900);
    spool.flush_if_due(due());
  }
  spool.end_run();
  EXPECT_GE(st::files_in(spool.ready_dir(), ".acoustic.dqd").size(), 5u);
  EXPECT_EQ(check_acoustic_parts(spool.ready_dir()), sent);
  const auto run = st::read_json(spool.ready_dir() / AcousticSpool::run_manifest_name(kDetector, 4));
  EXPECT_EQ(run["datagrams"], 30);
  EXPECT_EQ(run["datagrams_per_dom"]["900"], 30);
}

TEST(AcousticSpool, APartOpenLongerThanTheAgeLimitIsSealed) {
  st::TempDir dir("acoustic-age");
  auto config = config_for(dir.path());
  config.max_file_age = std::chrono::seconds(60);
  AcousticSpool spool(config);
  spool.begin_run(12, kDetector);
  spool.write(taes(901, 0), 901);
  spool.flush_if_due(due());
  EXPECT_EQ(spool.counters().parts_sealed, 0u);
  spool.flush_if_due(std::chrono::steady_clock::now() + std::chrono::minutes(2));  // nothing new, but old
  EXPECT_EQ(spool.counters().parts_sealed, 1u);
  EXPECT_TRUE(fs::is_empty(spool.open_dir()));
  spool.write(taes(901, 1), 901);
  spool.end_run();
  EXPECT_EQ(check_acoustic_parts(spool.ready_dir()).size(), 2u);
  EXPECT_EQ(st::files_in(spool.ready_dir(), ".acoustic.dqd").size(), 2u);
}

// The builder thread calls write(): it must never wait on the disk.
TEST(AcousticSpool, WriteNeverTouchesTheDiskOnlyADueFlushDoes) {
  st::TempDir dir("acoustic-nodisk");
  std::atomic<unsigned> disk_writes{0};
  auto config = config_for(dir.path());
  config.flush_interval = std::chrono::hours(1);
  config.write = [&](int fd, const void* data, std::size_t bytes) {
    ++disk_writes;
    return ::write(fd, data, bytes);
  };
  AcousticSpool spool(config);
  spool.begin_run(5, kDetector);
  for (std::uint32_t i = 0; i < 100; ++i) spool.write(taes(1, i), 1);
  spool.flush_if_due();  // not due: an hour's interval, and far below the write buffer
  EXPECT_EQ(disk_writes.load(), 0u);
  EXPECT_GT(spool.pending_bytes(), 0u);
  spool.flush_if_due(std::chrono::steady_clock::now() + std::chrono::hours(2));
  EXPECT_GT(disk_writes.load(), 0u);
  EXPECT_EQ(spool.pending_bytes(), 0u);
  spool.end_run();
}

TEST(AcousticSpool, RefusesWhatIsNotAcousticAndWhatComesOutsideARun) {
  st::TempDir dir("acoustic-refuse");
  AcousticSpool spool(config_for(dir.path()));
  EXPECT_EQ(spool.write(taes(1, 0), 1), AcousticWriteStatus::OutsideRun);
  spool.begin_run(6, kDetector);
  auto optical = taes(1, 0);
  std::memcpy(optical.data(), "TTDC", 4);
  EXPECT_EQ(spool.write(optical, 1), AcousticWriteStatus::Bad);
  const std::vector<std::uint8_t> stub{'T', 'A', 'E', 'S', 0, 0};
  EXPECT_EQ(spool.write(stub, 1), AcousticWriteStatus::Bad);
  EXPECT_EQ(spool.write(std::vector<std::uint8_t>(70'000, 'T'), 1), AcousticWriteStatus::Bad);
  spool.end_run();
  EXPECT_EQ(spool.write(taes(1, 0), 1), AcousticWriteStatus::OutsideRun);
  const auto c = spool.counters();
  EXPECT_EQ(c.datagrams_outside_run, 2u);
  EXPECT_EQ(c.datagrams_bad, 3u);
  EXPECT_EQ(c.datagrams_written, 0u);
  EXPECT_TRUE(st::files_in(spool.ready_dir(), ".acoustic.dqd").empty());  // no empty part
}

// Flushes that cannot keep up: the batch is bounded, what does not fit is lost, counted per DOM.
TEST(AcousticSpool, TheBatchIsBoundedAndOverflowIsCountedPerDom) {
  st::TempDir dir("acoustic-bound");
  auto config = config_for(dir.path());
  config.max_pending_bytes = 10 * (4 + taes(1, 0).size());
  AcousticSpool spool(config);
  spool.begin_run(7, kDetector);
  unsigned lost = 0;
  for (std::uint32_t i = 0; i < 25; ++i) {
    const std::uint32_t dom = 10 + i % 2;
    if (spool.write(taes(dom, i), dom) == AcousticWriteStatus::Lost) ++lost;
    EXPECT_LE(spool.pending_bytes(), config.max_pending_bytes);
  }
  EXPECT_EQ(lost, 15u);
  spool.end_run();
  const auto c = spool.run_counters();
  EXPECT_EQ(c.datagrams_written, 10u);
  EXPECT_EQ(c.datagrams_lost, 15u);
  dataflow::CounterSet counters;
  AcousticSpool::describe(c, counters);
  EXPECT_EQ(counters.value("acoustic.datagrams_written"), 10u);
  EXPECT_EQ(counters.value("acoustic.datagrams_lost", true), 15u);
  const auto doms = spool.dom_counts();
  EXPECT_EQ(doms.at(10).written + doms.at(11).written, 10u);
  EXPECT_EQ(doms.at(10).lost + doms.at(11).lost, 15u);
  EXPECT_EQ(check_acoustic_parts(spool.ready_dir()).size(), 10u);
}

// A disk that fills: the write stops inside a record; the file is cut back to its last whole
// record, the rest of the batch is lost (counted per DOM), and writing resumes once space is back.
TEST(AcousticSpool, AFullDiskLosesWholeRecordsOnlyAndTheSealedPartMatchesItsManifest) {
  st::TempDir dir("acoustic-full");
  std::size_t space_left = 1000;
  auto config = config_for(dir.path());
  config.write = [&](int fd, const void* data, std::size_t bytes) -> ssize_t {
    if (space_left == 0) {
      errno = ENOSPC;
      return -1;
    }
    const ssize_t n = ::write(fd, data, std::min(bytes, space_left));
    if (n > 0) space_left -= static_cast<std::size_t>(n);
    return n;
  };
  AcousticSpool spool(config);
  spool.begin_run(8, kDetector);
  std::vector<std::vector<std::uint8_t>> sent;
  for (std::uint32_t i = 0; i < 10; ++i) {
    sent.push_back(taes(20 + i % 2, i));
    spool.write(sent.back(), 20 + i % 2);
  }
  spool.flush_if_due(due());  // 4 records of 236 bytes fit in 1000, the 5th is torn
  EXPECT_EQ(spool.run_counters().datagrams_written, 4u);
  EXPECT_EQ(spool.run_counters().datagrams_lost, 6u);
  EXPECT_GT(spool.run_counters().write_errors, 0u);
  space_left = SIZE_MAX;
  for (std::uint32_t i = 10; i < 15; ++i) {
    sent.push_back(taes(20 + i % 2, i));
    spool.write(sent.back(), 20 + i % 2);
  }
  spool.end_run();

  std::vector<std::vector<std::uint8_t>> kept(sent.begin(), sent.begin() + 4);
  kept.insert(kept.end(), sent.begin() + 10, sent.end());
  EXPECT_EQ(check_acoustic_parts(spool.ready_dir()), kept);  // no torn record, no hole
  const auto c = spool.run_counters();
  EXPECT_EQ(c.datagrams_written, 9u);
  EXPECT_EQ(c.datagrams_lost, 6u);
  const auto doms = spool.dom_counts();
  EXPECT_EQ(doms.at(20).written + doms.at(20).lost + doms.at(21).written + doms.at(21).lost, 15u);
  EXPECT_EQ(doms.at(20).lost + doms.at(21).lost, 6u);
}

// kill -9 between two flushes: the next start seals the part with its whole records (flagged
// recovered, with the run's provenance), keeps the torn tail in damaged/ and closes the run.
TEST(AcousticSpool, AKilledWriterLeavesNothingUnsealed) {
  st::TempDir dir("acoustic-crash");
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    AcousticSpool spool(config_for(dir.path()));
    RunProvenance provenance;
    provenance.run_type = "calibration";
    spool.begin_run(9, kDetector, provenance);
    for (std::uint32_t i = 0; i < 12; ++i) spool.write(taes(30, i), 30);
    spool.flush_if_due(due());
    ::kill(::getpid(), SIGKILL);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status));
  const fs::path leftover = dir.path() / "open" / AcousticSpool::part_file_name(kDetector, 9, 0);
  ASSERT_TRUE(fs::exists(leftover));
  {
    std::ofstream torn(leftover, std::ios::binary | std::ios::app);
    torn.write("\x30\x01\x00\x00TAES", 8);  // a record whose datagram never arrived
  }

  AcousticSpool spool(config_for(dir.path()));
  EXPECT_EQ(spool.counters().parts_recovered, 1u);
  EXPECT_EQ(spool.counters().damaged_bytes, 8u);
  EXPECT_TRUE(fs::is_empty(spool.open_dir()));
  const auto records = check_acoustic_parts(spool.ready_dir());
  EXPECT_EQ(records.size(), 12u);
  const auto m = st::read_json(spool.ready_dir() / (AcousticSpool::part_file_name(kDetector, 9, 0) + ".json"));
  EXPECT_EQ(m["recovered"], true);
  EXPECT_EQ(m["run_type"], "calibration");
  EXPECT_EQ(m["damaged_bytes"], 8);
  const auto run = st::read_json(spool.ready_dir() / AcousticSpool::run_manifest_name(kDetector, 9));
  EXPECT_EQ(run["state"], "recovered after a crash");
  EXPECT_TRUE(fs::exists(spool.damaged_dir() / (AcousticSpool::part_file_name(kDetector, 9, 0) + ".partial")));
  EXPECT_FALSE(fs::exists(spool.runs_dir() / AcousticSpool::run_provenance_name(kDetector, 9)));
  // The next run of the same number continues after the recovered part.
  spool.begin_run(9, kDetector);
  EXPECT_EQ(spool.write(taes(30, 99), 30), AcousticWriteStatus::Accepted);
  spool.end_run();
  EXPECT_TRUE(fs::exists(spool.ready_dir() / AcousticSpool::part_file_name(kDetector, 9, 1)));
}

// Both spools on one directory after a crash: each recovers its own parts, neither touches the other's.
TEST(AcousticSpool, SharesTheSpoolWithTheRunFiles) {
  st::TempDir dir("acoustic-shared");
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    Tier0SpoolConfig tc;
    tc.directory = dir.path();
    tc.fsync = false;
    tc.write_buffer_bytes = 1;  // every slice written at once
    Tier0Spool run_files(tc);
    AcousticSpool acoustic(config_for(dir.path()));
    run_files.begin_run(10, kDetector);
    acoustic.begin_run(10, kDetector);
    for (std::uint32_t f = 0; f < 5; ++f) {
      const auto events = st::make_slice_events(kDetector, 10, f, 2);
      const auto summary = st::make_summary(kDetector, 10, f);
      run_files.write_slice(events, &summary);
      acoustic.write(taes(40, f), 40);
    }
    acoustic.flush_if_due(due());
    ::kill(::getpid(), SIGKILL);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);

  Tier0SpoolConfig tc;
  tc.directory = dir.path();
  tc.fsync = false;
  Tier0Spool run_files(tc);  // first: must not take the acoustic part for a stranger
  AcousticSpool acoustic(config_for(dir.path()));
  EXPECT_EQ(run_files.counters().parts_recovered, 1u);
  EXPECT_EQ(acoustic.counters().parts_recovered, 1u);
  EXPECT_TRUE(fs::is_empty(run_files.damaged_dir()));
  EXPECT_EQ(check_acoustic_parts(acoustic.ready_dir()).size(), 5u);
  EXPECT_EQ(st::check_sealed_parts(run_files.ready_dir()).summary_frames.size(), 5u);
  EXPECT_TRUE(fs::exists(dir.path() / "ready" / Tier0Spool::run_manifest_name(kDetector, 10)));
  EXPECT_TRUE(fs::exists(dir.path() / "ready" / AcousticSpool::run_manifest_name(kDetector, 10)));
}

// The builder thread writes while another thread flushes: every datagram is written or counted.
TEST(AcousticSpool, ConcurrentWritesAndFlushesLoseNothingUncounted) {
  st::TempDir dir("acoustic-threads");
  auto config = config_for(dir.path());
  config.flush_interval = std::chrono::milliseconds(0);
  config.max_file_bytes = 50'000;
  AcousticSpool spool(config);
  spool.begin_run(11, kDetector);
  std::atomic<bool> done{false};
  std::thread flusher([&] {
    while (!done.load()) spool.flush_if_due();
  });
  constexpr std::uint32_t kDatagrams = 3000;
  for (std::uint32_t i = 0; i < kDatagrams; ++i) spool.write(taes(50 + i % 4, i, 16), 50 + i % 4);
  done = true;
  flusher.join();
  spool.end_run();
  const auto c = spool.run_counters();
  EXPECT_EQ(c.datagrams_written + c.datagrams_lost, kDatagrams);
  EXPECT_EQ(check_acoustic_parts(spool.ready_dir()).size(), c.datagrams_written);
}
