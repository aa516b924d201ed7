#pragma once
// The node's run-control state machine (DESIGN.md section 5, DOMAIN.md section 6):
//
//   Idle --init--> Standby --configure--> Ready --start(run)--> Running <--pause/continue--> Paused
//   Running/Paused --stop--> Standby     (each run is configured afresh, so its run setup is the one
//                                         recorded with it; an operator re-issues configure + start)
//   Ready --configure--> Ready           (re-configure before starting is allowed)
//   Standby/Ready/Error --reset--> Idle  (Running/Paused must be stopped first: reset never drops data)
//   any state --quit--> Exited           (from Running/Paused the stop hook runs first: a graceful stop)
//   a failing hook --> Error (message kept); Error --reset--> Idle.
//
// Pure logic: the actions (open the store, start the pipeline, drain...) are hooks supplied by the
// node. A hook that throws CommandRefused leaves the state unchanged (e.g. an invalid run setup at
// configure: the operator fixes it and retries); any other exception moves the machine to Error.
// Commands are serialised by a command mutex; hooks run under it, so a command never overlaps
// another one. The state itself sits behind a separate mutex, so state(), run(), last_error() and
// in_progress() answer at once even while a hook runs (e.g. `status` during stop's drain).

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace shoredaq::firmware {

enum class RunState : std::uint8_t { Idle, Standby, Ready, Running, Paused, Error, Exited };
enum class RunCommand : std::uint8_t { Init, Configure, Start, Pause, Continue, Stop, Reset, Quit };

std::string_view to_string(RunState state) noexcept;
std::string_view to_string(RunCommand command) noexcept;
std::optional<RunCommand> parse_run_command(std::string_view name) noexcept;

// Thrown by a hook to refuse a command without leaving the current state.
class CommandRefused : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What configure carries: a detector file and a run setup (TOML text with a [trigger] section).
// Empty fields mean "keep the node's configured default".
struct ConfigureRequest {
  std::string detector_file;
  std::string run_setup_path;
  std::string run_setup_text;
};

struct RunControlHooks {
  std::function<void()> init;
  std::function<void(const ConfigureRequest&)> configure;
  std::function<void(std::uint32_t run, const std::string& run_type)> start;  // run_type "" = the node's default
  std::function<void()> pause;
  std::function<void()> resume;  // "continue"
  std::function<void()> stop;    // must drain before returning
  std::function<void()> reset;
  std::function<void()> quit;
};

struct CommandResult {
  bool ok = false;
  RunState state = RunState::Idle;  // the state after the command (unchanged when refused)
  std::string error;                // why it was refused or failed
};

class RunControl {
 public:
  explicit RunControl(RunControlHooks hooks = {});

  CommandResult init();
  CommandResult configure(const ConfigureRequest& request);
  CommandResult start(std::uint32_t run, const std::string& run_type = {});
  CommandResult pause();
  CommandResult resume();
  CommandResult stop();
  CommandResult reset();
  CommandResult quit();

  RunState state() const;
  std::optional<std::uint32_t> run() const;  // the current (or last stopped) run
  std::string last_error() const;            // the message that put the machine into Error
  // The command whose hook is running now (e.g. Stop while the pipeline drains), if any.
  std::optional<RunCommand> in_progress() const;
  // A run that ended and was followed by the next one without a command (run cycling).
  void set_run(std::uint32_t run);

  // Whether `command` is accepted in `state` (the table above); used for refusals and tests.
  static bool allowed(RunState state, RunCommand command) noexcept;

 private:
  CommandResult execute(RunCommand command, RunState next, const std::function<void()>& action);

  RunControlHooks hooks_;
  std::mutex command_mutex_;      // held for a whole command, hooks included
  mutable std::mutex state_mutex_;  // guards the fields below, held only briefly
  std::optional<RunCommand> in_progress_;
  RunState state_ = RunState::Idle;
  std::optional<std::uint32_t> run_;
  std::string last_error_;
};

}  // namespace shoredaq::firmware
