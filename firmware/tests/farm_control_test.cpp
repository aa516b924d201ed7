// The farm's configuration: [topology] roles and endpoints (refused with the key named when a
// process could not work), and the farm file `shorectl --farm` reads, with the order in which a
// command reaches the processes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config_error.hpp"
#include "shoredaq/firmware/config.hpp"
#include "shoredaq/firmware/farm_control.hpp"

using namespace shoredaq::firmware;
using shoredaq::firmware::test_support::config_error_of;
using ::testing::HasSubstr;

namespace {

std::string farm_error_of(const std::string& text) {
  try {
    parse_farm_file(text);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

std::string process(const std::string& name, const std::string& roles, const std::string& endpoint) {
  return "[[process]]\nname = \"" + name + "\"\nroles = " + roles + "\nendpoint = \"" + endpoint + "\"\n";
}

}  // namespace

TEST(TopologyConfig, TheDefaultIsTheWholeNodeInOneProcess) {
  const NodeConfig c = parse_config("");
  EXPECT_TRUE(c.topology.whole_node());
  EXPECT_EQ(c.topology.roles_text(), "ingest+filter+writer");
}

TEST(TopologyConfig, EachRoleNamesTheEndpointsItNeeds) {
  const NodeConfig filter = parse_config(
      "[topology]\nroles = [\"filter\"]\nslices_endpoint = \"tcp://127.0.0.1:5601\"\ningest_processes = 2\n"
      "results_endpoint = \"tcp://10.0.0.5:5700\"\n");
  EXPECT_FALSE(filter.topology.ingest);
  EXPECT_TRUE(filter.topology.filter);
  EXPECT_FALSE(filter.topology.writer);
  EXPECT_EQ(filter.topology.ingest_processes, 2u);
  EXPECT_EQ(filter.topology.roles_text(), "filter");

  const NodeConfig ingest = parse_config(
      "[topology]\nroles = [\"ingest\"]\ndus = [3, 4]\nfilter_endpoints = [\"tcp://10.0.0.2:5601\", \"tcp://10.0.0.3:5601\"]\n");
  EXPECT_EQ(ingest.topology.dus, (std::vector<std::uint32_t>{3, 4}));
  EXPECT_EQ(ingest.topology.filter_endpoints.size(), 2u);

  EXPECT_THAT(config_error_of("[topology]\nroles = [\"ingest\"]\n"), HasSubstr("topology.filter_endpoints"));
  EXPECT_THAT(config_error_of("[topology]\nroles = [\"filter\"]\nresults_endpoint = \"tcp://127.0.0.1:5700\"\n"),
              HasSubstr("topology.slices_endpoint"));
  EXPECT_THAT(config_error_of("[topology]\nroles = [\"filter\", \"writer\"]\nslices_endpoint = \"tcp://127.0.0.1:5601\"\n"),
              HasSubstr("out of order"));
  EXPECT_THAT(config_error_of("[topology]\ndus = [1]\n"), HasSubstr("topology.dus"));
  EXPECT_THAT(config_error_of("[topology]\nroles = [\"writer\"]\n"), HasSubstr("topology.results_endpoint"));
  EXPECT_THAT(config_error_of("[topology]\nroles = [\"writer\"]\nresults_endpoint = \"tcp://nohost\"\n"),
              HasSubstr("topology.results_endpoint"));
  EXPECT_THAT(config_error_of("[topology]\nroles = [\"ingest\", \"writer\"]\n"), HasSubstr("without filter"));
  EXPECT_THAT(config_error_of("[topology]\nroles = [\"filter\", \"filter\"]\n"), HasSubstr("named twice"));
  EXPECT_THAT(config_error_of("[topology]\nroles = [\"builder\"]\n"), HasSubstr("not a role"));
  EXPECT_THAT(config_error_of("[topology]\nroles = []\n"), HasSubstr("at least one role"));
  EXPECT_THAT(config_error_of("[topology]\nrole = [\"filter\"]\n"), HasSubstr("topology.role"));
  EXPECT_THAT(config_error_of("[ingest]\nudp = [\"optical@127.0.0.1:0\"]\n[topology]\nroles = [\"writer\"]\n"
                              "results_endpoint = \"tcp://127.0.0.1:5700\"\n"),
              HasSubstr("ingest.udp"));
  // Only the writer ends runs on a schedule; the others follow the farm's run.
  const std::string filter_only =
      "[topology]\nroles = [\"filter\"]\nslices_endpoint = \"tcp://127.0.0.1:5601\"\nresults_endpoint = \"tcp://127.0.0.1:5700\"\n";
  EXPECT_THAT(config_error_of(filter_only + "[run]\nmax_duration_s = 3600\n"), HasSubstr("run.max_duration_s"));
  EXPECT_THAT(config_error_of(filter_only + "[run]\nmax_bytes = 1000000\n"), HasSubstr("run.max_bytes"));
  EXPECT_EQ(parse_config("[topology]\nroles = [\"writer\"]\nresults_endpoint = \"tcp://127.0.0.1:5700\"\n"
                         "[run]\nmax_duration_s = 3600\n")
                .run.max_duration_s,
            3600u);
}

TEST(FarmFile, ListsProcessesAndOrdersCommandsTheWayTheDataFlows) {
  const FarmFile farm = parse_farm_file(process("ingest-1", "[\"ingest\"]", "ipc:///run/a/control.sock") +
                                        process("filter-1", "[\"filter\"]", "ipc:///run/b/control.sock") +
                                        process("writer", "[\"writer\"]", "ipc:///run/c/control.sock") +
                                        process("ingest-2", "[\"ingest\"]", "ipc:///run/d/control.sock"));
  ASSERT_EQ(farm.processes.size(), 4u);
  const auto names = [&](RunCommand c) {
    std::vector<std::string> out;
    for (std::size_t i : farm_order(farm, c)) out.push_back(farm.processes[i].name);
    return out;
  };
  // Downstream first when starting, upstream first when stopping; the file's order within a stage.
  EXPECT_EQ(names(RunCommand::Start), (std::vector<std::string>{"writer", "filter-1", "ingest-1", "ingest-2"}));
  EXPECT_EQ(names(RunCommand::Configure), names(RunCommand::Start));
  EXPECT_EQ(names(RunCommand::Stop), (std::vector<std::string>{"ingest-1", "ingest-2", "filter-1", "writer"}));
  EXPECT_EQ(names(RunCommand::Quit), names(RunCommand::Stop));
}

TEST(FarmFile, RefusesWhatCouldNotBeDriven) {
  const std::string ok = process("w", "[\"writer\"]", "ipc:///run/w.sock");
  EXPECT_EQ(farm_error_of(ok), "");
  EXPECT_THAT(farm_error_of(""), HasSubstr("at least one"));
  EXPECT_THAT(farm_error_of(ok + process("w", "[\"filter\"]", "ipc:///run/f.sock")), HasSubstr("named twice"));
  EXPECT_THAT(farm_error_of(ok + process("f", "[\"filter\"]", "ipc:///run/w.sock")), HasSubstr("listed twice"));
  EXPECT_THAT(farm_error_of(process("x", "[\"sorter\"]", "ipc:///run/x.sock")), HasSubstr("process[0].roles"));
  EXPECT_THAT(farm_error_of(process("x", "[\"filter\"]", "tcp://10.0.0.1:5550")), HasSubstr("process[0].curve_secret"));
  EXPECT_THAT(farm_error_of(ok + "colour = \"red\"\n"), HasSubstr("process[0].colour"));
  EXPECT_THAT(farm_error_of("[farm]\n"), HasSubstr("unknown key"));
}

TEST(FarmControl, ATransitionIsRefusedWhileAProcessDoesNotAnswer) {
  const FarmFile farm = parse_farm_file(process("gone", "[\"writer\"]", "ipc:///nonexistent/shoredaq-farm-test.sock"));
  const FarmOutcome start = farm_command(farm, {{"cmd", "start"}, {"run", 5}}, std::chrono::milliseconds(300));
  EXPECT_FALSE(start.ok);
  EXPECT_TRUE(start.refused);
  ASSERT_EQ(start.steps.size(), 1u);
  EXPECT_FALSE(start.steps[0].answered);
  // Stop goes on without it (and reports it).
  const FarmOutcome stop = farm_command(farm, {{"cmd", "stop"}}, std::chrono::milliseconds(300));
  EXPECT_FALSE(stop.ok);
  EXPECT_FALSE(stop.refused);
  EXPECT_EQ(stop.to_json()["processes"][0]["process"], "gone");
}

namespace {

// A farm of 2 ingest processes (DU 1, DU 2), 2 filters and a writer, each process's status as it
// would give it once configured; a test then spoils one thing.
struct DescribedFarm {
  FarmFile farm = parse_farm_file(process("ingest-1", "[\"ingest\"]", "ipc:///run/i1.sock") +
                                  process("ingest-2", "[\"ingest\"]", "ipc:///run/i2.sock") +
                                  process("filter-1", "[\"filter\"]", "ipc:///run/f1.sock") +
                                  process("filter-2", "[\"filter\"]", "ipc:///run/f2.sock") +
                                  process("writer", "[\"writer\"]", "ipc:///run/w.sock"));
  std::vector<FarmStep> statuses;
  DescribedFarm() {
    const nlohmann::json filters = {"tcp://filter-1:5600", "tcp://filter-2:5600"};
    add("ingest-1", "ingest", {{"dus", {1}}, {"filter_endpoints", filters}});
    add("ingest-2", "ingest", {{"dus", {2}}, {"filter_endpoints", filters}});
    add("filter-1", "filter",
        {{"ingest_processes", 2}, {"slices_endpoint", "tcp://*:5600"}, {"results_endpoint", "tcp://writer:5700"}});
    add("filter-2", "filter",
        {{"ingest_processes", 2}, {"slices_endpoint", "tcp://0.0.0.0:5600"}, {"results_endpoint", "tcp://writer:5700"}});
    add("writer", "writer", {{"results_endpoint", "tcp://*:5700"}});
  }
  void add(const std::string& name, const std::string& roles, const nlohmann::json& set) {
    nlohmann::json topology{{"roles", roles},          {"dus", nlohmann::json::array()}, {"filter_endpoints", nlohmann::json::array()},
                            {"ingest_processes", 1},   {"merge_timeout_ms", 1000},       {"gap_timeout_ms", 2000}};
    topology.update(set);
    FarmStep s;
    s.process = name;
    s.answered = s.ok = true;
    s.reply = {{"state", "Configured"}, {"topology", topology}, {"detector_id", 133}, {"detector_dus", {1, 2}}};
    statuses.push_back(s);
  }
  nlohmann::json& topology(std::size_t process) { return statuses[process].reply["topology"]; }
  // The problems, one per line.
  std::string problems() const {
    std::string out;
    for (const auto& p : check_farm(farm, statuses)) out += p + "\n";
    return out;
  }
  std::size_t count() const { return check_farm(farm, statuses).size(); }
};

}  // namespace

TEST(FarmCheck, ASoundFarmHasNoProblem) {
  const DescribedFarm f;
  EXPECT_EQ(f.problems(), "");
}

TEST(FarmCheck, FindsTheDusNoIngestProcessOrTwoBuild) {
  DescribedFarm none;
  none.topology(1)["dus"] = {3};
  EXPECT_THAT(none.problems(), HasSubstr("DU 2 of the detector is built by no ingest process"));
  EXPECT_THAT(none.problems(), HasSubstr("DU 3 (built by ingest-2) is not in the detector"));
  EXPECT_EQ(none.count(), 2u);

  DescribedFarm twice;
  twice.topology(1)["dus"] = {1, 2};
  EXPECT_THAT(twice.problems(), HasSubstr("DU 1 is built by ingest-1 and ingest-2"));
  EXPECT_EQ(twice.count(), 1u);

  DescribedFarm every;
  every.topology(0)["dus"] = nlohmann::json::array();
  EXPECT_THAT(every.problems(), HasSubstr("ingest-1: builds every DU"));
  EXPECT_THAT(every.problems(), HasSubstr("DU 2 is built by ingest-1 and ingest-2"));

  // Before configure the detector is not known: only what the processes' own lists show.
  DescribedFarm idle;
  for (auto& s : idle.statuses) s.reply.erase("detector_dus");
  idle.topology(1)["dus"] = {3};
  EXPECT_EQ(idle.problems(), "");
  idle.topology(1)["dus"] = {1};
  EXPECT_THAT(idle.problems(), HasSubstr("DU 1 is built by ingest-1 and ingest-2"));
}

TEST(FarmCheck, FindsFiltersTheProcessesDoNotAgreeOn) {
  DescribedFarm order;
  order.topology(1)["filter_endpoints"] = {"tcp://filter-2:5600", "tcp://filter-1:5600"};
  EXPECT_THAT(order.problems(), HasSubstr("ingest-2: filter_endpoints differ from ingest-1's"));
  EXPECT_EQ(order.count(), 1u);

  DescribedFarm fewer;
  for (std::size_t i : {0u, 1u}) fewer.topology(i)["filter_endpoints"] = {"tcp://filter-1:5600"};
  EXPECT_THAT(fewer.problems(), HasSubstr("ingest-1: 1 filter_endpoints, the farm has 2 filter processes"));
  EXPECT_EQ(fewer.count(), 1u);

  DescribedFarm waits;
  waits.topology(3)["ingest_processes"] = 1;
  EXPECT_THAT(waits.problems(), HasSubstr("filter-2: waits for 1 partial slices of a window (ingest_processes), the farm has 2"));
  EXPECT_EQ(waits.count(), 1u);

  DescribedFarm timeouts;
  timeouts.topology(2)["merge_timeout_ms"] = 2000;
  EXPECT_THAT(timeouts.problems(), HasSubstr("writer: gap_timeout_ms 2000 is not above filter-1's merge_timeout_ms 2000"));
  EXPECT_EQ(timeouts.count(), 1u);
}

TEST(FarmCheck, FindsEndpointsThatReachNoProcess) {
  DescribedFarm port;
  port.topology(3)["slices_endpoint"] = "tcp://*:5601";
  EXPECT_THAT(port.problems(),
              HasSubstr("filter-2: its slices_endpoint tcp://*:5601 is in no ingest process's filter_endpoints"));
  EXPECT_EQ(port.count(), 1u) << "tcp://filter-2:5600 still reaches filter-1's bind to every interface";

  DescribedFarm ipc;
  const nlohmann::json sockets = {"ipc:///run/shoredaq/f1.slices", "ipc:///run/shoredaq/f2.slices"};
  for (std::size_t i : {0u, 1u}) ipc.topology(i)["filter_endpoints"] = sockets;
  ipc.topology(2)["slices_endpoint"] = "ipc:///run/shoredaq/f1.slices";
  ipc.topology(3)["slices_endpoint"] = "ipc:///run/shoredaq/f-2.slices";
  EXPECT_THAT(ipc.problems(), HasSubstr("ingest-1: filter_endpoints entry ipc:///run/shoredaq/f2.slices reaches no filter "
                                        "process's slices_endpoint"));
  EXPECT_THAT(ipc.problems(), HasSubstr("filter-2: its slices_endpoint ipc:///run/shoredaq/f-2.slices is in no"));
  EXPECT_EQ(ipc.count(), 2u);
  ipc.topology(3)["slices_endpoint"] = "ipc:///run/shoredaq/f2.slices";
  EXPECT_EQ(ipc.problems(), "");

  DescribedFarm results;
  results.topology(4)["results_endpoint"] = "tcp://127.0.0.1:5700";  // bound on loopback only
  results.topology(2)["results_endpoint"] = "tcp://localhost:5700";
  results.topology(3)["results_endpoint"] = "tcp://10.0.0.8:5700";
  EXPECT_THAT(results.problems(),
              HasSubstr("filter-2: its results_endpoint tcp://10.0.0.8:5700 reaches no writer's results_endpoint"));
  EXPECT_EQ(results.count(), 1u) << "localhost is 127.0.0.1";
  results.topology(3)["results_endpoint"] = "ipc:///run/shoredaq/results";
  EXPECT_EQ(results.count(), 1u);

  // Host names are resolved by the network: a name against an address is given the benefit of
  // the doubt, two addresses are compared.
  DescribedFarm hosts;
  const nlohmann::json addresses = {"tcp://10.0.0.1:5600", "tcp://10.0.0.2:5600"};
  for (std::size_t i : {0u, 1u}) hosts.topology(i)["filter_endpoints"] = addresses;
  hosts.topology(2)["slices_endpoint"] = "tcp://10.0.0.1:5600";
  hosts.topology(3)["slices_endpoint"] = "tcp://filter-2.farm:5600";  // an interface or host name
  EXPECT_EQ(hosts.problems(), "");
  hosts.topology(3)["slices_endpoint"] = "tcp://10.0.0.3:5600";
  EXPECT_THAT(hosts.problems(), HasSubstr("ingest-1: filter_endpoints entry tcp://10.0.0.2:5600 reaches no filter"));
  EXPECT_THAT(hosts.problems(), HasSubstr("filter-2: its slices_endpoint tcp://10.0.0.3:5600 is in no"));
  EXPECT_EQ(hosts.count(), 2u) << hosts.problems();

  // A filter that does not answer is not taken for a wrong entry in the ingest processes' lists.
  hosts.statuses[3].answered = hosts.statuses[3].ok = false;
  EXPECT_EQ(hosts.count(), 1u) << hosts.problems();
  EXPECT_THAT(hosts.problems(), HasSubstr("filter-2: no answer"));

  // One filter named twice (and so the other never): ports alone would not show it.
  DescribedFarm twice;
  for (std::size_t i : {0u, 1u}) twice.topology(i)["filter_endpoints"] = {"tcp://filter-1:5600", "tcp://filter-1:5600"};
  EXPECT_THAT(twice.problems(), HasSubstr("ingest-1: filter_endpoints lists tcp://filter-1:5600 twice"));
  EXPECT_EQ(twice.count(), 1u) << twice.problems();
}

TEST(FarmCheck, FindsProcessesInAnotherStateOrRun) {
  DescribedFarm running;
  for (auto& s : running.statuses) s.reply.update({{"state", "Running"}, {"run", 77}});
  EXPECT_EQ(running.problems(), "");
  running.statuses[3].reply = {{"state", "Idle"}, {"topology", running.topology(3)}};
  EXPECT_THAT(running.problems(), HasSubstr("the processes are not in one state (Idle: filter-2; Running: writer; Running run 77: "
                                            "ingest-1 and ingest-2 and filter-1); `shorectl --farm ... rejoin NAME`"));
  EXPECT_EQ(running.count(), 1u) << running.problems();
  running.statuses[3].reply.update({{"state", "Running"}, {"run", 77}});
  running.statuses[3].reply["resuming"] = true;
  EXPECT_THAT(running.problems(), HasSubstr("Running run 77 (resuming): filter-2"));
  EXPECT_THAT(running.problems(), ::testing::Not(HasSubstr("rejoin"))) << "it is on its way by itself";
  running.statuses[3].reply.erase("resuming");
  EXPECT_EQ(running.problems(), "");
  running.statuses[4].reply["run"] = 78;  // the writer cycled its run: the others keep the farm's number
  EXPECT_EQ(running.problems(), "");
  running.statuses[1].reply["run"] = 78;  // an ingest process in a run of its own
  EXPECT_THAT(running.problems(), HasSubstr("Running run 78: ingest-2"));
}

TEST(FarmCheck, FindsADetectorOrABuilderTheOthersDoNotShare) {
  DescribedFarm detectors;
  detectors.statuses[3].reply["detector_id"] = 134;
  EXPECT_THAT(detectors.problems(),
              HasSubstr("the processes are configured with different detectors (133: ingest-1 and ingest-2 and filter-1 and "
                        "writer; 134: filter-2)"));
  EXPECT_EQ(detectors.count(), 1u);

  // A filter that was also given the ingest role builds every DU itself.
  DescribedFarm builder;
  builder.farm.processes[2].roles.ingest = true;
  builder.topology(2)["roles"] = "ingest+filter";
  EXPECT_THAT(builder.problems(), HasSubstr("filter-1: builds and filters every DU beside 2 ingest process(es)"));

  // Two of them and no ingest process: every window twice.
  DescribedFarm two;
  two.farm.processes.erase(two.farm.processes.begin(), two.farm.processes.begin() + 2);
  two.statuses.erase(two.statuses.begin(), two.statuses.begin() + 2);
  for (std::size_t i : {0u, 1u}) {
    two.farm.processes[i].roles.ingest = true;
    two.topology(i)["roles"] = "ingest+filter";
  }
  EXPECT_THAT(two.problems(), HasSubstr("filter-1 and filter-2 each build and filter every DU"));
  EXPECT_EQ(two.count(), 1u) << two.problems();
}

TEST(FarmCheck, NamesProcessesThatDoNotAnswerOrRunOtherRoles) {
  DescribedFarm gone;
  gone.statuses[3].answered = gone.statuses[3].ok = false;
  gone.statuses[3].error = "no reply within 300 ms";
  EXPECT_THAT(gone.problems(), HasSubstr("filter-2: no answer (no reply within 300 ms)"));
  EXPECT_EQ(gone.count(), 1u) << "still a filter of the farm, for the ingest processes' lists";

  DescribedFarm other;
  other.topology(4)["roles"] = "filter+writer";
  EXPECT_THAT(other.problems(), HasSubstr("writer: runs as filter+writer, the farm file says writer"));

  DescribedFarm old;
  old.statuses[0].reply.erase("topology");
  EXPECT_THAT(old.problems(), HasSubstr("ingest-1: its status does not describe its topology"));
  EXPECT_EQ(old.count(), 1u) << "DU 1 is not called unbuilt: ingest-1 did not say what it builds";

  DescribedFarm silent_ingest;
  silent_ingest.statuses[1].answered = false;
  EXPECT_THAT(silent_ingest.problems(), HasSubstr("ingest-2: no answer"));
  EXPECT_EQ(silent_ingest.count(), 1u);
}
