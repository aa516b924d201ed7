// shoredaq: the node daemon (and its offline replay).
//   shoredaq [--config FILE]              serve: run control on the control socket, data path per run
//   shoredaq --check-config FILE          validate a configuration file and exit (0 = valid)
//   shoredaq replay --detx F --setup S.toml --input FILE.dqd --store DIR

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "shoredaq/formats/detector.hpp"

#include "shoredaq/firmware/config.hpp"
#include "shoredaq/firmware/logging.hpp"
#include "shoredaq/firmware/node.hpp"
#include "shoredaq/firmware/replay.hpp"
#include "shoredaq/version.hpp"

using namespace shoredaq::firmware;

int main(int argc, char** argv) {
  CLI::App app{"shoredaq: KM3NeT-style shore-station DAQ node"};
  std::string config_file;
  std::string check_file;
  app.add_option("--config,-c", config_file, "configuration file (TOML); default: built-in defaults");
  app.add_option("--check-config", check_file, "validate this configuration file and exit");
  std::vector<std::string> expect_roles;
  app.add_option("--role", expect_roles,
                 "refuse to run unless the configuration's [topology] roles are exactly these (the per-role systemd "
                 "units pass theirs, so a farm process cannot come up with another role's file)")
      ->check(CLI::IsMember({"ingest", "filter", "writer"}));
  app.set_version_flag("--version", std::string(shoredaq::version()), "print the software version (git describe) and exit");

  auto* replay = app.add_subcommand("replay", "run the node's builder + filters offline over a .dqd feed into a store");
  ReplayOptions ro;
  std::string layout = "auto";
  replay->add_option("--detx", ro.detector_file, "detector file")->required()->check(CLI::ExistingFile);
  replay->add_option("--setup", ro.run_setup, "run setup TOML ([trigger]); default: filter defaults")->check(CLI::ExistingFile);
  replay->add_option("--input", ro.input, "recorded/simulated feed (.dqd records)")->required()->check(CLI::ExistingFile);
  replay->add_option("--store", ro.store, "EventStore directory to write (created); default: count only");
  replay->add_option("--workers", ro.workers, "filter threads (0 = everything in the calling thread)");
  replay->add_option("--run", ro.run, "run number (default: of the first datagram)");
  replay->add_option("--header-layout", layout, "40, 28 or auto")->check(CLI::IsMember({"40", "28", "auto"}));
  bool replay_json = false;

  auto* detx_cmd = app.add_subcommand("detx", "write the detector file restricted to some DUs (for test rigs and du-sim feeds)");
  std::string detx_in, detx_out, detx_dus;
  detx_cmd->add_option("--detx", detx_in, "detector file")->required()->check(CLI::ExistingFile);
  detx_cmd->add_option("--dus", detx_dus, "DUs to keep: 'all', '9', '9-12', '5,9,11', 'first:N'")->required();
  detx_cmd->add_option("--out", detx_out, "output .detx")->required();
  replay->add_flag("--json", replay_json, "print the run's counters as JSON");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  if (*detx_cmd) {
    try {
      const auto detector = shoredaq::dataflow::Detector::load(detx_in);
      const auto dus = shoredaq::dataflow::parse_du_selection(detx_dus, detector);
      std::vector<shoredaq::dataflow::Module> kept;
      for (const auto& m : detector.modules()) {
        if (std::find(dus.begin(), dus.end(), m.du) != dus.end()) kept.push_back(m);
      }
      const shoredaq::dataflow::Detector subset(detector.id(), std::move(kept), detector.format_version());
      std::ofstream out(detx_out, std::ios::binary);
      out << subset.to_detx();
      if (!out) throw std::runtime_error(detx_out + ": cannot write");
      std::cout << detx_out << ": " << dus.size() << " DUs, " << subset.optical_module_count() << " DOMs\n";
      return 0;
    } catch (const std::exception& e) {
      std::cerr << "shoredaq detx: " << e.what() << "\n";
      return 1;
    }
  }

  if (*replay) {
    ro.header_layout = layout == "40" ? HeaderLayoutSetting::Standard40
                       : layout == "28" ? HeaderLayoutSetting::Legacy28
                                        : HeaderLayoutSetting::Auto;
    try {
      const ReplaySummary s = run_replay(ro);
      if (replay_json) {
        nlohmann::json j = s.counters.flat();
        j["run"] = s.run;
        j["wall_seconds"] = s.wall_seconds;
        j["reduction_factor"] = s.reduction_factor();
        j["hits_per_second"] = s.hits_per_second();
        std::cout << j.dump() << "\n";
      } else {
        std::cout << format_replay_summary(s);
      }
      return s.drained ? 0 : 1;
    } catch (const std::exception& e) {
      std::cerr << "shoredaq replay: " << e.what() << "\n";
      return 1;
    }
  }

  if (!check_file.empty()) {
    try {
      const NodeConfig c = load_config(check_file);
      std::cout << check_file << ": ok (control " << c.control_endpoint() << ", store " << c.store_path().string()
                << ", " << c.worker_count() << " workers)\n";
      return 0;
    } catch (const ConfigError& e) {
      std::cerr << e.what() << "\n";
      return 1;
    }
  }

  NodeConfig config;
  try {
    config = config_file.empty() ? parse_config("") : load_config(config_file);
  } catch (const ConfigError& e) {
    std::cerr << "shoredaq: " << e.what() << "\n";
    return 1;
  }
  if (!expect_roles.empty()) {
    TopologySection expected;
    expected.ingest = std::find(expect_roles.begin(), expect_roles.end(), "ingest") != expect_roles.end();
    expected.filter = std::find(expect_roles.begin(), expect_roles.end(), "filter") != expect_roles.end();
    expected.writer = std::find(expect_roles.begin(), expect_roles.end(), "writer") != expect_roles.end();
    if (expected.roles_text() != config.topology.roles_text()) {
      std::cerr << "shoredaq: started as a " << expected.roles_text() << " process, but " << config_file
                << " gives [topology] roles " << config.topology.roles_text() << "\n";
      return 1;
    }
  }
  LoggingOptions logging;
  logging.level = parse_log_level(config.node.log_level).value_or(spdlog::level::info);
  setup_logging(logging);
  Node node(std::move(config));
  return node.serve();
}
