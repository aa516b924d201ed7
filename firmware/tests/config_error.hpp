#pragma once
// For the configuration tests: the message parse_config() refuses a text with, "" when it accepts it.

#include <string>

#include "shoredaq/firmware/config.hpp"

namespace shoredaq::firmware::test_support {

inline std::string config_error_of(const std::string& text) {
  try {
    parse_config(text);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace shoredaq::firmware::test_support
