// Fuzz target: the .detx parser. Any input either parses or throws DetxError; whatever parses
// survives to_detx() -> parse() unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "shoredaq/formats/detector.hpp"

namespace sd = shoredaq::dataflow;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const auto detector = sd::Detector::parse(text);
    (void)detector.du_ids();
    (void)detector.pmt_count();
    const auto again = sd::Detector::parse(detector.to_detx());
    if (!(again == detector)) std::abort();
  } catch (const sd::DetxError& e) {
    if (e.line() == 0) std::abort();  // parse errors always name a line
  }
  return 0;
}
