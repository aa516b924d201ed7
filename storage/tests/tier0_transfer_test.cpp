// The Tier-0 transfer agent against an in-memory computing centre: what reaches done/, what is
// counted, retried and alarmed, and what is never accepted or deleted.
#include "shoredaq/storage/tier0_transfer.hpp"

#include <gtest/gtest.h>

#include <fstream>

#include "shoredaq/formats/clb_datagram.hpp"
#include "shoredaq/storage/acoustic_spool.hpp"
#include "tier0_spool_test_support.hpp"
#include "tier0_transfer_test_support.hpp"

using namespace shoredaq::storage;
using namespace shoredaq::storage::testing;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr std::uint32_t kRun = 14728;

Tier0TransferConfig config_for(const fs::path& spool) {
  Tier0TransferConfig c;
  c.spool_dir = spool;
  c.endpoint = "root://fake";
  c.backoff.initial = 1000ms;
  c.backoff.max = 8000ms;
  c.alarm_after_failures = 3;
  c.chunk_bytes = 4096;  // several chunks per part
  c.fsync = false;
  return c;
}

std::string remote_path(const std::string& file) { return "/km3net/raw/sea/KM3NeT_00000133/14/" + file; }

std::string failures_text(const Tier0TransferCounters& c) {
  std::string s;
  for (std::size_t k = 0; k < kTransferFailureKinds; ++k) {
    s += std::string(to_string(static_cast<TransferFailure>(k))) + "=" + std::to_string(c.failures[k]) + " ";
  }
  return s;
}

// Every file due now gets one attempt; returns the outcomes in order.
std::vector<TransferOutcome> attempt_all_due(Tier0TransferAgent& agent, Tier0Remote& remote, BandwidthLimiter& limiter) {
  agent.scan();
  std::vector<TransferOutcome> outcomes;
  while (const auto file = agent.claim_next()) outcomes.push_back(agent.transfer(*file, remote, limiter));
  return outcomes;
}

std::uint64_t failures(const Tier0TransferAgent& agent, TransferFailure kind) {
  return agent.status().counters.failures[static_cast<std::size_t>(kind)];
}

void flip_byte(const fs::path& path, std::uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.get(c);
  f.seekp(static_cast<std::streamoff>(offset));
  f.put(static_cast<char>(c ^ 0x5a));
}

struct Rig {
  TempDir dir{"transfer"};
  FakeRemote remote;
  FakeClock clock;
  BandwidthLimiter unlimited;
  std::vector<std::string> parts;
  explicit Rig(unsigned part_count = 2) { parts = seal_parts(dir.path(), kRun, part_count); }
  fs::path ready() const { return dir.path() / "ready"; }
  fs::path done() const { return dir.path() / "done"; }
};

}  // namespace

TEST(Tier0Transfer, SealedPartsArriveVerifiedUnderTheLayoutAndMoveToDone) {
  Rig rig(3);
  Tier0TransferAgent agent(config_for(rig.dir.path()), rig.clock);
  EXPECT_EQ(agent.scan(), 3u);
  const auto outcomes = attempt_all_due(agent, rig.remote, rig.unlimited);
  EXPECT_EQ(outcomes, std::vector<TransferOutcome>(3, TransferOutcome::Transferred));
  for (const auto& file : rig.parts) {
    EXPECT_FALSE(fs::exists(rig.ready() / file)) << file;
    EXPECT_FALSE(fs::exists(rig.ready() / (file + ".json"))) << file;
    EXPECT_FALSE(fs::exists(rig.ready() / Tier0TransferAgent::record_name(file))) << file;
    ASSERT_TRUE(fs::exists(rig.done() / file)) << file;
    EXPECT_TRUE(fs::exists(rig.done() / (file + ".json"))) << file;
    ASSERT_TRUE(rig.remote.files.contains(remote_path(file))) << file;
    EXPECT_EQ(rig.remote.files[remote_path(file)], read_bytes(rig.done() / file)) << file;
    EXPECT_FALSE(rig.remote.files.contains(remote_path(file) + ".part")) << file;
    const auto record = Tier0TransferAgent::read_record(rig.done() / Tier0TransferAgent::record_name(file));
    ASSERT_TRUE(record) << file;
    EXPECT_TRUE(record->verified);
    EXPECT_EQ(record->attempts, 1u);
    EXPECT_EQ(record->remote_url, "root://fake//km3net/raw/sea/KM3NeT_00000133/14/" + file);
  }
  const auto status = agent.status();
  EXPECT_EQ(status.counters.files_transferred, 3u);
  EXPECT_EQ(status.files_waiting, 0u);
  EXPECT_EQ(status.alarm, "");
  // The spool's own view: the whole run is safe, so the store may prune it.
  Tier0SpoolConfig spool_config;
  spool_config.directory = rig.dir.path();
  spool_config.fsync = false;
  EXPECT_TRUE(Tier0Spool(spool_config).transferred(kRun));
}

TEST(Tier0Transfer, ServerDownFilesWaitAreCountedBackOffAndRaiseTheAlarmAfterTheThreshold) {
  Rig rig(2);
  rig.remote.down = true;
  Tier0TransferAgent agent(config_for(rig.dir.path()), rig.clock);
  EXPECT_EQ(attempt_all_due(agent, rig.remote, rig.unlimited), std::vector<TransferOutcome>(2, TransferOutcome::Failed));
  EXPECT_FALSE(agent.claim_next()) << "retried before its backoff";
  // Waits: 1 s, 2 s (doubling), and the alarm once 3 attempts in a row failed.
  for (const auto wait : {1000ms, 2000ms}) {
    EXPECT_EQ(*agent.next_due() - rig.clock.utc_now(), wait);
    EXPECT_EQ(agent.status().alarm, "");
    rig.clock.advance(wait - 1ms);
    EXPECT_FALSE(agent.claim_next());
    rig.clock.advance(1ms);
    EXPECT_EQ(attempt_all_due(agent, rig.remote, rig.unlimited), std::vector<TransferOutcome>(2, TransferOutcome::Failed));
  }
  const auto status = agent.status();
  EXPECT_EQ(failures(agent, TransferFailure::Unreachable), 6u) << failures_text(status.counters);
  EXPECT_EQ(status.files_waiting, 2u);
  EXPECT_EQ(status.files_failing, 2u);
  EXPECT_NE(status.alarm.find("2 file(s) not transferred after 3"), std::string::npos) << status.alarm;
  EXPECT_NE(status.alarm.find("Connection error"), std::string::npos) << status.alarm;
  for (const auto& file : rig.parts) {
    EXPECT_TRUE(fs::exists(rig.ready() / file));
    const auto record = Tier0TransferAgent::read_record(rig.ready() / Tier0TransferAgent::record_name(file));
    ASSERT_TRUE(record);
    EXPECT_EQ(record->consecutive_failures, 3u);
    EXPECT_EQ(record->last_failure, "unreachable");
    EXPECT_NE(record->remote_url, "");
  }
  // The status file says the same.
  ASSERT_TRUE(agent.write_status_file());
  const auto j = read_json(agent.status_file());
  EXPECT_EQ(j["files_waiting"], 2);
  EXPECT_EQ(j["counters"]["failures"]["unreachable"], 6);
  EXPECT_TRUE(j["alarm"].is_string());

  // The server comes back: everything goes, the alarm clears.
  rig.remote.down = false;
  rig.clock.advance(4000ms);
  EXPECT_EQ(attempt_all_due(agent, rig.remote, rig.unlimited), std::vector<TransferOutcome>(2, TransferOutcome::Transferred));
  EXPECT_EQ(agent.status().alarm, "");
  EXPECT_EQ(agent.status().files_waiting, 0u);
}

TEST(Tier0Transfer, BackoffIsCappedHoweverLongTheOutage) {
  Rig rig(1);
  rig.remote.down = true;
  Tier0TransferAgent agent(config_for(rig.dir.path()), rig.clock);
  std::chrono::milliseconds last{0};
  for (int attempt = 0; attempt < 12; ++attempt) {
    EXPECT_EQ(attempt_all_due(agent, rig.remote, rig.unlimited), std::vector<TransferOutcome>{TransferOutcome::Failed});
    last = std::chrono::duration_cast<std::chrono::milliseconds>(*agent.next_due() - rig.clock.utc_now());
    rig.clock.advance(last);
  }
  EXPECT_EQ(last, 8000ms);
}

TEST(Tier0Transfer, ARestartedAgentResumesFromTheRecordInTheSpool) {
  Rig rig(1);
  rig.remote.down = true;
  {
    Tier0TransferAgent first(config_for(rig.dir.path()), rig.clock);
    attempt_all_due(first, rig.remote, rig.unlimited);
    rig.clock.advance(1000ms);
    attempt_all_due(first, rig.remote, rig.unlimited);
  }
  rig.remote.down = false;
  Tier0TransferAgent second(config_for(rig.dir.path()), rig.clock);
  second.scan();
  // The backoff of the second failure (2 s) still holds after the restart.
  EXPECT_FALSE(second.claim_next());
  rig.clock.advance(2000ms);
  EXPECT_EQ(attempt_all_due(second, rig.remote, rig.unlimited), std::vector<TransferOutcome>{TransferOutcome::Transferred});
  const auto record = Tier0TransferAgent::read_record(rig.done() / Tier0TransferAgent::record_name(rig.parts[0]));
  ASSERT_TRUE(record);
  EXPECT_EQ(record->attempts, 3u);
  EXPECT_EQ(record->first_attempt_utc.substr(0, 4), "2023");
}

TEST(Tier0Transfer, ACopyAlreadyAtTheRemoteIsCheckedNeverTrusted) {
  Rig rig(2);
  // Part 0: the right bytes are there already (an agent killed after its upload): not re-sent.
  rig.remote.files[remote_path(rig.parts[0])] = read_bytes(rig.ready() / rig.parts[0]);
  // Part 1: a copy of the right size with one byte wrong: counted, replaced.
  auto wrong = read_bytes(rig.ready() / rig.parts[1]);
  wrong[wrong.size() / 3] ^= 0x01;
  rig.remote.files[remote_path(rig.parts[1])] = wrong;
  Tier0TransferAgent agent(config_for(rig.dir.path()), rig.clock);
  EXPECT_EQ(attempt_all_due(agent, rig.remote, rig.unlimited),
            (std::vector<TransferOutcome>{TransferOutcome::AlreadyAtRemote, TransferOutcome::Transferred}));
  EXPECT_EQ(rig.remote.uploads_started, 1u);
  EXPECT_EQ(rig.remote.files[remote_path(rig.parts[1])], read_bytes(rig.done() / rig.parts[1]));
  const auto counters = agent.status().counters;
  EXPECT_EQ(counters.already_at_remote, 1u);
  EXPECT_EQ(counters.checksum_mismatches, 1u);
  EXPECT_EQ(counters.files_transferred, 2u);
}

TEST(Tier0Transfer, ARemoteCopyCorruptedAfterUploadIsNotAcceptedButResentAndCounted) {
  Rig rig(1);
  rig.remote.corrupt_on_close = true;
  Tier0TransferAgent agent(config_for(rig.dir.path()), rig.clock);
  EXPECT_EQ(attempt_all_due(agent, rig.remote, rig.unlimited), std::vector<TransferOutcome>{TransferOutcome::Failed});
  EXPECT_EQ(failures(agent, TransferFailure::ChecksumMismatch), 1u);
  EXPECT_EQ(agent.status().counters.checksum_mismatches, 1u);
  EXPECT_FALSE(rig.remote.files.contains(remote_path(rig.parts[0]))) << "a bad copy got the final name";
  EXPECT_FALSE(rig.remote.files.contains(remote_path(rig.parts[0]) + ".part")) << "the bad upload was left behind";
  EXPECT_TRUE(fs::exists(rig.ready() / rig.parts[0]));
  rig.clock.advance(1000ms);
  EXPECT_EQ(attempt_all_due(agent, rig.remote, rig.unlimited), std::vector<TransferOutcome>{TransferOutcome::Transferred});
  EXPECT_EQ(rig.remote.uploads_started, 2u);
  EXPECT_EQ(rig.remote.files[remote_path(rig.parts[0])], read_bytes(rig.done() / rig.parts[0]));
}

TEST(Tier0Transfer, AnUploadBrokenOffMidwayNeverCarriesTheFinalName) {
  Rig rig(1);
  const auto bytes = fs::file_size(rig.ready() / rig.parts[0]);
  rig.remote.break_upload_after_bytes = bytes / 2;
  Tier0TransferAgent agent(config_for(rig.dir.path()), rig.clock);
  EXPECT_EQ(attempt_all_due(agent, rig.remote, rig.unlimited), std::vector<TransferOutcome>{TransferOutcome::Failed});
  EXPECT_EQ(failures(agent, TransferFailure::Unreachable), 1u);
  EXPECT_EQ(rig.remote.files[remote_path(rig.parts[0]) + ".part"].size(), bytes / 2);
  EXPECT_FALSE(rig.remote.files.contains(remote_path(rig.parts[0])));
  EXPECT_TRUE(fs::exists(rig.ready() / rig.parts[0]));
  // The server is back: the partial is replaced, the whole file arrives.
  rig.remote.down = false;
  rig.remote.break_upload_after_bytes = 0;
  rig.clock.advance(1000ms);
  EXPECT_EQ(attempt_all_due(agent, rig.remote, rig.unlimited), std::vector<TransferOutcome>{TransferOutcome::Transferred});
  EXPECT_EQ(rig.remote.files[remote_path(rig.parts[0])].size(), bytes);
  EXPECT_FALSE(rig.remote.files.contains(remote_path(rig.parts[0]) + ".part"));
}

TEST(Tier0Transfer, ALocalFileThatNoLongerMatchesItsManifestIsNeverAcceptedNorDeleted) {
  Rig rig(2);
  flip_byte(rig.ready() / rig.parts[0], 100);                        // same size, other bytes
  fs::resize_file(rig.ready() / rig.parts[1], fs::file_size(rig.ready() / rig.parts[1]) - 10);  // short
  Tier0TransferAgent agent(config_for(rig.dir.path()), rig.clock);
  EXPECT_EQ(attempt_all_due(agent, rig.remote, rig.unlimited), std::vector<TransferOutcome>(2, TransferOutcome::Failed));
  EXPECT_EQ(failures(agent, TransferFailure::LocalMismatch), 2u);
  for (const auto& file : rig.parts) {
    EXPECT_TRUE(fs::exists(rig.ready() / file)) << file;
    EXPECT_FALSE(rig.remote.files.contains(remote_path(file))) << file;
    EXPECT_FALSE(rig.remote.files.contains(remote_path(file) + ".part")) << file;
  }
  // No threshold for damage: retrying will not heal it.
  EXPECT_NE(agent.status().alarm.find("local file or manifest damaged"), std::string::npos) << agent.status().alarm;
}

TEST(Tier0Transfer, AManifestWithoutAValidChecksumRaisesTheAlarmAndNothingIsSent) {
  Rig rig(1);
  auto manifest = read_json(rig.ready() / (rig.parts[0] + ".json"));
  manifest["adler32"] = "1234";  // not zero-padded: no catalogue takes it
  std::ofstream(rig.ready() / (rig.parts[0] + ".json")) << manifest.dump();
  Tier0TransferAgent agent(config_for(rig.dir.path()), rig.clock);
  EXPECT_EQ(attempt_all_due(agent, rig.remote, rig.unlimited), std::vector<TransferOutcome>{TransferOutcome::Failed});
  EXPECT_EQ(failures(agent, TransferFailure::ManifestInvalid), 1u);
  EXPECT_EQ(rig.remote.uploads_started, 0u);
  EXPECT_NE(agent.status().alarm, "");
}

TEST(Tier0Transfer, AManifestFromBeforeTheCatalogueFieldsIsStillSentAndCounted) {
  Rig rig(1);
  auto manifest = read_json(rig.ready() / (rig.parts[0] + ".json"));
  for (const char* key : {"manifest_version", "scope", "name", "bytes", "guid", "events_per_trigger", "software_version"}) {
    manifest.erase(key);
  }
  std::ofstream(rig.ready() / (rig.parts[0] + ".json")) << manifest.dump();
  Tier0TransferAgent agent(config_for(rig.dir.path()), rig.clock);
  EXPECT_EQ(attempt_all_due(agent, rig.remote, rig.unlimited), std::vector<TransferOutcome>{TransferOutcome::Transferred});
  EXPECT_EQ(agent.status().counters.manifests_incomplete, 1u);
}

TEST(Tier0Transfer, AMoveIntoDoneCutShortByACrashIsFinishedAtTheNextScan) {
  Rig rig(1);
  const std::string file = rig.parts[0];
  Tier0TransferAgent agent(config_for(rig.dir.path()), rig.clock);
  // The data reached done/, the manifest did not (crash between the two renames).
  fs::rename(rig.ready() / file, rig.done() / file);
  EXPECT_EQ(agent.scan(), 0u);
  EXPECT_TRUE(fs::exists(rig.done() / (file + ".json")));
  EXPECT_FALSE(fs::exists(rig.ready() / (file + ".json")));
  EXPECT_EQ(agent.status().counters.commits_finished, 1u);
  // A second manifest for a file done/ already describes is set aside, not lost.
  std::ofstream(rig.ready() / (file + ".json")) << "{}";
  agent.scan();
  EXPECT_TRUE(fs::exists(rig.dir.path() / "damaged" / (file + ".json.stray")));
  EXPECT_EQ(read_json(rig.done() / (file + ".json"))["name"], file);
}

TEST(Tier0Transfer, RetentionPrunesOnlyVerifiedDataInDoneAndTheRunStaysTransferred) {
  Rig rig(3);
  auto config = config_for(rig.dir.path());
  config.retention.max_age = std::chrono::hours{24 * 30};
  Tier0TransferAgent agent(config, rig.clock);
  attempt_all_due(agent, rig.remote, rig.unlimited);
  // A later run still waiting in ready/: never pruned, however old.
  const auto waiting = seal_parts(rig.dir.path(), kRun + 1, 1);
  EXPECT_TRUE(agent.prune_done().empty()) << "pruned before its time";
  rig.clock.advance(std::chrono::hours{24 * 30} + 1s);
  const auto pruned = agent.prune_done();
  EXPECT_EQ(pruned, rig.parts);
  for (const auto& file : rig.parts) {
    EXPECT_FALSE(fs::exists(rig.done() / file));
    EXPECT_TRUE(fs::exists(rig.done() / (file + ".json")));
  }
  EXPECT_TRUE(fs::exists(rig.ready() / waiting[0]));
  EXPECT_EQ(agent.status().counters.retention_files_pruned, 3u);
  Tier0SpoolConfig spool_config;
  spool_config.directory = rig.dir.path();
  spool_config.fsync = false;
  EXPECT_TRUE(Tier0Spool(spool_config).transferred(kRun));
  EXPECT_FALSE(Tier0Spool(spool_config).transferred(kRun + 1));
}

TEST(Tier0Transfer, TheBandwidthLimitPacesEveryUpload) {
  Rig rig(3);
  std::uint64_t total = 0;
  for (const auto& file : rig.parts) total += fs::file_size(rig.ready() / file);
  Tier0TransferAgent agent(config_for(rig.dir.path()), rig.clock);
  constexpr std::uint64_t kRate = 20'000;  // bytes/s; the parts hold tens of kB
  BandwidthLimiter limiter(kRate, 4096);
  EXPECT_EQ(attempt_all_due(agent, rig.remote, limiter), std::vector<TransferOutcome>(3, TransferOutcome::Transferred));
  // At most rate * t + burst bytes left in t: the waits add up to (total - burst) / rate at least.
  const double waited_s = std::chrono::duration<double>(rig.clock.waited).count();
  EXPECT_GE(waited_s, static_cast<double>(total - 4096) / kRate);
  EXPECT_LE(waited_s, static_cast<double>(total) / kRate + 0.001);
  // Unlimited: no wait at all.
  Rig free_rig(3);
  Tier0TransferAgent free_agent(config_for(free_rig.dir.path()), free_rig.clock);
  attempt_all_due(free_agent, free_rig.remote, free_rig.unlimited);
  EXPECT_EQ(free_rig.clock.waited.count(), 0);
}

TEST(Tier0Transfer, AStopDuringAnUploadIsNotCountedAsAFailure) {
  Rig rig(1);
  Tier0TransferAgent agent(config_for(rig.dir.path()), rig.clock);
  agent.scan();
  const std::atomic<bool> stop{true};
  const auto file = agent.claim_next();
  ASSERT_TRUE(file);
  EXPECT_EQ(agent.transfer(*file, rig.remote, rig.unlimited, &stop), TransferOutcome::Cancelled);
  const auto status = agent.status();
  EXPECT_EQ(status.files_failing, 0u);
  EXPECT_EQ(failures_text(status.counters), failures_text(Tier0TransferCounters{}));
  EXPECT_TRUE(agent.claim_next()) << "a stopped file must be due again at once";
}

// A file that left ready/ after the scan listed it (moved by another attempt, acknowledged by hand)
// is no failure: no count, no alarm.
TEST(Tier0Transfer, AFileGoneFromReadyAfterTheScanIsNoFailure) {
  Rig rig(1);
  Tier0TransferAgent agent(config_for(rig.dir.path()), rig.clock);
  agent.scan();
  const auto file = agent.claim_next();
  ASSERT_TRUE(file);
  Tier0SpoolConfig spool_config;
  spool_config.directory = rig.dir.path();
  spool_config.fsync = false;
  ASSERT_TRUE(Tier0Spool(spool_config).ack(*file));
  EXPECT_EQ(agent.transfer(*file, rig.remote, rig.unlimited), TransferOutcome::Gone);
  const auto status = agent.status();
  EXPECT_EQ(failures_text(status.counters), failures_text(Tier0TransferCounters{}));
  EXPECT_EQ(status.alarm, "");
  EXPECT_EQ(status.files_waiting, 0u);
  EXPECT_EQ(rig.remote.uploads_started, 0u);
}

// The acoustic parts share the spool: the agent moves them like the run files, verified, and the
// path template may sort them by data type.
TEST(Tier0Transfer, AcousticPartsAreTransferredLikeRunFiles) {
  Rig rig(1);
  {
    AcousticSpoolConfig ac;
    ac.directory = rig.dir.path();
    ac.fsync = false;
    AcousticSpool acoustic(ac);
    acoustic.begin_run(kRun, 133);
    for (std::uint32_t i = 0; i < 20; ++i) {
      shoredaq::dataflow::ClbHeader h;
      h.data_type = shoredaq::dataflow::DataType::Acoustic;
      h.utc_seconds = 1'700'000'000u;
      h.dom_id = 808;
      std::vector<std::uint8_t> d;
      shoredaq::dataflow::encode_clb_header(h, shoredaq::dataflow::HeaderLayout::Standard40, d);
      d.resize(d.size() + 500, static_cast<std::uint8_t>(i));
      acoustic.write(d, h.dom_id);
    }
    acoustic.end_run();
  }
  auto config = config_for(rig.dir.path());
  config.path_template = "/km3net/raw/sea/KM3NeT_{detector}/{data_type}/{file}";
  Tier0TransferAgent agent(config, rig.clock);
  EXPECT_EQ(agent.scan(), 2u);  // the run file and the acoustic part
  const auto outcomes = attempt_all_due(agent, rig.remote, rig.unlimited);
  EXPECT_EQ(outcomes, std::vector<TransferOutcome>(2, TransferOutcome::Transferred));
  const std::string acoustic_file = AcousticSpool::part_file_name(133, kRun, 0);
  ASSERT_TRUE(fs::exists(rig.done() / acoustic_file));
  EXPECT_TRUE(fs::exists(rig.done() / (acoustic_file + ".json")));
  const std::string remote = "/km3net/raw/sea/KM3NeT_00000133/acoustic/" + acoustic_file;
  ASSERT_TRUE(rig.remote.files.contains(remote));
  EXPECT_EQ(rig.remote.files[remote], read_bytes(rig.done() / acoustic_file));
  EXPECT_TRUE(rig.remote.files.contains("/km3net/raw/sea/KM3NeT_00000133/events/" + rig.parts[0]));
}
