// CLB datagram parser/encoder: golden values from the public sample files (clb.dqd, IO_MONIT.dat)
// and the error cases.
#include "shoredaq/formats/clb_datagram.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

namespace sd = shoredaq::dataflow;

namespace {

std::vector<std::uint8_t> read_file(const std::string& name) {
  const std::filesystem::path path = std::filesystem::path(SHOREDAQ_TESTDATA_DIR) / "daq" / name;
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Splits `[u32 LE length][payload]...` by hand (independent of record_stream).
std::vector<std::vector<std::uint8_t>> split_records(const std::vector<std::uint8_t>& bytes) {
  std::vector<std::vector<std::uint8_t>> out;
  std::size_t pos = 0;
  while (pos + 4 <= bytes.size()) {
    const std::uint32_t n = bytes[pos] | (bytes[pos + 1] << 8) | (bytes[pos + 2] << 16) |
                            (std::uint32_t{bytes[pos + 3]} << 24);
    pos += 4;
    if (pos + n > bytes.size()) break;
    out.emplace_back(bytes.begin() + static_cast<std::ptrdiff_t>(pos),
                     bytes.begin() + static_cast<std::ptrdiff_t>(pos + n));
    pos += n;
  }
  EXPECT_EQ(pos, bytes.size());
  return out;
}

sd::ClbHeader sample_header() {
  sd::ClbHeader h;
  h.run_number = 6760;
  h.udp_sequence = 2;
  h.utc_seconds = 1574432105;
  h.ticks_16ns = 3 * sd::kTicksPerSlice;
  h.dom_id = 806451572;
  h.status1 = sd::kStatus1WhiteRabbitOk | 0x5;
  h.status2 = sd::kStatus2Trailer | 0x100;
  return h;
}

}  // namespace

TEST(ClbDatagram, LegacySampleDecodesToReadmeValues) {
  const auto records = split_records(read_file("clb.dqd"));
  ASSERT_EQ(records.size(), 3u);
  const std::size_t expected_hits[] = {229, 141, 229};
  for (std::size_t i = 0; i < records.size(); ++i) {
    const auto r = sd::parse_clb_datagram(records[i], {.layout = sd::HeaderLayout::Legacy28, .check_channels = true});
    ASSERT_TRUE(r) << i << ": " << sd::to_string(r.error);
    EXPECT_EQ(r.datagram.header.data_type, sd::DataType::Optical);
    EXPECT_EQ(r.datagram.header.dom_id, 817803008u);
    EXPECT_EQ(r.datagram.header.run_number, 0u);
    EXPECT_EQ(r.datagram.hit_count(), expected_hits[i]);
    EXPECT_EQ(r.datagram.layout, sd::HeaderLayout::Legacy28);
    // The payload is a view into the caller's bytes, not a copy.
    EXPECT_EQ(r.datagram.payload.data(), records[i].data() + sd::kLegacyClbHeaderBytes);
    EXPECT_EQ(sd::detect_header_layout(records[i]), sd::HeaderLayout::Legacy28);
  }
  const auto p0 = sd::parse_clb_datagram(records[0], {.layout = sd::HeaderLayout::Legacy28});
  ASSERT_TRUE(p0);
  const auto& h = p0.datagram.header;
  EXPECT_EQ(h.udp_sequence, 3u);
  EXPECT_EQ(h.utc_seconds, 26690u);
  EXPECT_EQ(h.ticks_16ns, 12'500'000u);
  EXPECT_EQ(h.status1, 0x80000000u);
  EXPECT_TRUE(h.white_rabbit_ok());
  EXPECT_EQ(h.hrv_mask(), 0u);
  EXPECT_EQ(h.slice_start_ns(), 26690ull * 1'000'000'000ull + 200'000'000ull);
  const sd::Hit third = p0.datagram.hit(2);
  EXPECT_EQ(third.channel, 15);
  EXPECT_EQ(third.time_ns, 66'541'067u);
  EXPECT_EQ(third.tot_ns, 28);

  // Re-encoding the header and hits gives back the original bytes.
  std::vector<sd::Hit> hits;
  for (std::size_t i = 0; i < p0.datagram.hit_count(); ++i) hits.push_back(p0.datagram.hit(i));
  EXPECT_EQ(sd::encode_optical_datagram(h, hits, sd::HeaderLayout::Legacy28), records[0]);
}

TEST(ClbDatagram, ParsingLegacyBytesAsStandardGivesDifferentHeader) {
  // The layout is a per-stream setting: the 28-byte sample parsed as 40-byte loses 12 bytes of hits.
  const auto records = split_records(read_file("clb.dqd"));
  const auto r = sd::parse_clb_datagram(records[0], {.layout = sd::HeaderLayout::Standard40});
  ASSERT_TRUE(r);
  EXPECT_EQ(r.datagram.hit_count(), 227u);
}

TEST(ClbDatagram, MonitoringSampleDecodesToReadmeValues) {
  const auto records = split_records(read_file("IO_MONIT.dat"));
  ASSERT_EQ(records.size(), 6u);
  std::uint32_t previous_ticks = 0;
  for (std::size_t i = 0; i < records.size(); ++i) {
    ASSERT_EQ(records[i].size(), sd::kMonitoringPacketBytes);
    const auto d = sd::parse_clb_datagram(records[i]);
    ASSERT_TRUE(d) << sd::to_string(d.error);
    EXPECT_EQ(d.datagram.header.data_type, sd::DataType::Monitoring);
    EXPECT_EQ(sd::detect_header_layout(records[i]), sd::HeaderLayout::Standard40);

    const auto m = sd::parse_monitoring_packet(records[i]);
    ASSERT_TRUE(m) << sd::to_string(m.error);
    EXPECT_EQ(m.packet.header.run_number, 86u);
    EXPECT_EQ(m.packet.header.dom_id, 806472270u);
    EXPECT_TRUE(m.packet.header.white_rabbit_ok());
    EXPECT_EQ(m.packet.header.ticks_16ns % sd::kTicksPerSlice, 0u);
    if (i > 0) {
      EXPECT_NE(m.packet.header.ticks_16ns, previous_ticks);
    }
    previous_ticks = m.packet.header.ticks_16ns;
    EXPECT_EQ(m.packet.slice_duration, 100'000u);  // the slice duration in microseconds
    // Re-encoding is byte-exact (temperature and humidity are stored x100 as integers).
    EXPECT_EQ(sd::encode_monitoring_packet(m.packet), records[i]);
  }
  const auto first = sd::parse_monitoring_packet(records[0]);
  EXPECT_DOUBLE_EQ(first.packet.temperature_c, 32.35);
  EXPECT_DOUBLE_EQ(first.packet.humidity_pct, 16.77);
  EXPECT_EQ(first.packet.header.utc_seconds, 541u);
  EXPECT_EQ(first.packet.header.ticks_16ns, 31'250'000u);
  EXPECT_EQ(first.packet.flags, 2u);
  EXPECT_NEAR(first.packet.yaw, 199.06, 0.01);
  EXPECT_NEAR(first.packet.compass[2], 0.143, 0.001);
}

TEST(ClbDatagram, StandardHeaderRoundTrip) {
  const sd::ClbHeader h = sample_header();
  const std::vector<sd::Hit> hits = {{0, 12, 26}, {30, 99'999'999, 255}, {7, 0x01020304, 1}};
  const auto bytes = sd::encode_optical_datagram(h, hits);
  ASSERT_EQ(bytes.size(), sd::kClbHeaderBytes + 3 * sd::kHitBytes);
  EXPECT_EQ(std::memcmp(bytes.data(), "TTDC", 4), 0);
  // Big-endian on the wire: DOM id 806451572 = 0x30116974.
  EXPECT_EQ(bytes[20], 0x30);
  EXPECT_EQ(bytes[23], 0x74);
  EXPECT_EQ(bytes[sd::kClbHeaderBytes + 12 + 1], 0x01);  // third hit's time MSB
  const auto r = sd::parse_clb_datagram(bytes, {.layout = sd::HeaderLayout::Standard40, .check_channels = true});
  ASSERT_TRUE(r);
  EXPECT_EQ(r.datagram.header.run_number, h.run_number);
  EXPECT_EQ(r.datagram.header.udp_sequence, h.udp_sequence);
  EXPECT_EQ(r.datagram.header.utc_seconds, h.utc_seconds);
  EXPECT_EQ(r.datagram.header.ticks_16ns, h.ticks_16ns);
  EXPECT_EQ(r.datagram.header.dom_id, h.dom_id);
  EXPECT_EQ(r.datagram.header.status1, h.status1);
  EXPECT_EQ(r.datagram.header.status2, h.status2);
  EXPECT_TRUE(r.datagram.header.is_trailer());
  EXPECT_EQ(r.datagram.header.fifo_mask(), 0x100u);
  EXPECT_EQ(r.datagram.header.hrv_mask(), 0x5u);
  ASSERT_EQ(r.datagram.hit_count(), 3u);
  for (std::size_t i = 0; i < hits.size(); ++i) EXPECT_EQ(r.datagram.hit(i), hits[i]);
  EXPECT_EQ(sd::detect_header_layout(bytes), sd::HeaderLayout::Standard40);
}

TEST(ClbDatagram, LegacyEncodingHasOneStatusWord) {
  const auto bytes = sd::encode_optical_datagram(sample_header(), std::vector<sd::Hit>{{3, 1000, 20}},
                                                 sd::HeaderLayout::Legacy28);
  ASSERT_EQ(bytes.size(), sd::kLegacyClbHeaderBytes + sd::kHitBytes);
  const auto r = sd::parse_clb_datagram(bytes, {.layout = sd::HeaderLayout::Legacy28});
  ASSERT_TRUE(r);
  EXPECT_EQ(r.datagram.header.status1, sample_header().status1);
  EXPECT_EQ(r.datagram.header.status2, 0u);
  EXPECT_EQ(r.datagram.hit(0), (sd::Hit{3, 1000, 20}));
}

TEST(ClbDatagram, EmptyOpticalDatagramIsValid) {
  const auto bytes = sd::encode_optical_datagram(sample_header(), {});
  const auto r = sd::parse_clb_datagram(bytes);
  ASSERT_TRUE(r);
  EXPECT_EQ(r.datagram.hit_count(), 0u);
}

TEST(ClbDatagram, Errors) {
  const auto good = sd::encode_optical_datagram(sample_header(), std::vector<sd::Hit>{{1, 2, 3}, {4, 5, 6}});
  // Every truncation inside the header is reported as such, never read past.
  for (std::size_t n = 0; n < sd::kClbHeaderBytes; ++n) {
    const std::vector<std::uint8_t> cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_EQ(sd::parse_clb_datagram(cut).error, sd::DatagramError::TruncatedHeader) << n;
  }
  for (std::size_t n = sd::kClbHeaderBytes + 1; n < good.size(); ++n) {
    if ((n - sd::kClbHeaderBytes) % sd::kHitBytes == 0) continue;
    const std::vector<std::uint8_t> cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_EQ(sd::parse_clb_datagram(cut).error, sd::DatagramError::PayloadNotMultipleOfHitSize) << n;
  }
  auto bad_type = good;
  bad_type[0] = 'X';
  EXPECT_EQ(sd::parse_clb_datagram(bad_type).error, sd::DatagramError::UnknownDataType);
  EXPECT_FALSE(sd::parse_clb_datagram(bad_type));

  auto bad_channel = good;
  bad_channel[sd::kClbHeaderBytes + sd::kHitBytes] = 31;
  EXPECT_TRUE(sd::parse_clb_datagram(bad_channel));  // channels unchecked by default
  EXPECT_EQ(sd::parse_clb_datagram(bad_channel, {.check_channels = true}).error, sd::DatagramError::ChannelOutOfRange);

  auto monitoring_short = std::vector<std::uint8_t>(good.begin(), good.begin() + sd::kClbHeaderBytes);
  std::memcpy(monitoring_short.data(), "TMCH", 4);
  EXPECT_EQ(sd::parse_clb_datagram(monitoring_short).error, sd::DatagramError::BadMonitoringSize);
  EXPECT_EQ(sd::parse_monitoring_packet(monitoring_short).error, sd::DatagramError::BadMonitoringSize);
  EXPECT_EQ(sd::parse_monitoring_packet(good).error, sd::DatagramError::UnknownDataType);
  EXPECT_EQ(sd::parse_monitoring_packet({}).error, sd::DatagramError::TruncatedHeader);

  for (auto e : {sd::DatagramError::None, sd::DatagramError::TruncatedHeader, sd::DatagramError::UnknownDataType,
                 sd::DatagramError::PayloadNotMultipleOfHitSize, sd::DatagramError::ChannelOutOfRange,
                 sd::DatagramError::BadMonitoringSize}) {
    EXPECT_FALSE(sd::to_string(e).empty());
  }
}

TEST(ClbDatagram, AcousticPayloadIsOpaque) {
  sd::ClbHeader h = sample_header();
  h.data_type = sd::DataType::Acoustic;
  std::vector<std::uint8_t> bytes;
  sd::encode_clb_header(h, sd::HeaderLayout::Standard40, bytes);
  bytes.insert(bytes.end(), {1, 2, 3, 4, 5});
  const auto r = sd::parse_clb_datagram(bytes);
  ASSERT_TRUE(r);
  EXPECT_EQ(r.datagram.header.data_type, sd::DataType::Acoustic);
  EXPECT_EQ(r.datagram.payload.size(), 5u);
}

TEST(ClbDatagram, MonitoringEncodeDecodeRoundTrip) {
  sd::MonitoringPacket m;
  m.header = sample_header();
  for (unsigned i = 0; i < sd::kPmtsPerDom; ++i) m.hit_counts[i] = 700 + i;
  m.hrv_mask = 0x4;
  m.flags = 3;
  m.yaw = 1.5f;
  m.pitch = -0.25f;
  m.roll = 3.0f;
  m.accelerometer = {0.1f, 0.2f, -9.8f};
  m.gyroscope = {1.f, 2.f, 3.f};
  m.compass = {-1.f, 0.5f, 0.f};
  m.temperature_c = 21.07;
  m.humidity_pct = 55.5;
  m.tdc_full = 1;
  m.aes_full = 2;
  m.flush_count = 3;
  m.slice_duration = 100'000;
  m.fifo_size_1 = 10;
  m.fifo_size_2 = 20;
  const auto bytes = sd::encode_monitoring_packet(m);
  ASSERT_EQ(bytes.size(), sd::kMonitoringPacketBytes);
  const auto r = sd::parse_monitoring_packet(bytes);
  ASSERT_TRUE(r);
  EXPECT_EQ(r.packet.header.data_type, sd::DataType::Monitoring);
  EXPECT_EQ(r.packet.hit_counts, m.hit_counts);
  EXPECT_EQ(r.packet.hrv_mask, 4u);
  EXPECT_EQ(r.packet.flags, 3u);
  EXPECT_EQ(r.packet.accelerometer, m.accelerometer);
  EXPECT_EQ(r.packet.compass, m.compass);
  EXPECT_FLOAT_EQ(r.packet.pitch, -0.25f);
  EXPECT_DOUBLE_EQ(r.packet.temperature_c, 21.07);
  EXPECT_DOUBLE_EQ(r.packet.humidity_pct, 55.5);
  EXPECT_EQ(r.packet.slice_duration, 100'000u);
  EXPECT_EQ(r.packet.fifo_size_2, 20);
}

TEST(ClbDatagram, DetectLayoutOfShortAndZeroHitDatagrams) {
  const auto legacy_empty = sd::encode_optical_datagram(sample_header(), {}, sd::HeaderLayout::Legacy28);
  EXPECT_EQ(sd::detect_header_layout(legacy_empty), sd::HeaderLayout::Legacy28);
  const auto standard_empty = sd::encode_optical_datagram(sample_header(), {}, sd::HeaderLayout::Standard40);
  EXPECT_EQ(sd::detect_header_layout(standard_empty), sd::HeaderLayout::Standard40);
  // A legacy datagram whose first two hits put non-zero bytes where the spare words would be.
  const auto legacy = sd::encode_optical_datagram(sample_header(), std::vector<sd::Hit>{{1, 500, 20}, {2, 900, 30}},
                                                  sd::HeaderLayout::Legacy28);
  EXPECT_EQ(sd::detect_header_layout(legacy), sd::HeaderLayout::Legacy28);
}
