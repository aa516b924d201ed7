// The soak: one daemon, real-time du-sim at the demo load with random faults, runs cycled by hand.
// See README.md beside this file. Reuses the HIL rig (real processes on loopback).
#include <CLI/CLI.hpp>

#include <future>
#include <iostream>
#include <random>
#include <zmq.hpp>

#include "hil_support.hpp"
#include "shoredaq/formats/detector.hpp"
#include "shoredaq/storage/checksums.hpp"

using namespace hil;

namespace {

std::uint64_t rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
  }
  return 0;
}

std::uint64_t u64(const nlohmann::json& j, const std::string& key) { return j.value(key, std::uint64_t{0}); }

// Every sealed part of `run` in ready/ against its manifest; returns the parts that do not match.
std::vector<std::string> bad_parts(const fs::path& ready, std::uint32_t run, std::uint64_t& parts) {
  std::vector<std::string> bad;
  char tag[16];
  std::snprintf(tag, sizeof tag, "_%08u_", run);
  for (const auto& entry : fs::directory_iterator(ready)) {
    const std::string name = entry.path().filename().string();
    if (entry.path().extension() != ".daq" || name.find(tag) == std::string::npos) continue;
    ++parts;
    const auto manifest = nlohmann::json::parse(read_file(entry.path().string() + ".json"), nullptr, false);
    const std::string bytes = read_file(entry.path());
    shoredaq::storage::Adler32 adler;
    shoredaq::storage::Md5 md5;
    adler.update(bytes);
    md5.update(bytes);
    if (manifest.is_discarded() || bytes.size() != manifest.value("size_bytes", std::uint64_t{0}) ||
        adler.hex() != manifest.value("adler32", "") || md5.hex() != manifest.value("md5", ""))
      bad.push_back(name);
  }
  return bad;
}

// Raw garbage into the ingest socket now and then while a run goes on.
void send_garbage(const std::string& endpoint, std::mt19937& rng, int messages) {
  zmq::context_t ctx(1);
  zmq::socket_t push(ctx, zmq::socket_type::push);
  push.set(zmq::sockopt::linger, 1000);
  push.connect(endpoint);
  for (int i = 0; i < messages; ++i) {
    std::vector<std::uint8_t> junk(1 + rng() % 3000);
    for (auto& b : junk) b = static_cast<std::uint8_t>(rng());
    push.send(zmq::buffer(junk), zmq::send_flags::dontwait);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"shoredaq soak: one daemon, real-time faulty feeds, runs cycled by hand"};
  double minutes = 30;
  unsigned cycle_seconds = 60;
  std::string dus = "first:4";
  std::uint64_t seed = 1;
  app.add_option("--minutes", minutes, "How long to soak");
  app.add_option("--cycle-seconds", cycle_seconds, "Length of one run (stop/start between runs)");
  app.add_option("--dus", dus, "DUs of detector 133 to simulate");
  app.add_option("--seed", seed, "Random seed of the fault choices");
  CLI11_PARSE(app, argc, argv);

  std::mt19937 rng(static_cast<std::uint32_t>(seed));
  Rig rig("soak", dus, "[metrics]\nenabled = true\nport = 0\n");
  const auto doms = [&] {
    const auto d = shoredaq::dataflow::Detector::load(rig.detx());
    std::vector<std::uint32_t> ids;
    for (const auto& m : d.modules())
      if (!m.is_base()) ids.push_back(m.id);
    return ids;
  }();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(minutes * 60.0);
  std::vector<std::uint64_t> rss;
  bool ok = true;
  std::uint64_t total_slices = 0, total_written = 0, total_parts = 0;
  for (std::uint32_t run = 1; std::chrono::steady_clock::now() < deadline; ++run) {
    rig.start_run(run);
    // This run's faults.
    std::vector<std::string> a = rig.du_sim_args(run, cycle_seconds * 10 - 20, seed * 1000 + run);
    // A late DOM (sometimes beyond the builder's expiry: its datagrams are dropped late) and a DOM
    // whose clock creeps away (+55 s per copy, twelve copies from slice 50: dropped, never moving
    // the window).
    a.insert(a.end(), {"--realtime", "--loss-pct", "0.5", "--dup-pct", "0.5", "--corrupt-pct", "0.2", "--late-dom",
                       std::to_string(doms[rng() % doms.size()]), "--late-slices", std::to_string(3 + rng() % 20),
                       "--bad-time-dom", std::to_string(doms[rng() % doms.size()]), "--bad-time-offset-s", "55",
                       "--bad-time-step-s", "55", "--bad-time-count", "12", "--bad-time-at-slice", "50"});
    auto feed = std::async(std::launch::async, [&] { return rig.feed(a, std::chrono::seconds(cycle_seconds + 60)); });
    send_garbage(rig.node().ingest, rng, 20);
    const auto sim = feed.get();
    const auto stop = rig.stop_run();
    const auto status = rig.status();
    const auto& c = status["counters"];
    const std::uint64_t slices = u64(c, "slices");
    const std::uint64_t written = u64(c, "slices_written");
    const std::uint64_t dropped = drops_with_prefix(status, "pipeline.slices") + drops_with_prefix(status, "store.slices");
    std::uint64_t parts = 0;
    const auto bad = bad_parts(rig.node().spool() / "ready", run, parts);
    rss.push_back(rss_kib(rig.daemon().pid()));
    const bool run_ok = slices == written + dropped && bad.empty() && parts > 0;
    ok = ok && run_ok;
    total_slices += slices;
    total_written += written;
    total_parts += parts;
    nlohmann::json line{{"run", run},           {"slices", slices}, {"written", written}, {"dropped", dropped},
                        {"parts", parts},       {"bad_parts", bad},  {"rss_kib", rss.back()},
                        {"datagrams_sent", u64(sim, "datagrams_out")}, {"drops", status["drops"]}, {"ok", run_ok}};
    std::cout << line.dump() << std::endl;
  }
  // RSS: the mean of the last three cycles against the mean of cycles 2-4 (the first run warms up).
  double early = 0, late = 0;
  const std::size_t n = rss.size();
  if (n >= 6) {
    for (std::size_t i = 1; i < 4; ++i) early += static_cast<double>(rss[i]) / 3.0;
    for (std::size_t i = n - 3; i < n; ++i) late += static_cast<double>(rss[i]) / 3.0;
  }
  const double growth = early > 0 ? late / early - 1.0 : 0.0;
  const bool rss_flat = n < 6 || std::abs(growth) <= 0.10;
  rig.quit();
  nlohmann::json report{{"runs", n}, {"slices", total_slices}, {"written", total_written}, {"parts", total_parts},
                        {"rss_kib_early", early}, {"rss_kib_late", late}, {"rss_growth", growth},
                        {"rss_flat_within_10pct", rss_flat}, {"every_run_ok", ok}};
  std::cout << report.dump() << std::endl;
  return ok && rss_flat ? 0 : 1;
}
