// Fuzz target: the CLB datagram parser (both header layouts) and the TMCH monitoring decoder.
// Invariants: never read past the input; a parsed payload lies inside the input; whatever parses
// re-encodes to the same bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "shoredaq/formats/clb_datagram.hpp"

namespace sd = shoredaq::dataflow;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> bytes(data, size);
  (void)sd::detect_header_layout(bytes);
  for (const auto layout : {sd::HeaderLayout::Standard40, sd::HeaderLayout::Legacy28}) {
    for (const bool check_channels : {false, true}) {
      const auto r = sd::parse_clb_datagram(bytes, {.layout = layout, .check_channels = check_channels});
      (void)sd::to_string(r.error);
      if (!r) continue;
      const auto& payload = r.datagram.payload;
      if (payload.data() < data || payload.data() + payload.size() != data + size) std::abort();
      if (r.datagram.header.data_type != sd::DataType::Optical) continue;
      std::vector<sd::Hit> hits;
      hits.reserve(r.datagram.hit_count());
      for (std::size_t i = 0; i < r.datagram.hit_count(); ++i) {
        hits.push_back(r.datagram.hit(i));
        if (check_channels && hits.back().channel >= sd::kPmtsPerDom) std::abort();
      }
      const auto again = sd::encode_optical_datagram(r.datagram.header, hits, layout);
      if (again.size() != size || !std::equal(again.begin(), again.end(), data)) std::abort();
    }
  }
  const auto m = sd::parse_monitoring_packet(bytes);
  if (m) {
    const auto again = sd::encode_monitoring_packet(m.packet);
    if (again.size() != size || !std::equal(again.begin(), again.end(), data)) std::abort();
  }
  return 0;
}
