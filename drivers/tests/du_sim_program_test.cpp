// The du-sim program over ZeroMQ: live generation to a PULL socket (same bytes as the .dqd of
// the same seed), --replay with --loop (restamped second pass), faults in the summary, bad
// options. Real processes on loopback; every wait has a deadline.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "shoredaq/formats/clb_datagram.hpp"
#include "shoredaq/formats/record_stream.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
const std::string kDuSim = SHOREDAQ_BINARY_DIR "/drivers/du-sim";
const std::string kDetx = SHOREDAQ_TESTDATA_DIR "/detx/KM3NeT_00000133_20221025.detx";

struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device rd;
    path = fs::temp_directory_path() / ("du_sim_program_" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

// Receives records until `expected` arrived or the deadline passed.
std::vector<std::vector<std::uint8_t>> receive_records(zmq::socket_t& pull, std::size_t expected,
                                                       std::chrono::seconds timeout) {
  std::vector<std::vector<std::uint8_t>> out;
  const auto deadline = Clock::now() + timeout;
  while (out.size() < expected && Clock::now() < deadline) {
    zmq::pollitem_t item{pull.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(100));
    if (!(item.revents & ZMQ_POLLIN)) continue;
    zmq::message_t m;
    if (!pull.recv(m, zmq::recv_flags::dontwait)) continue;
    const std::span<const std::uint8_t> bytes(static_cast<const std::uint8_t*>(m.data()), m.size());
    const auto scan = shoredaq::dataflow::for_each_record(bytes, [&](std::span<const std::uint8_t> r) {
      out.emplace_back(r.begin(), r.end());
    });
    EXPECT_TRUE(scan);
  }
  return out;
}

TEST(DuSimProgram, LiveZeroMqFeedEqualsTheFileOfTheSameSeed) {
  TempDir tmp;
  const auto dqd = tmp.path / "ref.dqd";
  const std::string common = " --detx " + kDetx + " --dus 9 --slices 3 --seed 11 --start-utc 1700000000 --muon-rate-hz 50";
  ASSERT_EQ(std::system((kDuSim + common + " --out " + dqd.string() + " > /dev/null").c_str()), 0);
  const auto reference = shoredaq::dataflow::read_dqd_file(dqd);
  ASSERT_FALSE(reference.empty());

  zmq::context_t ctx;
  zmq::socket_t pull(ctx, zmq::socket_type::pull);
  pull.set(zmq::sockopt::linger, 0);
  pull.bind("tcp://127.0.0.1:*");
  const std::string endpoint = pull.get(zmq::sockopt::last_endpoint);
  const auto summary = tmp.path / "summary.json";
  auto run = std::async(std::launch::async, [&] {
    return std::system((kDuSim + common + " --endpoint " + endpoint + " --json > " + summary.string()).c_str());
  });
  const auto received = receive_records(pull, reference.size(), std::chrono::seconds(60));
  ASSERT_EQ(run.get(), 0);
  EXPECT_EQ(received, reference);
  const auto j = read_json(summary);
  EXPECT_EQ(j["output"]["records"].get<std::size_t>(), reference.size());
  EXPECT_GT(j["output"]["messages"].get<std::size_t>(), 0u);
}

// A du-sim recording of DU 9 (seed 3) of `slices` slices; empty if du-sim failed.
fs::path record_feed(const TempDir& tmp, unsigned slices) {
  const auto dqd = tmp.path / "ref.dqd";
  const int rc = std::system((kDuSim + " --detx " + kDetx + " --dus 9 --slices " + std::to_string(slices) +
                              " --seed 3 --start-utc 1700000000 --out " + dqd.string() + " > /dev/null").c_str());
  return rc == 0 ? dqd : fs::path();
}

// `du-sim --replay dqd <options>` into a PULL socket: its exit code, the records received (waiting
// for `expected` of them, with a deadline) and its JSON summary.
struct Replayed {
  int exit_code = -1;
  std::vector<std::vector<std::uint8_t>> received;
  nlohmann::json summary;
};
Replayed replay(const TempDir& tmp, const fs::path& dqd, const std::string& options, std::size_t expected) {
  zmq::context_t ctx;
  zmq::socket_t pull(ctx, zmq::socket_type::pull);
  pull.set(zmq::sockopt::linger, 0);
  pull.bind("tcp://127.0.0.1:*");
  const std::string endpoint = pull.get(zmq::sockopt::last_endpoint);
  const auto summary = tmp.path / "summary.json";
  auto run = std::async(std::launch::async, [&] {
    return std::system((kDuSim + " --replay " + dqd.string() + " " + options + " --endpoint " + endpoint + " --json > " +
                        summary.string()).c_str());
  });
  Replayed r;
  r.received = receive_records(pull, expected, std::chrono::seconds(60));
  r.exit_code = run.get();
  if (r.exit_code == 0) r.summary = read_json(summary);
  return r;
}

TEST(DuSimProgram, ReplayLoopsWithShiftedSliceTimes) {
  TempDir tmp;
  const auto dqd = record_feed(tmp, 2);
  ASSERT_FALSE(dqd.empty());
  const auto reference = shoredaq::dataflow::read_dqd_file(dqd);
  const Replayed r = replay(tmp, dqd, "--loop 2", 2 * reference.size());
  ASSERT_EQ(r.exit_code, 0);
  const auto& received = r.received;
  ASSERT_EQ(received.size(), 2 * reference.size());
  std::set<std::uint64_t> slice_starts;
  for (std::size_t i = 0; i < received.size(); ++i) {
    const auto& ref = reference[i % reference.size()];
    const auto a = shoredaq::dataflow::parse_clb_datagram(received[i]);
    const auto b = shoredaq::dataflow::parse_clb_datagram(ref);
    ASSERT_TRUE(a && b);
    // Second pass: 2 slices (200 ms) later, everything else identical.
    const std::uint64_t shift = i < reference.size() ? 0 : 200'000'000ull;
    EXPECT_EQ(a.datagram.header.slice_start_ns(), b.datagram.header.slice_start_ns() + shift);
    EXPECT_EQ(a.datagram.header.dom_id, b.datagram.header.dom_id);
    EXPECT_TRUE(std::equal(a.datagram.payload.begin(), a.datagram.payload.end(), b.datagram.payload.begin(),
                           b.datagram.payload.end()));
    slice_starts.insert(a.datagram.header.slice_start_ns());
  }
  EXPECT_EQ(slice_starts.size(), 4u);
  EXPECT_EQ(r.summary["slices"], 4);
  EXPECT_EQ(r.summary["datagrams"].get<std::size_t>(), 2 * reference.size());
}

TEST(DuSimProgram, ReplaySkipsTheFilesFirstSlices) {
  // A DU that starts sending later in the run: the first slices of the file are left out, the
  // rest is sent unchanged.
  TempDir tmp;
  const auto dqd = record_feed(tmp, 4);
  ASSERT_FALSE(dqd.empty());
  const auto reference = shoredaq::dataflow::read_dqd_file(dqd);
  const std::uint64_t first_ns = shoredaq::dataflow::parse_clb_datagram(reference.front()).datagram.header.slice_start_ns();
  std::vector<std::vector<std::uint8_t>> expected;
  for (const auto& r : reference) {
    if (shoredaq::dataflow::parse_clb_datagram(r).datagram.header.slice_start_ns() >= first_ns + 300'000'000ull)
      expected.push_back(r);
  }
  ASSERT_GT(expected.size(), 0u);
  ASSERT_LT(expected.size(), reference.size());
  const Replayed r = replay(tmp, dqd, "--skip-slices 3", expected.size());
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.received, expected);
  EXPECT_EQ(r.summary["slices"], 1);
  EXPECT_EQ(r.summary["datagrams"].get<std::size_t>(), expected.size());
  EXPECT_EQ(r.summary["skipped_datagrams"].get<std::size_t>(), reference.size() - expected.size());

  // A record too short to carry its slice goes with the slice it came in: left out among the
  // skipped slices, sent (for the node to count) among the others.
  const std::vector<std::uint8_t> short_record(10, 0xab);
  const auto with_short = tmp.path / "short.dqd";
  {
    shoredaq::dataflow::DqdFileWriter w(with_short);
    w.write(reference.front());
    w.write(short_record);  // in slice 1: skipped
    for (std::size_t i = 1; i < reference.size(); ++i) {
      w.write(reference[i]);
      if (i + 1 == reference.size()) w.write(short_record);  // in the last slice: sent
    }
    w.close();
  }
  auto expected_short = expected;
  expected_short.push_back(short_record);
  const Replayed s = replay(tmp, with_short, "--skip-slices 3", expected_short.size());
  ASSERT_EQ(s.exit_code, 0);
  EXPECT_EQ(s.received, expected_short);
  EXPECT_EQ(s.summary["skipped_datagrams"].get<std::size_t>(), reference.size() - expected.size() + 1);
}

TEST(DuSimProgram, FaultsAreCountedInTheSummary) {
  TempDir tmp;
  const auto summary = tmp.path / "s.json";
  const auto dqd = tmp.path / "f.dqd";
  const std::string cmd = kDuSim + " --detx " + kDetx + " --dus 9 --slices 4 --seed 5 --start-utc 1700000000" +
                          " --loss-pct 5 --dup-pct 5 --reorder --corrupt-pct 5 --silent-dom 808992603" +
                          " --late-dom 808974928 --late-slices 1 --out " + dqd.string() + " --json > " + summary.string();
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const auto j = read_json(summary);
  const auto& f = j["faults"];
  EXPECT_GT(f["lost"].get<int>(), 0);
  EXPECT_GT(f["duplicated"].get<int>(), 0);
  EXPECT_GT(f["corrupted"].get<int>(), 0);
  EXPECT_GT(f["delayed"].get<int>(), 0);
  EXPECT_GT(f["silenced"].get<int>(), 0);
  // Every generated datagram is accounted for: sent, lost or silenced (late ones are sent later).
  EXPECT_EQ(j["datagrams_out"].get<int>(),
            j["datagrams_generated"].get<int>() - f["lost"].get<int>() - f["silenced"].get<int>() + f["duplicated"].get<int>());
}

TEST(DuSimProgram, BadSliceTimesAreInjectedAndCounted) {
  TempDir tmp;
  const auto summary = tmp.path / "s.json";
  const auto dqd = tmp.path / "b.dqd";
  const std::uint32_t dom = 808974928;
  const std::string cmd = kDuSim + " --detx " + kDetx + " --dus 9 --slices 5 --seed 5 --start-utc 1700000000" +
                          " --bad-time-dom " + std::to_string(dom) +
                          " --bad-time-offset-s 55 --bad-time-step-s 55 --bad-time-count 3 --bad-time-at-slice 1 --out " +
                          dqd.string() + " --json > " + summary.string();
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const auto j = read_json(summary);
  EXPECT_EQ(j["faults"]["bad_time"].get<int>(), 3);
  EXPECT_EQ(j["datagrams_out"].get<int>(), j["datagrams_generated"].get<int>() + 3);
  std::vector<std::uint64_t> off_times;
  for (const auto& record : shoredaq::dataflow::read_dqd_file(dqd)) {
    const auto d = shoredaq::dataflow::parse_clb_datagram(record);
    ASSERT_TRUE(d);
    const std::uint64_t t = d.datagram.header.slice_start_ns();
    if (t >= 1'700'000'000'000'000'000ull + 500'000'000ull) {
      EXPECT_EQ(d.datagram.header.dom_id, dom);
      off_times.push_back(t - 1'700'000'000'000'000'000ull);
    }
  }
  // Slices 1, 2, 3, each 55 s further off: +55 s, +110 s, +165 s.
  EXPECT_EQ(off_times, (std::vector<std::uint64_t>{55'100'000'000ull, 110'200'000'000ull, 165'300'000'000ull}));
}

TEST(DuSimProgram, SupernovaBurstIsInTheTruthFile) {
  // A 0.35 s burst from 0.25 s: slices 2..5 overlap it. The truth file starts with the burst and
  // has one sn_slice line per overlapping slice; the summary counts the same coincidences.
  TempDir tmp;
  const auto summary = tmp.path / "s.json", truth = tmp.path / "truth.jsonl";
  const std::string cmd = kDuSim + " --detx " + kDetx + " --dus 9 --slices 8 --seed 5 --start-utc 1700000000" +
                          " --muon-rate-hz 0 --sn-burst-at 0.25 --sn-burst-seconds 0.35 --sn-burst-scale 2 --truth " +
                          truth.string() + " --json > " + summary.string();
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream in(truth);
  std::string line;
  std::vector<nlohmann::json> lines;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[0]["type"], "sn_burst");
  EXPECT_EQ(lines[0]["start_unix_ns"].get<std::uint64_t>(), 1'700'000'000'250'000'000ull);
  EXPECT_DOUBLE_EQ(lines[0]["duration_s"].get<double>(), 0.35);
  EXPECT_DOUBLE_EQ(lines[0]["scale"].get<double>(), 2.0);
  std::uint64_t coincidences = 0;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i]["type"], "sn_slice");
    EXPECT_EQ(lines[i]["frame_index"].get<std::uint32_t>(), i + 1);
    EXPECT_EQ(lines[i]["slice_start_unix_ns"].get<std::uint64_t>(), 1'700'000'000'000'000'000ull + (i + 1) * 100'000'000ull);
    coincidences += lines[i]["coincidences"].get<std::uint64_t>();
  }
  EXPECT_GT(coincidences, 0u);
  const auto j = read_json(summary);
  EXPECT_EQ(j["sn_burst"]["coincidences"].get<std::uint64_t>(), coincidences);
  EXPECT_EQ(j["sn_burst"]["start_unix_ns"].get<std::uint64_t>(), 1'700'000'000'250'000'000ull);
}

TEST(DuSimProgram, BadOptionsFailWithAMessage) {
  EXPECT_NE(std::system((kDuSim + " --detx " + kDetx + " --dus 6 --slices 1 2> /dev/null").c_str()), 0);  // no DU 6
  EXPECT_NE(std::system((kDuSim + " --slices 1 2> /dev/null").c_str()), 0);  // no --detx
  EXPECT_NE(std::system((kDuSim + " --detx " + kDetx + " --seconds 1 --slices 2 > /dev/null 2>&1").c_str()), 0);
  EXPECT_NE(std::system((kDuSim + " --detx " + kDetx + " --loss-pct 150 > /dev/null 2>&1").c_str()), 0);
  EXPECT_NE(std::system((kDuSim + " --detx " + kDetx + " --sn-burst-at 1 --sn-burst-seconds 0 > /dev/null 2>&1").c_str()), 0);
  EXPECT_NE(std::system((kDuSim + " --detx " + kDetx + " --sn-burst-at 1 --sn-burst-scale -1 > /dev/null 2>&1").c_str()), 0);
  EXPECT_EQ(std::system((kDuSim + " --help > /dev/null").c_str()), 0);
}

}  // namespace
