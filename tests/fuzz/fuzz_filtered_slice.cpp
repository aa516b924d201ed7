// The filter process -> writer process buffer (firmware/filtered_slice_fb.hpp): any bytes give an
// error or a value, never a crash; a decoded value re-encodes and decodes to the same value.

#include <cstdint>
#include <cstdlib>
#include <span>

#include "shoredaq/firmware/filtered_slice_fb.hpp"

namespace sd = shoredaq::dataflow;
namespace sf = shoredaq::firmware;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  sd::FbLimits limits;
  limits.max_buffer_bytes = 1 << 20;
  auto decoded = sf::decode_filtered_slice_fb(std::span<const std::uint8_t>(data, size), limits);
  if (!decoded) return 0;
  const sf::FilteredSlice& a = decoded.value;
  const auto again = sf::decode_filtered_slice_fb(sf::encode_filtered_slice_fb(a));
  if (!again) std::abort();
  const sf::FilteredSlice& b = again.value;
  if (!(a.info.header == b.info.header) || a.info.sequence != b.info.sequence || a.processed_unix_ns != b.processed_unix_ns)
    std::abort();
  if (!(a.result.events == b.result.events) || !(a.result.summary == b.result.summary) ||
      !(a.result.counters == b.result.counters) || a.result.supernova != b.result.supernova ||
      a.result.error_defects != b.result.error_defects || a.result.prescaled.size() != b.result.prescaled.size() ||
      a.monitoring.size() != b.monitoring.size())
    std::abort();
  return 0;
}
