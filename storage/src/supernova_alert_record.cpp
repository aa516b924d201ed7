#include "shoredaq/storage/supernova_alert_record.hpp"

#include <limits>
#include <stdexcept>

namespace shoredaq::storage {
namespace {

void put_le32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int shift = 0; shift < 32; shift += 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

std::uint32_t get_le32(const std::uint8_t* p) noexcept {
  return std::uint32_t{p[0]} | (std::uint32_t{p[1]} << 8) | (std::uint32_t{p[2]} << 16) | (std::uint32_t{p[3]} << 24);
}

}  // namespace

void encode_online_supernova_alert(const dataflow::SliceHeader& header, std::string_view message,
                                   std::vector<std::uint8_t>& out) {
  const std::size_t size = kOnlineSupernovaAlertFixedBytes + message.size();
  if (size > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
    throw std::invalid_argument("supernova alert too large for an online object");
  }
  out.reserve(out.size() + size);
  put_le32(out, static_cast<std::uint32_t>(size));
  put_le32(out, static_cast<std::uint32_t>(kOnlineSupernovaAlertType));
  out.push_back(static_cast<std::uint8_t>(kOnlineSupernovaAlertVersion & 0xff));
  out.push_back(static_cast<std::uint8_t>((kOnlineSupernovaAlertVersion >> 8) & 0xff));
  dataflow::encode_online_header(header, out);
  put_le32(out, static_cast<std::uint32_t>(message.size()));
  out.insert(out.end(), message.begin(), message.end());
}

dataflow::OnlineDecodeResult<OnlineSupernovaAlert> decode_online_supernova_alert(std::span<const std::uint8_t> bytes) noexcept {
  dataflow::OnlineDecodeResult<OnlineSupernovaAlert> result;
  const auto preamble = dataflow::decode_online_preamble(bytes);
  if (!preamble) {
    result.error = preamble.error;
    return result;
  }
  result.bytes_used = preamble.bytes_used;
  if (preamble.value.type != kOnlineSupernovaAlertType) {
    result.error = dataflow::OnlineError::WrongType;
    return result;
  }
  const std::span<const std::uint8_t> object = bytes.first(preamble.bytes_used);
  if (object.size() < kOnlineSupernovaAlertFixedBytes) {
    result.error = dataflow::OnlineError::Truncated;
    return result;
  }
  const std::uint8_t* p = object.data() + dataflow::kOnlinePreambleBytes;
  const auto version = static_cast<std::int16_t>(p[0] | (p[1] << 8));
  if (version != kOnlineSupernovaAlertVersion) {
    result.error = dataflow::OnlineError::UnsupportedVersion;
    return result;
  }
  p += dataflow::kOnlineVersionBytes;
  OnlineSupernovaAlert& a = result.value;
  a.header.detector_id = static_cast<std::int32_t>(get_le32(p));
  a.header.run = get_le32(p + 4);
  a.header.frame_index = get_le32(p + 8);
  a.header.utc_seconds = get_le32(p + 12);
  a.header.ticks_16ns = get_le32(p + 16);
  p += dataflow::kOnlineHeaderBytes;
  const std::uint32_t count = get_le32(p);
  if (count != object.size() - kOnlineSupernovaAlertFixedBytes) {
    result.error = dataflow::OnlineError::LengthMismatch;
    return result;
  }
  const auto text = object.subspan(kOnlineSupernovaAlertFixedBytes);
  a.message = std::string_view(reinterpret_cast<const char*>(text.data()), text.size());
  return result;
}

}  // namespace shoredaq::storage
