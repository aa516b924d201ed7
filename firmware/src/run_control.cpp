#include "shoredaq/firmware/run_control.hpp"

#include <exception>
#include <string>

namespace shoredaq::firmware {

std::string_view to_string(RunState state) noexcept {
  switch (state) {
    case RunState::Idle: return "Idle";
    case RunState::Standby: return "Standby";
    case RunState::Ready: return "Ready";
    case RunState::Running: return "Running";
    case RunState::Paused: return "Paused";
    case RunState::Error: return "Error";
    case RunState::Exited: return "Exited";
  }
  return "?";
}

std::string_view to_string(RunCommand command) noexcept {
  switch (command) {
    case RunCommand::Init: return "init";
    case RunCommand::Configure: return "configure";
    case RunCommand::Start: return "start";
    case RunCommand::Pause: return "pause";
    case RunCommand::Continue: return "continue";
    case RunCommand::Stop: return "stop";
    case RunCommand::Reset: return "reset";
    case RunCommand::Quit: return "quit";
  }
  return "?";
}

std::optional<RunCommand> parse_run_command(std::string_view name) noexcept {
  for (auto c : {RunCommand::Init, RunCommand::Configure, RunCommand::Start, RunCommand::Pause,
                 RunCommand::Continue, RunCommand::Stop, RunCommand::Reset, RunCommand::Quit}) {
    if (to_string(c) == name) return c;
  }
  return std::nullopt;
}

bool RunControl::allowed(RunState state, RunCommand command) noexcept {
  switch (command) {
    case RunCommand::Init: return state == RunState::Idle;
    case RunCommand::Configure: return state == RunState::Standby || state == RunState::Ready;
    case RunCommand::Start: return state == RunState::Ready;
    case RunCommand::Pause: return state == RunState::Running;
    case RunCommand::Continue: return state == RunState::Paused;
    case RunCommand::Stop: return state == RunState::Running || state == RunState::Paused;
    case RunCommand::Reset:
      return state == RunState::Standby || state == RunState::Ready || state == RunState::Error;
    case RunCommand::Quit: return state != RunState::Exited;
  }
  return false;
}

RunControl::RunControl(RunControlHooks hooks) : hooks_(std::move(hooks)) {}

CommandResult RunControl::execute(RunCommand command, RunState next, const std::function<void()>& action) {
  std::lock_guard command_lock(command_mutex_);
  {
    std::lock_guard lock(state_mutex_);
    if (!allowed(state_, command)) {
      return {false, state_,
              std::string("command '") + std::string(to_string(command)) + "' is not allowed in state " +
                  std::string(to_string(state_))};
    }
    in_progress_ = command;
  }
  std::string failure_text;
  try {
    if (action) action();
  } catch (const CommandRefused& refused) {
    std::lock_guard lock(state_mutex_);
    in_progress_.reset();
    return {false, state_, refused.what()};
  } catch (const std::exception& failure) {
    failure_text = std::string(to_string(command)) + " failed: " + failure.what();
  } catch (...) {
    failure_text = std::string(to_string(command)) + " failed: unknown error";
  }
  std::lock_guard lock(state_mutex_);
  in_progress_.reset();
  if (!failure_text.empty()) {
    last_error_ = failure_text;
    state_ = RunState::Error;
    return {false, state_, last_error_};
  }
  state_ = next;
  if (next != RunState::Error) last_error_.clear();
  return {true, state_, {}};
}

CommandResult RunControl::init() { return execute(RunCommand::Init, RunState::Standby, hooks_.init); }

CommandResult RunControl::configure(const ConfigureRequest& request) {
  return execute(RunCommand::Configure, RunState::Ready, [&] {
    if (hooks_.configure) hooks_.configure(request);
  });
}

CommandResult RunControl::start(std::uint32_t run, const std::string& run_type) {
  // run_ is only updated under the lock inside execute's action, after the hook succeeded.
  return execute(RunCommand::Start, RunState::Running, [&] {
    if (hooks_.start) hooks_.start(run, run_type);
    std::lock_guard lock(state_mutex_);
    run_ = run;
  });
}

CommandResult RunControl::pause() { return execute(RunCommand::Pause, RunState::Paused, hooks_.pause); }
CommandResult RunControl::resume() { return execute(RunCommand::Continue, RunState::Running, hooks_.resume); }
CommandResult RunControl::stop() { return execute(RunCommand::Stop, RunState::Standby, hooks_.stop); }
CommandResult RunControl::reset() { return execute(RunCommand::Reset, RunState::Idle, hooks_.reset); }

CommandResult RunControl::quit() {
  return execute(RunCommand::Quit, RunState::Exited, [&] {
    const RunState now = state();
    if ((now == RunState::Running || now == RunState::Paused) && hooks_.stop) hooks_.stop();
    if (hooks_.quit) hooks_.quit();
  });
}

RunState RunControl::state() const {
  std::lock_guard lock(state_mutex_);
  return state_;
}

std::optional<std::uint32_t> RunControl::run() const {
  std::lock_guard lock(state_mutex_);
  return run_;
}

std::optional<RunCommand> RunControl::in_progress() const {
  std::lock_guard lock(state_mutex_);
  return in_progress_;
}

void RunControl::set_run(std::uint32_t run) {
  std::lock_guard lock(state_mutex_);
  run_ = run;
}

std::string RunControl::last_error() const {
  std::lock_guard lock(state_mutex_);
  return last_error_;
}

}  // namespace shoredaq::firmware
