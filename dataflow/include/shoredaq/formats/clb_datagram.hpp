#pragma once
// CLB UDP datagrams as a DOM sends them (DOMAIN.md section 2). All header fields are big-endian.
// Parsing never reads past the given buffer; a datagram view points into the caller's bytes.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace shoredaq::dataflow {

inline constexpr std::size_t kClbHeaderBytes = 40;        // current firmware
inline constexpr std::size_t kLegacyClbHeaderBytes = 28;  // older firmware: one status word
inline constexpr std::size_t kHitBytes = 6;               // channel, BE uint32 time ns, ToT
inline constexpr unsigned kPmtsPerDom = 31;
inline constexpr std::uint32_t kTickNs = 16;
inline constexpr std::uint32_t kTicksPerSlice = 6'250'000;  // 100 ms
inline constexpr std::uint32_t kSliceDurationNs = 100'000'000;
inline constexpr std::size_t kMonitoringPacketBytes = 244;  // TMCH, 40-byte header included

enum class HeaderLayout : std::uint8_t { Standard40, Legacy28 };
enum class DataType : std::uint8_t { Optical, Acoustic, Monitoring };  // TTDC, TAES, TMCH

// Status word bits.
inline constexpr std::uint32_t kStatus1WhiteRabbitOk = 1u << 31;
inline constexpr std::uint32_t kStatus2Trailer = 1u << 31;
inline constexpr std::uint32_t kChannelMask31 = 0x7fff'ffffu;

struct ClbHeader {
  DataType data_type = DataType::Optical;
  std::uint32_t run_number = 0;
  std::uint32_t udp_sequence = 0;
  std::uint32_t utc_seconds = 0;
  std::uint32_t ticks_16ns = 0;  // slice start, a multiple of kTicksPerSlice
  std::uint32_t dom_id = 0;
  std::uint32_t status1 = 0;     // bit 31 WR time valid; bits 0-30 HRV per channel
  std::uint32_t status2 = 0;     // bits 0-30 FIFO almost full; bit 31 trailer (40-byte layout only)
  std::uint32_t status3 = 0;
  std::uint32_t status4 = 0;

  bool white_rabbit_ok() const noexcept { return (status1 & kStatus1WhiteRabbitOk) != 0; }
  std::uint32_t hrv_mask() const noexcept { return status1 & kChannelMask31; }
  std::uint32_t fifo_mask() const noexcept { return status2 & kChannelMask31; }
  bool is_trailer() const noexcept { return (status2 & kStatus2Trailer) != 0; }
  // Slice start as ns since the Unix epoch.
  std::uint64_t slice_start_ns() const noexcept {
    return std::uint64_t{utc_seconds} * 1'000'000'000ull + std::uint64_t{ticks_16ns} * kTickNs;
  }
};

struct Hit {
  std::uint8_t channel = 0;
  std::uint32_t time_ns = 0;  // since the slice start
  std::uint8_t tot_ns = 0;
  friend bool operator==(const Hit&, const Hit&) = default;
};

// A 6-byte hit's time (ns since the slice start, big-endian in bytes 1-4): the filters read it
// alone, with the channel, on their hot paths.
inline std::uint32_t decode_hit_time(const std::uint8_t* p) noexcept {
  return (std::uint32_t{p[1]} << 24) | (std::uint32_t{p[2]} << 16) | (std::uint32_t{p[3]} << 8) | std::uint32_t{p[4]};
}
inline Hit decode_hit(const std::uint8_t* p) noexcept { return Hit{p[0], decode_hit_time(p), p[5]}; }
inline void encode_hit(const Hit& h, std::uint8_t* out) noexcept {
  out[0] = h.channel;
  out[1] = static_cast<std::uint8_t>(h.time_ns >> 24);
  out[2] = static_cast<std::uint8_t>(h.time_ns >> 16);
  out[3] = static_cast<std::uint8_t>(h.time_ns >> 8);
  out[4] = static_cast<std::uint8_t>(h.time_ns);
  out[5] = h.tot_ns;
}

// A parsed datagram; `payload` points into the caller's buffer (hits for TTDC).
struct ClbDatagram {
  ClbHeader header;
  HeaderLayout layout = HeaderLayout::Standard40;
  std::span<const std::uint8_t> payload;

  std::size_t hit_count() const noexcept { return payload.size() / kHitBytes; }
  Hit hit(std::size_t i) const noexcept { return decode_hit(payload.data() + i * kHitBytes); }
};

enum class DatagramError : std::uint8_t {
  None,
  TruncatedHeader,             // fewer bytes than the header layout
  UnknownDataType,             // not TTDC / TAES / TMCH
  PayloadNotMultipleOfHitSize, // TTDC payload not a whole number of 6-byte hits
  ChannelOutOfRange,           // a TTDC hit with channel >= 31 (only when checking channels)
  BadMonitoringSize,           // TMCH packet of the wrong size
};
std::string_view to_string(DatagramError e) noexcept;

struct ParseOptions {
  HeaderLayout layout = HeaderLayout::Standard40;
  // Reject a TTDC datagram holding a hit with channel >= 31. The frame checks (filters/) count
  // such hits as EPMT instead, so the ingest path leaves this off.
  bool check_channels = false;
};

struct DatagramParseResult {
  DatagramError error = DatagramError::None;
  ClbDatagram datagram;
  explicit operator bool() const noexcept { return error == DatagramError::None; }
};

DatagramParseResult parse_clb_datagram(std::span<const std::uint8_t> bytes, ParseOptions options = {}) noexcept;

// Guess the header layout of a stream from one TTDC/TMCH datagram: the 40-byte layout's spare
// status words are 0 and its payload length fits; used when a stream's layout is set to "auto".
HeaderLayout detect_header_layout(std::span<const std::uint8_t> bytes) noexcept;

// Writes a header (big-endian) in the given layout; used by du-sim and tests.
void encode_clb_header(const ClbHeader& header, HeaderLayout layout, std::vector<std::uint8_t>& out);
// A whole TTDC datagram: header + hits.
std::vector<std::uint8_t> encode_optical_datagram(const ClbHeader& header, std::span<const Hit> hits,
                                                  HeaderLayout layout = HeaderLayout::Standard40);

// TMCH monitoring packet (DOMAIN.md section 2), decoded.
struct MonitoringPacket {
  ClbHeader header;
  std::array<std::uint32_t, kPmtsPerDom> hit_counts{};  // hits per PMT in the slice
  std::uint32_t hrv_mask = 0;
  std::uint32_t flags = 0;  // bit 0 AHRS valid, bits 1-3 structure version
  float yaw = 0, pitch = 0, roll = 0;
  std::array<float, 3> accelerometer{}, gyroscope{}, compass{};
  double temperature_c = 0;   // stored x100
  double humidity_pct = 0;    // stored x100
  std::uint32_t tdc_full = 0, aes_full = 0, flush_count = 0, slice_duration = 0;
  std::uint16_t fifo_size_1 = 0, fifo_size_2 = 0;
};
struct MonitoringParseResult {
  DatagramError error = DatagramError::None;
  MonitoringPacket packet;
  explicit operator bool() const noexcept { return error == DatagramError::None; }
};
MonitoringParseResult parse_monitoring_packet(std::span<const std::uint8_t> bytes) noexcept;
std::vector<std::uint8_t> encode_monitoring_packet(const MonitoringPacket& packet);

}  // namespace shoredaq::dataflow
