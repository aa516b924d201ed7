// FlatBuffers decoders (dataflow/fb_codec): any bytes give an error or a value, never a crash; a
// decoded value re-encodes and decodes to the same value.

#include <cstdint>
#include <cstdlib>
#include <span>

#include "shoredaq/formats/fb_codec.hpp"

namespace sd = shoredaq::dataflow;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> bytes(data, size);
  sd::FbLimits limits;
  limits.max_buffer_bytes = 1 << 20;
  (void)sd::identify_fb(bytes);
  if (auto e = sd::decode_event_fb(bytes, limits)) {
    const auto again = sd::decode_event_fb(sd::encode_event_fb(e.value.event, e.value.committed_unix_ns));
    if (!again || !(again.value.event == e.value.event) || again.value.committed_unix_ns != e.value.committed_unix_ns) std::abort();
  }
  if (auto t = sd::decode_timeslice_fb(bytes, limits)) {
    const auto again = sd::decode_timeslice_fb(sd::encode_timeslice_fb(t.value.timeslice, t.value.kind));
    if (!again || again.value.timeslice.hit_count() != t.value.timeslice.hit_count()) std::abort();
  }
  if (auto s = sd::decode_summary_slice_fb(bytes, limits)) {
    const auto again = sd::decode_summary_slice_fb(sd::encode_summary_slice_fb(s.value));
    if (!again || !(again.value == s.value)) std::abort();
  }
  if (auto r = sd::decode_run_record_fb(bytes, limits)) {
    const auto again = sd::decode_run_record_fb(sd::encode_run_record_fb(r.value));
    if (!again || !(again.value == r.value)) std::abort();
  }
  return 0;
}
