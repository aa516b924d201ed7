// shorectl --farm rejoin (farm_control.hpp): one process brought to the farm's run state.
#include <algorithm>
#include <optional>

#include "shoredaq/firmware/farm_control.hpp"

namespace shoredaq::firmware {
namespace {

// The run states a process passes on its way into a run, in order, and the command that leaves each.
struct Step {
  const char* state;
  const char* command;  // to the next state
};
constexpr Step kPath[] = {{"Idle", "init"}, {"Standby", "configure"}, {"Ready", "start"}, {"Running", "pause"}, {"Paused", nullptr}};
constexpr std::size_t kRunning = 3;

std::optional<std::size_t> rank_of(const std::string& state) {
  for (std::size_t i = 0; i < std::size(kPath); ++i) {
    if (state == kPath[i].state) return i;
  }
  return std::nullopt;
}

std::optional<std::uint32_t> run_of(const nlohmann::json& reply) {
  if (reply.contains("run") && reply["run"].is_number_unsigned()) return reply["run"].get<std::uint32_t>();
  return std::nullopt;
}

// Refused by this command's own judgement (the process answered, or was not asked).
FarmOutcome refuse(FarmOutcome out, const std::string& process, const std::string& why,
                   nlohmann::json reply = nlohmann::json::object()) {
  FarmStep s;
  s.process = process;
  s.answered = true;
  s.reply = std::move(reply);
  s.error = why;
  out.steps.push_back(std::move(s));
  out.refused = true;
  return out;
}

}  // namespace

FarmOutcome farm_rejoin(const FarmFile& farm, const std::string& name, const nlohmann::json& configure,
                        std::chrono::milliseconds timeout) {
  FarmOutcome out;
  const auto it = std::find_if(farm.processes.begin(), farm.processes.end(), [&](const FarmProcess& p) { return p.name == name; });
  if (it == farm.processes.end()) return refuse(std::move(out), name, "not a process of the farm file");
  const std::size_t target = static_cast<std::size_t>(it - farm.processes.begin());
  if (it->roles.writer)
    return refuse(std::move(out), name, "a writer does not rejoin a run: it numbers and orders the run's slices; stop the farm and start a new run");

  std::vector<FarmStep> statuses = ask_every_process(farm, {{"cmd", "status"}}, std::min(timeout, std::chrono::milliseconds(5000)));
  for (FarmStep& s : statuses) {
    if (s.answered) continue;
    s.error = "no answer before rejoin: " + s.error;
    out.steps.push_back(std::move(s));
    out.refused = true;
    return out;
  }
  const nlohmann::json& mine = statuses[target].reply;
  if (mine.value("resuming", false))
    return refuse(std::move(out), name, "it is going back to its last order by itself (resuming); check again in a moment", mine);

  // The farm: every other process past Idle (another one that lost its state is left out, and
  // may rejoin next), in one state and, for ingest and filter processes, one run.
  std::optional<std::string> farm_key;  // farm_state_of an ingest or filter process (with its run)
  std::string farm_state;
  std::optional<std::uint32_t> farm_run, writer_run;
  std::optional<long long> farm_detector;
  for (std::size_t i = 0; i < farm.processes.size(); ++i) {
    const nlohmann::json& reply = statuses[i].reply;
    if (i == target || reply.value("state", "") == "Idle" || reply.value("resuming", false)) continue;
    const std::string state = reply.value("state", "");
    const std::string key = farm_state_of(farm.processes[i], reply);
    const bool writer = farm.processes[i].roles.writer;
    if ((!farm_state.empty() && state != farm_state) || (!writer && farm_key && key != *farm_key))
      return refuse(std::move(out), farm.processes[i].name,
                    "the rest of the farm is not in one state (" + farm.processes[i].name + ": " + key + ", others: " +
                        farm_key.value_or(farm_state) + "): bring it together first");
    if (!writer) farm_key = key;
    farm_state = state;
    (farm.processes[i].roles.writer ? writer_run : farm_run) = run_of(reply);
    if (reply.contains("detector_id") && reply["detector_id"].is_number_integer()) farm_detector = reply["detector_id"].get<long long>();
  }
  if (farm_state.empty()) return refuse(std::move(out), name, "no other process is past Idle: use the farm's own commands", mine);
  if (!farm_key) farm_key = farm_state;
  if (!farm_run) farm_run = writer_run;  // only writers besides it: theirs is the run
  const auto farm_rank = rank_of(farm_state);
  if (!farm_rank) return refuse(std::move(out), name, "the farm is " + farm_state + ": use the farm's own commands", mine);
  if (*farm_rank >= kRunning && !farm_run) return refuse(std::move(out), name, "the farm runs, but says no run number", mine);

  const std::string state = mine.value("state", "");
  const auto rank = rank_of(state);
  if (!rank) return refuse(std::move(out), name, "it is " + state + ": reset it first", mine);
  if (*rank >= kRunning && (*farm_rank < kRunning || run_of(mine) != farm_run))
    return refuse(std::move(out), name, "it is " + state + " in another run than the farm's (" + *farm_key + "): stop it first", mine);

  std::vector<std::string> commands;
  if (state == "Paused" && farm_state == "Running") {
    commands = {"continue"};
  } else if (*rank > *farm_rank) {
    return refuse(std::move(out), name, "it is " + state + ", further than the farm (" + *farm_key + "): stop or reset it first", mine);
  } else {
    for (std::size_t r = *rank; r < *farm_rank; ++r) commands.push_back(kPath[r].command);
  }

  for (const std::string& command : commands) {
    nlohmann::json request{{"cmd", command}};
    if (command == "configure") {
      for (const char* field : {"detx", "setup"}) {
        if (configure.contains(field)) request[field] = configure[field];
      }
    }
    if (command == "start") {
      // Configured with the farm's detector? (Without --detx it takes its own default.)
      if (farm_detector) {
        const FarmStep now = ask_farm_process(*it, {{"cmd", "status"}}, timeout);
        const nlohmann::json id = now.reply.is_object() ? now.reply.value("detector_id", nlohmann::json()) : nlohmann::json();
        if (!id.is_number_integer() || id.get<long long>() != *farm_detector) {
          FarmStep s = now;
          s.ok = false;
          s.error = "configured with detector " + id.dump() + ", the farm runs detector " + std::to_string(*farm_detector) +
                    ": not started (configure it with the farm's --detx)";
          out.steps.push_back(std::move(s));
          return out;
        }
      }
      request["run"] = *farm_run;
    }
    FarmStep s = ask_farm_process(*it, request, timeout);
    const bool ok = s.ok;
    out.steps.push_back(std::move(s));
    if (!ok) return out;  // where it got to, reported; out.ok stays false
  }
  if (out.steps.empty()) {
    FarmStep there = statuses[target];  // already where the farm is
    out.steps.push_back(std::move(there));
  }
  out.ok = true;
  return out;
}

}  // namespace shoredaq::firmware
