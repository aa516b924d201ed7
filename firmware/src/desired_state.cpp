#include "shoredaq/firmware/desired_state.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "shoredaq/firmware/input_file.hpp"

namespace shoredaq::firmware {

std::filesystem::path desired_state_path(const std::filesystem::path& state_dir) { return state_dir / "desired_state.json"; }

void save_desired_state(const std::filesystem::path& state_dir, const DesiredState& state) {
  const nlohmann::json j{{"running", state.running},       {"next_run", state.next_run}, {"current_run", state.current_run},
                         {"detector_file", state.detector_file}, {"run_setup", state.run_setup_text},
                         {"run_type", state.run_type}, {"clb_run", state.clb_run}};
  const std::string text = j.dump(2) + "\n";
  const auto path = desired_state_path(state_dir);
  const auto tmp = state_dir / ".desired_state.json.tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) throw std::runtime_error("cannot write " + tmp.string() + ": " + std::strerror(errno));
  const ssize_t n = ::write(fd, text.data(), text.size());
  const bool ok = n == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot write " + path.string() + ": " + std::strerror(ok ? errno : err));
  }
}

std::optional<DesiredState> load_desired_state(const std::filesystem::path& state_dir, std::string* problem) {
  const auto path = desired_state_path(state_dir);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::nullopt;
  try {
    const auto j = nlohmann::json::parse(read_input_file(path, 16u << 20, std::chrono::seconds(5)));
    DesiredState s;
    s.running = j.at("running").get<bool>();
    s.next_run = j.at("next_run").get<std::uint32_t>();
    s.current_run = j.value("current_run", std::uint32_t{0});  // absent in files from before it was kept
    s.detector_file = j.at("detector_file").get<std::string>();
    s.run_setup_text = j.at("run_setup").get<std::string>();
    s.run_type = j.value("run_type", std::string());
    s.clb_run = j.value("clb_run", std::uint32_t{0});
    return s;
  } catch (const std::exception& e) {
    if (problem != nullptr) *problem = path.string() + ": " + e.what();
    return std::nullopt;
  }
}

}  // namespace shoredaq::firmware
