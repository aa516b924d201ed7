#include "own_online_object.hpp"

#include <limits>
#include <stdexcept>
#include <string>

namespace shoredaq::storage::detail {

void put_le32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int shift = 0; shift < 32; shift += 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

std::uint32_t get_le32(const std::uint8_t* p) noexcept {
  return std::uint32_t{p[0]} | (std::uint32_t{p[1]} << 8) | (std::uint32_t{p[2]} << 16) | (std::uint32_t{p[3]} << 24);
}

void encode_own_object_head(std::int32_t type, std::int16_t version, std::size_t size,
                            const dataflow::SliceHeader& header, std::string_view what, std::vector<std::uint8_t>& out) {
  if (size > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
    throw std::invalid_argument(std::string(what) + " too large for an online object");
  }
  out.reserve(out.size() + size);
  put_le32(out, static_cast<std::uint32_t>(size));
  put_le32(out, static_cast<std::uint32_t>(type));
  out.push_back(static_cast<std::uint8_t>(version & 0xff));
  out.push_back(static_cast<std::uint8_t>((version >> 8) & 0xff));
  dataflow::encode_online_header(header, out);
}

dataflow::OnlineError decode_own_object_head(std::span<const std::uint8_t> bytes, std::int32_t type,
                                             std::int16_t version, std::size_t fixed_bytes, std::size_t& bytes_used,
                                             OwnObjectHead& head) noexcept {
  const auto preamble = dataflow::decode_online_preamble(bytes);
  if (!preamble) return preamble.error;
  bytes_used = preamble.bytes_used;
  if (preamble.value.type != type) return dataflow::OnlineError::WrongType;
  head.object = bytes.first(preamble.bytes_used);
  if (head.object.size() < fixed_bytes) return dataflow::OnlineError::Truncated;
  const std::uint8_t* p = head.object.data() + dataflow::kOnlinePreambleBytes;
  if (static_cast<std::int16_t>(p[0] | (p[1] << 8)) != version) return dataflow::OnlineError::UnsupportedVersion;
  p += dataflow::kOnlineVersionBytes;
  head.header.detector_id = static_cast<std::int32_t>(get_le32(p));
  head.header.run = get_le32(p + 4);
  head.header.frame_index = get_le32(p + 8);
  head.header.utc_seconds = get_le32(p + 12);
  head.header.ticks_16ns = get_le32(p + 16);
  head.fields = p + dataflow::kOnlineHeaderBytes;
  return dataflow::OnlineError::None;
}

}  // namespace shoredaq::storage::detail
