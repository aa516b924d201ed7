#include "shoredaq/firmware/farm_control.hpp"

#include <algorithm>
#include <optional>
#include <set>

#include "config_reader.hpp"
#include "shoredaq/firmware/control_socket.hpp"
#include "shoredaq/firmware/input_file.hpp"
#include "shoredaq/firmware/security.hpp"

namespace shoredaq::firmware {
namespace {
using config_detail::fail;

bool downstream_first(RunCommand c) {
  return c == RunCommand::Init || c == RunCommand::Configure || c == RunCommand::Start || c == RunCommand::Continue;
}

// 0 writers (and whole nodes), 1 filters, 2 ingest: the order data flows backwards.
int stage_rank(const TopologySection& t) {
  if (t.writer) return 0;
  if (t.filter) return 1;
  return 2;
}

std::optional<RunCommand> undo_of(RunCommand c) {
  switch (c) {
    case RunCommand::Init: return RunCommand::Reset;
    case RunCommand::Start: return RunCommand::Stop;
    case RunCommand::Pause: return RunCommand::Continue;
    case RunCommand::Continue: return RunCommand::Pause;
    default: return std::nullopt;
  }
}

nlohmann::json step_json(const FarmStep& s) {
  nlohmann::json j{{"process", s.process}, {"ok", s.ok}, {"answered", s.answered}};
  if (s.reply.is_object()) {
    j["state"] = s.reply.value("state", "");
    if (s.reply.contains("run")) j["run"] = s.reply["run"];
    j["reply"] = s.reply;
  }
  if (!s.error.empty()) j["error"] = s.error;
  return j;
}

}  // namespace

FarmStep ask_farm_process(const FarmProcess& p, const nlohmann::json& request, std::chrono::milliseconds timeout) {
  FarmStep s;
  s.process = p.name;
  try {
    std::optional<ControlCurveClient> curve;
    if (!p.curve_secret.empty()) {
      curve = ControlCurveClient{read_secret_key_file(p.curve_secret), read_public_key_file(p.server_key)};
    }
    s.reply = control_request(p.endpoint, request, timeout, curve);
    s.answered = true;
    s.ok = s.reply.value("ok", false);
    if (!s.ok) s.error = s.reply.value("error", std::string("refused"));
  } catch (const std::exception& e) {
    s.error = e.what();
  }
  return s;
}

std::vector<FarmStep> ask_every_process(const FarmFile& farm, const nlohmann::json& request, std::chrono::milliseconds timeout) {
  std::vector<FarmStep> steps;
  for (const auto& p : farm.processes) steps.push_back(ask_farm_process(p, request, timeout));
  return steps;
}

std::string farm_state_of(const FarmProcess& process, const nlohmann::json& status_reply) {
  std::string state = status_reply.value("state", "?");
  if (!process.roles.writer && (state == "Running" || state == "Paused") && status_reply.contains("run"))
    state += " run " + status_reply["run"].dump();
  return state;
}

FarmFile parse_farm_file(std::string_view text) {
  const toml::table root = config_detail::parse_toml(text);
  FarmFile farm;
  for (const auto& [k, v] : root) {
    if (k.str() != "process") fail(std::string(k.str()), "unknown key (a farm file has only [[process]] entries)");
  }
  const toml::array* list = root["process"].as_array();
  if (list == nullptr || list->empty()) fail("process", "at least one [[process]] entry is required");
  std::set<std::string> names, endpoints;
  for (std::size_t i = 0; i < list->size(); ++i) {
    const std::string at = "process[" + std::to_string(i) + "]";
    const toml::table* t = list->get(i)->as_table();
    if (t == nullptr) fail(at, "expected a table");
    config_detail::SectionReader r(t, at);
    FarmProcess p;
    r.string("name", p.name, false);
    if (p.name.empty()) fail(at + ".name", "required");
    if (!names.insert(p.name).second) fail(at + ".name", "\"" + p.name + "\" is named twice");
    std::vector<std::string> roles;
    r.string_list("roles", roles);
    if (roles.empty()) fail(at + ".roles", "required: the process's [topology] roles (ingest, filter, writer)");
    p.roles.ingest = p.roles.filter = p.roles.writer = false;
    for (const auto& role : roles) {
      if (role == "ingest") p.roles.ingest = true;
      else if (role == "filter") p.roles.filter = true;
      else if (role == "writer") p.roles.writer = true;
      else fail(at + ".roles", "\"" + role + "\" is not a role; expected ingest, filter or writer");
    }
    r.string("endpoint", p.endpoint, false);
    if (p.endpoint.empty()) fail(at + ".endpoint", "required: the process's control socket");
    config_detail::check_endpoint(at + ".endpoint", p.endpoint);
    if (!endpoints.insert(p.endpoint).second) fail(at + ".endpoint", "\"" + p.endpoint + "\" is listed twice");
    r.file_path("curve_secret", p.curve_secret);
    r.file_path("server_key", p.server_key);
    if (p.curve_secret.empty() != p.server_key.empty())
      fail(at + ".server_key", "curve_secret and server_key go together");
    if (p.endpoint.rfind("tcp://", 0) == 0 && p.curve_secret.empty())
      fail(at + ".curve_secret", "a tcp:// control socket is served only with CURVE: give curve_secret and server_key");
    r.reject_unknown();
    farm.processes.push_back(std::move(p));
  }
  return farm;
}

FarmFile load_farm_file(const std::filesystem::path& file) {
  return parse_farm_file(read_input_file(file, kMaxConfigFileBytes, std::chrono::seconds(10)));
}

std::vector<std::size_t> farm_order(const FarmFile& farm, RunCommand command) {
  std::vector<std::size_t> order(farm.processes.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  const bool forward = downstream_first(command);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    const int ra = stage_rank(farm.processes[a].roles), rb = stage_rank(farm.processes[b].roles);
    return forward ? ra < rb : ra > rb;
  });
  return order;
}

FarmOutcome farm_command(const FarmFile& farm, const nlohmann::json& request, std::chrono::milliseconds timeout) {
  FarmOutcome out;
  const std::string cmd = request.value("cmd", "");
  const std::optional<RunCommand> command = parse_run_command(cmd);
  if (!command) {
    // status and the like: every process, in the farm file's order.
    out.steps = ask_every_process(farm, request, timeout);
    out.ok = std::all_of(out.steps.begin(), out.steps.end(), [](const FarmStep& s) { return s.ok; });
    return out;
  }
  // Nothing moves unless every process answers: a half-started farm is worse than none. Only stop
  // and quit go on without a process that is gone (the others still drain; it is reported).
  const bool best_effort = *command == RunCommand::Stop || *command == RunCommand::Quit;
  const std::chrono::milliseconds probe_timeout = std::min(timeout, std::chrono::milliseconds(5000));
  std::vector<bool> gone(farm.processes.size(), false);
  std::vector<FarmStep> probes = ask_every_process(farm, {{"cmd", "status"}}, probe_timeout);
  for (std::size_t i = 0; i < farm.processes.size(); ++i) {
    FarmStep& s = probes[i];
    if (s.answered) continue;
    gone[i] = true;
    s.error = "no answer before " + cmd + ": " + s.error;
    out.steps.push_back(std::move(s));
    if (!best_effort) out.refused = true;
  }
  if (out.refused) return out;
  bool failed = std::find(gone.begin(), gone.end(), true) != gone.end();

  std::vector<std::size_t> reached;
  for (std::size_t i : farm_order(farm, *command)) {
    if (gone[i]) continue;
    FarmStep s = ask_farm_process(farm.processes[i], request, timeout);
    const bool ok = s.ok;
    out.steps.push_back(std::move(s));
    if (ok) {
      reached.push_back(i);
      continue;
    }
    failed = true;
    // configure can be repeated and stop/quit must reach every process: go on, report.
    if (*command == RunCommand::Configure || *command == RunCommand::Stop || *command == RunCommand::Quit) continue;
    break;
  }
  if (failed) {
    if (const auto undo = undo_of(*command)) {
      const std::string undo_name(to_string(*undo));
      // Undo in the undo command's own order (a started farm stops ingest first).
      for (std::size_t i : farm_order(farm, *undo)) {
        if (std::find(reached.begin(), reached.end(), i) == reached.end()) continue;
        out.rollback.push_back(ask_farm_process(farm.processes[i], {{"cmd", undo_name}}, std::max(timeout, std::chrono::milliseconds(60000))));
      }
    }
  }
  out.ok = !failed;
  return out;
}

nlohmann::json FarmOutcome::to_json() const {
  nlohmann::json j{{"ok", ok}, {"refused", refused}, {"processes", nlohmann::json::array()}};
  for (const auto& s : steps) j["processes"].push_back(step_json(s));
  if (!rollback.empty()) {
    j["rolled_back"] = nlohmann::json::array();
    for (const auto& s : rollback) j["rolled_back"].push_back(step_json(s));
  }
  return j;
}

}  // namespace shoredaq::firmware
