#pragma once
// What the operator last asked the node to be doing, kept in the state directory so that a node
// restarted by systemd (after a crash, a reboot, an upgrade) goes back to it by itself: when the
// last order was "running", it configures the same detector and run setup and starts the next run
// number (an ingest or filter process of a farm: the farm's run it was in, next_run - 1). Written
// atomically (temporary file, fsync, rename) at every order that changes it.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace shoredaq::firmware {

struct DesiredState {
  bool running = false;        // the last order was start (and no stop, reset since)
  std::uint32_t next_run = 0;  // the run number to take next
  std::string detector_file;
  std::string run_setup_text;  // the trigger parameters in effect (filters::to_toml)
  std::string run_type;
  std::uint32_t clb_run = 0;  // the run number the CLBs were told (what their datagrams carry)
  std::uint32_t current_run = 0;  // the run being taken when the order was given (0: none)
  friend bool operator==(const DesiredState&, const DesiredState&) = default;
};

// `<state_dir>/desired_state.json`
std::filesystem::path desired_state_path(const std::filesystem::path& state_dir);
// Throws std::runtime_error when the file cannot be written.
void save_desired_state(const std::filesystem::path& state_dir, const DesiredState& state);
// nullopt when there is no file; a damaged file is reported (the node then does not resume).
std::optional<DesiredState> load_desired_state(const std::filesystem::path& state_dir, std::string* problem = nullptr);

}  // namespace shoredaq::firmware
