// Runs the shore-events program against stores made with the library.

#include <gtest/gtest.h>
#include <lmdb.h>
#include <sys/wait.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "shoredaq/formats/online_format.hpp"
#include "shoredaq/storage/event_store.hpp"
#include "shore_events_tool.hpp"
#include "store_damage.hpp"
#include "storage_test_support.hpp"

using namespace shoredaq;
using namespace shoredaq::storage;
using storage::testing::make_slice_events;
using storage::testing::make_summary;
using storage::testing::TempDir;

namespace {

constexpr std::int32_t kDetector = 21;

using storage::testing::Run;
using storage::testing::run_tool;

// Run 3: frames 0..9, (frame % 4) events each (13 events), a summary for every frame. Run 4: 1 slice.
void fill_store(const std::filesystem::path& dir) {
  EventStore store(storage::testing::small_store_config(dir, kDetector));
  for (std::uint32_t f = 0; f < 10; ++f) {
    const auto summary = make_summary(kDetector, 3, f);
    ASSERT_TRUE(store.commit_slice(3, f, make_slice_events(kDetector, 3, f, f % 4), &summary));
  }
  ASSERT_TRUE(store.commit_slice(4, 0, make_slice_events(kDetector, 4, 0, 2)));
  dataflow::RunRecord stop = *store.reader().run(3);
  stop.state = dataflow::RunOutcome::Stopped;
  stop.stop_unix_ns = stop.start_unix_ns + 1'000'000'000;
  ASSERT_TRUE(store.put_run_record(stop));
}

std::size_t count_lines(const std::string& text) { return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')); }

}  // namespace

TEST(ShoreEvents, RunsEventsAndSummary) {
  TempDir dir("shore-events");
  fill_store(dir.path());
  const std::string store = "--store " + dir.path().string();

  const auto runs = run_tool(store + " runs --json");
  ASSERT_EQ(runs.exit_code, 0);
  const auto runs_json = nlohmann::json::parse(runs.out);
  ASSERT_EQ(runs_json.size(), 2u);
  EXPECT_EQ(runs_json[0]["run"], 3);
  EXPECT_EQ(runs_json[0]["state"], "stopped");
  EXPECT_EQ(runs_json[0]["counters"][kCounterStoredEvents], 13);
  const auto runs_text = run_tool(store + " runs");
  EXPECT_EQ(runs_text.exit_code, 0);
  EXPECT_EQ(count_lines(runs_text.out), 3u);  // header + 2 runs

  const auto all = run_tool(store + " events --run 3 --json");
  ASSERT_EQ(all.exit_code, 0);
  EXPECT_EQ(count_lines(all.out), 13u);
  std::istringstream lines(all.out);
  std::string first;
  std::getline(lines, first);
  const auto e = nlohmann::json::parse(first);
  EXPECT_EQ(e["frame"], 1);
  EXPECT_EQ(e["event"], 0);
  EXPECT_EQ(e["snapshot_hits"].size(), 30u);
  EXPECT_GT(e["committed_unix_ns"].get<std::uint64_t>(), 0u);
  // Frame range 2..3: 2 + 3 events.
  const auto range = run_tool(store + " events --run 3 --from 2 --to 3 --json");
  EXPECT_EQ(count_lines(range.out), 5u);
  const auto text = run_tool(store + " events --run 3 --from 2 --to 3");
  EXPECT_EQ(count_lines(text.out), 6u);  // + header

  const auto summary = run_tool(store + " summary --run 3 --json");
  ASSERT_EQ(summary.exit_code, 0);
  const auto s = nlohmann::json::parse(summary.out);
  EXPECT_EQ(s["stored"]["events"], 13);
  EXPECT_EQ(s["stored"]["summary_slices"], 10);
  EXPECT_EQ(s["stored"]["events_per_trigger"]["3DMuon"], 13);
  EXPECT_EQ(run_tool(store + " summary --run 99").exit_code, 1);
}

TEST(ShoreEvents, VerifyPassesThenFailsOnCorruption) {
  TempDir dir("shore-events");
  fill_store(dir.path());
  const std::string store = "--store " + dir.path().string();
  const auto ok = run_tool(store + " verify");
  EXPECT_EQ(ok.exit_code, 0);
  EXPECT_NE(ok.out.find("store OK"), std::string::npos);

  // Damage one event buffer behind the store's back.
  MDB_env* env = nullptr;
  ASSERT_EQ(mdb_env_create(&env), 0);
  mdb_env_set_maxdbs(env, 8);
  ASSERT_EQ(mdb_env_open(env, dir.path().c_str(), 0, 0640), 0);
  MDB_txn* txn = nullptr;
  ASSERT_EQ(mdb_txn_begin(env, nullptr, 0, &txn), 0);
  MDB_dbi events = 0;
  ASSERT_EQ(mdb_dbi_open(txn, "events", 0, &events), 0);
  std::uint8_t key[12] = {0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 1};
  std::uint8_t garbage[40] = {1, 2, 3};
  MDB_val k{sizeof key, key}, v{sizeof garbage, garbage};
  ASSERT_EQ(mdb_put(txn, events, &k, &v, 0), 0);
  ASSERT_EQ(mdb_txn_commit(txn), 0);
  mdb_env_close(env);

  const auto bad = run_tool(store + " verify");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.out.find("PROBLEM: event 3/2/1"), std::string::npos) << bad.out;
}

TEST(ShoreEvents, ExportIsReadableOnlineFormat) {
  TempDir dir("shore-events");
  fill_store(dir.path());
  const auto exported = run_tool("--store " + dir.path().string() + " export --run 3 --format online");
  ASSERT_EQ(exported.exit_code, 0);
  const std::vector<std::uint8_t> bytes(exported.out.begin(), exported.out.end());
  dataflow::OnlineObjectReader reader(bytes);
  dataflow::OnlineObject object;
  std::size_t events = 0, summaries = 0;
  std::uint32_t last_frame = 0;
  while (reader.next(object)) {
    if (object.type == dataflow::online_type::kEvent) {
      const auto e = dataflow::decode_online_event(object.bytes);
      ASSERT_TRUE(e);
      EXPECT_GE(e.value.header.frame_index, last_frame);
      EXPECT_EQ(e.value.snapshot.size(), 30u);
      last_frame = e.value.header.frame_index;
      ++events;
    } else {
      ASSERT_EQ(object.type, dataflow::online_type::kSummarySlice);
      const auto s = dataflow::decode_online_summary_slice(object.bytes);
      ASSERT_TRUE(s);
      EXPECT_EQ(s.value, make_summary(kDetector, 3, s.value.header.frame_index));
      ++summaries;
    }
  }
  EXPECT_EQ(reader.error(), dataflow::OnlineError::None);
  EXPECT_EQ(events, 13u);
  EXPECT_EQ(summaries, 10u);
}

TEST(ShoreEvents, MissingStoreAndBadUsage) {
  EXPECT_EQ(run_tool("--store /nonexistent/store runs").exit_code, 2);
  EXPECT_EQ(run_tool("runs").exit_code, 3);
  EXPECT_EQ(run_tool("--store /tmp export --run 1 --format root").exit_code, 3);
}

// ---- integrity: verify --deep, export of damaged runs, backup, upgrade ----

namespace {

using storage::testing::Damage;
using storage::testing::damage_random_bytes;
using storage::testing::list_records;
using storage::testing::rewrite_value_byte;

// The exported online objects, each as its bytes.
std::vector<std::string> online_objects(const std::string& exported, std::size_t* events = nullptr,
                                        std::size_t* summaries = nullptr) {
  const std::vector<std::uint8_t> bytes(exported.begin(), exported.end());
  dataflow::OnlineObjectReader reader(bytes);
  dataflow::OnlineObject object;
  std::vector<std::string> out;
  while (reader.next(object)) {
    out.emplace_back(object.bytes.begin(), object.bytes.end());
    if (events != nullptr && object.type == dataflow::online_type::kEvent) ++*events;
    if (summaries != nullptr && object.type == dataflow::online_type::kSummarySlice) ++*summaries;
  }
  EXPECT_EQ(reader.error(), dataflow::OnlineError::None);
  return out;
}

std::set<std::pair<StoreDatabase, std::string>> damaged_in_json(const nlohmann::json& report) {
  std::set<std::pair<StoreDatabase, std::string>> out;
  for (const auto& d : report["damaged"]) {
    const std::string db = d["database"];
    const StoreDatabase database = db == "events"      ? StoreDatabase::Events
                                   : db == "summaries" ? StoreDatabase::Summaries
                                   : db == "runs"      ? StoreDatabase::Runs
                                                       : StoreDatabase::Meta;
    out.emplace(database, d["key"].get<std::string>());
  }
  return out;
}

std::filesystem::path copy_schema1_fixture(const std::filesystem::path& to) {
  std::filesystem::create_directories(to);
  std::filesystem::copy_file(std::filesystem::path(SHOREDAQ_SOURCE_DIR) / "storage/tests/data/store_schema1/data.mdb",
                             to / "data.mdb");
  return to;
}

}  // namespace

TEST(ShoreEvents, VerifyDeepJsonNamesEveryDamagedRecord) {
  TempDir dir("shore-events");
  fill_store(dir.path());
  const std::string store = "--store " + dir.path().string();
  const auto clean = run_tool(store + " verify --deep --json");
  ASSERT_EQ(clean.exit_code, 0) << clean.out;
  const auto clean_json = nlohmann::json::parse(clean.out);
  EXPECT_TRUE(clean_json["ok"]);
  EXPECT_TRUE(clean_json["deep"]);
  EXPECT_EQ(clean_json["exit_code"], 0);
  EXPECT_EQ(clean_json["checked"]["events"], 15);
  EXPECT_EQ(clean_json["checked"]["summaries"], 10);
  EXPECT_TRUE(clean_json["damaged"].empty());

  const Damage damage = damage_random_bytes(dir.path(), list_records(dir.path()), 30, 5);
  const auto bad = run_tool(store + " verify --deep --json");
  EXPECT_EQ(bad.exit_code, 1);
  const auto report = nlohmann::json::parse(bad.out);
  EXPECT_FALSE(report["ok"]);
  EXPECT_EQ(report["exit_code"], 1);
  EXPECT_EQ(report["damaged_count"], damage.keys.size());
  EXPECT_EQ(damaged_in_json(report), damage.keys);
  // The text report names each of them too.
  const auto text = run_tool(store + " verify --deep");
  EXPECT_EQ(text.exit_code, 1);
  EXPECT_NE(text.out.find("damaged records: " + std::to_string(damage.keys.size())), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("store has problems"), std::string::npos);

  // "Cannot open" is not "damaged".
  const auto missing = run_tool("--store " + (dir.path() / "nothing").string() + " verify --deep --json");
  EXPECT_EQ(missing.exit_code, 2);
  const auto missing_json = nlohmann::json::parse(missing.out);
  EXPECT_EQ(missing_json["exit_code"], 2);
  EXPECT_FALSE(missing_json["error"].get<std::string>().empty());
}

TEST(ShoreEvents, ExportRefusesADamagedRunOrSkipsWithACount) {
  TempDir dir("shore-events");
  fill_store(dir.path());
  const std::string store = "--store " + dir.path().string();
  const auto original = run_tool(store + " export --run 3 --format online");
  ASSERT_EQ(original.exit_code, 0);
  const auto original_objects = online_objects(original.out);
  ASSERT_EQ(original_objects.size(), 23u);

  // One byte of an event and of a summary changed through LMDB (valid pages).
  rewrite_value_byte(dir.path(), "events", storage::testing::event_key_bytes(3, 2, 1), 60);
  const std::array<std::uint8_t, 8> summary_3_5{0, 0, 0, 3, 0, 0, 0, 5};
  rewrite_value_byte(dir.path(), "summaries", summary_3_5, 30);

  const auto refused = run_tool(store + " export --run 3 --format online");
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_TRUE(refused.out.empty()) << refused.out.size() << " bytes written";
  EXPECT_NE(refused.err.find("event 3/2/1: checksum mismatch"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("summary 3/5: checksum mismatch"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("refused"), std::string::npos) << refused.err;

  const auto skipped = run_tool(store + " export --run 3 --format online --skip-damaged");
  EXPECT_EQ(skipped.exit_code, 1);
  EXPECT_NE(skipped.err.find("skipped 2 damaged record(s)"), std::string::npos) << skipped.err;
  std::size_t events = 0, summaries = 0;
  const auto objects = online_objects(skipped.out, &events, &summaries);
  EXPECT_EQ(events, 12u);
  EXPECT_EQ(summaries, 9u);
  for (const auto& object : objects) {  // what is exported is exactly what was stored
    EXPECT_NE(std::find(original_objects.begin(), original_objects.end(), object), original_objects.end());
  }
  EXPECT_EQ(run_tool(store + " export --run 4 --format online").exit_code, 0);  // an intact run

  const auto listed = run_tool(store + " events --run 3 --json");
  EXPECT_EQ(listed.exit_code, 1);
  EXPECT_EQ(count_lines(listed.out), 12u);
  EXPECT_NE(listed.err.find("event 3/2/1"), std::string::npos) << listed.err;
  const auto summary = run_tool(store + " summary --run 3 --json");
  EXPECT_EQ(summary.exit_code, 1);
  EXPECT_EQ(nlohmann::json::parse(summary.out)["stored"]["damaged_records"], 2);
}

// A backup taken while a writer commits slice after slice: consistent, verified, and holding every
// slice committed before the backup began.
TEST(ShoreEvents, BackupDuringAFeedHoldsEverythingCommittedBeforeIt) {
  TempDir dir("shore-events");
  const auto store_dir = dir.path() / "store";
  EventStoreConfig c;
  c.directory = store_dir;
  c.initial_map_bytes = 1 << 20;  // the writer grows its map while the backup reads
  c.disk_reserve_bytes = 0;
  c.sync = SyncMode::NoMetaSync;
  c.detector_id = kDetector;
  EventStore store(c);
  std::mutex m;
  std::condition_variable cv;
  std::uint32_t committed_frames = 0;
  std::atomic<bool> stop{false};
  std::string writer_error;
  std::thread writer([&] {
    for (std::uint32_t f = 0; !stop && f < 1'000'000; ++f) {
      const auto summary = make_summary(kDetector, 7, f);
      const auto r = store.commit_slice(7, f, make_slice_events(kDetector, 7, f, f % 3, 120), &summary);
      std::lock_guard lock(m);
      if (!r) {
        writer_error = r.message;
        break;
      }
      committed_frames = f + 1;
      cv.notify_all();
    }
  });
  std::uint32_t before = 0;
  {
    std::unique_lock lock(m);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return committed_frames >= 50; }));
    before = committed_frames;
  }
  const auto backup_dir = dir.path() / "backup";
  const auto backup = run_tool("--store " + store_dir.string() + " backup --to " + backup_dir.string() + " --json");
  stop = true;
  writer.join();
  ASSERT_TRUE(writer_error.empty()) << writer_error;
  ASSERT_EQ(backup.exit_code, 0) << backup.out << backup.err;
  const auto report = nlohmann::json::parse(backup.out);
  EXPECT_TRUE(report["ok"]);
  EXPECT_TRUE(report["verify"]["deep"]);
  EXPECT_GT(report["bytes"].get<std::uint64_t>(), 0u);

  const auto verify = run_tool("--store " + backup_dir.string() + " verify --deep");
  EXPECT_EQ(verify.exit_code, 0) << verify.out;
  const auto copy = EventStoreReader::open(backup_dir);
  const auto record = copy.run(7);
  ASSERT_TRUE(record.has_value());
  EXPECT_GE(record->counter(kCounterStoredSlices), before);
  std::map<std::uint32_t, std::size_t> events_per_frame;
  copy.for_each_event(7, 0, before - 1, [&](const EventKey& k, std::span<const std::uint8_t>) {
    ++events_per_frame[k.frame];
    return true;
  });
  std::size_t summaries = 0;
  copy.for_each_summary(7, 0, before - 1, [&](std::uint32_t, std::uint32_t, std::span<const std::uint8_t>) {
    ++summaries;
    return true;
  });
  EXPECT_EQ(summaries, before);
  for (std::uint32_t f = 0; f < before; ++f) EXPECT_EQ(events_per_frame[f], f % 3) << "frame " << f;

  // Never over an existing backup.
  const auto again = run_tool("--store " + store_dir.string() + " backup --to " + backup_dir.string());
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_NE(again.err.find("not an empty directory"), std::string::npos) << again.err;
}

TEST(ShoreEvents, AStoreWrittenBeforeChecksumsIsRefusedThenUpgraded) {
  TempDir dir("shore-events");
  const auto old_store = copy_schema1_fixture(dir.path() / "store");
  const std::string store = "--store " + old_store.string();
  const auto refused = run_tool(store + " runs");
  EXPECT_EQ(refused.exit_code, 4);
  EXPECT_NE(refused.err.find("schema version 1"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("upgrade --to"), std::string::npos) << refused.err;
  const auto verify = run_tool(store + " verify --json");
  EXPECT_EQ(verify.exit_code, 4);
  EXPECT_EQ(nlohmann::json::parse(verify.out)["exit_code"], 4);

  const auto new_store = dir.path() / "store.v2";
  const auto upgraded = run_tool(store + " upgrade --to " + new_store.string());
  ASSERT_EQ(upgraded.exit_code, 0) << upgraded.out << upgraded.err;
  EXPECT_NE(upgraded.out.find("15 events, 10 summaries, 2 runs"), std::string::npos) << upgraded.out;
  EXPECT_EQ(run_tool("--store " + new_store.string() + " verify --deep").exit_code, 0);
  // The fixture holds what fill_store writes: the upgraded store exports the same bytes as a store
  // written today.
  TempDir fresh("shore-events");
  fill_store(fresh.path());
  const auto from_upgraded = run_tool("--store " + new_store.string() + " export --run 3 --format online");
  const auto from_fresh = run_tool("--store " + fresh.path().string() + " export --run 3 --format online");
  ASSERT_EQ(from_upgraded.exit_code, 0);
  EXPECT_EQ(online_objects(from_upgraded.out).size(), 23u);
  EXPECT_TRUE(from_upgraded.out == from_fresh.out);
  const auto runs = nlohmann::json::parse(run_tool("--store " + new_store.string() + " runs --json").out);
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0]["state"], "stopped");
  EXPECT_EQ(runs[0]["counters"][kCounterStoredEvents], 13);
  // Upgrading twice is refused; the old store is left as it was.
  EXPECT_EQ(run_tool("--store " + new_store.string() + " upgrade --to " + (dir.path() / "v3").string()).exit_code, 2);
  EXPECT_EQ(run_tool(store + " runs").exit_code, 4);
}

// The first case: 200 random bytes flipped anywhere in data.mdb, LMDB's own pages and free
// pages included. Whatever they hit, verify says "damaged" (exit 1, a JSON report), never "OK",
// never "cannot open", and never dies with LMDB (some of these seeds make a reader crash on a
// damaged branch page: the command runs in a child process); export never writes damaged bytes.
TEST(ShoreEvents, RandomBytesAnywhereInTheFileAreReportedAsDamage) {
  // In a sanitizer build a crash of the child is an ASan report followed, unless abort_on_error is
  // set, by a plain exit(1) the parent cannot tell from a verdict: keep it a signal, as it is in a
  // plain build (where ASAN_OPTIONS means nothing).
  const char* asan_options = std::getenv("ASAN_OPTIONS");
  ::setenv("ASAN_OPTIONS", (std::string(asan_options != nullptr ? asan_options : "") + ":abort_on_error=1").c_str(), 1);
  TempDir dir("shore-events");
  const auto original = dir.path() / "original";
  {
    EventStoreConfig c = storage::testing::small_store_config(original, kDetector);
    c.initial_map_bytes = 1 << 20;
    EventStore store(c);
    storage::testing::write_short_run(store, kDetector, 1);
  }
  const auto clean_export = run_tool("--store " + original.string() + " export --run 1 --format online");
  ASSERT_EQ(clean_export.exit_code, 0);
  const auto file_bytes = std::filesystem::file_size(original / "data.mdb");
  std::size_t crashed = 0, damaged_whole = 0;
  for (std::uint32_t seed = 0; seed < 12; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    const auto copy = dir.path() / ("copy" + std::to_string(seed));
    std::filesystem::create_directories(copy);
    std::filesystem::copy_file(original / "data.mdb", copy / "data.mdb");
    std::mt19937 rng(seed);
    std::set<std::uint64_t> positions;
    while (positions.size() < 200) positions.insert(rng() % file_bytes);
    for (const auto p : positions) storage::testing::flip_byte(copy, p, static_cast<std::uint8_t>(1 + rng() % 255));

    const auto verify = run_tool("--store " + copy.string() + " verify --deep --json");
    EXPECT_EQ(verify.exit_code, 1) << verify.out << verify.err;
    const auto report = nlohmann::json::parse(verify.out);
    EXPECT_FALSE(report["ok"]);
    EXPECT_EQ(report["exit_code"], 1);
    if (report.contains("error")) {
      const std::string error = report["error"];
      (error.find("crashed") != std::string::npos ? crashed : damaged_whole) += 1;
    } else {
      EXPECT_GT(report["damaged_count"].get<std::uint64_t>() + report["problem_count"].get<std::uint64_t>(), 0u);
    }
    const auto exported = run_tool("--store " + copy.string() + " export --run 1 --format online");
    EXPECT_EQ(exported.exit_code, 1);
    EXPECT_TRUE(exported.out.empty()) << exported.out.size() << " bytes of a damaged run written";
  }
  std::printf("12 damaged copies: %zu crashed a reader, %zu unreadable as a whole, the others by record\n", crashed,
              damaged_whole);
}
