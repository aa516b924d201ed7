#pragma once
// One run control for a farm (issue 13 item 2): a farm file lists the processes of a building
// block (each a shoredaq daemon with its own control socket and [topology] roles), and one command
// drives them all in the order the data needs:
//   init, configure, start, continue: writers first, then filters, then ingest (a process is ready
//     before anything can send to it);
//   stop, pause, reset, quit: ingest first, then filters, then writers (what is in flight drains
//     downstream before the next stage stops).
// A transition is refused, touching nothing, while a process does not answer (stop and quit go on
// with the processes that answer and report the one that is gone); one that fails on a
// process is rolled back on those it already reached (start -> stop, init -> reset, pause ->
// continue, continue -> pause). configure is repeatable and stop is best effort: they go on and
// report the failures. status asks every process.
//
// Farm file (TOML):
//   [[process]]
//   name = "writer-1"
//   roles = ["writer"]                                  # as the process's own [topology] roles
//   endpoint = "ipc:///run/shoredaq-writer-1/control.sock"
//   curve_secret = "/etc/shoredaq/operator.secret"      # tcp:// only: this client's key pair ...
//   server_key = "/etc/shoredaq/writer-1.pub"           # ... and the process's public key

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "shoredaq/firmware/config.hpp"
#include "shoredaq/firmware/run_control.hpp"

namespace shoredaq::firmware {

struct FarmProcess {
  std::string name;
  TopologySection roles;  // ingest / filter / writer only
  std::string endpoint;
  std::filesystem::path curve_secret, server_key;
};

struct FarmFile {
  std::vector<FarmProcess> processes;
};

// Throws ConfigError naming the entry ("process[2].endpoint: ...").
FarmFile parse_farm_file(std::string_view toml_text);
FarmFile load_farm_file(const std::filesystem::path& file);

// The processes (indices) in the order `command` reaches them.
std::vector<std::size_t> farm_order(const FarmFile& farm, RunCommand command);

struct FarmStep {
  std::string process;
  bool answered = false;
  bool ok = false;
  nlohmann::json reply;  // the process's reply (null without one)
  std::string error;     // why not ok
};

struct FarmOutcome {
  bool ok = false;
  bool refused = false;            // nothing was sent: a process did not answer the pre-check (or, for
                                   // rejoin, the farm is not in a state to join)
  std::vector<FarmStep> steps;     // in the order sent
  std::vector<FarmStep> rollback;  // undoing a failed transition
  nlohmann::json to_json() const;
};

// One request to one process; a process that does not answer gives answered = false.
FarmStep ask_farm_process(const FarmProcess& process, const nlohmann::json& request, std::chrono::milliseconds timeout);
// The same request to every process, in the farm file's order.
std::vector<FarmStep> ask_every_process(const FarmFile& farm, const nlohmann::json& request, std::chrono::milliseconds timeout);

// A process's run state as the farm compares it, from its status reply: "Running run 77" for an
// ingest or filter process in a run, the state alone otherwise (a writer that cycles its runs
// takes new numbers while the others keep the one the farm started).
std::string farm_state_of(const FarmProcess& process, const nlohmann::json& status_reply);

// Sends `request` ({"cmd": ..., ...} as shorectl makes it) to every process of the farm.
FarmOutcome farm_command(const FarmFile& farm, const nlohmann::json& request, std::chrono::milliseconds timeout);

// `shorectl --farm farm.toml rejoin NAME` (farm_rejoin.cpp): brings one ingest or filter process
// that is behind the farm (restarted with its state directory lost, so Idle; a restarted process
// with its state resumes by itself) to where the rest of the farm is, along the run states: init,
// configure (with `configure`'s detx / setup), start with the farm's run number (once its detector
// is the farm's), pause; or continue. The farm is what the other processes past Idle say: one
// state and one run (farm_state_of), or the rejoin is refused and nothing is sent. So is a
// writer's (it numbers and orders the run's slices: a new one mid-run would start again), one that
// is resuming by itself, one further than the farm or in another run, or in Error (reset it
// first). A failed step leaves the process where it got to, reported; the rest of the farm is not
// touched.
FarmOutcome farm_rejoin(const FarmFile& farm, const std::string& name, const nlohmann::json& configure,
                        std::chrono::milliseconds timeout);

// `shorectl --farm check` (farm_check.cpp): the farm as its processes describe themselves, what no
// single process can see is wrong. `statuses`: one status reply per process, in the farm file's
// order (farm_command with {"cmd": "status"}). One line per problem, none when the farm is sound:
//  - a process that did not answer, or whose own [topology] roles are not the farm file's;
//  - processes in different run states (farm_state_of: one restarted and still Idle or resuming,
//    ingest or filter processes in different runs);
//  - processes configured with different detectors;
//  - a process that builds and filters (every DU) beside ingest processes that build part, or
//    two such processes (the writer would get every window twice);
//  - a DU that two ingest processes build; once a process is configured, a DU of the detector
//    that none builds (its DOMs would be empty frames in every slice) or one not in the detector;
//  - ingest processes whose filter_endpoints differ (window N must go to the same filter from
//    each) or do not list as many filters as the farm has;
//  - an entry of filter_endpoints listed twice or that reaches no filter's bound slices_endpoint,
//    a filter no entry reaches, a filter whose results_endpoint reaches no writer's bound one
//    (tcp hosts are compared only when both are IP addresses, else the port alone);
//  - a filter whose ingest_processes is not the farm's number of ingest processes;
//  - a writer whose gap_timeout_ms is not above a filter's merge_timeout_ms (the windows a late
//    ingest process never sent would be passed over, the run's first slice chosen too early).
std::vector<std::string> check_farm(const FarmFile& farm, const std::vector<FarmStep>& statuses);

}  // namespace shoredaq::firmware
