#include "shoredaq/storage/tier0_spool.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "shoredaq/formats/online_format.hpp"
#include "storage_test_support.hpp"

using namespace shoredaq;
using namespace shoredaq::storage;
using storage::testing::make_slice_events;
using storage::testing::make_summary;
using storage::testing::TempDir;
namespace fs = std::filesystem;

namespace {

constexpr std::int32_t kDetector = 133;

Tier0SpoolConfig config_for(const fs::path& dir) {
  Tier0SpoolConfig c;
  c.directory = dir;
  c.detector_id = kDetector;
  c.fsync = true;
  c.write_buffer_bytes = 4096;
  return c;
}

std::vector<std::uint8_t> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

std::vector<std::string> files_in(const fs::path& dir, const std::string& suffix) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const auto name = e.path().filename().string();
    if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      out.push_back(name);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Writes frames [0, frames) of `run`: a summary and 3 events each.
void write_run(Tier0Spool& spool, std::uint32_t run, std::uint32_t frames) {
  spool.begin_run(run);
  for (std::uint32_t f = 0; f < frames; ++f) {
    const auto events = make_slice_events(kDetector, run, f, 3);
    const auto summary = make_summary(kDetector, run, f);
    spool.write_slice(events, &summary);
  }
  spool.end_run();
}

}  // namespace

TEST(Tier0Spool, FileNames) {
  EXPECT_EQ(Tier0Spool::part_file_name(49, 1234, 7), "KM3NeT_00000049_00001234_0007.daq");
  const auto parsed = Tier0Spool::parse_part_file_name("KM3NeT_00000049_00001234_0007.daq");
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->detector_id, 49);
  EXPECT_EQ(parsed->run, 1234u);
  EXPECT_EQ(parsed->part, 7u);
  EXPECT_FALSE(Tier0Spool::parse_part_file_name("KM3NeT_00000049_00001234_0007.daq.json"));
  EXPECT_FALSE(Tier0Spool::parse_part_file_name("KM3NeT_0000049_00001234_0007.daqx"));
  EXPECT_FALSE(Tier0Spool::parse_part_file_name("random.daq"));
}

TEST(Tier0Spool, SealedRunFileHoldsOnlineObjectsAndManifest) {
  TempDir dir("spool");
  Tier0Spool spool(config_for(dir.path()));
  write_run(spool, 5, 10);
  EXPECT_TRUE(fs::is_empty(spool.open_dir()));
  const auto parts = files_in(spool.ready_dir(), ".daq");
  ASSERT_EQ(parts, (std::vector<std::string>{"KM3NeT_00000133_00000005_0000.daq"}));
  const auto bytes = read_bytes(spool.ready_dir() / parts[0]);
  // The collaboration's reader walks it: 10 summaries + 30 events, decodable.
  dataflow::OnlineObjectReader reader(bytes);
  dataflow::OnlineObject object;
  std::size_t events = 0, summaries = 0;
  while (reader.next(object)) {
    if (object.type == dataflow::online_type::kEvent) {
      const auto e = dataflow::decode_online_event(object.bytes);
      ASSERT_TRUE(e);
      EXPECT_EQ(e.value.header.run, 5u);
      ++events;
    } else if (object.type == dataflow::online_type::kSummarySlice) {
      ASSERT_TRUE(dataflow::decode_online_summary_slice(object.bytes));
      ++summaries;
    }
  }
  EXPECT_EQ(reader.error(), dataflow::OnlineError::None);
  EXPECT_EQ(events, 30u);
  EXPECT_EQ(summaries, 10u);

  const auto manifest = read_json(spool.ready_dir() / (parts[0] + ".json"));
  EXPECT_EQ(manifest["size_bytes"].get<std::uint64_t>(), bytes.size());
  EXPECT_EQ(manifest["events"].get<std::uint64_t>(), 30u);
  EXPECT_EQ(manifest["summary_slices"].get<std::uint64_t>(), 10u);
  EXPECT_EQ(manifest["first_frame"].get<std::uint32_t>(), 0u);
  EXPECT_EQ(manifest["last_frame"].get<std::uint32_t>(), 9u);
  Adler32 adler;
  adler.update(bytes);
  Md5 md5;
  md5.update(bytes);
  EXPECT_EQ(manifest["adler32"].get<std::string>(), adler.hex());
  EXPECT_EQ(manifest["md5"].get<std::string>(), md5.hex());

  const auto run_manifest = read_json(spool.ready_dir() / Tier0Spool::run_manifest_name(kDetector, 5));
  ASSERT_EQ(run_manifest["parts"].size(), 1u);
  EXPECT_EQ(run_manifest["events"].get<std::uint64_t>(), 30u);
  EXPECT_EQ(run_manifest["state"].get<std::string>(), "ended");
}

TEST(Tier0Spool, RollsBySizeAndListsEveryPart) {
  TempDir dir("spool");
  auto config = config_for(dir.path());
  config.max_file_bytes = 8000;
  Tier0Spool spool(config);
  write_run(spool, 6, 20);
  const auto parts = files_in(spool.ready_dir(), ".daq");
  ASSERT_GT(parts.size(), 3u);
  std::uint64_t events = 0, summaries = 0, total = 0;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    EXPECT_EQ(parts[i], Tier0Spool::part_file_name(kDetector, 6, static_cast<std::uint32_t>(i)));
    const auto size = fs::file_size(spool.ready_dir() / parts[i]);
    EXPECT_LE(size, config.max_file_bytes);
    const auto m = read_json(spool.ready_dir() / (parts[i] + ".json"));
    events += m["events"].get<std::uint64_t>();
    summaries += m["summary_slices"].get<std::uint64_t>();
    total += size;
  }
  EXPECT_EQ(events, 60u);
  EXPECT_EQ(summaries, 20u);
  const auto run_manifest = read_json(spool.ready_dir() / Tier0Spool::run_manifest_name(kDetector, 6));
  EXPECT_EQ(run_manifest["parts"].size(), parts.size());
  EXPECT_EQ(run_manifest["size_bytes"].get<std::uint64_t>(), total);
  EXPECT_EQ(spool.counters().parts_sealed, parts.size());
}

TEST(Tier0Spool, RollsByTime) {
  TempDir dir("spool");
  auto config = config_for(dir.path());
  config.max_file_age = std::chrono::seconds(0);  // every part is due as soon as it has data
  Tier0Spool spool(config);
  spool.begin_run(7);
  const auto summary = make_summary(kDetector, 7, 0);
  spool.write_summary(summary);
  spool.write_summary(summary);
  spool.roll_if_due();
  EXPECT_EQ(files_in(spool.ready_dir(), ".daq").size(), 2u);
  EXPECT_TRUE(fs::is_empty(spool.open_dir()));
  spool.end_run();
}

TEST(Tier0Spool, TransferredOnlyWhenEveryPartIsDone) {
  TempDir dir("spool");
  auto config = config_for(dir.path());
  config.max_file_bytes = 8000;
  Tier0Spool spool(config);
  spool.begin_run(8);
  const auto summary = make_summary(kDetector, 8, 0);
  spool.write_summary(summary);
  EXPECT_FALSE(spool.transferred(8));  // run not ended
  spool.end_run();
  write_run(spool, 9, 10);
  auto parts = files_in(spool.ready_dir(), ".daq");
  const auto part8 = Tier0Spool::part_file_name(kDetector, 8, 0);
  EXPECT_FALSE(spool.transferred(8));
  EXPECT_TRUE(spool.ack(part8));
  EXPECT_FALSE(spool.ack(part8));  // no longer in ready/
  EXPECT_FALSE(spool.ack("../../etc/passwd"));
  EXPECT_TRUE(spool.transferred(8));
  EXPECT_TRUE(fs::exists(spool.done_dir() / (part8 + ".json")));
  // Run 9: the transfer agent moves files itself; one missing part keeps the run untransferred.
  std::vector<std::string> parts9;
  for (const auto& p : parts) {
    if (Tier0Spool::parse_part_file_name(p)->run == 9) parts9.push_back(p);
  }
  ASSERT_GT(parts9.size(), 1u);
  for (std::size_t i = 0; i + 1 < parts9.size(); ++i) fs::rename(spool.ready_dir() / parts9[i], spool.done_dir() / parts9[i]);
  EXPECT_FALSE(spool.transferred(9));
  fs::rename(spool.ready_dir() / parts9.back(), spool.done_dir() / parts9.back());
  EXPECT_TRUE(spool.transferred(9));
  EXPECT_FALSE(spool.transferred(10));  // unknown run
}

TEST(Tier0Spool, RecoversLeftoverWithTornTail) {
  TempDir dir("spool");
  fs::create_directories(dir.path() / "open");
  std::vector<std::uint8_t> objects;
  for (std::uint32_t f = 3; f < 6; ++f) dataflow::encode_online_summary_slice(make_summary(kDetector, 11, f), objects);
  for (const auto& e : make_slice_events(kDetector, 11, 6, 2)) dataflow::encode_online_event(e, objects);
  const std::size_t whole = objects.size();
  std::vector<std::uint8_t> torn;
  dataflow::encode_online_event(make_slice_events(kDetector, 11, 7, 1)[0], torn);
  objects.insert(objects.end(), torn.begin(), torn.begin() + static_cast<long>(torn.size() / 2));
  const auto name = Tier0Spool::part_file_name(kDetector, 11, 0);
  {
    std::ofstream out(dir.path() / "open" / name, std::ios::binary);
    out.write(reinterpret_cast<const char*>(objects.data()), static_cast<std::streamsize>(objects.size()));
  }
  Tier0Spool spool(config_for(dir.path()));
  EXPECT_TRUE(fs::is_empty(spool.open_dir()));
  EXPECT_EQ(spool.counters().parts_recovered, 1u);
  const auto bytes = read_bytes(spool.ready_dir() / name);
  EXPECT_EQ(bytes.size(), whole);
  EXPECT_TRUE(std::equal(bytes.begin(), bytes.end(), objects.begin()));
  const auto partial = read_bytes(spool.damaged_dir() / (name + ".partial"));
  EXPECT_EQ(partial.size(), torn.size() / 2);
  const auto m = read_json(spool.ready_dir() / (name + ".json"));
  EXPECT_TRUE(m["recovered"].get<bool>());
  EXPECT_EQ(m["events"].get<std::uint64_t>(), 2u);
  EXPECT_EQ(m["summary_slices"].get<std::uint64_t>(), 3u);
  EXPECT_EQ(m["first_frame"].get<std::uint32_t>(), 3u);
  EXPECT_EQ(m["last_frame"].get<std::uint32_t>(), 6u);
  EXPECT_EQ(m["damaged_bytes"].get<std::uint64_t>(), torn.size() / 2);
  const auto run_manifest = read_json(spool.ready_dir() / Tier0Spool::run_manifest_name(kDetector, 11));
  EXPECT_EQ(run_manifest["parts"].size(), 1u);
  // The run continues with the next part number.
  spool.begin_run(11);
  spool.write_summary(make_summary(kDetector, 11, 8));
  spool.end_run();
  EXPECT_TRUE(fs::exists(spool.ready_dir() / Tier0Spool::part_file_name(kDetector, 11, 1)));
}

TEST(Tier0Spool, WriterKilledThenRestartSealsWhatReachedTheDisk) {
  TempDir dir("spool");
  int acks[2];
  ASSERT_EQ(::pipe(acks), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(acks[0]);
    try {
      auto config = config_for(dir.path());
      config.write_buffer_bytes = 1;  // every object reaches the file at once
      config.max_file_bytes = 50'000;
      Tier0Spool spool(config);
      spool.begin_run(12);
      for (std::uint32_t f = 0;; ++f) {
        const auto summary = make_summary(kDetector, 12, f);
        spool.write_summary(summary);
        if (::write(acks[1], &f, sizeof f) != sizeof f) ::_exit(4);
      }
    } catch (...) {
      ::_exit(2);
    }
  }
  ::close(acks[1]);
  std::uint32_t frame = 0, last = 0;
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(::read(acks[0], &frame, sizeof frame), static_cast<ssize_t>(sizeof frame));
    last = frame;
  }
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  while (::read(acks[0], &frame, sizeof frame) == static_cast<ssize_t>(sizeof frame)) last = frame;
  ::close(acks[0]);

  Tier0Spool spool(config_for(dir.path()));
  EXPECT_TRUE(fs::is_empty(spool.open_dir()));
  std::set<std::uint32_t> frames;
  for (const auto& part : files_in(spool.ready_dir(), ".daq")) {
    const auto bytes = read_bytes(spool.ready_dir() / part);
    dataflow::OnlineObjectReader reader(bytes);
    dataflow::OnlineObject object;
    while (reader.next(object)) {
      const auto s = dataflow::decode_online_summary_slice(object.bytes);
      ASSERT_TRUE(s);
      frames.insert(s.value.header.frame_index);
    }
    EXPECT_EQ(reader.error(), dataflow::OnlineError::None);
  }
  for (std::uint32_t f = 0; f <= last; ++f) ASSERT_TRUE(frames.contains(f)) << f;
  EXPECT_TRUE(fs::exists(spool.ready_dir() / Tier0Spool::run_manifest_name(kDetector, 12)));
}

// The two crash windows outside open/: killed after a part was sealed but before the next part
// was opened (the run has no run manifest), and killed between a part's rename into ready/ and
// its manifest. Both are closed at the next start with the same figures a clean end would give.
TEST(Tier0Spool, RunCutBetweenPartsIsClosedAndMissingPartManifestRebuilt) {
  TempDir dir("spool");
  auto config = config_for(dir.path());
  config.max_file_bytes = 20'000;
  std::uint64_t events_written = 0;
  {
    Tier0Spool spool(config);
    spool.begin_run(21);
    for (std::uint32_t f = 0; f < 40; ++f) {
      const auto events = make_slice_events(kDetector, 21, f, 3);
      spool.write_slice(events, nullptr);
      events_written += events.size();
    }
    // No end_run: the destructor seals the open part as at a crash after the last rename.
  }
  const auto parts = files_in(dir.path() / "ready", ".daq");
  ASSERT_GE(parts.size(), 2u);
  const fs::path run_manifest = dir.path() / "ready" / Tier0Spool::run_manifest_name(kDetector, 21);
  ASSERT_FALSE(fs::exists(run_manifest));
  const fs::path lost_manifest = dir.path() / "ready" / (parts[1] + ".json");
  const auto original = read_json(lost_manifest);
  fs::remove(lost_manifest);

  Tier0Spool spool(config);
  ASSERT_TRUE(fs::exists(lost_manifest));
  const auto rebuilt = read_json(lost_manifest);
  EXPECT_EQ(rebuilt["events"], original["events"]);
  EXPECT_EQ(rebuilt["size_bytes"], original["size_bytes"]);
  EXPECT_EQ(rebuilt["adler32"], original["adler32"]);
  EXPECT_EQ(rebuilt["md5"], original["md5"]);
  EXPECT_EQ(rebuilt["first_frame"], original["first_frame"]);
  EXPECT_EQ(rebuilt["last_frame"], original["last_frame"]);
  EXPECT_TRUE(rebuilt["recovered"].get<bool>());

  ASSERT_TRUE(fs::exists(run_manifest));
  const auto manifest = read_json(run_manifest);
  EXPECT_EQ(manifest["state"], "recovered after a crash");
  EXPECT_EQ(manifest["parts"].size(), parts.size());
  EXPECT_EQ(manifest["events"].get<std::uint64_t>(), events_written);
  for (const auto& part : manifest["parts"]) EXPECT_FALSE(part.contains("manifest_missing")) << part.dump();
}

// A run that ended cleanly keeps its manifest untouched across restarts.
TEST(Tier0Spool, RestartLeavesEndedRunsAlone) {
  TempDir dir("spool");
  {
    Tier0Spool spool(config_for(dir.path()));
    write_run(spool, 22, 5);
  }
  const fs::path run_manifest = dir.path() / "ready" / Tier0Spool::run_manifest_name(kDetector, 22);
  const auto before = read_bytes(run_manifest);
  Tier0Spool spool(config_for(dir.path()));
  EXPECT_EQ(read_bytes(run_manifest), before);
  EXPECT_EQ(read_json(run_manifest)["state"], "ended");
  EXPECT_EQ(spool.counters().parts_recovered, 0u);
}
