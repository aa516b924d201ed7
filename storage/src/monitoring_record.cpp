#include "shoredaq/storage/monitoring_record.hpp"

#include "own_online_object.hpp"

namespace shoredaq::storage {

std::size_t online_monitoring_size(const dataflow::RawMonitoring& packet) noexcept {
  return kOnlineMonitoringFixedBytes + packet.datagram.size();
}

void encode_online_monitoring(const dataflow::SliceHeader& header, const dataflow::RawMonitoring& packet,
                              std::vector<std::uint8_t>& out) {
  detail::encode_own_object_head(kOnlineMonitoringType, kOnlineMonitoringVersion, online_monitoring_size(packet),
                                 header, "monitoring packet", out);
  detail::put_le32(out, packet.dom_id);
  detail::put_le32(out, static_cast<std::uint32_t>(packet.datagram.size()));
  out.insert(out.end(), packet.datagram.begin(), packet.datagram.end());
}

dataflow::OnlineDecodeResult<OnlineMonitoring> decode_online_monitoring(std::span<const std::uint8_t> bytes) noexcept {
  dataflow::OnlineDecodeResult<OnlineMonitoring> result;
  detail::OwnObjectHead head;
  result.error =
      detail::decode_own_object_head(bytes, kOnlineMonitoringType, kOnlineMonitoringVersion, kOnlineMonitoringFixedBytes, result.bytes_used, head);
  if (!result) return result;
  OnlineMonitoring& m = result.value;
  m.header = head.header;
  m.dom_id = detail::get_le32(head.fields);
  const std::uint32_t count = detail::get_le32(head.fields + 4);
  if (count != head.object.size() - kOnlineMonitoringFixedBytes) {
    result.error = dataflow::OnlineError::LengthMismatch;
    return result;
  }
  m.datagram = head.object.subspan(kOnlineMonitoringFixedBytes);
  return result;
}

}  // namespace shoredaq::storage
