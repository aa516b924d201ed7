#include "shoredaq/firmware/run_setup.hpp"

#include <chrono>
#include <cstdio>

#include "shoredaq/firmware/config.hpp"
#include "shoredaq/firmware/input_file.hpp"

namespace shoredaq::firmware {
namespace {
// Detector and run-setup files are read within this bound (a hung network file system).
constexpr std::chrono::milliseconds kInputFileReadTimeout{10'000};
}  // namespace

std::string text_hash_hex(std::string_view text) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

RunSetup load_run_setup(const RunSetupRequest& request, const filters::TriggerParameters& defaults,
                        std::size_t max_input_bytes) {
  RunSetup s;
  s.detector_file = request.detector_file;
  if (s.detector_file.empty())
    throw RunSetupError("no detector file: give one with configure --detx or set [node] detector_file");
  try {
    const std::string text = read_input_file(s.detector_file, max_input_bytes, kInputFileReadTimeout, "node.max_input_file_mb");
    s.detector_hash = text_hash_hex(text);
    s.detector = std::make_shared<const dataflow::Detector>(dataflow::Detector::parse(text));
  } catch (const InputFileError& e) {
    throw RunSetupError(e.what());
  } catch (const dataflow::DetxError& e) {
    throw RunSetupError(s.detector_file + ": line " + std::to_string(e.line()) + ": " + e.what());
  } catch (const std::exception& e) {
    throw RunSetupError(s.detector_file + ": " + e.what());
  }
  if (s.detector->optical_module_count() == 0) throw RunSetupError(s.detector_file + ": no optical modules");

  try {
    if (!request.run_setup_path.empty()) {
      s.parameters = load_trigger_setup(request.run_setup_path, max_input_bytes);
    } else if (!request.run_setup_text.empty()) {
      s.parameters = parse_trigger_setup(request.run_setup_text);
    } else {
      s.parameters = defaults;
    }
  } catch (const ConfigError& e) {
    throw RunSetupError("run setup: " + std::string(e.what()));
  }
  s.run_setup_text = filters::to_toml(s.parameters);
  s.run_setup_hash = text_hash_hex(s.run_setup_text);
  try {
    s.filter = std::make_shared<const filters::DataFilter>(*s.detector, s.parameters);
  } catch (const std::exception& e) {
    throw RunSetupError("run setup: " + std::string(e.what()));
  }
  return s;
}

}  // namespace shoredaq::firmware
