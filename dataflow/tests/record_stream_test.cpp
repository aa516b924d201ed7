// Record stream: message reader (errors for one message only), writer, .dqd file streaming.
#include "shoredaq/formats/record_stream.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <numeric>

#include "shoredaq/formats/clb_datagram.hpp"

namespace sd = shoredaq::dataflow;
namespace fs = std::filesystem;

namespace {

std::vector<std::uint8_t> bytes_of(std::initializer_list<int> v) {
  std::vector<std::uint8_t> out;
  for (int b : v) out.push_back(static_cast<std::uint8_t>(b));
  return out;
}

std::vector<std::uint8_t> datagram(std::uint32_t seq, std::size_t hits) {
  sd::ClbHeader h;
  h.dom_id = 808447186;
  h.udp_sequence = seq;
  std::vector<sd::Hit> v;
  for (std::size_t i = 0; i < hits; ++i) {
    v.push_back({static_cast<std::uint8_t>(i % 31), static_cast<std::uint32_t>(i * 1000 + seq), 26});
  }
  return sd::encode_optical_datagram(h, v);
}

class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / ("shoredaq-record-test-" + std::to_string(::getpid()))) {
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

}  // namespace

TEST(RecordStream, WriterFramesLittleEndianLengths) {
  sd::RecordWriter w;
  w.append(bytes_of({1, 2, 3}));
  w.append({});
  EXPECT_EQ(w.record_count(), 2u);
  EXPECT_EQ(w.bytes(), bytes_of({3, 0, 0, 0, 1, 2, 3, 0, 0, 0, 0}));

  const auto at = w.begin_record();
  w.buffer().insert(w.buffer().end(), 300, 0xab);
  w.end_record(at);
  EXPECT_EQ(w.record_count(), 3u);
  EXPECT_EQ(w.bytes()[at], 300 & 0xff);
  EXPECT_EQ(w.bytes()[at + 1], 1);

  const auto taken = w.take();
  EXPECT_EQ(taken.size(), 11u + 4 + 300);
  EXPECT_TRUE(w.empty());
  EXPECT_EQ(w.size(), 0u);
}

TEST(RecordStream, ReaderYieldsViewsIntoTheMessage) {
  sd::RecordWriter w;
  const auto a = datagram(0, 5), b = datagram(1, 0), c = datagram(2, 100);
  w.append(a);
  w.append(b);
  w.append(c);
  const auto& message = w.bytes();
  sd::RecordReader r(message);
  std::span<const std::uint8_t> d;
  ASSERT_TRUE(r.next(d));
  EXPECT_EQ(d.data(), message.data() + 4);
  EXPECT_TRUE(std::equal(d.begin(), d.end(), a.begin(), a.end()));
  ASSERT_TRUE(r.next(d));
  EXPECT_TRUE(std::equal(d.begin(), d.end(), b.begin(), b.end()));
  ASSERT_TRUE(r.next(d));
  EXPECT_TRUE(std::equal(d.begin(), d.end(), c.begin(), c.end()));
  EXPECT_FALSE(r.next(d));
  EXPECT_EQ(r.error(), sd::RecordError::None);
  EXPECT_EQ(r.records_read(), 3u);
  EXPECT_EQ(r.bytes_rejected(), 0u);
  EXPECT_EQ(r.offset(), message.size());
}

TEST(RecordStream, OverrunIsAnErrorForThisMessageOnly) {
  sd::RecordWriter w;
  w.append(datagram(0, 3));
  w.append(datagram(1, 3));
  auto message = w.take();
  const std::size_t good_bytes = message.size();
  // A third record that claims 1000 bytes but has 10.
  const auto bad = bytes_of({0xe8, 0x03, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
  message.insert(message.end(), bad.begin(), bad.end());

  std::size_t seen = 0;
  const auto result = sd::for_each_record(message, [&](std::span<const std::uint8_t> d) {
    EXPECT_TRUE(sd::parse_clb_datagram(d));
    ++seen;
  });
  EXPECT_FALSE(result);
  EXPECT_EQ(result.error, sd::RecordError::LengthOverrun);
  EXPECT_EQ(result.records, 2u);
  EXPECT_EQ(seen, 2u);
  EXPECT_EQ(result.bytes_rejected, bad.size());
  EXPECT_EQ(result.bytes_rejected + good_bytes, message.size());

  // The next message is read normally: the reader has no state across messages.
  const auto next_message = sd::RecordWriter().bytes();
  EXPECT_TRUE(sd::for_each_record(next_message, [](auto) {}));
}

TEST(RecordStream, TruncatedLengthWord) {
  for (std::size_t tail = 1; tail < 4; ++tail) {
    sd::RecordWriter w;
    w.append(bytes_of({9, 9}));
    auto message = w.take();
    message.insert(message.end(), tail, 0);
    const auto result = sd::for_each_record(message, [](auto) {});
    EXPECT_EQ(result.error, sd::RecordError::TruncatedLength);
    EXPECT_EQ(result.records, 1u);
    EXPECT_EQ(result.bytes_rejected, tail);
  }
  const auto huge = bytes_of({0xff, 0xff, 0xff, 0xff});
  const auto result = sd::for_each_record(huge, [](auto) {});
  EXPECT_EQ(result.error, sd::RecordError::LengthOverrun);
  EXPECT_EQ(result.bytes_rejected, 4u);
  EXPECT_TRUE(sd::for_each_record({}, [](auto) { FAIL(); }));
}

TEST(RecordStream, SampleDqdFileStreamsInSmallChunks) {
  const fs::path clb = fs::path(SHOREDAQ_TESTDATA_DIR) / "daq" / "clb.dqd";
  const auto all = sd::read_dqd_file(clb);
  ASSERT_EQ(all.size(), 3u);
  const std::size_t hits[] = {229, 141, 229};
  for (std::size_t i = 0; i < 3; ++i) {
    const auto r = sd::parse_clb_datagram(all[i], {.layout = sd::HeaderLayout::Legacy28});
    ASSERT_TRUE(r);
    EXPECT_EQ(r.datagram.hit_count(), hits[i]);
  }
  // A chunk much smaller than one record: the reader grows for the record, results unchanged.
  sd::DqdFileReader reader(clb, 64);
  std::span<const std::uint8_t> d;
  std::size_t i = 0;
  while (reader.next(d)) {
    ASSERT_LT(i, all.size());
    EXPECT_TRUE(std::equal(d.begin(), d.end(), all[i].begin(), all[i].end()));
    ++i;
  }
  EXPECT_EQ(i, 3u);
  EXPECT_EQ(reader.error(), sd::RecordError::None);
  EXPECT_EQ(reader.offset(), fs::file_size(clb));

  // The monitoring dump uses the same framing.
  const auto monit = sd::read_dqd_file(fs::path(SHOREDAQ_TESTDATA_DIR) / "daq" / "IO_MONIT.dat");
  ASSERT_EQ(monit.size(), 6u);
  for (const auto& m : monit) EXPECT_TRUE(sd::parse_monitoring_packet(m));
}

TEST(RecordStream, FileWriteReadRoundTripManyRecords) {
  TempDir dir;
  const fs::path file = dir.path() / "run.dqd";
  std::vector<std::vector<std::uint8_t>> written;
  {
    sd::DqdFileWriter writer(file, sd::DqdFileWriter::Mode::Truncate, 4096);
    for (std::uint32_t i = 0; i < 2000; ++i) {
      written.push_back(datagram(i, i % 250));
      writer.write(written.back());
    }
    sd::RecordWriter batch;
    for (std::uint32_t i = 0; i < 3; ++i) {
      written.push_back(datagram(5000 + i, 7));
      batch.append(written.back());
    }
    writer.write_records(batch.bytes(), batch.record_count());
    EXPECT_EQ(writer.records_written(), 2003u);
    writer.close();
    EXPECT_THROW(writer.write(written.front()), sd::RecordFileError);
  }
  std::uint64_t expected_size = 0;
  for (const auto& w : written) expected_size += 4 + w.size();
  EXPECT_EQ(fs::file_size(file), expected_size);

  for (const std::size_t chunk : {std::size_t{100}, std::size_t{4096}, std::size_t{1} << 20}) {
    sd::DqdFileReader reader(file, chunk);
    std::span<const std::uint8_t> d;
    std::size_t i = 0;
    while (reader.next(d)) {
      ASSERT_LT(i, written.size());
      ASSERT_TRUE(std::equal(d.begin(), d.end(), written[i].begin(), written[i].end())) << i;
      ++i;
    }
    EXPECT_EQ(reader.error(), sd::RecordError::None);
    EXPECT_EQ(i, written.size());
  }

  // Append mode adds to the end.
  {
    sd::DqdFileWriter writer(file, sd::DqdFileWriter::Mode::Append);
    writer.write(datagram(9999, 1));
  }
  EXPECT_EQ(sd::read_dqd_file(file).size(), written.size() + 1);
}

TEST(RecordStream, DamagedFileStopsWithError) {
  TempDir dir;
  const fs::path file = dir.path() / "cut.dqd";
  std::vector<std::vector<std::uint8_t>> records = {datagram(0, 10), datagram(1, 10)};
  sd::write_dqd_file(file, records);
  fs::resize_file(file, fs::file_size(file) - 5);
  {
    sd::DqdFileReader reader(file, 64);
    std::span<const std::uint8_t> d;
    EXPECT_TRUE(reader.next(d));
    EXPECT_FALSE(reader.next(d));
    EXPECT_EQ(reader.error(), sd::RecordError::LengthOverrun);
    EXPECT_EQ(reader.records_read(), 1u);
    EXPECT_EQ(reader.offset(), 4 + records[0].size());
  }
  EXPECT_THROW(sd::read_dqd_file(file), sd::RecordFileError);

  // A length above the maximum is refused without allocating it.
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    const char huge[] = {'\xff', '\xff', '\xff', '\x7f', 'x'};
    out.write(huge, sizeof huge);
  }
  sd::DqdFileReader reader(file);
  std::span<const std::uint8_t> d;
  EXPECT_FALSE(reader.next(d));
  EXPECT_EQ(reader.error(), sd::RecordError::RecordTooLarge);

  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write("\x01\x00", 2);
  }
  sd::DqdFileReader two_bytes(file);
  EXPECT_FALSE(two_bytes.next(d));
  EXPECT_EQ(two_bytes.error(), sd::RecordError::TruncatedLength);
}

TEST(RecordStream, MissingFileThrowsClearError) {
  const fs::path missing = fs::temp_directory_path() / "shoredaq-no-such-file.dqd";
  try {
    sd::DqdFileReader reader(missing);
    FAIL() << "expected RecordFileError";
  } catch (const sd::RecordFileError& e) {
    EXPECT_NE(std::string(e.what()).find(missing.string()), std::string::npos);
  }
  EXPECT_THROW(sd::DqdFileWriter(fs::path("/nonexistent-dir-shoredaq/x.dqd")), sd::RecordFileError);
  for (auto e : {sd::RecordError::None, sd::RecordError::TruncatedLength, sd::RecordError::LengthOverrun,
                 sd::RecordError::RecordTooLarge, sd::RecordError::ReadFailed}) {
    EXPECT_FALSE(sd::to_string(e).empty());
  }
}
