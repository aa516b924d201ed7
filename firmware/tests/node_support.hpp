#pragma once
// An in-process Node for tests: a configuration in a temp dir (ipc:// endpoints inside it), serve()
// on a thread of its own, a detector cut to a few DUs, and a simulated feed sent from this process.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <thread>

#include "shoredaq/drivers/du_simulator.hpp"
#include "shoredaq/drivers/feed_sink.hpp"
#include "shoredaq/firmware/control_socket.hpp"
#include "shoredaq/firmware/node.hpp"

namespace shoredaq::test {

class InProcessNode {
 public:
  explicit InProcessNode(const std::string& tag, unsigned dus = 1, firmware::NodeOptions options = {},
                         const std::string& extra_toml = "", const std::string& store_toml = "",
                         const std::function<void(const std::filesystem::path& state_dir)>& before_start = {}) {
    namespace fs = std::filesystem;
    dir_ = fs::temp_directory_path() / ("shoredaq-" + tag + "-" + std::to_string(::getpid()) + "-" +
                                        std::to_string(std::random_device{}()));
    fs::create_directories(dir_ / "run");
    const auto full = dataflow::Detector::load(std::string(SHOREDAQ_TESTDATA_DIR) + "/detx/KM3NeT_00000133_20221025.detx");
    std::vector<dataflow::Module> kept;
    const auto du_ids = full.du_ids();
    for (const auto& m : full.modules()) {
      if (std::find(du_ids.begin(), du_ids.begin() + dus, m.du) != du_ids.begin() + dus) kept.push_back(m);
    }
    detector_ = std::make_shared<const dataflow::Detector>(full.id(), kept, full.format_version());
    std::ofstream(dir_ / "detector.detx") << detector_->to_detx();
    control_ = "ipc://" + (dir_ / "run/control.sock").string();
    ingest_ = "ipc://" + (dir_ / "run/ingest.sock").string();
    const std::string toml = "[node]\nstate_dir = \"" + (dir_ / "state").string() + "\"\nruntime_dir = \"" +
                             (dir_ / "run").string() + "\"\nworkers = 1\n[ingest]\nendpoints = [\"" + ingest_ +
                             "\"]\n[control]\nendpoint = \"" + control_ + "\"\nstop_timeout_ms = 20000\n" +
                             "[store]\ndurability = \"nosync\"\ndisk_reserve_mb = 0\n" + store_toml + "\n" +
                             (extra_toml.find("[metrics]") == std::string::npos ? "[metrics]\nenabled = false\n" : "") +
                             extra_toml + "\n";
    if (before_start) before_start(dir_ / "state");
    node_ = std::make_unique<firmware::Node>(firmware::parse_config(toml), std::move(options));
    server_ = std::thread([this] { exit_code_ = node_->serve(); });
    // serve() binds the control socket before it answers: wait for the first answer.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      try {
        ask({{"cmd", "status"}}, std::chrono::milliseconds(200));
        return;
      } catch (const firmware::ControlTimeout&) {
      }
    }
    throw std::runtime_error("in-process node did not answer");
  }
  ~InProcessNode() {
    if (server_.joinable()) {
      try {
        ask({{"cmd", "quit"}}, std::chrono::seconds(60));
      } catch (const std::exception&) {
      }
      server_.join();
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  nlohmann::json ask(const nlohmann::json& request, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    return firmware::control_request(control_, request, timeout);
  }
  // init (when Idle) + configure + start.
  void start_run(std::uint32_t run) {
    if (ask({{"cmd", "status"}})["state"] == "Idle") must(ask({{"cmd", "init"}}));
    must(ask({{"cmd", "configure"}, {"detx", (dir_ / "detector.detx").string()}}));
    must(ask({{"cmd", "start"}, {"run", run}}));
  }
  nlohmann::json stop_run() { return must(ask({{"cmd", "stop"}}, std::chrono::seconds(60))); }
  // `slices` slices of a simulated feed into the node's ingest, from this process.
  void feed(std::uint32_t run, unsigned slices, std::uint64_t seed) {
    drivers::DuSimConfig c;
    c.detector = detector_;
    c.run_number = run;
    c.seed = seed;
    c.start_unix_ns = dataflow::unix_now_ns() / 1'000'000'000ull * 1'000'000'000ull;
    drivers::DuSimulator sim(c);
    drivers::ZmqSenderConfig zc;
    zc.endpoint = ingest_;
    drivers::ZmqFeedSender sender(zc);
    for (unsigned s = 0; s < slices; ++s) {
      const auto slice = sim.next_slice();
      sender.write(slice.datagrams);
    }
    sender.finish();
  }
  // Waits until the builder emitted `slices` slices of the current run.
  bool wait_slices(std::uint64_t slices, std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      const auto s = ask({{"cmd", "status"}});
      if (s["counters"].value("slices", std::uint64_t{0}) >= slices) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  int quit() {
    must(ask({{"cmd", "quit"}}, std::chrono::seconds(60)));
    server_.join();
    return exit_code_;
  }

  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path store() const { return dir_ / "state" / "store"; }
  const std::string& ingest() const { return ingest_; }
  const std::string& control() const { return control_; }
  firmware::Node& node() { return *node_; }

  static nlohmann::json must(const nlohmann::json& reply) {
    if (!reply.value("ok", false)) throw std::runtime_error("refused: " + reply.dump());
    return reply;
  }

 private:
  std::filesystem::path dir_;
  std::shared_ptr<const dataflow::Detector> detector_;
  std::string control_, ingest_;
  std::unique_ptr<firmware::Node> node_;
  std::thread server_;
  int exit_code_ = -1;
};

}  // namespace shoredaq::test
