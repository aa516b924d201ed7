// Runs the shore-events program against stores made with the library.

#include <gtest/gtest.h>
#include <lmdb.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "shoredaq/dataflow/online_format.hpp"
#include "shoredaq/storage/event_store.hpp"
#include "storage_test_support.hpp"

using namespace shoredaq;
using namespace shoredaq::storage;
using storage::testing::make_slice_events;
using storage::testing::make_summary;
using storage::testing::TempDir;

namespace {

constexpr std::int32_t kDetector = 21;

struct Run {
  int exit_code = -1;
  std::string out;
};

Run run_tool(const std::string& args) {
  const std::string cmd = std::string(SHOREDAQ_BINARY_DIR) + "/storage/shore-events " + args + " 2>/dev/null";
  Run r;
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (pipe == nullptr) return r;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) r.out.append(buf, n);
  const int status = ::pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Run 3: frames 0..9, (frame % 4) events each (13 events), a summary for every frame. Run 4: 1 slice.
void fill_store(const std::filesystem::path& dir) {
  EventStoreConfig c;
  c.directory = dir;
  c.initial_map_bytes = 4 << 20;
  c.disk_reserve_bytes = 0;
  c.sync = SyncMode::NoSync;
  c.detector_id = kDetector;
  EventStore store(c);
  for (std::uint32_t f = 0; f < 10; ++f) {
    const auto summary = make_summary(kDetector, 3, f);
    ASSERT_TRUE(store.commit_slice(3, f, make_slice_events(kDetector, 3, f, f % 4), &summary));
  }
  ASSERT_TRUE(store.commit_slice(4, 0, make_slice_events(kDetector, 4, 0, 2)));
  dataflow::RunRecord stop = *store.reader().run(3);
  stop.state = dataflow::RunState::Stopped;
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
