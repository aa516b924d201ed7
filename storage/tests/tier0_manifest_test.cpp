// Tier-0 manifests a catalogue accepts: the fields the spool writes, Rucio's rules, and every
// manifest these tests produce checked against storage/schema/tier0_manifest.schema.json by an
// independent validator (python3-jsonschema) as well as by validate_tier0_manifest().
#include "shoredaq/storage/tier0_manifest.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <set>

#include "shoredaq/formats/clb_datagram.hpp"
#include "shoredaq/formats/event.hpp"
#include "shoredaq/storage/acoustic_spool.hpp"
#include "shoredaq/version.hpp"
#include "tier0_spool_test_support.hpp"
#include "tier0_transfer_test_support.hpp"

using namespace shoredaq;
using namespace shoredaq::storage;
using namespace shoredaq::storage::testing;
namespace fs = std::filesystem;

namespace {

const fs::path kSchema = fs::path(SHOREDAQ_SOURCE_DIR) / "storage/schema/tier0_manifest.schema.json";
const fs::path kValidator = fs::path(SHOREDAQ_SOURCE_DIR) / "storage/tests/validate_json_schema.py";

struct Validation {
  int exit_code = -1;
  std::string output;
};

// python3-jsonschema over the files; exit 3 = the package is missing.
Validation validate_with_jsonschema(const std::vector<fs::path>& files) {
  std::string command = "python3 '" + kValidator.string() + "' '" + kSchema.string() + "'";
  for (const auto& f : files) command += " '" + f.string() + "'";
  Validation v;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return v;
  char buffer[4096];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) v.output.append(buffer, n);
  const int status = ::pclose(pipe);
  v.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return v;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Every part manifest under the spool (ready/ and done/), and each part entry of the run manifests
// written out as a file of its own.
std::vector<fs::path> manifests_in(const fs::path& spool, const fs::path& scratch) {
  std::vector<fs::path> out;
  int n = 0;
  for (const char* dir : {"ready", "done"}) {
    if (!fs::exists(spool / dir)) continue;
    for (const auto& e : fs::directory_iterator(spool / dir)) {
      const std::string name = e.path().filename().string();
      if (name.ends_with(".daq.json") || name.ends_with(".acoustic.dqd.json")) out.push_back(e.path());
      if (name.ends_with(".run.json")) {
        const auto run_manifest = read_json(e.path());  // kept alive for the loop over its parts
        for (const auto& part : run_manifest["parts"]) {
          const fs::path copy = scratch / ("run-part-" + std::to_string(n++) + ".json");
          std::ofstream(copy) << part.dump();
          out.push_back(copy);
        }
      }
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

void expect_valid_everywhere(const std::vector<fs::path>& manifests) {
  ASSERT_FALSE(manifests.empty());
  for (const auto& m : manifests) {
    const auto problems = validate_tier0_manifest(read_text(m));
    EXPECT_TRUE(problems.empty()) << m << ": " << (problems.empty() ? "" : problems.front());
  }
  const auto v = validate_with_jsonschema(manifests);
  if (v.exit_code == 3) GTEST_SKIP() << "python3-jsonschema is not installed (./dev deps installs it)";
  EXPECT_EQ(v.exit_code, 0) << v.output;
}

}  // namespace

TEST(Tier0Manifest, RucioRules) {
  EXPECT_TRUE(is_valid_rucio_name("KM3NeT_00000133_00014728_0000.daq"));
  EXPECT_TRUE(is_valid_rucio_name("a-b.c_d"));
  EXPECT_FALSE(is_valid_rucio_name("a"));             // at least 2 characters
  EXPECT_FALSE(is_valid_rucio_name("_starts.badly"));  // starts with a letter or digit
  EXPECT_FALSE(is_valid_rucio_name("has space"));
  EXPECT_FALSE(is_valid_rucio_name("dir/file"));
  EXPECT_TRUE(is_valid_rucio_name(std::string(251, 'a')));
  EXPECT_FALSE(is_valid_rucio_name(std::string(252, 'a')));
  EXPECT_TRUE(is_valid_rucio_scope("km3net"));
  EXPECT_TRUE(is_valid_rucio_scope("user.alice"));
  EXPECT_FALSE(is_valid_rucio_scope(""));
  EXPECT_FALSE(is_valid_rucio_scope(std::string(26, 'a')));
  EXPECT_FALSE(is_valid_rucio_scope("a/b"));
}

TEST(Tier0Manifest, Adler32TextIsEightLowerCaseHexDigits) {
  EXPECT_TRUE(is_valid_adler32_hex("01df55d3"));
  EXPECT_FALSE(is_valid_adler32_hex("1df55d3"));
  EXPECT_FALSE(is_valid_adler32_hex("01DF55D3"));
  EXPECT_EQ(parse_adler32_hex("1df55d3"), 0x01df55d3u);  // a server that does not pad
  EXPECT_EQ(parse_adler32_hex("01DF55D3"), 0x01df55d3u);
  EXPECT_FALSE(parse_adler32_hex("01df55d3a"));
  EXPECT_FALSE(parse_adler32_hex("xyz"));
  Adler32 small;  // a 1-byte file 0x01: a = 1 + 1 = 2, b = 0 + a = 2 -> 0x00020002
  small.update(std::string_view("\x01", 1));
  EXPECT_EQ(small.hex(), "00020002");
}

TEST(Tier0Manifest, GuidsAreCanonicalVersion4AndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string g = make_guid_v4();
    ASSERT_EQ(g.size(), 36u) << g;
    EXPECT_EQ(g[14], '4') << g;
    EXPECT_NE(std::string("89ab").find(g[19]), std::string::npos) << g;
    seen.insert(g);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(Tier0Manifest, UtcTextKeepsNanoseconds) {
  EXPECT_EQ(format_utc_ns(1'700'000'000'100'000'016ull), "2023-11-14T22:13:20.100000016Z");
  EXPECT_EQ(format_utc_ns(0), "1970-01-01T00:00:00.000000000Z");
}

TEST(Tier0Manifest, TheSpoolWritesEveryCatalogueFieldAndTheRunsProvenance) {
  TempDir dir("manifest");
  RunProvenance provenance;
  provenance.scope = "km3net.test";
  provenance.run_type = "physics";
  provenance.run_setup_hash = "sha256:5d41402abc4b2a76b9719d911017c592";
  provenance.detector_file_hash = "sha256:7d793037a0760186574b0282f2f435e7";
  Tier0SpoolConfig config;
  config.directory = dir.path();
  config.fsync = false;
  Tier0Spool spool(config);
  spool.begin_run(14728, 133, provenance);
  // Frame 0: two 3D muon events and one 3D shower + MX shower event; frame 1: a nanobeacon event.
  auto events = make_slice_events(133, 14728, 0, 2);
  events.push_back(make_event(133, 14728, 0, 2, 30,
                              dataflow::trigger_bit(dataflow::kTriggerBit3DShower) |
                                  dataflow::trigger_bit(dataflow::kTriggerBitMXShower)));
  const auto summary0 = make_summary(133, 14728, 0);
  spool.write_slice(events, &summary0);
  const std::vector<dataflow::Event> beacon{make_event(133, 14728, 1, 0, 30, dataflow::trigger_bit(dataflow::kTriggerBitNanobeacon))};
  const auto summary1 = make_summary(133, 14728, 1);
  spool.write_slice(beacon, &summary1);
  EXPECT_TRUE(fs::exists(spool.runs_dir() / Tier0Spool::run_provenance_name(133, 14728)));
  spool.end_run();
  EXPECT_FALSE(fs::exists(spool.runs_dir() / Tier0Spool::run_provenance_name(133, 14728)));

  const std::string file = "KM3NeT_00000133_00014728_0000.daq";
  const auto m = read_json(spool.ready_dir() / (file + ".json"));
  EXPECT_EQ(m["manifest_version"], 1);
  EXPECT_EQ(m["scope"], "km3net.test");
  EXPECT_EQ(m["name"], file);
  EXPECT_EQ(m["bytes"], fs::file_size(spool.ready_dir() / file));
  EXPECT_EQ(m["bytes"], m["size_bytes"]);
  EXPECT_EQ(m["events"], 4);
  EXPECT_EQ(m["events_per_trigger"]["3d_muon"], 2);
  EXPECT_EQ(m["events_per_trigger"]["3d_shower"], 1);
  EXPECT_EQ(m["events_per_trigger"]["mx_shower"], 1);
  EXPECT_EQ(m["events_per_trigger"]["nanobeacon"], 1);
  EXPECT_EQ(m["events_per_trigger"]["factory_limit"], 0);
  // slice_header(): frame f starts at 1'700'000'000 s + f/10 s + (f % 10) * 625000 ticks of 16 ns
  // (10 ms); a slice ends 100 ms after its start.
  EXPECT_EQ(m["utc_start"], "2023-11-14T22:13:20.000000000Z");
  EXPECT_EQ(m["utc_end"], "2023-11-14T22:13:20.110000000Z");
  EXPECT_EQ(m["first_frame"], 0);
  EXPECT_EQ(m["last_frame"], 1);
  EXPECT_EQ(m["data_type"], "events");
  EXPECT_EQ(m["data_tier"], "raw");
  EXPECT_EQ(m["format"], "km3net-online");
  EXPECT_EQ(m["format_version"], 1);
  EXPECT_EQ(m["software_version"], std::string(shoredaq::version()));
  EXPECT_EQ(m["run_type"], "physics");
  EXPECT_EQ(m["run_setup_hash"], provenance.run_setup_hash);
  EXPECT_EQ(m["detector_file_hash"], provenance.detector_file_hash);
  EXPECT_EQ(m["guid"].get<std::string>().size(), 36u);
  expect_valid_everywhere(manifests_in(dir.path(), dir.path()));
}

TEST(Tier0Manifest, TheTwoArgumentBeginRunStillWorksWithDefaults) {
  TempDir dir("manifest-defaults");
  seal_parts(dir.path(), 7, 1);
  const auto m = read_json(dir.path() / "ready" / "KM3NeT_00000133_00000007_0000.daq.json");
  EXPECT_EQ(m["scope"], kDefaultRucioScope);
  EXPECT_TRUE(m["run_type"].is_null());
  EXPECT_TRUE(m["run_setup_hash"].is_null());
  EXPECT_EQ(m["software_version"], std::string(shoredaq::version()));
  expect_valid_everywhere(manifests_in(dir.path(), dir.path()));
}

// The adler32 of most files starts with a non-zero digit; one that does not must still be written
// with its leading zeros (and validate: the schema wants exactly 8 digits).
TEST(Tier0Manifest, AnAdler32WithLeadingZerosIsWrittenZeroPaddedAndValidates) {
  TempDir dir("manifest-zeros");
  Tier0SpoolConfig config;
  config.directory = dir.path();
  config.fsync = false;
  Tier0Spool spool(config);
  std::string file;
  // Single-event runs of growing size: their adler32 values walk through all high digits, so a
  // leading zero comes within a few dozen (the search is deterministic: same bytes every run).
  for (std::uint32_t run = 1; run < 400 && file.empty(); ++run) {
    spool.begin_run(run, 133);
    spool.write_event(make_event(133, run, 0, 0, run % 97 + 3));
    spool.end_run();
    const std::string name = Tier0Spool::part_file_name(133, run, 0);
    if (read_json(spool.ready_dir() / (name + ".json"))["adler32"].get<std::string>().front() == '0') file = name;
  }
  ASSERT_FALSE(file.empty()) << "no part with a leading-zero adler32 in the search";
  const auto m = read_json(spool.ready_dir() / (file + ".json"));
  const auto bytes = read_bytes(spool.ready_dir() / file);
  Adler32 adler;
  adler.update(bytes);
  EXPECT_LT(adler.value(), 0x10000000u);
  EXPECT_EQ(m["adler32"], adler.hex());
  EXPECT_EQ(m["adler32"].get<std::string>().size(), 8u);
  expect_valid_everywhere({spool.ready_dir() / (file + ".json")});
}

TEST(Tier0Manifest, PartsRecoveredAfterACrashCarryTheirCountsAndTheRunsProvenance) {
  TempDir dir("manifest-recovered");
  RunProvenance provenance;
  provenance.run_type = "calibration";
  provenance.software_version = "v9.9.9-test";
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The writer dies (no destructor, no seal) with a part open.
    Tier0SpoolConfig config;
    config.directory = dir.path();
    config.fsync = false;
    config.write_buffer_bytes = 1;  // every slice reaches the file at once
    Tier0Spool spool(config);
    spool.begin_run(21, 133, provenance);
    const std::vector<dataflow::Event> shower{
        make_event(133, 21, 3, 0, 30, dataflow::trigger_bit(dataflow::kTriggerBit3DShower))};
    const auto summary = make_summary(133, 21, 3);
    spool.write_slice(shower, &summary);
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

  Tier0SpoolConfig config;
  config.directory = dir.path();
  config.fsync = false;
  Tier0Spool recovered(config);
  const auto m = read_json(recovered.ready_dir() / "KM3NeT_00000133_00000021_0000.daq.json");
  EXPECT_EQ(m["recovered"], true);
  EXPECT_EQ(m["run_type"], "calibration");
  EXPECT_EQ(m["software_version"], "v9.9.9-test");
  EXPECT_EQ(m["events_per_trigger"]["3d_shower"], 1);
  EXPECT_EQ(m["first_frame"], 3);
  EXPECT_EQ(m["utc_start"], "2023-11-14T22:13:20.030000000Z");
  EXPECT_TRUE(fs::is_empty(recovered.runs_dir())) << "the closed run's provenance record stayed";
  expect_valid_everywhere(manifests_in(dir.path(), dir.path()));
}

// The checks must be able to fail: a manifest broken in each catalogue field is refused by both.
TEST(Tier0Manifest, BrokenManifestsAreRefusedByBothValidators) {
  TempDir dir("manifest-broken");
  seal_parts(dir.path(), 5, 1);
  const auto good = read_json(dir.path() / "ready" / "KM3NeT_00000133_00000005_0000.daq.json");
  const std::vector<std::pair<std::string, nlohmann::json>> breakages{
      {"adler32", "1df55d3"},  {"adler32", "01DF55D3"}, {"name", "_bad name"}, {"scope", "a/b"},
      {"guid", "not-a-guid"},  {"bytes", -1},           {"data_type", "raw"},   {"utc_start", "yesterday"},
      {"md5", "abc"},          {"software_version", ""}, {"run_setup_hash", ""}, {"surprise", 1}};
  for (std::size_t i = 0; i < breakages.size(); ++i) {
    auto bad = good;
    bad[breakages[i].first] = breakages[i].second;
    const fs::path path = dir.path() / ("bad" + std::to_string(i) + ".json");
    std::ofstream(path) << bad.dump();
    EXPECT_FALSE(validate_tier0_manifest(bad.dump()).empty()) << breakages[i].first;
    const auto v = validate_with_jsonschema({path});
    if (v.exit_code == 3) GTEST_SKIP() << "python3-jsonschema is not installed";
    EXPECT_EQ(v.exit_code, 1) << breakages[i].first << ": " << v.output;
  }
  auto missing = good;
  missing.erase("guid");
  EXPECT_FALSE(validate_tier0_manifest(missing.dump()).empty());
}

// The run files' other streams: a part holding timeslices and TMCH packets has a manifest both
// validators accept, with the counts per stream; broken counts are refused by both.
TEST(Tier0Manifest, StreamCountsOfARunFileValidateAndBrokenOnesAreRefused) {
  TempDir dir("manifest-streams");
  {
    Tier0SpoolConfig config;
    config.directory = dir.path();
    config.fsync = false;
    Tier0Spool spool(config);
    spool.begin_run(7, 133);
    for (std::uint32_t f = 0; f < 5; ++f) {
      spool.write_slice(make_products(133, 7, f, 1, {dataflow::TimesliceKind::L1, dataflow::TimesliceKind::SN}, 2));
    }
    spool.end_run();
  }
  expect_valid_everywhere(manifests_in(dir.path(), dir.path()));
  const auto good = read_json(dir.path() / "ready" / "KM3NeT_00000133_00000007_0000.daq.json");
  EXPECT_EQ(good["timeslices"]["l1"], 5);
  EXPECT_EQ(good["monitoring_packets"], 10);
  const std::vector<std::pair<std::string, nlohmann::json>> breakages{
      {"timeslices", nlohmann::json{{"l1", 1}}},
      {"timeslices", nlohmann::json{{"error", 0}, {"l0", 0}, {"l1", 0}, {"l2", 0}, {"sn", 0}, {"l7", 1}}},
      {"monitoring_packets", -1},
      {"format", "json"},
      {"datagrams_per_dom", nlohmann::json{{"dom", 1}}},
      {"datagrams", "many"}};
  for (std::size_t i = 0; i < breakages.size(); ++i) {
    auto bad = good;
    bad[breakages[i].first] = breakages[i].second;
    const fs::path path = dir.path() / ("bad-stream" + std::to_string(i) + ".json");
    std::ofstream(path) << bad.dump();
    EXPECT_FALSE(validate_tier0_manifest(bad.dump()).empty()) << i;
    const auto v = validate_with_jsonschema({path});
    if (v.exit_code == 3) GTEST_SKIP() << "python3-jsonschema is not installed";
    EXPECT_EQ(v.exit_code, 1) << i << ": " << v.output;
  }
}

// The acoustic parts' manifests (data type acoustic, format clb-records, datagrams per DOM) and
// their run manifest's parts satisfy the same schema.
TEST(Tier0Manifest, AcousticPartsHaveManifestsBothValidatorsAccept) {
  TempDir dir("manifest-acoustic");
  AcousticSpoolConfig config;
  config.directory = dir.path();
  config.fsync = false;
  config.max_file_bytes = 2000;  // several parts
  AcousticSpool spool(config);
  RunProvenance provenance;
  provenance.run_type = "physics";
  spool.begin_run(31, 133, provenance);
  for (std::uint32_t i = 0; i < 30; ++i) {
    dataflow::ClbHeader h;
    h.data_type = dataflow::DataType::Acoustic;
    h.run_number = 31;
    h.utc_seconds = 1'700'000'000u + i / 10;
    h.ticks_16ns = (i % 10) * 625'000u;
    h.dom_id = 800 + i % 3;
    std::vector<std::uint8_t> datagram;
    dataflow::encode_clb_header(h, dataflow::HeaderLayout::Standard40, datagram);
    datagram.resize(datagram.size() + 200, 0x5a);
    ASSERT_EQ(spool.write(datagram, h.dom_id), AcousticWriteStatus::Accepted);
    spool.flush_if_due(std::chrono::steady_clock::now() + std::chrono::hours(1));
  }
  spool.end_run();
  const auto manifests = manifests_in(dir.path(), dir.path());
  ASSERT_GT(manifests.size(), 2u);
  expect_valid_everywhere(manifests);
  const auto m = read_json(dir.path() / "ready" / "KM3NeT_00000133_00000031_0000.acoustic.dqd.json");
  EXPECT_EQ(m["data_type"], "acoustic");
  EXPECT_EQ(m["format"], "clb-records");
  EXPECT_EQ(m["run_type"], "physics");
  EXPECT_TRUE(m["first_frame"].is_null());
  EXPECT_EQ(m["utc_start"], "2023-11-14T22:13:20.000000000Z");
}
