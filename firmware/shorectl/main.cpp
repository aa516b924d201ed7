// shorectl: the operator's client of shoredaq's run-control socket.
//   shorectl [--endpoint E] [--json] [--timeout MS] status|init|configure|start|pause|continue|stop|reset|quit
// Exit codes: 0 accepted, 1 refused by the daemon, 2 no answer (timeout) or bad reply, 3 usage.

#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>

#include "shoredaq/firmware/control_socket.hpp"

using shoredaq::firmware::ControlTimeout;
using shoredaq::firmware::control_request;

namespace {

void print_human(const nlohmann::json& reply, const std::string& cmd) {
  const bool ok = reply.value("ok", false);
  const std::string state = reply.value("state", "?");
  if (!ok) {
    std::cout << cmd << " refused (state " << state << "): " << reply.value("error", "") << "\n";
    return;
  }
  if (cmd != "status") {
    std::cout << cmd << ": ok, state " << state;
    if (reply.contains("run")) std::cout << ", run " << reply["run"];
    std::cout << "\n";
    return;
  }
  std::cout << "state:  " << state << "\n";
  if (reply.contains("run")) std::cout << "run:    " << reply["run"] << "\n";
  if (reply.contains("error")) std::cout << "error:  " << reply["error"].get<std::string>() << "\n";
  for (const char* section : {"counters", "drops", "store", "alarms"}) {
    if (!reply.contains(section) || !reply[section].is_object()) continue;
    std::cout << section << ":\n";
    for (const auto& [k, v] : reply[section].items()) std::cout << "  " << k << " = " << v.dump() << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"shorectl: run control of a shoredaq node"};
  std::string endpoint = "ipc:///run/shoredaq/control.sock";
  bool json = false;
  unsigned timeout_ms = 5000;
  app.add_option("--endpoint,-e", endpoint, "control socket of the node")->capture_default_str();
  app.add_flag("--json", json, "print the raw JSON reply");
  auto* timeout_option =
      app.add_option("--timeout", timeout_ms, "give up after this many ms (default 5000; stop and quit: 60000, they wait for the drain)");
  app.require_subcommand(1);

  nlohmann::json request;
  for (const char* name : {"status", "init", "pause", "continue", "stop", "reset", "quit"}) {
    std::string descr = std::string("send '") + name + "'";
    app.add_subcommand(name, descr)->callback([&request, name] { request = {{"cmd", name}}; });
  }
  auto* configure = app.add_subcommand("configure", "validate and apply a detector file and run setup");
  std::string detx, setup;
  configure->add_option("--detx", detx, "detector file (.detx); default: the node's [node] detector_file");
  configure->add_option("--setup", setup, "run setup TOML with a [trigger] section");
  configure->callback([&] {
    request = {{"cmd", "configure"}};
    // Paths are resolved here: the daemon's working directory is not the operator's.
    if (!detx.empty()) request["detx"] = std::filesystem::absolute(detx).string();
    if (!setup.empty()) request["setup"] = std::filesystem::absolute(setup).string();
  });
  auto* start = app.add_subcommand("start", "start a run");
  std::uint32_t run = 0;
  start->add_option("--run,-r", run, "run number")->required()->check(CLI::Range(1u, 4294967295u));
  start->callback([&] { request = {{"cmd", "start"}, {"run", run}}; });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 3;
  }

  const std::string cmd = request.value("cmd", "");
  // stop (and quit while running) returns only after the drain, bounded by the node's stop_timeout_ms.
  if (timeout_option->count() == 0 && (cmd == "stop" || cmd == "quit")) timeout_ms = 60000;
  try {
    const nlohmann::json reply = control_request(endpoint, request, std::chrono::milliseconds(timeout_ms));
    if (json) {
      std::cout << reply.dump() << "\n";
    } else {
      print_human(reply, cmd);
    }
    return reply.value("ok", false) ? 0 : 1;
  } catch (const ControlTimeout& e) {
    std::cerr << "shorectl: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "shorectl: " << e.what() << "\n";
    return 2;
  }
}
