#include "shoredaq/firmware/run_control.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

using namespace shoredaq::firmware;

namespace {

// Records the hooks called, in order; each hook can be made to fail.
struct Recorder {
  std::vector<std::string> calls;
  std::string fail;          // hook name that throws std::runtime_error
  std::string refuse;        // hook name that throws CommandRefused
  void hit(const std::string& name) {
    calls.push_back(name);
    if (name == fail) throw std::runtime_error(name + " broke");
    if (name == refuse) throw CommandRefused(name + " refused");
  }
  RunControlHooks hooks() {
    RunControlHooks h;
    h.init = [this] { hit("init"); };
    h.configure = [this](const ConfigureRequest& r) { hit("configure:" + r.detector_file); };
    h.start = [this](std::uint32_t run, const std::string&) { hit("start:" + std::to_string(run)); };
    h.pause = [this] { hit("pause"); };
    h.resume = [this] { hit("continue"); };
    h.stop = [this] { hit("stop"); };
    h.reset = [this] { hit("reset"); };
    h.quit = [this] { hit("quit"); };
    return h;
  }
};

void drive_to(RunControl& rc, RunState target) {
  if (target == RunState::Idle) return;
  ASSERT_TRUE(rc.init().ok);
  if (target == RunState::Standby) return;
  ASSERT_TRUE(rc.configure({"d.detx", "", ""}).ok);
  if (target == RunState::Ready) return;
  ASSERT_TRUE(rc.start(7).ok);
  if (target == RunState::Running) return;
  ASSERT_TRUE(rc.pause().ok);
}

}  // namespace

TEST(RunControl, FullCycleCallsHooksInOrder) {
  Recorder rec;
  RunControl rc(rec.hooks());
  EXPECT_EQ(rc.state(), RunState::Idle);
  EXPECT_EQ(rc.init().state, RunState::Standby);
  EXPECT_EQ(rc.configure({"a.detx", "", ""}).state, RunState::Ready);
  EXPECT_EQ(rc.start(42).state, RunState::Running);
  EXPECT_EQ(rc.run(), 42u);
  EXPECT_EQ(rc.pause().state, RunState::Paused);
  EXPECT_EQ(rc.resume().state, RunState::Running);
  EXPECT_EQ(rc.stop().state, RunState::Standby);
  EXPECT_EQ(rc.run(), 42u);  // the last run stays visible after stop
  EXPECT_EQ(rc.reset().state, RunState::Idle);
  EXPECT_EQ(rc.quit().state, RunState::Exited);
  EXPECT_EQ(rec.calls, (std::vector<std::string>{"init", "configure:a.detx", "start:42", "pause", "continue",
                                                 "stop", "reset", "quit"}));
}

TEST(RunControl, ReconfigureInReadyAndStopFromPaused) {
  Recorder rec;
  RunControl rc(rec.hooks());
  drive_to(rc, RunState::Ready);
  EXPECT_TRUE(rc.configure({"b.detx", "", ""}).ok);
  EXPECT_EQ(rc.state(), RunState::Ready);
  EXPECT_TRUE(rc.start(1).ok);
  EXPECT_TRUE(rc.pause().ok);
  auto r = rc.stop();
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.state, RunState::Standby);
  // A second run needs a fresh configure.
  EXPECT_FALSE(rc.start(2).ok);
  EXPECT_TRUE(rc.configure({"c.detx", "", ""}).ok);
  EXPECT_TRUE(rc.start(2).ok);
  EXPECT_EQ(rc.run(), 2u);
}

TEST(RunControl, EveryInvalidCommandIsRefusedWithTheState) {
  const RunState states[] = {RunState::Idle, RunState::Standby, RunState::Ready, RunState::Running, RunState::Paused};
  const RunCommand commands[] = {RunCommand::Init, RunCommand::Configure, RunCommand::Start, RunCommand::Pause,
                                 RunCommand::Continue, RunCommand::Stop, RunCommand::Reset};
  int refusals = 0;
  for (auto s : states) {
    for (auto c : commands) {
      if (RunControl::allowed(s, c)) continue;
      Recorder rec;
      RunControl rc(rec.hooks());
      drive_to(rc, s);
      ASSERT_EQ(rc.state(), s);
      const auto calls_before = rec.calls.size();
      CommandResult r;
      switch (c) {
        case RunCommand::Init: r = rc.init(); break;
        case RunCommand::Configure: r = rc.configure({}); break;
        case RunCommand::Start: r = rc.start(9); break;
        case RunCommand::Pause: r = rc.pause(); break;
        case RunCommand::Continue: r = rc.resume(); break;
        case RunCommand::Stop: r = rc.stop(); break;
        case RunCommand::Reset: r = rc.reset(); break;
        case RunCommand::Quit: r = rc.quit(); break;
      }
      EXPECT_FALSE(r.ok) << to_string(c) << " in " << to_string(s);
      EXPECT_EQ(r.state, s);
      EXPECT_NE(r.error.find(std::string(to_string(s))), std::string::npos) << r.error;
      EXPECT_NE(r.error.find(std::string(to_string(c))), std::string::npos) << r.error;
      EXPECT_EQ(rec.calls.size(), calls_before) << "a refused command must not run its hook";
      EXPECT_EQ(rc.state(), s);
      ++refusals;
    }
  }
  // 5 states x 7 commands minus the 10 allowed pairs.
  EXPECT_EQ(refusals, 35 - 10);
}

TEST(RunControl, AllowedTable) {
  EXPECT_TRUE(RunControl::allowed(RunState::Idle, RunCommand::Init));
  EXPECT_TRUE(RunControl::allowed(RunState::Standby, RunCommand::Configure));
  EXPECT_TRUE(RunControl::allowed(RunState::Ready, RunCommand::Configure));
  EXPECT_TRUE(RunControl::allowed(RunState::Ready, RunCommand::Start));
  EXPECT_TRUE(RunControl::allowed(RunState::Running, RunCommand::Pause));
  EXPECT_TRUE(RunControl::allowed(RunState::Paused, RunCommand::Continue));
  EXPECT_TRUE(RunControl::allowed(RunState::Running, RunCommand::Stop));
  EXPECT_TRUE(RunControl::allowed(RunState::Paused, RunCommand::Stop));
  EXPECT_TRUE(RunControl::allowed(RunState::Error, RunCommand::Reset));
  EXPECT_FALSE(RunControl::allowed(RunState::Running, RunCommand::Reset));
  EXPECT_FALSE(RunControl::allowed(RunState::Error, RunCommand::Start));
  EXPECT_FALSE(RunControl::allowed(RunState::Error, RunCommand::Configure));
  for (auto s : {RunState::Idle, RunState::Standby, RunState::Ready, RunState::Running, RunState::Paused, RunState::Error})
    EXPECT_TRUE(RunControl::allowed(s, RunCommand::Quit));
  EXPECT_FALSE(RunControl::allowed(RunState::Exited, RunCommand::Quit));
  EXPECT_FALSE(RunControl::allowed(RunState::Exited, RunCommand::Init));
}

TEST(RunControl, FailingHookMovesToErrorAndResetRecovers) {
  Recorder rec;
  rec.fail = "start:5";
  RunControl rc(rec.hooks());
  drive_to(rc, RunState::Ready);
  auto r = rc.start(5);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.state, RunState::Error);
  EXPECT_NE(r.error.find("start:5 broke"), std::string::npos);
  EXPECT_EQ(rc.last_error(), r.error);
  EXPECT_FALSE(rc.run().has_value());  // the run never started
  EXPECT_FALSE(rc.start(6).ok);
  EXPECT_EQ(rc.reset().state, RunState::Idle);
  EXPECT_TRUE(rc.last_error().empty());
}

TEST(RunControl, RefusingHookKeepsTheState) {
  Recorder rec;
  rec.refuse = "configure:bad.detx";
  RunControl rc(rec.hooks());
  drive_to(rc, RunState::Standby);
  auto r = rc.configure({"bad.detx", "", ""});
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.state, RunState::Standby);
  EXPECT_EQ(r.error, "configure:bad.detx refused");
  // An invalid setup never reaches Running.
  EXPECT_FALSE(rc.start(1).ok);
  EXPECT_EQ(rc.state(), RunState::Standby);
  EXPECT_TRUE(rc.configure({"good.detx", "", ""}).ok);
  EXPECT_TRUE(rc.start(1).ok);
}

TEST(RunControl, QuitWhileRunningStopsFirst) {
  Recorder rec;
  RunControl rc(rec.hooks());
  drive_to(rc, RunState::Running);
  rec.calls.clear();
  EXPECT_EQ(rc.quit().state, RunState::Exited);
  EXPECT_EQ(rec.calls, (std::vector<std::string>{"stop", "quit"}));
  EXPECT_FALSE(rc.quit().ok);
}

TEST(RunControl, QuitFromPausedStopsFirstAndFromIdleDoesNot) {
  Recorder rec;
  RunControl rc(rec.hooks());
  drive_to(rc, RunState::Paused);
  rec.calls.clear();
  EXPECT_TRUE(rc.quit().ok);
  EXPECT_EQ(rec.calls, (std::vector<std::string>{"stop", "quit"}));
  Recorder rec2;
  RunControl idle(rec2.hooks());
  EXPECT_TRUE(idle.quit().ok);
  EXPECT_EQ(rec2.calls, (std::vector<std::string>{"quit"}));
}

TEST(RunControl, FailingStopGoesToError) {
  Recorder rec;
  rec.fail = "stop";
  RunControl rc(rec.hooks());
  drive_to(rc, RunState::Running);
  auto r = rc.stop();
  EXPECT_EQ(r.state, RunState::Error);
  EXPECT_NE(r.error.find("stop failed"), std::string::npos);
}

TEST(RunControl, CommandNames) {
  for (auto c : {RunCommand::Init, RunCommand::Configure, RunCommand::Start, RunCommand::Pause, RunCommand::Continue,
                 RunCommand::Stop, RunCommand::Reset, RunCommand::Quit})
    EXPECT_EQ(parse_run_command(to_string(c)), c);
  EXPECT_FALSE(parse_run_command("resume").has_value());
  EXPECT_FALSE(parse_run_command("").has_value());
  EXPECT_EQ(to_string(RunState::Paused), "Paused");
}

TEST(RunControl, HooksAreOptional) {
  RunControl rc;
  EXPECT_TRUE(rc.init().ok);
  EXPECT_TRUE(rc.configure({}).ok);
  EXPECT_TRUE(rc.start(3).ok);
  EXPECT_TRUE(rc.stop().ok);
  EXPECT_EQ(rc.state(), RunState::Standby);
}
