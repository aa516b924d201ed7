// shorectl --farm rejoin (farm_control.hpp): one process brought to the farm's run state.
#include <algorithm>
#include <optional>

#include "shoredaq/firmware/farm_control.hpp"

namespace shoredaq::firmware {
namespace {

// The run states a process passes on its way to a run, in order; the command that leaves each.
struct Step {
  const char* state;
  const char* command;  // to the next state
};
constexpr Step kPath[] = {{"Idle", "init"}, {"Standby", "configure"}, {"Ready", "start"}, {"Running", "pause"}, {"Paused", nullptr}};
constexpr std::size_t kPathLength = sizeof kPath / sizeof kPath[0];

std::optional<std::size_t> rank_of(const std::string& state) {
  for (std::size_t i = 0; i < kPathLength; ++i) {
    if (state == kPath[i].state) return i;
  }
  return std::nullopt;
}

FarmOutcome refuse(FarmOutcome out, const std::string& process, const std::string& why) {
  FarmStep s;
  s.process = process;
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
  const FarmProcess& target = *it;
  if (target.roles.writer)
    return refuse(std::move(out), name, "a writer does not rejoin a run: it numbers and orders the run's slices; stop the farm and start a new run");

  // Where the others are: one state, one run.
  const std::chrono::milliseconds probe_timeout = std::min(timeout, std::chrono::milliseconds(5000));
  std::optional<std::string> farm_state;
  std::optional<std::uint32_t> farm_run;
  FarmStep target_status;
  for (const FarmProcess& p : farm.processes) {
    FarmStep s = ask_farm_process(p, {{"cmd", "status"}}, probe_timeout);
    if (!s.answered) return refuse(std::move(out), p.name, "no answer before rejoin: " + s.error);
    if (&p == &target) {
      target_status = std::move(s);
      continue;
    }
    const std::string state = s.reply.value("state", "");
    const std::optional<std::uint32_t> run =
        s.reply.contains("run") && s.reply["run"].is_number_unsigned() ? std::optional(s.reply["run"].get<std::uint32_t>()) : std::nullopt;
    if (!farm_state) {
      farm_state = state;
      farm_run = run;
    } else if (state != *farm_state || run != farm_run) {
      return refuse(std::move(out), p.name,
                    "the rest of the farm is not in one state (" + p.name + ": " + state + ", others: " + *farm_state +
                        "): bring it together first");
    }
  }
  if (!farm_state) return refuse(std::move(out), name, "the farm has no other process to rejoin");
  const auto farm_rank = rank_of(*farm_state);
  if (!farm_rank || *farm_rank == 0)
    return refuse(std::move(out), name, "the farm is " + *farm_state + ": use the farm's own commands");
  const std::string state = target_status.reply.value("state", "");
  const auto rank = rank_of(state);
  if (!rank) return refuse(std::move(out), name, "it is " + state + ": reset it first");
  if (*rank > *farm_rank || (*rank == *farm_rank && *rank >= 3 && target_status.reply.value("run", 0u) != farm_run.value_or(0)))
    return refuse(std::move(out), name, "it is " + state + ", further than (or in another run than) the farm's " + *farm_state +
                                            ": stop or reset it first");

  for (std::size_t r = *rank; r < *farm_rank; ++r) {
    nlohmann::json request{{"cmd", kPath[r].command}};
    if (request["cmd"] == "configure") {
      for (const char* field : {"detx", "setup"}) {
        if (configure.contains(field)) request[field] = configure[field];
      }
    }
    if (request["cmd"] == "start") request["run"] = farm_run.value_or(0);
    FarmStep s = ask_farm_process(target, request, timeout);
    const bool ok = s.ok;
    out.steps.push_back(std::move(s));
    if (!ok) return out;  // where it got to, reported; out.ok stays false
  }
  if (out.steps.empty()) out.steps.push_back(std::move(target_status));  // already there
  out.ok = true;
  return out;
}

}  // namespace shoredaq::firmware
