#include "bad_time_fault.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace shoredaq::drivers {

namespace {
// The slice time fields sit at the same offsets in the 40- and the 28-byte header.
constexpr std::size_t kSecondsOffset = 12;
constexpr std::size_t kTicksOffset = 16;

std::uint32_t load_be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}
void store_be32(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 24);
  p[1] = static_cast<std::uint8_t>(v >> 16);
  p[2] = static_cast<std::uint8_t>(v >> 8);
  p[3] = static_cast<std::uint8_t>(v);
}
std::int64_t to_slices(double seconds) {
  return std::llround(seconds * 1e9 / dataflow::kSliceDurationNs);
}
}  // namespace

void inject_bad_slice_times(const FaultConfig& faults, std::uint32_t frame, std::vector<SimDatagram>& list,
                            SliceCounters& counters) {
  if (!faults.bad_time_dom || frame < faults.bad_time_at_slice) return;
  const std::uint64_t k = frame - faults.bad_time_at_slice;
  if (k >= faults.bad_time_count) return;
  const auto original = std::find_if(list.begin(), list.end(), [&](const SimDatagram& dg) {
    return dg.dom_id == *faults.bad_time_dom && dg.bytes.size() >= dataflow::kLegacyClbHeaderBytes &&
           std::memcmp(dg.bytes.data(), "TTDC", 4) == 0;
  });
  if (original == list.end()) return;
  SimDatagram bad = *original;
  bad.fault = DatagramFault::BadTime;
  const std::uint64_t slice_ns = std::uint64_t{load_be32(bad.bytes.data() + kSecondsOffset)} * 1'000'000'000ull +
                                 std::uint64_t{load_be32(bad.bytes.data() + kTicksOffset)} * dataflow::kTickNs;
  const std::int64_t shift_slices = to_slices(faults.bad_time_offset_s) + static_cast<std::int64_t>(k) * to_slices(faults.bad_time_step_s);
  const std::int64_t shifted = static_cast<std::int64_t>(slice_ns) + shift_slices * std::int64_t{dataflow::kSliceDurationNs};
  const std::uint64_t bad_ns = shifted > 0 ? static_cast<std::uint64_t>(shifted) : 0;
  store_be32(bad.bytes.data() + kSecondsOffset, static_cast<std::uint32_t>(bad_ns / 1'000'000'000ull));
  store_be32(bad.bytes.data() + kTicksOffset, static_cast<std::uint32_t>((bad_ns % 1'000'000'000ull) / dataflow::kTickNs));
  list.insert(list.begin(), std::move(bad));
  ++counters.bad_time;
}

}  // namespace shoredaq::drivers
