#include "shoredaq/storage/supernova_alert_record.hpp"

#include "own_online_object.hpp"

namespace shoredaq::storage {

void encode_online_supernova_alert(const dataflow::SliceHeader& header, std::string_view message,
                                   std::vector<std::uint8_t>& out) {
  detail::encode_own_object_head(kOnlineSupernovaAlertType, kOnlineSupernovaAlertVersion,
                                 kOnlineSupernovaAlertFixedBytes + message.size(), header, "supernova alert", out);
  detail::put_le32(out, static_cast<std::uint32_t>(message.size()));
  out.insert(out.end(), message.begin(), message.end());
}

dataflow::OnlineDecodeResult<OnlineSupernovaAlert> decode_online_supernova_alert(std::span<const std::uint8_t> bytes) noexcept {
  dataflow::OnlineDecodeResult<OnlineSupernovaAlert> result;
  detail::OwnObjectHead head;
  result.error =
      detail::decode_own_object_head(bytes, kOnlineSupernovaAlertType, kOnlineSupernovaAlertVersion, kOnlineSupernovaAlertFixedBytes, result.bytes_used, head);
  if (!result) return result;
  OnlineSupernovaAlert& a = result.value;
  a.header = head.header;
  const std::uint32_t count = detail::get_le32(head.fields);
  if (count != head.object.size() - kOnlineSupernovaAlertFixedBytes) {
    result.error = dataflow::OnlineError::LengthMismatch;
    return result;
  }
  const auto text = head.object.subspan(kOnlineSupernovaAlertFixedBytes);
  a.message = std::string_view(reinterpret_cast<const char*>(text.data()), text.size());
  return result;
}

}  // namespace shoredaq::storage
