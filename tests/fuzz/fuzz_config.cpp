// Fuzz target: the node configuration parser. Any input either parses or throws ConfigError.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "shoredaq/firmware/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    (void)shoredaq::firmware::parse_config(text);
  } catch (const shoredaq::firmware::ConfigError&) {
  }
  try {
    (void)shoredaq::firmware::parse_trigger_setup(text);
  } catch (const shoredaq::firmware::ConfigError&) {
  }
  return 0;
}
