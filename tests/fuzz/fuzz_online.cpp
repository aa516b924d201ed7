// Fuzz target: the online-format object reader and decoders. Invariants: objects lie inside the
// input; a decoded object re-encodes to exactly its bytes; bad input is an error value, no throw.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "shoredaq/formats/online_format.hpp"

namespace sd = shoredaq::dataflow;

namespace {
void require_same(const std::vector<std::uint8_t>& encoded, std::span<const std::uint8_t> object) {
  if (encoded.size() != object.size() || !std::equal(encoded.begin(), encoded.end(), object.begin())) std::abort();
}

void check_object(std::span<const std::uint8_t> bytes) {
  std::vector<std::uint8_t> out;
  if (const auto e = sd::decode_online_event(bytes); e) {
    sd::encode_online_event(e.value, out);
    require_same(out, bytes.first(e.bytes_used));
  }
  out.clear();
  if (const auto s = sd::decode_online_summary_slice(bytes); s) {
    sd::encode_online_summary_slice(s.value, out);
    require_same(out, bytes.first(s.bytes_used));
  }
  out.clear();
  if (const auto t = sd::decode_online_timeslice(bytes); t) {
    sd::encode_online_timeslice(t.value.slice, t.value.kind, out);
    require_same(out, bytes.first(t.bytes_used));
  }
  out.clear();
  if (const auto f = sd::decode_online_superframe(bytes); f) {
    sd::encode_online_superframe(f.value.header, f.value.frame, out);
    require_same(out, bytes.first(f.bytes_used));
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> input(data, size);
  sd::OnlineObjectReader reader(input);
  sd::OnlineObject object;
  std::size_t covered = 0;
  while (reader.next(object)) {
    if (object.bytes.data() != data + covered || object.bytes.size() < sd::kOnlinePreambleBytes) std::abort();
    covered += object.bytes.size();
    if (covered > size) std::abort();
    (void)sd::online_type_name(object.type);
    check_object(object.bytes);
  }
  if (reader.offset() + reader.bytes_rejected() != size) std::abort();
  check_object(input);  // the decoders on raw input too (no reader in front)
  return 0;
}
