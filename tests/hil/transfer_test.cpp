// HIL: the Tier-0 transfer for real (issue 11, items 1 and 2). A real XRootD server (Debian's
// xrootd, adler32 checksums on, on 127.0.0.1 with a free port, its files in the test's temp dir)
// and the real shore-transfer program: a short run's files arrive and are verified, and the
// faults - server down at start, server killed mid-transfer, a corrupted remote copy - never
// lose or wrongly accept a file.
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "hil_support.hpp"
#include "shoredaq/storage/checksums.hpp"
#include "shoredaq/storage/tier0_spool.hpp"

using namespace hil;
namespace storage = shoredaq::storage;
namespace dataflow = shoredaq::dataflow;

namespace {

std::optional<fs::path> find_program(const std::string& name) {
  for (const char* dir : {"/usr/bin", "/usr/sbin", "/usr/local/bin"}) {
    const fs::path p = fs::path(dir) / name;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return std::nullopt;
}

bool port_accepts(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// xrootd refuses to run as root: as root the server drops to "nobody", which must own its tree.
void give_to_server_user(const fs::path& path) {
  if (::geteuid() != 0) return;
  const passwd* nobody = ::getpwnam("nobody");
  if (nobody == nullptr) return;
  ::chown(path.c_str(), nobody->pw_uid, nobody->pw_gid);
  if (fs::is_directory(path)) {
    for (const auto& e : fs::recursive_directory_iterator(path)) ::chown(e.path().c_str(), nobody->pw_uid, nobody->pw_gid);
  }
}

// A real XRootD data server exporting <dir>/data with adler32 checksums.
class XrootdServer {
 public:
  XrootdServer(const fs::path& dir, int port) : dir_(dir), port_(port) {
    for (const char* sub : {"data", "admin", "run", "log"}) fs::create_directories(dir_ / sub);
    write_file(dir_ / "xrootd.cfg", "xrd.port " + std::to_string(port_) + "\n" +
                                        "all.export /\n"
                                        "oss.localroot " + (dir_ / "data").string() + "\n" +
                                        "all.adminpath " + (dir_ / "admin").string() + "\n" +
                                        "all.pidpath " + (dir_ / "run").string() + "\n" +
                                        "xrootd.chksum adler32\n");
    give_to_server_user(dir_);
  }
  void start() {
    std::vector<std::string> argv{find_program("xrootd")->string(), "-c", (dir_ / "xrootd.cfg").string(), "-l",
                                  (dir_ / "log" / "xrootd.log").string()};
    if (::geteuid() == 0) argv.insert(argv.end(), {"-R", "nobody"});
    process_ = Child(argv, dir_ / ("xrootd" + std::to_string(starts_) + ".out"),
                     dir_ / ("xrootd" + std::to_string(starts_) + ".err"));
    ++starts_;
    if (!wait_until([&] { return !process_.running() || port_accepts(port_); }, 20s) || !process_.running()) {
      throw std::runtime_error("xrootd did not come up: " + process_.err() + read_file(dir_ / "log" / "xrootd.log"));
    }
  }
  void kill() {
    process_.signal(SIGKILL);
    process_.wait(10s);
  }
  int port() const { return port_; }
  std::string endpoint() const { return "root://127.0.0.1:" + std::to_string(port_); }
  fs::path local(const std::string& remote_path) const { return dir_ / "data" / fs::path(remote_path).relative_path(); }

 private:
  fs::path dir_;
  int port_;
  int starts_ = 0;
  Child process_;
};

// `xrdfs <endpoint> <args...>`: exit code and output.
Result xrdfs(const XrootdServer& server, std::vector<std::string> args, const fs::path& scratch) {
  std::vector<std::string> argv{find_program("xrdfs")->string(), server.endpoint()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, scratch, 60s);
}

std::string server_adler32(const XrootdServer& server, const std::string& path, const fs::path& scratch) {
  const Result r = xrdfs(server, {"query", "checksum", path}, scratch);
  std::istringstream words(r.out);
  std::string algorithm, value;
  words >> algorithm >> value;
  return algorithm == "adler32" ? value : "(" + r.out + r.err + ")";
}

nlohmann::json status_of(const fs::path& spool) {
  const auto j = nlohmann::json::parse(read_file(spool / "transfer.status.json"), nullptr, false);
  return j.is_discarded() ? nlohmann::json::object() : j;
}

std::uint64_t counter(const nlohmann::json& status, const std::string& name) {
  if (!status.contains("counters")) return 0;
  return status["counters"].value(name, std::uint64_t{0});
}

std::uint64_t failures(const nlohmann::json& status) {
  std::uint64_t n = 0;
  if (status.contains("counters")) {
    for (const auto& [cause, count] : status["counters"]["failures"].items()) n += count.get<std::uint64_t>();
  }
  return n;
}

std::vector<std::string> parts_in(const fs::path& dir) {
  std::vector<std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (storage::Tier0Spool::parse_part_file_name(e.path().filename().string())) out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Seals `parts` parts of run `run` of detector 133, each about `bytes_per_part` of events.
std::vector<std::string> seal_parts(const fs::path& spool_dir, std::uint32_t run, unsigned parts,
                                    std::size_t bytes_per_part) {
  storage::Tier0SpoolConfig config;
  config.directory = spool_dir;
  config.fsync = false;
  storage::Tier0Spool spool(config);
  spool.begin_run(run, 133);
  std::uint32_t frame = 0;
  for (unsigned p = 0; p < parts; ++p) {
    std::size_t written = 0;
    while (written < bytes_per_part) {
      dataflow::Event e;
      e.header = dataflow::SliceHeader{133, run, frame, 1'700'000'000u + frame / 10, 0};
      e.trigger_mask = dataflow::trigger_bit(dataflow::kTriggerBit3DMuon);
      for (std::uint32_t h = 0; h < 1000; ++h) {
        e.snapshot.push_back({10'000u + h % 18, dataflow::Hit{static_cast<std::uint8_t>(h % 31), h * 7 + frame, 26}});
      }
      spool.write_event(e);
      written += 10 * e.snapshot.size();
      ++frame;
    }
    spool.roll_if_due(std::chrono::steady_clock::now() + std::chrono::hours{24});
  }
  spool.end_run();
  return parts_in(spool_dir / "ready");
}

std::string remote_path_of(const std::string& file, std::uint32_t run) {
  return "/km3net/raw/sea/KM3NeT_00000133/" + std::to_string(run / 1000) + "/" + file;
}

Child start_agent(const fs::path& spool, const XrootdServer& server, const fs::path& logs,
                  std::vector<std::string> extra = {}) {
  std::vector<std::string> argv{program("shore-transfer"), "--spool", spool.string(), "--endpoint", server.endpoint(),
                                "--poll-interval-ms", "100", "--retry-initial-ms", "200", "--retry-max-ms", "1000",
                                "--connect-timeout-s", "2", "--request-timeout-s", "10"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return Child(argv, logs / "shore-transfer.out", logs / "shore-transfer.err");
}

// Every part in done/ is at the server under the layout, with the manifest's size and adler32.
void expect_verified_at_server(const XrootdServer& server, const fs::path& spool, std::uint32_t run,
                               const std::vector<std::string>& files, const fs::path& scratch) {
  for (const auto& file : files) {
    ASSERT_TRUE(fs::exists(spool / "done" / file)) << file;
    const auto manifest = nlohmann::json::parse(read_file(spool / "done" / (file + ".json")));
    const fs::path local = server.local(remote_path_of(file, run));
    ASSERT_TRUE(fs::exists(local)) << local;
    EXPECT_EQ(fs::file_size(local), manifest["bytes"].get<std::uint64_t>()) << file;
    EXPECT_EQ(server_adler32(server, remote_path_of(file, run), scratch), manifest["adler32"].get<std::string>()) << file;
    EXPECT_FALSE(fs::exists(local.string() + ".part")) << file;
  }
}

class HilTransfer : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!find_program("xrootd") || !find_program("xrdfs")) {
      GTEST_SKIP() << "xrootd/xrdfs not installed (Debian xrootd-server, xrootd-client; ./dev deps installs them)";
    }
  }
};

}  // namespace

TEST_F(HilTransfer, AShortRunsFilesArriveVerifiedUnderTheLayoutAndMoveToDone) {
  // A real run: du-sim -> shoredaq -> spool, parts rolled every second.
  Rig rig("transfer-run", "first:2", "[spool]\nroll_seconds = 1\n");
  const fs::path spool = rig.node().spool();
  XrootdServer server(rig.tmp() / "xrootd", free_port());
  server.start();
  Child agent = start_agent(spool, server, rig.tmp().path());
  constexpr std::uint32_t kRun = 14728;
  rig.start_run(kRun);
  rig.feed(rig.du_sim_args(kRun, 30, 7));
  ASSERT_TRUE(rig.wait_slices(30));
  rig.stop_run();

  // Everything the node sealed reaches done/ (the node keeps nothing in ready/).
  std::vector<std::string> done;
  ASSERT_TRUE(wait_until([&] {
    done = parts_in(spool / "done");
    return !done.empty() && parts_in(spool / "ready").empty() && fs::exists(spool / "ready" / storage::Tier0Spool::run_manifest_name(133, kRun));
  }, 60s)) << agent.err();
  expect_verified_at_server(server, spool, kRun, done, rig.tmp().path());
  // xrdfs lists them where the collaboration expects them.
  const Result listing = xrdfs(server, {"ls", "/km3net/raw/sea/KM3NeT_00000133/14"}, rig.tmp().path());
  ASSERT_EQ(listing.code, 0) << listing.err;
  for (const auto& file : done) EXPECT_NE(listing.out.find("/km3net/raw/sea/KM3NeT_00000133/14/" + file), std::string::npos) << listing.out;
  // The agent writes its status file after it moved a part to done/: wait for it, not for luck.
  ASSERT_TRUE(wait_until([&] { return counter(status_of(spool), "files_transferred") >= done.size(); }, 10s))
      << status_of(spool).dump();
  const auto status = status_of(spool);
  EXPECT_EQ(counter(status, "files_transferred"), done.size());
  EXPECT_EQ(failures(status), 0u) << status.dump();
  EXPECT_TRUE(status["alarm"].is_null());
  // The manifests the node wrote are the catalogue's (python3-jsonschema, when installed).
  std::string command = "python3 " + std::string(SHOREDAQ_SOURCE_DIR) + "/storage/tests/validate_json_schema.py " +
                        std::string(SHOREDAQ_SOURCE_DIR) + "/storage/schema/tier0_manifest.schema.json";
  for (const auto& file : done) command += " " + (spool / "done" / (file + ".json")).string();
  const int rc = std::system((command + " > " + (rig.tmp() / "schema.out").string() + " 2>&1").c_str());
  if (WEXITSTATUS(rc) != 3) {  // 3: python3-jsonschema missing
    EXPECT_EQ(WEXITSTATUS(rc), 0) << read_file(rig.tmp() / "schema.out");
  }
  agent.signal(SIGTERM);
  EXPECT_EQ(agent.wait(30s), 0) << agent.err();
}

TEST_F(HilTransfer, ServerDownAtStartFilesWaitAreCountedRaiseTheAlarmAndGoOnceItIsUp) {
  TempDir tmp("transfer-down");
  const fs::path spool = tmp / "spool";
  const auto files = seal_parts(spool, 2001, 3, 100'000);
  ASSERT_EQ(files.size(), 3u);
  XrootdServer server(tmp / "xrootd", free_port());  // configured, not started
  Child agent = start_agent(spool, server, tmp.path(), {"--alarm-after-failures", "2"});
  // Parallel transfers fail at their own pace: wait until every file has failed twice.
  ASSERT_TRUE(wait_until([&] {
    const auto s = status_of(spool);
    return s.contains("alarm") && s["alarm"].is_string() &&
           s["alarm"].get<std::string>().find("3 file(s) not transferred") != std::string::npos &&
           s["counters"]["failures"]["unreachable"].get<std::uint64_t>() >= 2u * files.size();
  }, 30s)) << agent.err() << status_of(spool).dump();
  const auto down = status_of(spool);
  EXPECT_GE(down["counters"]["failures"]["unreachable"].get<std::uint64_t>(), 2u * files.size()) << down.dump();
  EXPECT_EQ(down["files_waiting"], files.size());
  EXPECT_NE(down["alarm"].get<std::string>().find("3 file(s) not transferred"), std::string::npos) << down.dump();
  EXPECT_EQ(parts_in(spool / "ready"), files) << "a file left ready/ while the server was down";
  for (const auto& file : files) {
    const auto record = nlohmann::json::parse(read_file(spool / "ready" / (file + ".transfer.json")));
    EXPECT_EQ(record["last_failure"], "unreachable");
    EXPECT_GE(record["attempts"].get<int>(), 2);
  }
  EXPECT_NE(agent.err().find("not transferred (unreachable"), std::string::npos) << agent.err();

  server.start();
  ASSERT_TRUE(wait_until([&] { return parts_in(spool / "done").size() == files.size(); }, 30s)) << agent.err();
  expect_verified_at_server(server, spool, 2001, files, tmp.path());
  ASSERT_TRUE(wait_until([&] { return status_of(spool)["alarm"].is_null(); }, 10s)) << status_of(spool).dump();
  agent.signal(SIGTERM);
  EXPECT_EQ(agent.wait(30s), 0) << agent.err();
}

TEST_F(HilTransfer, AServerKilledMidTransferIsRetriedAndThePartialCopyIsNeverAccepted) {
  TempDir tmp("transfer-kill");
  const fs::path spool = tmp / "spool";
  const auto files = seal_parts(spool, 2002, 1, 1'200'000);
  ASSERT_EQ(files.size(), 1u);
  const auto total = fs::file_size(spool / "ready" / files[0]);
  XrootdServer server(tmp / "xrootd", free_port());
  server.start();
  // 256 KiB/s: the upload takes seconds, so the server dies with a partial copy for sure.
  Child agent = start_agent(spool, server, tmp.path(), {"--bandwidth-limit-kib-s", "256"});
  const fs::path partial = server.local(remote_path_of(files[0], 2002) + ".part");
  const fs::path final_copy = server.local(remote_path_of(files[0], 2002));
  ASSERT_TRUE(wait_until([&] {
    std::error_code ec;
    const auto size = fs::file_size(partial, ec);
    return !ec && size >= 200'000;
  }, 30s)) << agent.err();
  server.kill();
  const auto partial_bytes = fs::file_size(partial);
  EXPECT_LT(partial_bytes, total);
  EXPECT_FALSE(fs::exists(final_copy)) << "a partial copy got the final name";
  ASSERT_TRUE(wait_until([&] { return failures(status_of(spool)) >= 1; }, 30s)) << agent.err();
  EXPECT_EQ(parts_in(spool / "ready"), files);
  EXPECT_TRUE(parts_in(spool / "done").empty());

  server.start();
  ASSERT_TRUE(wait_until([&] { return parts_in(spool / "done") == files; }, 60s)) << agent.err();
  expect_verified_at_server(server, spool, 2002, files, tmp.path());
  EXPECT_EQ(fs::file_size(final_copy), total);
  const auto status = status_of(spool);
  EXPECT_GE(counter(status, "attempts"), 2u);
  EXPECT_GE(counter(status, "bytes_sent"), total + partial_bytes);
  agent.signal(SIGTERM);
  EXPECT_EQ(agent.wait(30s), 0) << agent.err();
}

TEST_F(HilTransfer, ACorruptedRemoteCopyIsDetectedResentAndCounted) {
  TempDir tmp("transfer-corrupt");
  const fs::path spool = tmp / "spool";
  const auto files = seal_parts(spool, 2003, 2, 100'000);
  ASSERT_EQ(files.size(), 2u);
  XrootdServer server(tmp / "xrootd", free_port());
  // A copy of part 0 of the right size with one byte wrong already sits at its final path (a
  // damaged earlier copy): the agent must check it, not trust its name and size.
  const fs::path planted = server.local(remote_path_of(files[0], 2003));
  fs::create_directories(planted.parent_path());
  std::string bytes = read_file(spool / "ready" / files[0]);
  bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x20);
  write_file(planted, bytes);
  give_to_server_user(tmp / "xrootd");
  server.start();
  const std::string manifest_adler = nlohmann::json::parse(read_file(spool / "ready" / (files[0] + ".json")))["adler32"];
  ASSERT_NE(server_adler32(server, remote_path_of(files[0], 2003), tmp.path()), manifest_adler);

  Child agent = start_agent(spool, server, tmp.path());
  ASSERT_TRUE(wait_until([&] { return parts_in(spool / "done") == files; }, 30s)) << agent.err();
  expect_verified_at_server(server, spool, 2003, files, tmp.path());
  // The status file is written after the move to done/ (under ASan the test once read it between).
  ASSERT_TRUE(wait_until([&] { return counter(status_of(spool), "files_transferred") >= 2; }, 10s))
      << status_of(spool).dump();
  const auto status = status_of(spool);
  EXPECT_EQ(counter(status, "checksum_mismatches"), 1u) << status.dump();
  EXPECT_EQ(counter(status, "files_transferred"), 2u);
  EXPECT_NE(agent.err().find("differs from the manifest"), std::string::npos) << agent.err();
  agent.signal(SIGTERM);
  EXPECT_EQ(agent.wait(30s), 0) << agent.err();
}

// The spool's disk fills up while the centre is down: the agent goes on (what it cannot record is
// counted and logged once), deletes nothing, and once the server is back moves every sealed part
// to done/ (renames need no space). The node's side of a full disk (the disk reserve, the spool's
// alarms and exact loss counts) is HilTrustSpool's.
TEST_F(HilTransfer, ASpoolDiskFilledWhileTheServerIsDownLosesNothingSealed) {
  if (::geteuid() != 0 ||
      run({"/usr/bin/unshare", "--mount", "--propagation", "private", "true"}, fs::temp_directory_path()).code != 0) {
    GTEST_SKIP() << "needs root and unshare(1) to give the agent a small file system of its own";
  }
  TempDir tmp("transfer-full");
  const auto files = seal_parts(tmp / "prepared", 2004, 3, 200'000);
  ASSERT_EQ(files.size(), 3u);
  const fs::path small_fs = tmp / "spoolfs";
  fs::create_directories(small_fs);
  XrootdServer server(tmp / "xrootd", free_port());  // configured, not started
  // unshare execs sh, which execs shore-transfer: one pid, whose mount namespace has the tmpfs,
  // filled to the last byte after the spool was copied in.
  const std::string spool = (small_fs / "spool").string();
  const std::string script = "mount -t tmpfs -o size=2m tmpfs '" + small_fs.string() + "' && cp -a '" +
                             (tmp / "prepared").string() + "' '" + spool + "' && { head -c 4000000 /dev/zero > '" +
                             (small_fs / "filler").string() + "' 2>/dev/null; true; } && exec '" +
                             program("shore-transfer") + "' --spool '" + spool + "' --endpoint " + server.endpoint() +
                             " --poll-interval-ms 100 --retry-initial-ms 200 --retry-max-ms 1000 --connect-timeout-s 2";
  Child agent({"/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script}, tmp / "agent.out",
              tmp / "agent.err");
  ASSERT_TRUE(wait_until([&] {
    const std::string log = agent.err();
    return !agent.running() || (log.find("not transferred (unreachable") != std::string::npos &&
                                log.find("cannot write") != std::string::npos);
  }, 30s)) << agent.err();
  ASSERT_TRUE(agent.running()) << agent.err();
  const fs::path inside = fs::path("/proc") / std::to_string(agent.pid()) / "root" / small_fs.relative_path() / "spool";
  const auto space = fs::space(inside);
  EXPECT_LT(space.available, 64u << 10) << "the spool's disk is not full";
  // Every sealed part is still in ready/ and still matches its manifest.
  EXPECT_EQ(parts_in(inside / "ready"), files);
  for (const auto& file : files) {
    const std::string bytes = read_file(inside / "ready" / file);
    const auto manifest = nlohmann::json::parse(read_file(inside / "ready" / (file + ".json")));
    storage::Adler32 adler;
    adler.update(bytes);
    EXPECT_EQ(bytes.size(), manifest["bytes"].get<std::size_t>()) << file;
    EXPECT_EQ(adler.hex(), manifest["adler32"].get<std::string>()) << file;
  }

  server.start();
  ASSERT_TRUE(wait_until([&] { return parts_in(inside / "done") == files; }, 30s)) << agent.err();
  expect_verified_at_server(server, inside, 2004, files, tmp.path());
  EXPECT_TRUE(parts_in(inside / "ready").empty());
  agent.signal(SIGTERM);
  EXPECT_EQ(agent.wait(30s), 0) << agent.err();
}
