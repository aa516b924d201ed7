// CLB datagram parsing and encoding (DOMAIN.md section 2). Every read is bounds-checked against the
// caller's span once, up front; the hit payload is returned as a view, never copied.
#include "shoredaq/formats/clb_datagram.hpp"

#include <bit>
#include <cmath>
#include <cstring>

namespace shoredaq::dataflow {
namespace {

constexpr std::uint32_t fourcc(char a, char b, char c, char d) noexcept {
  return (std::uint32_t(std::uint8_t(a)) << 24) | (std::uint32_t(std::uint8_t(b)) << 16) |
         (std::uint32_t(std::uint8_t(c)) << 8) | std::uint32_t(std::uint8_t(d));
}
constexpr std::uint32_t kTagOptical = fourcc('T', 'T', 'D', 'C');
constexpr std::uint32_t kTagAcoustic = fourcc('T', 'A', 'E', 'S');
constexpr std::uint32_t kTagMonitoring = fourcc('T', 'M', 'C', 'H');

inline std::uint32_t load_be32(const std::uint8_t* p) noexcept {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}
inline std::uint16_t load_be16(const std::uint8_t* p) noexcept {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}
inline float load_be_float(const std::uint8_t* p) noexcept { return std::bit_cast<float>(load_be32(p)); }

inline void put_be32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  const std::uint8_t b[4] = {static_cast<std::uint8_t>(v >> 24), static_cast<std::uint8_t>(v >> 16),
                             static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v)};
  out.insert(out.end(), b, b + 4);
}
inline void put_be16(std::vector<std::uint8_t>& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v));
}
inline void put_be_float(std::vector<std::uint8_t>& out, float v) { put_be32(out, std::bit_cast<std::uint32_t>(v)); }

std::size_t header_bytes(HeaderLayout layout) noexcept {
  return layout == HeaderLayout::Legacy28 ? kLegacyClbHeaderBytes : kClbHeaderBytes;
}

bool decode_type(std::uint32_t tag, DataType& type) noexcept {
  switch (tag) {
    case kTagOptical: type = DataType::Optical; return true;
    case kTagAcoustic: type = DataType::Acoustic; return true;
    case kTagMonitoring: type = DataType::Monitoring; return true;
    default: return false;
  }
}

std::uint32_t type_tag(DataType type) noexcept {
  switch (type) {
    case DataType::Acoustic: return kTagAcoustic;
    case DataType::Monitoring: return kTagMonitoring;
    case DataType::Optical: break;
  }
  return kTagOptical;
}

// Decodes the header fields; the caller has checked the size.
ClbHeader decode_header(const std::uint8_t* p, HeaderLayout layout, DataType type) noexcept {
  ClbHeader h;
  h.data_type = type;
  h.run_number = load_be32(p + 4);
  h.udp_sequence = load_be32(p + 8);
  h.utc_seconds = load_be32(p + 12);
  h.ticks_16ns = load_be32(p + 16);
  h.dom_id = load_be32(p + 20);
  h.status1 = load_be32(p + 24);
  if (layout == HeaderLayout::Standard40) {
    h.status2 = load_be32(p + 28);
    h.status3 = load_be32(p + 32);
    h.status4 = load_be32(p + 36);
  }
  return h;
}

std::uint16_t scaled_u16(double value) noexcept {
  const double scaled = std::round(value * 100.0);
  if (!(scaled > 0)) return 0;  // negative or NaN
  if (scaled >= 65535.0) return 65535;
  return static_cast<std::uint16_t>(scaled);
}

}  // namespace

std::string_view to_string(DatagramError e) noexcept {
  switch (e) {
    case DatagramError::None: return "none";
    case DatagramError::TruncatedHeader: return "truncated header";
    case DatagramError::UnknownDataType: return "unknown data type";
    case DatagramError::PayloadNotMultipleOfHitSize: return "payload not a multiple of the 6-byte hit size";
    case DatagramError::ChannelOutOfRange: return "hit channel out of range (>= 31)";
    case DatagramError::BadMonitoringSize: return "monitoring packet of the wrong size";
  }
  return "unknown error";
}

DatagramParseResult parse_clb_datagram(std::span<const std::uint8_t> bytes, ParseOptions options) noexcept {
  DatagramParseResult result;
  const std::size_t header_size = header_bytes(options.layout);
  if (bytes.size() < 4) {
    result.error = DatagramError::TruncatedHeader;
    return result;
  }
  DataType type{};
  if (!decode_type(load_be32(bytes.data()), type)) {
    result.error = DatagramError::UnknownDataType;
    return result;
  }
  if (bytes.size() < header_size) {
    result.error = DatagramError::TruncatedHeader;
    return result;
  }
  result.datagram.header = decode_header(bytes.data(), options.layout, type);
  result.datagram.layout = options.layout;
  result.datagram.payload = bytes.subspan(header_size);
  const auto payload = result.datagram.payload;

  switch (type) {
    case DataType::Optical:
      if (payload.size() % kHitBytes != 0) {
        result.error = DatagramError::PayloadNotMultipleOfHitSize;
        return result;
      }
      if (options.check_channels) {
        for (std::size_t i = 0; i < payload.size(); i += kHitBytes) {
          if (payload[i] >= kPmtsPerDom) {
            result.error = DatagramError::ChannelOutOfRange;
            return result;
          }
        }
      }
      break;
    case DataType::Monitoring:
      if (payload.size() != kMonitoringPacketBytes - kClbHeaderBytes) {
        result.error = DatagramError::BadMonitoringSize;
        return result;
      }
      break;
    case DataType::Acoustic:
      break;  // opaque payload: the node does not process acoustic data
  }
  return result;
}

HeaderLayout detect_header_layout(std::span<const std::uint8_t> bytes) noexcept {
  if (bytes.size() < kClbHeaderBytes) return HeaderLayout::Legacy28;
  const std::uint32_t tag = load_be32(bytes.data());
  if (tag == kTagMonitoring) {
    return bytes.size() == kMonitoringPacketBytes ? HeaderLayout::Standard40 : HeaderLayout::Legacy28;
  }
  // In the 40-byte layout bytes 32..39 are the spare status words (0). In the legacy layout they
  // are the tail of the first hit and the head of the second: a non-zero time or ToT there.
  const bool spare_words_zero = load_be32(bytes.data() + 32) == 0 && load_be32(bytes.data() + 36) == 0;
  if (!spare_words_zero) return HeaderLayout::Legacy28;
  if (tag == kTagOptical && (bytes.size() - kClbHeaderBytes) % kHitBytes != 0) return HeaderLayout::Legacy28;
  return HeaderLayout::Standard40;
}

void encode_clb_header(const ClbHeader& header, HeaderLayout layout, std::vector<std::uint8_t>& out) {
  put_be32(out, type_tag(header.data_type));
  put_be32(out, header.run_number);
  put_be32(out, header.udp_sequence);
  put_be32(out, header.utc_seconds);
  put_be32(out, header.ticks_16ns);
  put_be32(out, header.dom_id);
  put_be32(out, header.status1);
  if (layout == HeaderLayout::Standard40) {
    put_be32(out, header.status2);
    put_be32(out, header.status3);
    put_be32(out, header.status4);
  }
}

std::vector<std::uint8_t> encode_optical_datagram(const ClbHeader& header, std::span<const Hit> hits,
                                                  HeaderLayout layout) {
  std::vector<std::uint8_t> out;
  out.reserve(header_bytes(layout) + hits.size() * kHitBytes);
  ClbHeader optical = header;
  optical.data_type = DataType::Optical;
  encode_clb_header(optical, layout, out);
  const std::size_t start = out.size();
  out.resize(start + hits.size() * kHitBytes);
  for (std::size_t i = 0; i < hits.size(); ++i) encode_hit(hits[i], out.data() + start + i * kHitBytes);
  return out;
}

MonitoringParseResult parse_monitoring_packet(std::span<const std::uint8_t> bytes) noexcept {
  MonitoringParseResult result;
  if (bytes.size() < 4) {
    result.error = DatagramError::TruncatedHeader;
    return result;
  }
  if (load_be32(bytes.data()) != kTagMonitoring) {
    result.error = DatagramError::UnknownDataType;
    return result;
  }
  if (bytes.size() != kMonitoringPacketBytes) {
    result.error = bytes.size() < kClbHeaderBytes ? DatagramError::TruncatedHeader
                                                  : DatagramError::BadMonitoringSize;
    return result;
  }
  const std::uint8_t* p = bytes.data();
  MonitoringPacket& m = result.packet;
  m.header = decode_header(p, HeaderLayout::Standard40, DataType::Monitoring);
  p += kClbHeaderBytes;
  for (auto& count : m.hit_counts) {
    count = load_be32(p);
    p += 4;
  }
  m.hrv_mask = load_be32(p); p += 4;
  m.flags = load_be32(p); p += 4;
  m.yaw = load_be_float(p); p += 4;
  m.pitch = load_be_float(p); p += 4;
  m.roll = load_be_float(p); p += 4;
  for (auto* group : {&m.accelerometer, &m.gyroscope, &m.compass}) {
    for (auto& v : *group) {
      v = load_be_float(p);
      p += 4;
    }
  }
  m.temperature_c = load_be16(p) / 100.0; p += 2;
  m.humidity_pct = load_be16(p) / 100.0; p += 2;
  m.tdc_full = load_be32(p); p += 4;
  m.aes_full = load_be32(p); p += 4;
  m.flush_count = load_be32(p); p += 4;
  m.slice_duration = load_be32(p); p += 4;
  m.fifo_size_1 = load_be16(p); p += 2;
  m.fifo_size_2 = load_be16(p);
  return result;
}

std::vector<std::uint8_t> encode_monitoring_packet(const MonitoringPacket& packet) {
  std::vector<std::uint8_t> out;
  out.reserve(kMonitoringPacketBytes);
  ClbHeader header = packet.header;
  header.data_type = DataType::Monitoring;
  encode_clb_header(header, HeaderLayout::Standard40, out);
  for (const auto count : packet.hit_counts) put_be32(out, count);
  put_be32(out, packet.hrv_mask);
  put_be32(out, packet.flags);
  put_be_float(out, packet.yaw);
  put_be_float(out, packet.pitch);
  put_be_float(out, packet.roll);
  for (const auto* group : {&packet.accelerometer, &packet.gyroscope, &packet.compass}) {
    for (const float v : *group) put_be_float(out, v);
  }
  put_be16(out, scaled_u16(packet.temperature_c));
  put_be16(out, scaled_u16(packet.humidity_pct));
  put_be32(out, packet.tdc_full);
  put_be32(out, packet.aes_full);
  put_be32(out, packet.flush_count);
  put_be32(out, packet.slice_duration);
  put_be16(out, packet.fifo_size_1);
  put_be16(out, packet.fifo_size_2);
  return out;
}

}  // namespace shoredaq::dataflow
