// shorectl --farm check (farm_control.hpp): the processes' own status replies compared across the
// farm. Each process checks its own configuration when it loads it; this sees what only the
// whole farm shows.

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "config_reader.hpp"
#include "shoredaq/firmware/farm_control.hpp"

namespace shoredaq::firmware {
namespace {

// A process as its status reply describes it.
struct Described {
  std::string name;
  bool ingest = false, filter = false, writer = false;
  std::vector<long long> dus;  // empty: every DU
  nlohmann::json filter_endpoints;
  std::string slices_endpoint, results_endpoint;  // empty: not given (or not said)
  unsigned ingest_processes = 0, merge_timeout_ms = 0, gap_timeout_ms = 0;
};

bool has_role(const std::string& roles, const std::string& role) {
  return ("+" + roles + "+").find("+" + role + "+") != std::string::npos;
}

// "tcp://host:port" -> {"tcp", "host", "port"}; ipc:// and inproc:// keep the whole address as host.
struct Endpoint {
  std::string transport, host, port;
};

Endpoint split_endpoint(const std::string& e) {
  Endpoint out;
  const auto scheme = e.find("://");
  if (scheme == std::string::npos) return {"", e, ""};
  out.transport = e.substr(0, scheme);
  out.host = e.substr(scheme + 3);
  if (out.transport == "tcp") {
    const auto colon = out.host.rfind(':');
    if (colon != std::string::npos) {
      out.port = out.host.substr(colon + 1);
      out.host.erase(colon);
    }
  }
  return out;
}

// An IP address literal ("10.0.0.8", "[::1]"; localhost taken as 127.0.0.1), or nothing for a
// host or interface name, which only the network can resolve.
std::optional<std::string> ip_literal(std::string host) {
  if (host == "localhost") host = "127.0.0.1";
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (config_detail::is_ip_literal(host)) return host;
  return std::nullopt;
}

// Whether a socket connecting to `connect` can reach one bound at `bind`: ipc:// and inproc://
// the same address; tcp:// the same port, and the same host when both are IP addresses and the
// bind is not to every interface (*, 0.0.0.0, ::). A host name against an address is given the
// benefit of the doubt.
bool reaches(const std::string& connect, const std::string& bind) {
  const Endpoint c = split_endpoint(connect), b = split_endpoint(bind);
  if (c.transport != b.transport) return false;
  if (c.transport != "tcp") return c.host == b.host;
  if (c.port != b.port) return false;
  if (b.host == "*") return true;
  const auto bound = ip_literal(b.host), connected = ip_literal(c.host);
  if (!bound || !connected || *bound == "0.0.0.0" || *bound == "::") return true;
  return *bound == *connected;
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : " and ") + n;
  return out;
}

}  // namespace

std::vector<std::string> check_farm(const FarmFile& farm, const std::vector<FarmStep>& statuses) {
  std::vector<std::string> problems;
  // Counted from the farm file: a process that did not answer is still part of the farm.
  std::size_t farm_ingest = 0, farm_filters = 0;
  for (const FarmProcess& p : farm.processes) {
    farm_ingest += p.roles.ingest && !p.roles.filter;
    farm_filters += p.roles.filter && !p.roles.ingest;
  }
  std::vector<Described> ingest, filters, writers;  // ingest without filter, filter without ingest, writer without filter
  std::vector<std::string> whole_builders;  // ingest with filter: builds every DU (no topology.dus)
  std::map<std::string, std::vector<std::string>> by_state;  // "Running run 77" -> the processes in it
  std::set<std::string> plain_states, run_keys;  // every process's state; ingest and filter processes' state and run
  std::map<long long, std::vector<std::string>> by_detector;  // detector id -> the processes configured with it
  std::set<long long> detector_dus;
  bool detector_known = false;
  for (std::size_t i = 0; i < farm.processes.size(); ++i) {
    const FarmProcess& p = farm.processes[i];
    if (i >= statuses.size() || !statuses[i].answered) {
      problems.push_back(p.name + ": no answer" + (i < statuses.size() ? " (" + statuses[i].error + ")" : ""));
      continue;
    }
    const nlohmann::json& reply = statuses[i].reply;
    try {
      const std::string resuming = reply.value("resuming", false) ? " (resuming)" : "";
      const std::string key = farm_state_of(p, reply) + resuming;
      by_state[key].push_back(p.name);
      plain_states.insert(reply.value("state", "?") + resuming);
      if (!p.roles.writer) run_keys.insert(key);
      const nlohmann::json& topo = reply.at("topology");
      Described d;
      d.name = p.name;
      const std::string roles = topo.at("roles").get<std::string>();
      if (roles != p.roles.roles_text())
        problems.push_back(p.name + ": runs as " + roles + ", the farm file says " + p.roles.roles_text());
      d.ingest = has_role(roles, "ingest");
      d.filter = has_role(roles, "filter");
      d.writer = has_role(roles, "writer");
      d.dus = topo.at("dus").get<std::vector<long long>>();
      d.filter_endpoints = topo.at("filter_endpoints");
      d.slices_endpoint = topo.value("slices_endpoint", "");
      d.results_endpoint = topo.value("results_endpoint", "");
      d.ingest_processes = topo.at("ingest_processes").get<unsigned>();
      d.merge_timeout_ms = topo.at("merge_timeout_ms").get<unsigned>();
      d.gap_timeout_ms = topo.at("gap_timeout_ms").get<unsigned>();
      if (reply.contains("detector_dus")) {
        const auto dus = reply["detector_dus"].get<std::vector<long long>>();
        by_detector[reply.at("detector_id").get<long long>()].push_back(p.name);
        detector_dus.insert(dus.begin(), dus.end());
        detector_known = true;
      }
      if (d.ingest && d.filter) whole_builders.push_back(p.name);
      if (d.ingest && !d.filter) ingest.push_back(d);
      if (d.filter && !d.ingest) filters.push_back(d);
      if (d.writer && !d.filter) writers.push_back(d);
    } catch (const nlohmann::json::exception& e) {
      problems.push_back(p.name + ": its status does not describe its topology (" + std::string(e.what()) + ")");
    }
  }

  if (plain_states.size() > 1 || run_keys.size() > 1) {
    std::string which;
    bool some_idle = false;
    for (const auto& [state, names] : by_state) {
      which += (which.empty() ? "" : "; ") + state + ": " + join(names);
      some_idle = some_idle || state == "Idle";
    }
    problems.push_back("the processes are not in one state (" + which + ")" +
                       (some_idle ? "; `shorectl --farm ... rejoin NAME` brings an Idle one to the others" : ""));
  }
  if (by_detector.size() > 1) {
    std::string which;
    for (const auto& [id, names] : by_detector) which += (which.empty() ? "" : "; ") + std::to_string(id) + ": " + join(names);
    problems.push_back("the processes are configured with different detectors (" + which + ")");
  }
  // A process that both builds and filters builds every DU: beside partial builders, twice.
  if (farm_ingest > 0) {
    for (const std::string& name : whole_builders)
      problems.push_back(name + ": builds and filters every DU beside " + std::to_string(farm_ingest) +
                         " ingest process(es) that build part of the detector");
  } else if (whole_builders.size() > 1) {
    problems.push_back(join(whole_builders) + " each build and filter every DU: the writer would get every window from each");
  }
  // Every DU built by exactly one ingest process.
  std::map<long long, std::vector<std::string>> builders;
  for (const Described& in : ingest) {
    if (in.dus.empty()) {
      if (farm_ingest > 1)
        problems.push_back(in.name + ": builds every DU (topology.dus is empty) beside other ingest processes");
      for (const long long du : detector_dus) builders[du].push_back(in.name);
    }
    for (const long long du : in.dus) builders[du].push_back(in.name);
  }
  for (const auto& [du, names] : builders) {
    if (names.size() > 1)
      problems.push_back("DU " + std::to_string(du) + " is built by " + join(names) +
                         ": its frames would come twice to the filters (dropped as duplicates)");
  }
  // A DU nobody builds: only when every ingest process said what it builds.
  const bool every_ingest_described = ingest.size() == farm_ingest;
  if (detector_known && !ingest.empty()) {
    for (const long long du : detector_dus) {
      if (every_ingest_described && !builders.contains(du))
        problems.push_back("DU " + std::to_string(du) +
                           " of the detector is built by no ingest process: its DOMs are empty frames in every slice");
    }
    for (const auto& [du, names] : builders) {
      if (!detector_dus.contains(du))
        problems.push_back("DU " + std::to_string(du) + " (built by " + join(names) + ") is not in the detector");
    }
  }

  // The same filters, in the same order, from every ingest process; each filter waits for them all.
  for (const Described& in : ingest) {
    if (in.filter_endpoints != ingest.front().filter_endpoints)
      problems.push_back(in.name + ": filter_endpoints differ from " + ingest.front().name +
                         "'s (window N must go to the same filter from every ingest process)");
  }
  if (!ingest.empty() && ingest.front().filter_endpoints.size() != farm_filters)
    problems.push_back(ingest.front().name + ": " + std::to_string(ingest.front().filter_endpoints.size()) +
                       " filter_endpoints, the farm has " + std::to_string(farm_filters) + " filter processes");
  for (const Described& f : filters) {
    if (f.ingest_processes != farm_ingest)
      problems.push_back(f.name + ": waits for " + std::to_string(f.ingest_processes) +
                         " partial slices of a window (ingest_processes), the farm has " + std::to_string(farm_ingest) +
                         " ingest processes");
  }
  // The endpoints: every entry of filter_endpoints reaches a filter's bound slices_endpoint and
  // every filter is reached; every filter's results_endpoint reaches the writer's bound one.
  if (!ingest.empty()) {
    const Described& in = ingest.front();
    // Only when every filter answered and said where it binds: else an entry may be one of theirs.
    const bool every_filter_described =
        filters.size() == farm_filters &&
        std::all_of(filters.begin(), filters.end(), [](const Described& f) { return !f.slices_endpoint.empty(); });
    std::set<std::string> listed;
    for (const auto& entry : in.filter_endpoints) {
      if (!entry.is_string()) continue;
      const std::string e = entry.get<std::string>();
      if (!listed.insert(e).second)
        problems.push_back(in.name + ": filter_endpoints lists " + e + " twice: that filter would get two shares of the windows");
      const bool reached = std::any_of(filters.begin(), filters.end(), [&](const Described& f) {
        return !f.slices_endpoint.empty() && reaches(e, f.slices_endpoint);
      });
      if (!reached && every_filter_described)
        problems.push_back(in.name + ": filter_endpoints entry " + e +
                           " reaches no filter process's slices_endpoint: the windows routed to it are lost");
    }
    for (const Described& f : filters) {
      if (f.slices_endpoint.empty()) continue;
      const bool reached = std::any_of(in.filter_endpoints.begin(), in.filter_endpoints.end(), [&](const nlohmann::json& e) {
        return e.is_string() && reaches(e.get<std::string>(), f.slices_endpoint);
      });
      if (!reached)
        problems.push_back(f.name + ": its slices_endpoint " + f.slices_endpoint + " is in no ingest process's "
                           "filter_endpoints: it gets no windows");
    }
  }
  if (!writers.empty()) {
    for (const Described& f : filters) {
      if (f.results_endpoint.empty()) continue;
      const bool reached = std::any_of(writers.begin(), writers.end(), [&](const Described& w) {
        return !w.results_endpoint.empty() && reaches(f.results_endpoint, w.results_endpoint);
      });
      if (!reached)
        problems.push_back(f.name + ": its results_endpoint " + f.results_endpoint +
                           " reaches no writer's results_endpoint: its results are lost");
    }
  }
  for (const Described& w : writers) {
    for (const Described& f : filters) {
      if (w.gap_timeout_ms <= f.merge_timeout_ms)
        problems.push_back(w.name + ": gap_timeout_ms " + std::to_string(w.gap_timeout_ms) + " is not above " + f.name +
                           "'s merge_timeout_ms " + std::to_string(f.merge_timeout_ms) +
                           ": windows an ingest process never sent would be passed over");
    }
  }
  return problems;
}

}  // namespace shoredaq::firmware
