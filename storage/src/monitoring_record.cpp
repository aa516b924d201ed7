#include "shoredaq/storage/monitoring_record.hpp"

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

std::size_t online_monitoring_size(const dataflow::RawMonitoring& packet) noexcept {
  return kOnlineMonitoringFixedBytes + packet.datagram.size();
}

void encode_online_monitoring(const dataflow::SliceHeader& header, const dataflow::RawMonitoring& packet,
                              std::vector<std::uint8_t>& out) {
  const std::size_t size = online_monitoring_size(packet);
  if (size > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
    throw std::invalid_argument("monitoring packet too large for an online object");
  }
  out.reserve(out.size() + size);
  put_le32(out, static_cast<std::uint32_t>(size));
  put_le32(out, static_cast<std::uint32_t>(kOnlineMonitoringType));
  out.push_back(static_cast<std::uint8_t>(kOnlineMonitoringVersion & 0xff));
  out.push_back(static_cast<std::uint8_t>((kOnlineMonitoringVersion >> 8) & 0xff));
  dataflow::encode_online_header(header, out);
  put_le32(out, packet.dom_id);
  put_le32(out, static_cast<std::uint32_t>(packet.datagram.size()));
  out.insert(out.end(), packet.datagram.begin(), packet.datagram.end());
}

dataflow::OnlineDecodeResult<OnlineMonitoring> decode_online_monitoring(std::span<const std::uint8_t> bytes) noexcept {
  dataflow::OnlineDecodeResult<OnlineMonitoring> result;
  const auto preamble = dataflow::decode_online_preamble(bytes);
  if (!preamble) {
    result.error = preamble.error;
    return result;
  }
  result.bytes_used = preamble.bytes_used;
  if (preamble.value.type != kOnlineMonitoringType) {
    result.error = dataflow::OnlineError::WrongType;
    return result;
  }
  const std::span<const std::uint8_t> object = bytes.first(preamble.bytes_used);
  if (object.size() < kOnlineMonitoringFixedBytes) {
    result.error = dataflow::OnlineError::Truncated;
    return result;
  }
  const std::uint8_t* p = object.data() + dataflow::kOnlinePreambleBytes;
  const auto version = static_cast<std::int16_t>(p[0] | (p[1] << 8));
  if (version != kOnlineMonitoringVersion) {
    result.error = dataflow::OnlineError::UnsupportedVersion;
    return result;
  }
  p += dataflow::kOnlineVersionBytes;
  OnlineMonitoring& m = result.value;
  m.header.detector_id = static_cast<std::int32_t>(get_le32(p));
  m.header.run = get_le32(p + 4);
  m.header.frame_index = get_le32(p + 8);
  m.header.utc_seconds = get_le32(p + 12);
  m.header.ticks_16ns = get_le32(p + 16);
  p += dataflow::kOnlineHeaderBytes;
  m.dom_id = get_le32(p);
  const std::uint32_t count = get_le32(p + 4);
  if (count != object.size() - kOnlineMonitoringFixedBytes) {
    result.error = dataflow::OnlineError::LengthMismatch;
    return result;
  }
  m.datagram = object.subspan(kOnlineMonitoringFixedBytes);
  return result;
}

}  // namespace shoredaq::storage
