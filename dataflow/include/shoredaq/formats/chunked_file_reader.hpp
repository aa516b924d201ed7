#pragma once
// A file read in large chunks through one buffer, for the length-prefixed formats (.dqd record
// files, online-format files): ask for `n` bytes at the read position, look at them in place,
// consume them. The buffer only grows when one object is bigger than a chunk.

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <span>
#include <vector>

namespace shoredaq::dataflow {

class ChunkedFileReader {
 public:
  enum class Fill : std::uint8_t { Ok, EndOfFile, ReadFailed };

  ChunkedFileReader() = default;
  ~ChunkedFileReader();
  ChunkedFileReader(const ChunkedFileReader&) = delete;
  ChunkedFileReader& operator=(const ChunkedFileReader&) = delete;

  // False (errno set by fopen) when the file cannot be opened; the caller words the error.
  bool open(const std::filesystem::path& path, std::size_t chunk_bytes);

  // Buffers at least `wanted` bytes from the read position: Ok, or EndOfFile when the file ends
  // first (what there is stays available), or ReadFailed on an I/O error.
  Fill ensure(std::size_t wanted);
  // The buffered bytes from the read position; valid until the next ensure().
  std::span<const std::uint8_t> buffered() const noexcept { return {buffer_.data() + begin_, end_ - begin_}; }
  void consume(std::size_t bytes) noexcept { begin_ += bytes; }

 private:
  std::FILE* file_ = nullptr;
  std::vector<std::uint8_t> buffer_;
  std::size_t begin_ = 0, end_ = 0;
  bool eof_ = false;
};

}  // namespace shoredaq::dataflow
