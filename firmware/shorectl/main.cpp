// shorectl: the operator's client of shoredaq's run-control socket.
//   shorectl [--endpoint E] [--json] [--timeout MS] [--curve-secret F --server-key F]
//            status|init|configure|start|pause|continue|stop|reset|quit
//   shorectl dump --from T --to T --reason TEXT    (a raw-data dump; T: UTC ISO 8601 ending in Z, or Unix seconds)
//   shorectl keygen NAME | keygen --secret F --public F     (a CURVE key pair; never overwrites)
//   shorectl --farm farm.toml status|init|configure|start|pause|continue|stop|reset|quit
//            (every process of a farm, in the order the data needs; farm_control.hpp)
//   shorectl --farm farm.toml check   (the processes' topologies compared: check_farm)
//   shorectl --farm farm.toml rejoin NAME [--detx F] [--setup F]   (one process to the farm's state)
// A tcp:// endpoint is a CURVE server: the client's secret key file and the node's public key
// file are required. Exit codes: 0 accepted, 1 refused by the daemon (keygen: cannot write the
// files; check: a problem found), 2 no answer (timeout), bad reply or unreadable key file, 3 usage.

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>

#include "shoredaq/firmware/control_socket.hpp"
#include "shoredaq/firmware/farm_control.hpp"
#include "shoredaq/firmware/ring_service.hpp"
#include "shoredaq/version.hpp"
#include "shoredaq/firmware/security.hpp"

using shoredaq::firmware::ControlCurveClient;
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
  if (cmd == "dump" && reply.contains("dump")) {
    const auto& d = reply["dump"];
    std::cout << "dump " << d.value("id", "") << ": " << d.value("state", "") << " (" << d.value("requested_from", "")
              << " .. " << d.value("requested_to", "") << "); follow it in `shorectl status --json` under ring.dumps\n";
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
  if (reply.contains("run_schedule") && reply["run_schedule"].is_object()) {
    const auto& rs = reply["run_schedule"];
    std::cout << "schedule: " << rs.value("summary", std::string()) << "\n";
  }
  if (reply.contains("alarm")) std::cout << "alarm:  " << reply["alarm"].get<std::string>() << "\n";
  for (const char* section : {"counters", "drops", "store", "alarms"}) {
    if (!reply.contains(section) || !reply[section].is_object()) continue;
    std::cout << section << ":\n";
    for (const auto& [k, v] : reply[section].items()) std::cout << "  " << k << " = " << v.dump() << "\n";
  }
}

// Writes a fresh key pair; the secret file 0600, the public file 0644, neither overwritten.
int keygen(std::string name, std::filesystem::path secret, std::filesystem::path pub) {
  namespace sf = shoredaq::firmware;
  if (!name.empty()) {
    if (secret.empty()) secret = name + ".secret";
    if (pub.empty()) pub = name + ".pub";
  }
  if (secret.empty() || pub.empty()) {
    std::cerr << "shorectl keygen: give a base name (NAME.secret, NAME.pub) or both --secret and --public\n";
    return 3;
  }
  if (!sf::curve_available()) {
    std::cerr << "shorectl keygen: this libzmq has no CURVE support (built without libsodium)\n";
    return 1;
  }
  try {
    const sf::CurveKeyPair keys = sf::generate_curve_key_pair();
    sf::write_curve_key_files(secret, pub, keys);
    std::cout << "secret key: " << secret.string() << " (0600, keep it on this machine)\n"
              << "public key: " << pub.string() << " " << keys.public_key << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "shorectl keygen: " << e.what() << "\n";
    return 1;
  }
}

// One line per process, then the rollback when there was one.
void print_farm(const shoredaq::firmware::FarmOutcome& outcome, const std::string& cmd) {
  const auto line = [](const shoredaq::firmware::FarmStep& s) {
    std::cout << "  " << s.process << ": ";
    if (!s.answered) {
      std::cout << "no answer (" << s.error << ")\n";
      return;
    }
    std::cout << (s.ok ? "ok" : "refused") << ", state " << s.reply.value("state", "?");
    if (s.reply.contains("run")) std::cout << ", run " << s.reply["run"];
    if (!s.ok) std::cout << ": " << s.error;
    std::cout << "\n";
  };
  std::cout << "farm " << cmd << ": " << (outcome.ok ? "ok" : outcome.refused ? "refused (nothing sent)" : "failed") << "\n";
  for (const auto& s : outcome.steps) line(s);
  if (!outcome.rollback.empty()) {
    std::cout << "rolled back:\n";
    for (const auto& s : outcome.rollback) line(s);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"shorectl: run control of a shoredaq node"};
  app.set_version_flag("--version", std::string(shoredaq::version()), "print the software version (git describe) and exit");
  std::string endpoint = "ipc:///run/shoredaq/control.sock";
  bool json = false;
  unsigned timeout_ms = 5000;
  app.add_option("--endpoint,-e", endpoint, "control socket of the node")->capture_default_str();
  app.add_flag("--json", json, "print the raw JSON reply");
  auto* timeout_option =
      app.add_option("--timeout", timeout_ms, "give up after this many ms (default 5000; stop and quit: 60000, they wait for the drain)");
  std::string curve_secret, server_key;
  app.add_option("--curve-secret", curve_secret, "this client's CURVE secret key file (required for tcp:// endpoints)");
  app.add_option("--server-key", server_key, "the node's CURVE public key file (required for tcp:// endpoints)");
  std::string farm_file;
  app.add_option("--farm", farm_file,
                 "drive every process of a farm file instead of one node: writers first on init/configure/start, ingest "
                 "first on stop; a failed transition is rolled back");
  app.require_subcommand(1);

  bool keygen_requested = false;
  std::string keygen_name, keygen_secret, keygen_public;
  auto* keygen_cmd = app.add_subcommand("keygen", "create a CURVE key pair (NAME.secret 0600, NAME.pub 0644; never overwrites)");
  keygen_cmd->add_option("name", keygen_name, "base name of the two files");
  keygen_cmd->add_option("--secret", keygen_secret, "secret key file to create (mode 0600)");
  keygen_cmd->add_option("--public", keygen_public, "public key file to create (mode 0644)");
  keygen_cmd->callback([&] { keygen_requested = true; });

  nlohmann::json request;
  for (const char* name : {"status", "init", "pause", "continue", "stop", "reset", "quit"}) {
    std::string descr = std::string("send '") + name + "'";
    app.add_subcommand(name, descr)->callback([&request, name] { request = {{"cmd", name}}; });
  }
  app.add_subcommand("check", "with --farm: compare what the processes say of themselves (DUs built once, the same "
                             "filters from every ingest process, timeouts that fit); exit 1 on a problem")
      ->callback([&request] { request = {{"cmd", "check"}}; });
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
  auto* rejoin = app.add_subcommand(
      "rejoin", "with --farm: bring one ingest or filter process (restarted mid-run) to the farm's state and run: init, "
                "configure, start, pause as the rest of the farm is");
  std::string rejoin_name, rejoin_detx, rejoin_setup;
  rejoin->add_option("name", rejoin_name, "the process's name in the farm file")->required();
  rejoin->add_option("--detx", rejoin_detx, "detector file for its configure (as the farm was configured)");
  rejoin->add_option("--setup", rejoin_setup, "run setup TOML for its configure (as the farm was configured)");
  rejoin->callback([&] {
    request = {{"cmd", "rejoin"}, {"name", rejoin_name}};
    if (!rejoin_detx.empty()) request["detx"] = std::filesystem::absolute(rejoin_detx).string();
    if (!rejoin_setup.empty()) request["setup"] = std::filesystem::absolute(rejoin_setup).string();
  });
  auto* start = app.add_subcommand("start", "start a run");
  std::uint32_t run = 0;
  start->add_option("--run,-r", run, "run number")->required()->check(CLI::Range(1u, 4294967295u));
  std::string run_type;
  start->add_option("--type,-t", run_type, "run type recorded with the run (physics, test, calibration, ...); default: the node's [run] type");
  start->callback([&] {
    request = {{"cmd", "start"}, {"run", run}};
    if (!run_type.empty()) request["type"] = run_type;
  });

  auto* dump = app.add_subcommand(
      "dump", "dump a UTC window of the raw-data ring into the Tier-0 spool (a .dqd that `shoredaq replay` plays)");
  std::string dump_from, dump_to, dump_reason;
  const auto dump_time = [](const std::string& t) {
    return shoredaq::firmware::parse_dump_time(t) ? std::string() : "not a time: '" + t + "' (2026-12-06T08:15:00.5Z or Unix seconds)";
  };
  dump->add_option("--from", dump_from,
                   "window start, detector time: UTC 2026-12-06T08:15:00[.fraction]Z (the Z is required) or Unix seconds "
                   "1765008900[.fraction]")
      ->required()
      ->check(dump_time);
  dump->add_option("--to", dump_to, "window end (exclusive), same forms; the node cuts a window longer than [ring] max_dump_seconds")
      ->required()
      ->check(dump_time);
  dump->add_option("--reason", dump_reason, "why (kept in the dump's manifest), e.g. \"GCN GRB 261206A\"")->required();
  dump->callback([&] { request = {{"cmd", "dump"}, {"from", dump_from}, {"to", dump_to}, {"reason", dump_reason}}; });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 3;
  }

  if (keygen_requested) return keygen(keygen_name, keygen_secret, keygen_public);

  if (!farm_file.empty()) {
    const std::string cmd = request.value("cmd", "");
    if (cmd == "dump") {
      std::cerr << "shorectl: dump goes to one node (its ring): use --endpoint\n";
      return 3;
    }
    shoredaq::firmware::FarmFile farm;
    try {
      farm = shoredaq::firmware::load_farm_file(farm_file);
    } catch (const std::exception& e) {
      std::cerr << "shorectl: " << farm_file << ": " << e.what() << "\n";
      return 3;
    }
    if (cmd == "check") {
      const auto statuses =
          shoredaq::firmware::farm_command(farm, {{"cmd", "status"}}, std::chrono::milliseconds(timeout_ms));
      const auto problems = shoredaq::firmware::check_farm(farm, statuses.steps);
      if (json) {
        std::cout << nlohmann::json{{"ok", problems.empty()}, {"problems", problems}}.dump() << "\n";
      } else {
        std::cout << "farm check: " << (problems.empty() ? "ok" : std::to_string(problems.size()) + " problem(s)") << "\n";
        for (const auto& p : problems) std::cout << "  " << p << "\n";
      }
      const bool any_unanswered = std::any_of(statuses.steps.begin(), statuses.steps.end(),
                                              [](const shoredaq::firmware::FarmStep& s) { return !s.answered; });
      return problems.empty() ? 0 : any_unanswered ? 2 : 1;
    }
    if (timeout_option->count() == 0 && (cmd == "stop" || cmd == "quit")) timeout_ms = 60000;
    const auto outcome =
        cmd == "rejoin"
            ? shoredaq::firmware::farm_rejoin(farm, request["name"].get<std::string>(), request, std::chrono::milliseconds(timeout_ms))
            : shoredaq::firmware::farm_command(farm, request, std::chrono::milliseconds(timeout_ms));
    if (json) {
      std::cout << outcome.to_json().dump() << "\n";
    } else {
      print_farm(outcome, cmd);
    }
    if (outcome.ok) return 0;
    const bool any_unanswered = std::any_of(outcome.steps.begin(), outcome.steps.end(),
                                            [](const shoredaq::firmware::FarmStep& s) { return !s.answered; });
    return any_unanswered ? 2 : 1;
  }

  if (request.value("cmd", "") == "check" || request.value("cmd", "") == "rejoin") {
    std::cerr << "shorectl: " << request.value("cmd", "") << " is about the processes of a farm: give --farm farm.toml\n";
    return 3;
  }
  // Over TCP the control socket is reachable from the network, so the node only serves it with
  // CURVE: without keys a request could never be answered, say so instead of timing out.
  const bool tcp = endpoint.rfind("tcp://", 0) == 0;
  if (curve_secret.empty() != server_key.empty()) {
    std::cerr << "shorectl: --curve-secret and --server-key go together\n";
    return 3;
  }
  if (tcp && curve_secret.empty()) {
    std::cerr << "shorectl: " << endpoint
              << " is a TCP endpoint, which shoredaq serves only with CURVE: give --curve-secret FILE (this client's "
                 "secret key, see 'shorectl keygen') and --server-key FILE (the node's public key)\n";
    return 3;
  }
  std::optional<ControlCurveClient> curve;
  if (!curve_secret.empty()) {
    try {
      curve = ControlCurveClient{shoredaq::firmware::read_secret_key_file(curve_secret),
                                 shoredaq::firmware::read_public_key_file(server_key)};
    } catch (const std::exception& e) {
      std::cerr << "shorectl: " << e.what() << "\n";
      return 2;
    }
  }

  const std::string cmd = request.value("cmd", "");
  // stop (and quit while running) returns only after the drain, bounded by the node's stop_timeout_ms.
  if (timeout_option->count() == 0 && (cmd == "stop" || cmd == "quit")) timeout_ms = 60000;
  try {
    const nlohmann::json reply = control_request(endpoint, request, std::chrono::milliseconds(timeout_ms), curve);
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
