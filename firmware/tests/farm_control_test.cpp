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
