// Detector model: every sample .detx parses with the module and PMT counts the file declares, known
// numbers hold, malformed files name the right line, and to_detx() round-trips.
#include "shoredaq/formats/detector.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

namespace sd = shoredaq::dataflow;
namespace fs = std::filesystem;

namespace {

fs::path detx_dir() { return fs::path(SHOREDAQ_TESTDATA_DIR) / "detx"; }

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// What a file declares, counted by a deliberately naive second reader: the module count from the
// header and the sum of the last field of each module line.
struct Declared {
  std::size_t modules = 0;
  std::size_t pmts = 0;
  std::size_t base_modules = 0;
  int version = 1;
};
Declared count_declared(const std::string& text) {
  std::vector<std::vector<std::string>> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    std::istringstream fields(line);
    std::vector<std::string> tokens;
    for (std::string t; fields >> t;) tokens.push_back(t);
    if (!tokens.empty()) lines.push_back(tokens);
  }
  Declared d;
  std::size_t i = 1;
  std::size_t n = 0;
  if (lines[0][1][0] == 'v' || lines[0][1][0] == 'V') {
    d.version = std::stoi(lines[0][1].substr(1));
    n = std::stoul(lines[3][0]);
    i = 4;
  } else {
    n = std::stoul(lines[0][1]);
  }
  for (std::size_t m = 0; m < n; ++m) {
    const std::size_t pmts = std::stoul(lines[i].back());
    d.pmts += pmts;
    if (pmts == 0) ++d.base_modules;
    ++d.modules;
    i += 1 + pmts;
  }
  return d;
}

std::string error_of(std::string_view text, std::size_t* line = nullptr) {
  try {
    (void)sd::Detector::parse(text);
  } catch (const sd::DetxError& e) {
    if (line) *line = e.line();
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Detector, EverySampleFileParsesWithDeclaredCounts) {
  std::size_t files = 0;
  for (const auto& entry : fs::directory_iterator(detx_dir())) {
    if (entry.path().extension() != ".detx") continue;
    ++files;
    SCOPED_TRACE(entry.path().filename().string());
    const Declared declared = count_declared(read_text(entry.path()));
    const sd::Detector det = sd::Detector::load(entry.path());
    EXPECT_EQ(det.modules().size(), declared.modules);
    EXPECT_EQ(det.pmt_count(), declared.pmts);
    EXPECT_EQ(det.optical_module_count(), declared.modules - declared.base_modules);
    EXPECT_EQ(det.format_version(), declared.version);
    for (const auto& m : det.modules()) {
      EXPECT_EQ(det.find(m.id), &m);
      if (m.pmts.empty()) {
        EXPECT_EQ(m.floor, 0) << m.id;
      }
      EXPECT_LE(m.pmts.size(), 31u);
    }
  }
  EXPECT_EQ(files, 8u);
}

TEST(Detector, KnownNumbers) {
  const auto block = sd::Detector::load(detx_dir() / "KM3NeT_-00000001_20171212.detx");
  EXPECT_EQ(block.id(), 20);
  EXPECT_EQ(block.modules().size(), 2070u);
  EXPECT_EQ(block.pmt_count(), 2070u * 31u);
  EXPECT_EQ(block.du_ids().size(), 115u);
  EXPECT_EQ(block.format_version(), 2);

  const auto arca = sd::Detector::load(detx_dir() / "KM3NeT_00000133_20221025.detx");
  EXPECT_EQ(arca.id(), 133);
  EXPECT_EQ(arca.modules().size(), 399u);
  EXPECT_EQ(arca.du_ids().size(), 21u);
  EXPECT_EQ(arca.optical_module_count(), 378u);  // 21 DUs x 18 floors; 21 base modules
  const auto du5 = arca.modules_of_du(5);
  ASSERT_EQ(du5.size(), 19u);
  EXPECT_EQ(du5.front()->floor, 0);
  EXPECT_TRUE(du5.front()->is_base());
  EXPECT_EQ(du5.front()->id, 817565846u);
  for (std::size_t i = 1; i < du5.size(); ++i) EXPECT_EQ(du5[i]->floor, static_cast<int>(i));

  const auto orca6 = sd::Detector::load(detx_dir() / "detx_v5.detx");
  EXPECT_EQ(orca6.id(), 49);
  EXPECT_EQ(orca6.modules().size(), 114u);
  const sd::Module* m = orca6.find(808987107);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->du, 11);
  EXPECT_EQ(m->floor, 1);
  EXPECT_DOUBLE_EQ(m->position_m.x, 484.6);
  EXPECT_DOUBLE_EQ(m->position_m.z, 26.694);
  EXPECT_DOUBLE_EQ(m->quaternion[0], 0.998213);
  EXPECT_DOUBLE_EQ(m->quaternion[3], 0.058786);
  EXPECT_DOUBLE_EQ(m->t0_ns, 37694.902);
  // Channel = position in the module block; the PMT id is a serial number.
  const sd::Pmt* p0 = orca6.pmt(808987107, 0);
  ASSERT_NE(p0, nullptr);
  EXPECT_EQ(p0->id, 10057u);
  EXPECT_DOUBLE_EQ(p0->position_m.y, 564.607);
  EXPECT_DOUBLE_EQ(p0->direction.x, 0.803578);
  EXPECT_DOUBLE_EQ(p0->t0_ns, 207699.045);
  EXPECT_EQ(orca6.pmt(808987107, 2)->id, 13303u);
  EXPECT_EQ(orca6.pmt(808987107, 31), nullptr);
  EXPECT_EQ(orca6.pmt(1, 0), nullptr);
  EXPECT_EQ(orca6.find(1), nullptr);
  EXPECT_FALSE(orca6.index_of(1).has_value());
  EXPECT_EQ(orca6.modules()[*orca6.index_of(808987107)].id, 808987107u);

  // v4: the module line carries the position; the PMTs carry status.
  const auto v4 = sd::Detector::load(detx_dir() / "detx_v4.detx");
  EXPECT_EQ(v4.id(), 44);
  const sd::Module* m4 = v4.find(808432836);
  ASSERT_NE(m4, nullptr);
  EXPECT_DOUBLE_EQ(m4->position_m.x, 86.5);
  EXPECT_EQ(m4->pmts[0].id, 2712u);
  EXPECT_DOUBLE_EQ(m4->pmts[0].t0_ns, 207261.022);
}

TEST(Detector, SmallFilesAllVersions) {
  const auto v1 = sd::Detector::load(detx_dir() / "detx_v1.detx");
  const auto v2 = sd::Detector::load(detx_dir() / "detx_v2.detx");
  const auto v3 = sd::Detector::load(detx_dir() / "detx_v3.detx");
  EXPECT_EQ(v1.id(), 1);
  EXPECT_EQ(v2.id(), 23);
  EXPECT_EQ(v3.id(), 23);
  EXPECT_EQ(v1.format_version(), 1);
  EXPECT_EQ(v3.format_version(), 3);
  EXPECT_DOUBLE_EQ(v2.metadata().valid_from_s, 1500000000.1);
  EXPECT_EQ(v2.metadata().utm_reference, "WGS84 32N 256500.0 4743000.0 -2425.0");
  for (const auto* det : {&v1, &v2, &v3}) {
    ASSERT_EQ(det->modules().size(), 6u);
    EXPECT_EQ(det->pmt_count(), 18u);
    EXPECT_EQ(det->du_ids(), (std::vector<int>{1, 2}));
    // v1-v3: module position = mean of its PMT positions (1.1,1.4,1.7 -> 1.4 etc.).
    const sd::Module* m1 = det->find(1);
    ASSERT_NE(m1, nullptr);
    EXPECT_NEAR(m1->position_m.x, 1.4, 1e-12);
    EXPECT_NEAR(m1->position_m.y, 1.5, 1e-12);
    EXPECT_NEAR(m1->position_m.z, 1.6, 1e-12);
    EXPECT_EQ(m1->quaternion, (std::array<double, 4>{1, 0, 0, 0}));
    EXPECT_EQ(det->pmt(1, 1)->id, 2u);
  }
  EXPECT_DOUBLE_EQ(v1.pmt(1, 2)->t0_ns, 30.0);
  EXPECT_DOUBLE_EQ(v2.pmt(1, 2)->t0_ns, 30.2);
  EXPECT_EQ(v2.pmt(1, 2)->status, 0u);
  EXPECT_EQ(v3.pmt(1, 2)->status, 1u);  // v3 adds the PMT status
  EXPECT_EQ(v3.pmt(6, 0)->status, 1u);
}

TEST(Detector, CommentsAndBlankLinesAnywhere) {
  const std::string text =
      "# header comment\n"
      "7 v3\n"
      "\n"
      "0 1   # trailing comment\n"
      "# between\n"
      "UTM WGS84 32N 1 2 3\n"
      "2\n"
      "  # indented comment\n"
      "100 1 1 2\n"
      " 1 0 0 0 0 0 1 5 0\n"
      "\t\n"
      "# inside a module block\n"
      " 2 0 0 2 0 0 -1 6 0\r\n"
      "101 1 0 0\n"
      "# end\n";
  const auto det = sd::Detector::parse(text);
  EXPECT_EQ(det.id(), 7);
  ASSERT_EQ(det.modules().size(), 2u);
  EXPECT_EQ(det.pmt_count(), 2u);
  EXPECT_DOUBLE_EQ(det.find(100)->position_m.z, 1.0);
  EXPECT_TRUE(det.find(101)->is_base());
  EXPECT_EQ(det.optical_module_count(), 1u);
}

TEST(Detector, MalformedFilesNameTheLine) {
  struct Case {
    const char* text;
    std::size_t line;
    const char* fragment;
  };
  const Case cases[] = {
      {"", 1, "empty"},
      {"# only a comment\n", 2, "empty"},
      {"1 v9\n", 1, "version"},
      {"1 v1\n1 1 1 0\n", 1, "version"},
      {"1 V\n", 1, "version"},
      {"1 2 3\n", 1, "det_id"},
      {"x 1\n1 1 1 0\n", 1, "detector id"},
      {"1 v2\n0 1\nUTM WGS84 32N 1 2 3\n1\n1 1 1 1\n 1 0 0 0 0 0 1 zz\n", 6, "PMT t0"},
      {"1 v2\n0 1\nUTM WGS84 32N 1 2 3\n1\n1 1 1 1\n 1 0 0 0 0 0 1\n", 6, "8 fields"},
      {"1 v3\n0 1\nUTM WGS84 32N 1 2 3\n1\n1 1 1 1\n 1 0 0 0 0 0 1 5\n", 6, "9 fields"},
      {"1 v2\n0 1\nGPS 32N 1 2 3\n", 3, "UTM"},
      {"1 v2\n0 1\n", 3, "end of file"},
      {"1 2\n1 1 1 1\n 1 0 0 0 0 0 1 5\n", 4, "1 of 2 modules"},
      {"1 1\n# c\n1 1 1 2\n 1 0 0 0 0 0 1 5\n", 5, "1 of 2 PMTs"},
      {"1 2\n1 1 1 0\n1 1 2 0\n", 3, "duplicate module id"},
      {"1 1\n1 1 1 0\n2 1 2 0\n", 3, "after the 1 declared"},
      {"1 v4\n0 1\nUTM WGS84 32N 1 2 3\n1\n1 1 1 0 0 0 1 0 0 0 0 0 0\n", 5, "12 fields"},
      {"1 v5\n0 1\nUTM WGS84 32N 1 2 3\n1\n1 1 1 0 0 0 1 0 0 0 0 0\n", 5, "13 fields"},
      {"1 1\n1 1 1 99999\n", 2, "implausible"},
      {"1 1\n-5 1 1 0\n", 2, "module id"},
      {"1 1\n1 1 1 1\n 1 0 0 nan 0 0 1 5\n", 3, "'nan'"},
  };
  for (const auto& c : cases) {
    std::size_t line = 0;
    const std::string message = error_of(c.text, &line);
    EXPECT_EQ(line, c.line) << c.text << " -> " << message;
    EXPECT_NE(message.find(c.fragment), std::string::npos) << c.text << " -> " << message;
    EXPECT_NE(message.find("line " + std::to_string(c.line)), std::string::npos) << message;
  }
}

TEST(Detector, ErrorInRealFileReportsItsLine) {
  std::string text = read_text(detx_dir() / "detx_v3.detx");
  // Line 9 of detx_v3.detx is the 2nd PMT of the first module; drop its status field.
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  ASSERT_EQ(lines[8], " 2 1.4 1.5 1.6 0.1 -1.2 0.3 20.1 0");
  lines[8] = " 2 1.4 1.5 1.6 0.1 -1.2 0.3 20.1";
  std::string broken;
  for (const auto& l : lines) broken += l + "\n";
  std::size_t line = 0;
  error_of(broken, &line);
  EXPECT_EQ(line, 9u);
}

TEST(Detector, LoadMissingFileIsClearError) {
  const fs::path missing = fs::temp_directory_path() / "shoredaq-no-such-detector.detx";
  try {
    (void)sd::Detector::load(missing);
    FAIL() << "expected DetxError";
  } catch (const sd::DetxError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot open"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find(missing.string()), std::string::npos);
  }
}

TEST(Detector, LoadNamesFileAndLine) {
  const fs::path dir = fs::temp_directory_path() / ("shoredaq-detector-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path file = dir / "bad.detx";
  {
    std::ofstream out(file);
    out << "1 1\n1 1 1 1\n 1 0 0\n";
  }
  try {
    (void)sd::Detector::load(file);
    ADD_FAILURE() << "expected DetxError";
  } catch (const sd::DetxError& e) {
    EXPECT_EQ(e.line(), 3u);
    EXPECT_NE(std::string(e.what()).find("bad.detx"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(Detector, ToDetxRoundTripsEverySample) {
  for (const auto& entry : fs::directory_iterator(detx_dir())) {
    if (entry.path().extension() != ".detx") continue;
    SCOPED_TRACE(entry.path().filename().string());
    const auto original = sd::Detector::load(entry.path());
    const auto text = original.to_detx();
    const auto again = sd::Detector::parse(text);
    EXPECT_EQ(again.format_version(), 5);
    EXPECT_TRUE(again == original);
    EXPECT_EQ(again.to_detx(), text);
  }
}

TEST(Detector, BuiltInCodeAndDuplicates) {
  sd::Module a;
  a.id = 11;
  a.du = 2;
  a.floor = 3;
  a.pmts.resize(31);
  sd::Module base;
  base.id = 10;
  base.du = 2;
  base.floor = 0;
  const sd::Detector det(5, {a, base});
  EXPECT_EQ(det.modules_of_du(2).front()->id, 10u);
  EXPECT_EQ(det.optical_module_count(), 1u);
  EXPECT_EQ(det.pmt_count(), 31u);
  EXPECT_TRUE(sd::Detector::parse(det.to_detx()) == det);
  EXPECT_THROW(sd::Detector(5, {a, a}), std::invalid_argument);
}
