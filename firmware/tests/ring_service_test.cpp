// The node's raw-data ring: the [ring] section, the dump time syntax, slices offered by the
// workers reaching the ring, dumps refused / done, and dumps a crash interrupted settled at start.
#include <gtest/gtest.h>

#include "config_error.hpp"

#include <chrono>
#include <fstream>
#include <thread>

#include "shoredaq/firmware/config.hpp"
#include "shoredaq/firmware/ring_service.hpp"
#include "shoredaq/storage/tier0_manifest.hpp"

using namespace shoredaq;
using shoredaq::firmware::test_support::config_error_of;
using namespace shoredaq::firmware;
namespace fs = std::filesystem;

namespace {

constexpr std::uint32_t kUtc = 1'765'000'000;
constexpr std::uint64_t kSecond = 1'000'000'000ull;
constexpr std::uint64_t kT0 = std::uint64_t{kUtc} * kSecond;

struct Dir {
  fs::path path;
  explicit Dir(const std::string& tag) {
    path = fs::temp_directory_path() / ("shoredaq-ring-service-" + tag + "-" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~Dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

dataflow::Timeslice slice(std::uint32_t index) {
  dataflow::Timeslice t;
  t.header.detector_id = 133;
  t.header.run = 5;
  t.header.frame_index = index + 1;
  t.header.utc_seconds = kUtc + index / 10;
  t.header.ticks_16ns = (index % 10) * dataflow::kTicksPerSlice;
  dataflow::DomFrame f;
  f.dom_id = 808;
  f.status.daq = dataflow::FrameStatus::make_daq(1, 0);
  f.status.fifo = dataflow::kStatus2Trailer;
  f.hits.assign(600, static_cast<std::uint8_t>(index));
  t.frames.push_back(f);
  return t;
}

RingServiceOptions options(const Dir& dir) {
  RingServiceOptions o;
  o.settings.enabled = true;
  o.settings.seconds = 10;
  o.settings.max_mb = 4;
  o.settings.queue_slices = 1000;
  o.settings.max_dump_seconds = 5;
  o.ring_dir = dir.path / "ring";
  o.spool_dir = dir.path / "spool";
  o.fsync = false;
  return o;
}

bool wait_for(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

std::optional<DumpRecord> dump_of(const RingService& s, const std::string& id) {
  for (const auto& d : s.dumps()) {
    if (d.id == id) return d;
  }
  return std::nullopt;
}

}  // namespace

TEST(RingConfig, SectionIsReadAndChecked) {
  const NodeConfig d = parse_config("");
  EXPECT_FALSE(d.ring.enabled);
  EXPECT_EQ(d.ring_dir(), "/var/lib/shoredaq/ring");
  EXPECT_EQ(d.ring.sn_dump_before_s, 30u);
  EXPECT_EQ(d.ring.sn_dump_after_s, 60u);
  const NodeConfig c = parse_config(
      "[ring]\nenabled = true\ndir = \"/data/ring\"\nseconds = 60\nmax_mb = 100\nqueue_slices = 8\nmax_dump_seconds = 90\n"
      "sn_dump = false\nsn_dump_before_s = 10\nsn_dump_after_s = 20\n");
  EXPECT_TRUE(c.ring.enabled);
  EXPECT_EQ(c.ring_dir(), "/data/ring");
  EXPECT_EQ(c.ring.seconds, 60u);
  EXPECT_EQ(c.ring.max_mb, 100u);
  EXPECT_EQ(c.ring.queue_slices, 8u);
  EXPECT_EQ(c.ring.max_dump_seconds, 90u);
  EXPECT_FALSE(c.ring.sn_dump);
  EXPECT_EQ(c.ring.sn_dump_after_s, 20u);
  EXPECT_NE(config_error_of("[ring]\nseconds = 0\n").find("ring.seconds"), std::string::npos);
  EXPECT_NE(config_error_of("[ring]\nsize = 3\n").find("ring.size"), std::string::npos);
  EXPECT_NE(config_error_of("[ring]\nenabled = true\n[spool]\nenabled = false\n").find("ring.enabled"), std::string::npos);
  EXPECT_NE(config_error_of("[ring]\nsn_dump_before_s = 0\nsn_dump_after_s = 0\n").find("ring.sn_dump_after_s"), std::string::npos);
  // The shipped example documents the section with its defaults.
  const NodeConfig example = load_config(SHOREDAQ_SOURCE_DIR "/firmware/shoredaq.example.toml");
  EXPECT_EQ(example.ring.seconds, d.ring.seconds);
  EXPECT_EQ(example.ring.max_mb, d.ring.max_mb);
  EXPECT_EQ(example.ring.queue_slices, d.ring.queue_slices);
  EXPECT_EQ(example.ring.enabled, d.ring.enabled);
}

TEST(RingService, DumpTimesAreUtcWithAZoneOrUnixSeconds) {
  EXPECT_EQ(parse_dump_time("2025-12-06T05:46:40Z"), kT0);
  EXPECT_EQ(parse_dump_time("2025-12-06T05:46:40.25Z"), kT0 + 250'000'000ull);
  EXPECT_EQ(parse_dump_time("1765000000"), kT0);
  EXPECT_EQ(parse_dump_time("1765000000.000000001"), kT0 + 1);
  for (const char* bad : {"", "2025-12-06T05:46:40", "2025-12-06 05:46:40Z", "2025-13-06T05:46:40Z", "17650000x", "1765000000.",
                          "2025-12-06T05:46:40.Z", "-5", "1765000000.1234567891"}) {
    EXPECT_FALSE(parse_dump_time(bad).has_value()) << bad;
  }
}

TEST(RingService, OfferedSlicesAreKeptAndAWindowIsDumpedIntoTheSpool) {
  Dir dir("dump");
  RingService s(options(dir));
  s.set_taking_data(true);
  for (std::uint32_t i = 0; i < 150; ++i) s.offer(slice(i));  // 15 s into a 10 s ring
  ASSERT_TRUE(wait_for([&] { return s.status()["stored"] == 150; })) << s.status().dump();
  const auto st = s.status();
  EXPECT_EQ(st["slices"], 100);
  EXPECT_EQ(st["oldest_slice_ns"], kT0 + 5 * kSecond);
  EXPECT_EQ(st["skipped"]["queue_full"], 0);

  // Older than the ring: refused at once, with the reason.
  const DumpRecord old = s.request_dump(kT0, kT0 + 2 * kSecond, "too old", "test");
  EXPECT_EQ(old.state, DumpState::Failed);
  EXPECT_NE(old.error.find("window older than the ring's 10 s"), std::string::npos) << old.error;

  // Longer than max_dump_seconds (5 s): cut from its start; then DONE with a file in ready/.
  const DumpRecord d = s.request_dump(kT0 + 6 * kSecond, kT0 + 14 * kSecond, "a test", "test");
  EXPECT_EQ(d.state, DumpState::Started);
  ASSERT_TRUE(wait_for([&] { return dump_of(s, d.id) && dump_of(s, d.id)->state != DumpState::Started; }));
  const DumpRecord done = *dump_of(s, d.id);
  ASSERT_EQ(done.state, DumpState::Done) << done.error;
  EXPECT_EQ(done.slices, 50u);
  EXPECT_EQ(done.missing_slices, 0u);
  EXPECT_EQ(done.to_ns - done.from_ns, 5 * kSecond);
  EXPECT_TRUE(fs::exists(dir.path / "spool" / "ready" / done.file));
  EXPECT_TRUE(fs::exists(dir.path / "spool" / "ready" / (done.file + ".json")));
  EXPECT_EQ(s.status()["dumps_by_state"]["DONE"], 1);
  EXPECT_EQ(s.status()["dumps_by_state"]["FAILED"], 1);

  // A window reaching past the ring's newest slice waits for it.
  const DumpRecord later = s.request_dump(kT0 + 14 * kSecond, kT0 + 16 * kSecond, "waits", "test");
  EXPECT_EQ(later.state, DumpState::Started);
  for (std::uint32_t i = 150; i < 170; ++i) s.offer(slice(i));
  ASSERT_TRUE(wait_for([&] { return dump_of(s, later.id) && dump_of(s, later.id)->state != DumpState::Started; }));
  EXPECT_EQ(dump_of(s, later.id)->state, DumpState::Done);
  EXPECT_EQ(dump_of(s, later.id)->slices, 20u);

  s.stop();
  s.offer(slice(170));
  EXPECT_EQ(s.status()["skipped"]["stopped"], 1);
}

TEST(RingService, ADumpACrashInterruptedIsReportedFailedAndItsPartialFileSetAside) {
  Dir dir("crash");
  const auto o = options(dir);
  fs::create_directories(o.ring_dir / "dumps");
  fs::create_directories(o.spool_dir / "open");
  fs::create_directories(o.spool_dir / "ready");
  DumpRecord running;
  running.id = "20251206T054640.0Z-1";
  running.state = DumpState::Started;
  running.reason = "GRB";
  running.requested_unix_ns = 1;
  std::ofstream(o.ring_dir / "dumps" / (running.id + ".json")) << running.to_json().dump();
  std::ofstream(o.spool_dir / "open" / "KM3NeT_00000133_00000005_0000.dump.dqd") << "half a dump";
  // One sealed just before the crash: its manifest names it.
  DumpRecord sealed = running;
  sealed.id = "20251206T054640.0Z-2";
  sealed.requested_unix_ns = 2;
  std::ofstream(o.ring_dir / "dumps" / (sealed.id + ".json")) << sealed.to_json().dump();
  std::ofstream(o.spool_dir / "ready" / "KM3NeT_00000133_00000005_0001.dump.dqd") << "whole";
  std::ofstream(o.spool_dir / "ready" / "KM3NeT_00000133_00000005_0001.dump.dqd.json")
      << nlohmann::json{{"dump", {{"id", sealed.id}, {"slices", 7}, {"missing_slices", 0}}}}.dump();

  RingService s(o);
  const auto failed = dump_of(s, running.id);
  ASSERT_TRUE(failed.has_value());
  EXPECT_EQ(failed->state, DumpState::Failed);
  EXPECT_NE(failed->error.find("interrupted"), std::string::npos);
  EXPECT_TRUE(fs::exists(o.spool_dir / "damaged" / "KM3NeT_00000133_00000005_0000.dump.dqd.partial"));
  EXPECT_FALSE(fs::exists(o.spool_dir / "open" / "KM3NeT_00000133_00000005_0000.dump.dqd"));
  const auto done = dump_of(s, sealed.id);
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->state, DumpState::Done);
  EXPECT_EQ(done->file, "KM3NeT_00000133_00000005_0001.dump.dqd");
  EXPECT_EQ(done->slices, 7u);
  // The journal says so too (a second restart sees the same).
  std::ifstream in(o.ring_dir / "dumps" / (running.id + ".json"));
  EXPECT_EQ(nlohmann::json::parse(in)["state"], "FAILED");
}
