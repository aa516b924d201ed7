#include "shoredaq/formats/chunked_file_reader.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <numeric>

using shoredaq::dataflow::ChunkedFileReader;
namespace fs = std::filesystem;

namespace {

fs::path write_counting_file(std::size_t bytes) {
  const fs::path path = fs::temp_directory_path() / ("shoredaq-chunked-" + std::to_string(::getpid()) + ".bin");
  std::vector<char> data(bytes);
  for (std::size_t i = 0; i < bytes; ++i) data[i] = static_cast<char>(i % 251);
  std::ofstream(path, std::ios::binary).write(data.data(), static_cast<std::streamsize>(data.size()));
  return path;
}

}  // namespace

TEST(ChunkedFileReader, ReadsAcrossChunksGrowsForBigObjectsAndKeepsThePartialTail) {
  const fs::path path = write_counting_file(1000);
  ChunkedFileReader reader;
  ASSERT_TRUE(reader.open(path, 64));
  std::size_t position = 0;
  for (std::size_t want : {10u, 60u, 7u, 300u, 64u, 500u}) {  // 300 and 500 exceed the chunk
    ASSERT_EQ(reader.ensure(want), ChunkedFileReader::Fill::Ok) << position;
    const auto bytes = reader.buffered();
    ASSERT_GE(bytes.size(), want);
    for (std::size_t i = 0; i < want; ++i) ASSERT_EQ(bytes[i], (position + i) % 251) << position + i;
    reader.consume(want);
    position += want;
  }
  EXPECT_EQ(position, 941u);
  EXPECT_EQ(reader.ensure(100), ChunkedFileReader::Fill::EndOfFile);
  ASSERT_EQ(reader.buffered().size(), 59u);  // what there is stays readable
  EXPECT_EQ(reader.buffered()[0], 941 % 251);
  reader.consume(59);
  EXPECT_EQ(reader.ensure(1), ChunkedFileReader::Fill::EndOfFile);
  EXPECT_TRUE(reader.buffered().empty());
  fs::remove(path);
}

TEST(ChunkedFileReader, MissingFileIsReportedNotThrown) {
  ChunkedFileReader reader;
  EXPECT_FALSE(reader.open("/nonexistent/shoredaq/file.dqd", 1024));
  EXPECT_EQ(reader.ensure(1), ChunkedFileReader::Fill::ReadFailed);
}
