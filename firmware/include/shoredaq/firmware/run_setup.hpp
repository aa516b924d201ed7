#pragma once
// What `configure` validated and `start` uses, and `shoredaq replay` too: the detector model, the
// trigger parameters (typed, read once) and the filter built from them, with the texts and hashes
// the run record keeps (provenance). One loader for the daemon and the replay, so both refuse the
// same setups with the same words.

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>

#include "shoredaq/formats/detector.hpp"
#include "shoredaq/filters/data_filter.hpp"
#include "shoredaq/filters/trigger_parameters.hpp"

namespace shoredaq::firmware {

class RunSetupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct RunSetupRequest {
  std::string detector_file;   // required
  std::string run_setup_path;  // a TOML file with [trigger]; or
  std::string run_setup_text;  // the same as text; neither = `defaults`
};

struct RunSetup {
  std::shared_ptr<const dataflow::Detector> detector;
  std::string detector_file;
  std::string detector_hash;  // of the file's bytes (text_hash_hex)
  filters::TriggerParameters parameters;
  std::string run_setup_text;  // every key in effect (filters::to_toml): what the run record keeps
  std::string run_setup_hash;
  std::shared_ptr<const filters::DataFilter> filter;  // built once: a setup it cannot use is refused here
};

// Reads and validates; operator-named files are read bounded (regular files, at most
// `max_input_bytes`). Throws RunSetupError naming the file and the line or the key.
RunSetup load_run_setup(const RunSetupRequest& request, const filters::TriggerParameters& defaults,
                        std::size_t max_input_bytes);

// FNV-1a 64 of a text, as 16 hex digits (run setup and detector file hashes in the run record).
std::string text_hash_hex(std::string_view text);

}  // namespace shoredaq::firmware
