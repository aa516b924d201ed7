// shorectl --farm rejoin (farm_rejoin): one process brought to the rest of the farm's state, along
// the run states, against stand-in processes (a control socket each that keeps a run state and
// notes the commands it gets); refused, with nothing sent, when the farm is not in one state, for
// a writer, or for a process further than the farm.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <thread>

#include <zmq.hpp>

#include "shoredaq/firmware/farm_control.hpp"

using namespace shoredaq::firmware;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

namespace {

// A process's control socket: answers status with its state (and run, and detector once
// configured), and moves along the run states on init / configure / start / pause / continue as a
// shoredaq daemon does.
class StandIn {
 public:
  StandIn(const fs::path& dir, std::string state, std::optional<std::uint32_t> run = std::nullopt)
      : endpoint_("ipc://" + (dir / (std::to_string(counter_++) + ".sock")).string()), state_(std::move(state)), run_(run) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.bind(endpoint_);
    thread_ = std::thread([this] { serve(); });
  }
  ~StandIn() {
    stop_ = true;
    thread_.join();
  }
  std::atomic<bool> refuse_configure{false};  // configure fails, as with a detector file it cannot read
  std::atomic<int> detector_id{133};          // what it says it is configured with
  const std::string& endpoint() const { return endpoint_; }
  std::vector<std::string> commands() const {
    std::lock_guard lock(mutex_);
    return commands_;
  }
  nlohmann::json last_request() const {
    std::lock_guard lock(mutex_);
    return last_;
  }
  std::string state() const {
    std::lock_guard lock(mutex_);
    return state_;
  }

 private:
  void serve() {
    while (!stop_) {
      zmq::pollitem_t in{static_cast<void*>(socket_), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&in, 1, std::chrono::milliseconds(20)) == 0) continue;
      zmq::message_t m;
      if (!socket_.recv(m)) continue;
      std::string reply;
      try {
        reply = answer(nlohmann::json::parse(m.to_string_view())).dump();
      } catch (const std::exception& e) {  // REP must answer every request
        reply = nlohmann::json{{"ok", false}, {"error", std::string("stand-in: ") + e.what()}}.dump();
      }
      socket_.send(zmq::buffer(reply), zmq::send_flags::none);
    }
  }
  nlohmann::json answer(const nlohmann::json& request) {
    std::lock_guard lock(mutex_);
    const std::string cmd = request.value("cmd", "");
    bool ok = true;
    if (cmd != "status") {
      commands_.push_back(cmd);
      last_ = request;
      const std::pair<const char*, const char*> moves[] = {
          {"init", "Idle"}, {"configure", "Standby"}, {"start", "Ready"}, {"pause", "Running"}, {"continue", "Paused"}};
      const char* to[] = {"Standby", "Ready", "Running", "Paused", "Running"};
      ok = false;
      for (std::size_t i = 0; i < std::size(to); ++i) {
        if (cmd == moves[i].first && state_ == moves[i].second && !(cmd == "configure" && refuse_configure)) {
          state_ = to[i];
          if (cmd == "start") run_ = request.at("run").get<std::uint32_t>();
          ok = true;
        }
      }
    }
    nlohmann::json r{{"ok", ok}, {"state", state_}};
    if (run_) r["run"] = *run_;
    if (state_ != "Idle" && state_ != "Standby") r["detector_id"] = detector_id.load();
    if (!ok) r["error"] = cmd + " refused in " + state_;
    return r;
  }

  static inline std::atomic<int> counter_{0};
  zmq::context_t context_{1};
  zmq::socket_t socket_{context_, zmq::socket_type::rep};
  std::string endpoint_;
  mutable std::mutex mutex_;
  std::string state_;
  std::optional<std::uint32_t> run_;
  std::vector<std::string> commands_;
  nlohmann::json last_;
  std::atomic<bool> stop_{false};
  std::thread thread_;  // last: started once everything it reads is made
};

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("shoredaq-rejoin-" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

FarmFile farm_of(const std::vector<std::tuple<std::string, std::string, const StandIn*>>& processes) {
  std::string text;
  for (const auto& [name, roles, p] : processes)
    text += "[[process]]\nname = \"" + name + "\"\nroles = [\"" + roles + "\"]\nendpoint = \"" + p->endpoint() + "\"\n";
  return parse_farm_file(text);
}

constexpr std::chrono::milliseconds kTimeout{2000};

}  // namespace

TEST(FarmRejoin, ARestartedFilterIsBroughtToTheFarmsRunAlongTheRunStates) {
  TempDir dir;
  StandIn writer(dir.path, "Running", 41), ingest(dir.path, "Running", 41), filter(dir.path, "Idle");
  const FarmFile farm = farm_of({{"writer", "writer", &writer}, {"filter-1", "filter", &filter}, {"ingest-1", "ingest", &ingest}});
  const FarmOutcome out = farm_rejoin(farm, "filter-1", {{"detx", "/etc/shoredaq/block.detx"}}, kTimeout);
  EXPECT_TRUE(out.ok) << out.to_json().dump(1);
  EXPECT_THAT(filter.commands(), ElementsAre("init", "configure", "start"));
  EXPECT_EQ(filter.state(), "Running");
  EXPECT_EQ(filter.last_request()["run"], 41);
  ASSERT_EQ(out.steps.size(), 3u);
  EXPECT_EQ(out.steps[1].process, "filter-1");
  EXPECT_TRUE(writer.commands().empty() && ingest.commands().empty()) << "the rest of the farm is only asked its status";

  // Once there, a second rejoin sends nothing.
  const FarmOutcome again = farm_rejoin(farm, "filter-1", {}, kTimeout);
  EXPECT_TRUE(again.ok);
  EXPECT_EQ(filter.commands().size(), 3u);
}

TEST(FarmRejoin, APausedFarmIsJoinedPausedAndAConfiguredProcessIsOnlyStarted) {
  TempDir dir;
  StandIn writer(dir.path, "Paused", 7), filter(dir.path, "Paused", 7), ingest(dir.path, "Ready");
  const FarmFile farm = farm_of({{"writer", "writer", &writer}, {"filter-1", "filter", &filter}, {"ingest-1", "ingest", &ingest}});
  EXPECT_TRUE(farm_rejoin(farm, "ingest-1", {}, kTimeout).ok);
  EXPECT_THAT(ingest.commands(), ElementsAre("start", "pause"));
  EXPECT_EQ(ingest.state(), "Paused");
}

TEST(FarmRejoin, IsRefusedWithNothingSentWhenItCouldNotEndWell) {
  TempDir dir;
  StandIn writer(dir.path, "Running", 41), ingest(dir.path, "Running", 41), filter(dir.path, "Idle");
  const FarmFile farm = farm_of({{"writer", "writer", &writer}, {"filter-1", "filter", &filter}, {"ingest-1", "ingest", &ingest}});

  const FarmOutcome w = farm_rejoin(farm, "writer", {}, kTimeout);
  EXPECT_TRUE(w.refused);
  EXPECT_TRUE(w.steps.at(0).answered) << "refused by the command, not for want of an answer (shorectl exit 1, not 2)";
  EXPECT_THAT(w.to_json().dump(), HasSubstr("a writer does not rejoin a run"));
  EXPECT_TRUE(farm_rejoin(farm, "nobody", {}, kTimeout).refused);

  // The others in two states (one stopped): which run would it join?
  StandIn stopped(dir.path, "Standby", 41), idle(dir.path, "Idle");
  const FarmFile split = farm_of({{"writer", "writer", &writer}, {"filter-1", "filter", &idle}, {"ingest-1", "ingest", &ingest},
                                  {"ingest-2", "ingest", &stopped}});
  const FarmOutcome s = farm_rejoin(split, "filter-1", {}, kTimeout);
  EXPECT_TRUE(s.refused);
  EXPECT_THAT(s.to_json().dump(), HasSubstr("not in one state"));

  // Further than the farm, or in another run: stop or reset it first.
  StandIn other_run(dir.path, "Running", 40);
  const FarmFile further = farm_of({{"writer", "writer", &writer}, {"filter-1", "filter", &other_run}, {"ingest-1", "ingest", &ingest}});
  const FarmOutcome f = farm_rejoin(further, "filter-1", {}, kTimeout);
  EXPECT_TRUE(f.refused);
  EXPECT_THAT(f.to_json().dump(), HasSubstr("another run"));

  for (const StandIn* p : {&writer, &ingest, &filter, &stopped, &idle, &other_run}) EXPECT_TRUE(p->commands().empty());

  // A process that does not answer: refused too.
  const FarmFile gone = parse_farm_file(
      "[[process]]\nname = \"writer\"\nroles = [\"writer\"]\nendpoint = \"" + writer.endpoint() +
      "\"\n[[process]]\nname = \"filter-1\"\nroles = [\"filter\"]\nendpoint = \"ipc://" + (dir.path / "none.sock").string() + "\"\n");
  const FarmOutcome g = farm_rejoin(gone, "filter-1", {}, std::chrono::milliseconds(300));
  EXPECT_TRUE(g.refused);
  EXPECT_THAT(g.to_json().dump(), HasSubstr("no answer before rejoin"));
}

TEST(FarmRejoin, AFailedStepLeavesTheProcessWhereItGotToAndSaysSo) {
  TempDir dir;
  StandIn writer(dir.path, "Running", 41), filter(dir.path, "Idle");
  filter.refuse_configure = true;
  const FarmFile farm = farm_of({{"writer", "writer", &writer}, {"filter-1", "filter", &filter}});
  const FarmOutcome out = farm_rejoin(farm, "filter-1", {}, kTimeout);
  EXPECT_FALSE(out.ok);
  EXPECT_FALSE(out.refused);
  EXPECT_THAT(filter.commands(), ElementsAre("init", "configure"));
  EXPECT_EQ(filter.state(), "Standby");
  ASSERT_EQ(out.steps.size(), 2u);
  EXPECT_THAT(out.steps[1].error, HasSubstr("configure refused"));
}

TEST(FarmRejoin, TheRunIsComparedInEveryStateOfARun) {
  TempDir dir;
  // The farm paused in run 41; a process running run 40 is not paused into it.
  StandIn writer(dir.path, "Paused", 41), ingest(dir.path, "Paused", 41), stale(dir.path, "Running", 40);
  const FarmFile farm = farm_of({{"writer", "writer", &writer}, {"filter-1", "filter", &stale}, {"ingest-1", "ingest", &ingest}});
  const FarmOutcome out = farm_rejoin(farm, "filter-1", {}, kTimeout);
  EXPECT_TRUE(out.refused);
  EXPECT_THAT(out.to_json().dump(), HasSubstr("another run"));
  EXPECT_TRUE(stale.commands().empty());

  // Paused in the farm's run while the farm runs: continued.
  StandIn running_writer(dir.path, "Running", 41), running_ingest(dir.path, "Running", 41), paused(dir.path, "Paused", 41);
  const FarmFile behind = farm_of({{"writer", "writer", &running_writer}, {"filter-1", "filter", &paused}, {"ingest-1", "ingest", &running_ingest}});
  EXPECT_TRUE(farm_rejoin(behind, "filter-1", {}, kTimeout).ok);
  EXPECT_THAT(paused.commands(), ElementsAre("continue"));
}

TEST(FarmRejoin, TwoProcessesThatLostTheirStateRejoinOneAfterTheOther) {
  TempDir dir;
  StandIn writer(dir.path, "Running", 41), ingest(dir.path, "Running", 41), filter1(dir.path, "Idle"), filter2(dir.path, "Idle");
  // The writer cycled its run (41 -> 42): the farm's run is the one the ingest and filter processes run.
  StandIn cycled(dir.path, "Running", 42);
  const FarmFile farm = farm_of({{"writer", "writer", &cycled}, {"filter-1", "filter", &filter1}, {"filter-2", "filter", &filter2},
                                 {"ingest-1", "ingest", &ingest}});
  EXPECT_TRUE(farm_rejoin(farm, "filter-1", {}, kTimeout).ok);
  EXPECT_TRUE(farm_rejoin(farm, "filter-2", {}, kTimeout).ok);
  EXPECT_EQ(filter1.last_request()["run"], 41);
  EXPECT_EQ(filter2.last_request()["run"], 41);
}

TEST(FarmRejoin, AProcessConfiguredWithAnotherDetectorIsNotStarted) {
  TempDir dir;
  StandIn writer(dir.path, "Running", 41), filter(dir.path, "Idle");
  filter.detector_id = 134;  // its own default detector file, not the farm's
  const FarmFile farm = farm_of({{"writer", "writer", &writer}, {"filter-1", "filter", &filter}});
  const FarmOutcome out = farm_rejoin(farm, "filter-1", {}, kTimeout);
  EXPECT_FALSE(out.ok);
  EXPECT_THAT(filter.commands(), ElementsAre("init", "configure"));
  ASSERT_FALSE(out.steps.empty());
  EXPECT_THAT(out.steps.back().error, HasSubstr("configured with detector 134, the farm runs detector 133"));
}
