// HIL: the raw-data ring buffer and its dumps (issue 12), with the real programs.
//  - A 60 s ring, du-sim feeding 70 s of detector time as fast as possible with back-pressure
//    (nothing lost): a dump of [T-30, T+20] s (T = 50 s in) requested with `shorectl dump` is a
//    sealed .dqd in spool/ready/ with a valid manifest, and `shoredaq replay` of it makes exactly
//    the live run's events of those slices; a dump older than the ring is refused with the
//    reason; the run loses nothing (no drop counter moves).
//  - kill -9 while a dump is being written: after the restart the ring's index is consistent
//    (every slice it lists reads back, RawSliceRing::verify()), the dump is DONE (sealed, its
//    manifest matching the file) or FAILED ("interrupted") with no file shipped, and the run files
//    already in the spool are untouched.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "hil_support.hpp"
#include "shoredaq/storage/checksums.hpp"
#include "shoredaq/storage/raw_slice_ring.hpp"
#include "shoredaq/storage/tier0_manifest.hpp"

using namespace hil;

namespace {

constexpr std::uint64_t kStartUtc = 1'765'000'000;  // du-sim's first slice, Unix seconds
constexpr std::uint64_t kSecondNs = 1'000'000'000ull;
constexpr unsigned kRingSeconds = 60;
constexpr unsigned kRingMb = 160;

std::string ring_toml() {
  return "[builder]\nbackpressure = true\nqueue_slices = 64\n[ring]\nenabled = true\nseconds = " +
         std::to_string(kRingSeconds) + "\nmax_mb = " + std::to_string(kRingMb) +
         "\nqueue_slices = 800\nsn_dump = false\n";
}

// A light 1-DU feed (the ring holds 60 s of it in well under max_mb), with muons to trigger on.
std::vector<std::string> feed_args(const Rig& rig, std::uint32_t run, unsigned slices, std::uint64_t seed) {
  auto a = rig.du_sim_args(run, slices, seed);
  a.insert(a.end(), {"--start-utc", std::to_string(kStartUtc), "--singles-hz", "500", "--muon-rate-hz", "20",
                     "--muon-yield", "400"});
  return a;
}

// Events keyed by what does not depend on where a run started: slice time, trigger, hits.
std::multiset<std::string> events_between(const fs::path& store, std::uint32_t run_number, std::uint64_t from_ns,
                                          std::uint64_t to_ns, const fs::path& scratch) {
  const auto r = run({program("shore-events"), "--store", store.string(), "events", "--run", std::to_string(run_number),
                      "--json"},
                     scratch);
  if (r.code != 0) throw std::runtime_error("shore-events events: " + r.err);
  std::multiset<std::string> out;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    const auto e = nlohmann::json::parse(line);
    const std::uint64_t t = e["utc_seconds"].get<std::uint64_t>() * kSecondNs + e["ticks_16ns"].get<std::uint64_t>() * 16;
    if (t < from_ns || t >= to_ns) continue;
    out.insert(nlohmann::json{{"t", t}, {"mask", e["trigger_mask"]}, {"triggered", e["triggered_hits"]},
                              {"snapshot", e["snapshot_hits"]}}
                   .dump());
  }
  return out;
}

std::optional<nlohmann::json> dump_record(const Rig& rig, const std::string& id) {
  const auto status = rig.status();
  if (!status.contains("ring")) return std::nullopt;
  for (const auto& d : status["ring"]["dumps"]) {
    if (d["id"] == id) return d;
  }
  return std::nullopt;
}

std::uint64_t drop_total(const nlohmann::json& status) {
  std::uint64_t n = 0;
  for (const auto& [k, v] : status["drops"].items()) n += v.get<std::uint64_t>();
  return n;
}

std::string adler32_of(const fs::path& file) {
  shoredaq::storage::Adler32 a;
  a.update(read_file(file));
  return a.hex();
}

}  // namespace

TEST(HilRing, ADumpOfTheLast60sReplaysIntoTheSameEventsAndAnOlderOneIsRefused) {
  Rig rig("ring-dump", "first:1", ring_toml());
  constexpr unsigned kSlices = 700;  // 70 s: the ring keeps the last 60
  constexpr std::uint32_t kRun = 1;
  rig.start_run(kRun);
  rig.feed(feed_args(rig, kRun, kSlices, 41));
  ASSERT_TRUE(rig.wait_slices(kSlices));
  ASSERT_TRUE(wait_until([&] { return rig.status()["ring"]["stored"].get<std::uint64_t>() >= kSlices; }, 60s))
      << rig.status()["ring"].dump(1);
  const auto before = rig.status();
  const auto& ring = before["ring"];
  EXPECT_EQ(ring["slices"], kRingSeconds * 10);
  EXPECT_EQ(ring["oldest_slice_ns"], (kStartUtc + 10) * kSecondNs);
  EXPECT_EQ(ring["skipped"]["queue_full"], 0);

  // [T-30, T+20] with T = 50 s into the feed: once as UTC, once as Unix seconds.
  const std::uint64_t from_ns = (kStartUtc + 20) * kSecondNs, to_ns = (kStartUtc + 70) * kSecondNs;
  const auto requested = rig.ctl({"dump", "--from", shoredaq::storage::format_utc_ns(from_ns), "--to",
                                  std::to_string(kStartUtc + 70), "--reason", "HIL external alert"});
  ASSERT_EQ(requested.code, 0) << requested.out << requested.err;
  EXPECT_EQ(requested.reply["dump"]["state"], "STARTED");
  const std::string id = requested.reply["dump"]["id"];
  nlohmann::json done;
  ASSERT_TRUE(wait_until([&] {
    const auto d = dump_record(rig, id);
    if (d && (*d)["state"] != "STARTED") done = *d;
    return !done.is_null();
  }, 60s));
  ASSERT_EQ(done["state"], "DONE") << done.dump(1);
  EXPECT_EQ(done["slices"], 500);
  EXPECT_EQ(done["missing_slices"], 0);
  std::printf("dump of %llu slices (%llu bytes) written in %.3f s\n", done["slices"].get<unsigned long long>(),
              done["bytes"].get<unsigned long long>(), done["seconds"].get<double>());
  testing::Test::RecordProperty("dump_seconds_500_slices", std::to_string(done["seconds"].get<double>()));

  // Older than the ring: refused, with the reason; shorectl says so and exits 1.
  const auto old = rig.ctl({"dump", "--from", std::to_string(kStartUtc), "--to", std::to_string(kStartUtc + 5), "--reason",
                            "too late"});
  EXPECT_EQ(old.code, 1);
  EXPECT_EQ(old.reply["dump"]["state"], "FAILED");
  EXPECT_NE(old.reply["error"].get<std::string>().find("window older than the ring's 60 s"), std::string::npos)
      << old.reply.dump();

  rig.stop_run();
  const auto after = rig.status();
  EXPECT_EQ(drop_total(after), 0u) << after["drops"].dump();  // data taking lost nothing, dump or not
  EXPECT_EQ(after["ring"]["dumps_by_state"]["DONE"], 1);
  EXPECT_EQ(after["ring"]["dumps_by_state"]["FAILED"], 1);

  // The sealed file and its manifest in spool/ready/.
  const fs::path file = rig.node().spool() / "ready" / done["file"].get<std::string>();
  ASSERT_TRUE(fs::exists(file));
  const auto manifest = nlohmann::json::parse(read_file(file.string() + ".json"));
  EXPECT_TRUE(shoredaq::storage::validate_tier0_manifest(manifest.dump()).empty()) << manifest.dump(1);
  EXPECT_EQ(manifest["data_type"], "dumps");
  EXPECT_EQ(manifest["bytes"], fs::file_size(file));
  EXPECT_EQ(manifest["adler32"], adler32_of(file));
  EXPECT_EQ(manifest["dump"]["reason"], "HIL external alert");
  EXPECT_EQ(manifest["dump"]["slices"], 500);

  // Replayed, the dump makes the live run's events of those 50 s.
  const fs::path replay_store = rig.tmp() / "replay-store";
  const auto replay = run({program("shoredaq"), "replay", "--detx", rig.detx().string(), "--input", file.string(), "--store",
                           replay_store.string()},
                          rig.tmp().path(), 120s);
  ASSERT_EQ(replay.code, 0) << replay.err;
  const auto live = events_between(rig.node().store(), kRun, from_ns, to_ns, rig.tmp().path());
  const auto replayed = events_between(replay_store, kRun, from_ns, to_ns, rig.tmp().path());
  std::printf("%zu live events in the window, %zu replayed\n", live.size(), replayed.size());
  testing::Test::RecordProperty("events_compared", std::to_string(live.size()));
  EXPECT_GT(live.size(), 10u);
  EXPECT_EQ(replayed.size(), live.size());
  EXPECT_TRUE(replayed == live);
  rig.quit();
}

TEST(HilRing, KillDuringADumpLeavesAConsistentRingAndTheRestOfTheSpoolUntouched) {
  Rig rig("ring-kill", "first:1", ring_toml());
  constexpr unsigned kSlices = 600;
  rig.start_run(2);
  rig.feed(feed_args(rig, 2, kSlices, 42));
  ASSERT_TRUE(rig.wait_slices(kSlices));
  ASSERT_TRUE(wait_until([&] { return rig.status()["ring"]["stored"].get<std::uint64_t>() >= kSlices; }, 60s));
  rig.stop_run();  // the run's files are sealed in spool/ready/

  // What the spool holds before: every file and its checksum.
  std::map<std::string, std::string> spool_before;
  for (const auto& e : fs::recursive_directory_iterator(rig.node().spool())) {
    if (e.is_regular_file()) spool_before[fs::relative(e.path(), rig.node().spool()).string()] = adler32_of(e.path());
  }
  ASSERT_FALSE(spool_before.empty());
  const auto ring_before = rig.status()["ring"];

  const auto requested = rig.ctl({"dump", "--from", std::to_string(kStartUtc), "--to", std::to_string(kStartUtc + 60),
                                  "--reason", "killed"});
  ASSERT_EQ(requested.code, 0) << requested.out;
  const std::string id = requested.reply["dump"]["id"];
  rig.daemon().signal(SIGKILL);
  ASSERT_TRUE(rig.daemon().wait(10s).has_value());

  rig.restart();
  const auto status = rig.status();
  const auto& ring = status["ring"];
  // The ring came back whole: it was not being written, so nothing was torn.
  EXPECT_EQ(ring["slices"], ring_before["slices"]);
  EXPECT_EQ(ring["recovery_dropped_slices"], 0);
  std::optional<nlohmann::json> d;
  for (const auto& r : ring["dumps"]) {
    if (r["id"] == id) d = r;
  }
  ASSERT_TRUE(d.has_value()) << ring.dump(1);
  const std::string state = (*d)["state"];
  testing::Test::RecordProperty("dump_state_after_kill", state);
  std::set<std::string> dump_files;
  for (const auto& e : fs::recursive_directory_iterator(rig.node().spool())) {
    const auto rel = fs::relative(e.path(), rig.node().spool()).string();
    if (e.is_regular_file() && rel.find(".dump.dqd") != std::string::npos) dump_files.insert(rel);
  }
  std::printf("dump after kill -9: %s %s; dump files: %s\n", state.c_str(), (*d)["error"].get<std::string>().c_str(),
              testing::PrintToString(dump_files).c_str());
  if (state == "DONE") {
    const fs::path file = rig.node().spool() / "ready" / (*d)["file"].get<std::string>();
    ASSERT_TRUE(fs::exists(file));
    const auto manifest = nlohmann::json::parse(read_file(file.string() + ".json"));
    EXPECT_EQ(manifest["adler32"], adler32_of(file));
    EXPECT_EQ(manifest["dump"]["id"], id);
  } else {
    EXPECT_EQ(state, "FAILED");
    EXPECT_NE((*d)["error"].get<std::string>().find("interrupted"), std::string::npos);
    for (const auto& f : dump_files) EXPECT_EQ(f.rfind("damaged/", 0), 0u) << f;  // never in ready/
  }
  EXPECT_TRUE(fs::is_empty(rig.node().spool() / "open"));
  // Everything else in the spool is as it was.
  for (const auto& [rel, adler] : spool_before) {
    ASSERT_TRUE(fs::exists(rig.node().spool() / rel)) << rel;
    EXPECT_EQ(adler32_of(rig.node().spool() / rel), adler) << rel;
  }
  rig.quit();

  // The index on disk, checked slot by slot and byte by byte.
  shoredaq::storage::RawSliceRingConfig rc;
  rc.directory = rig.node().state_dir() / "ring";
  rc.max_bytes = std::uint64_t{kRingMb} << 20;
  rc.max_seconds = kRingSeconds;
  shoredaq::storage::RawSliceRing reopened(rc);
  EXPECT_TRUE(reopened.verify().empty()) << testing::PrintToString(reopened.verify());
  EXPECT_EQ(reopened.fill().slices, ring_before["slices"].get<std::uint64_t>());
  for (const auto& e : reopened.entries()) EXPECT_TRUE(reopened.read(e).has_value());
}

// A supernova alert dumps [neutrino_time - before, neutrino_time + after] by itself, once the ring
// holds the window's end.
TEST(HilRing, ASupernovaAlertDumpsItsWindowByItself) {
  Rig rig("ring-sn", "first:1",
          "[builder]\nbackpressure = true\n[ring]\nenabled = true\nseconds = 60\nmax_mb = 64\nqueue_slices = 400\n"
          "sn_dump = true\nsn_dump_before_s = 5\nsn_dump_after_s = 3\n",
          "[trigger.supernova]\nbaseline_s = 20\nmin_baseline_s = 5\n");
  constexpr unsigned kSlices = 150;  // 15 s; the burst starts 10 s in
  rig.start_run(90);
  auto a = rig.du_sim_args(90, kSlices, 7);
  a.insert(a.end(), {"--start-utc", std::to_string(kStartUtc), "--singles-hz", "500", "--sn-burst-at", "10",
                     "--sn-burst-seconds", "3"});
  rig.feed(a);
  ASSERT_TRUE(rig.wait_slices(kSlices));
  nlohmann::json dump;
  ASSERT_TRUE(wait_until([&] {
    const auto s = rig.status();
    if (!s.contains("ring")) return false;
    for (const auto& d : s["ring"]["dumps"]) {
      if (d["source"] == "supernova" && d["state"] != "STARTED") dump = d;
    }
    return !dump.is_null();
  }, 60s));
  const auto status = rig.status();
  ASSERT_EQ(status["supernova"]["alerts"].size(), 1u) << status["supernova"].dump(1);
  const auto neutrino_ns = status["supernova"]["alerts"][0]["neutrino_time_ns"].get<std::uint64_t>();
  ASSERT_EQ(dump["state"], "DONE") << dump.dump(1);
  EXPECT_EQ(dump["reason"], "supernova alert");
  EXPECT_EQ(dump["requested_from_ns"], neutrino_ns - 5 * kSecondNs);
  EXPECT_EQ(dump["requested_to_ns"], neutrino_ns + 3 * kSecondNs);
  EXPECT_EQ(dump["slices"], 80);
  EXPECT_EQ(dump["missing_slices"], 0);
  EXPECT_TRUE(fs::exists(rig.node().spool() / "ready" / dump["file"].get<std::string>()));
  EXPECT_EQ(status["ring"]["dumps_by_state"]["DONE"], 1);
  rig.stop_run();
  rig.quit();
}
