#include "shoredaq/formats/chunked_file_reader.hpp"

#include <algorithm>
#include <cstring>

namespace shoredaq::dataflow {

ChunkedFileReader::~ChunkedFileReader() {
  if (file_ != nullptr) std::fclose(file_);
}

bool ChunkedFileReader::open(const std::filesystem::path& path, std::size_t chunk_bytes) {
  file_ = std::fopen(path.c_str(), "rb");
  if (file_ == nullptr) return false;
  buffer_.resize(std::max<std::size_t>(chunk_bytes, 64));
  return true;
}

ChunkedFileReader::Fill ChunkedFileReader::ensure(std::size_t wanted) {
  if (end_ - begin_ >= wanted) return Fill::Ok;
  if (file_ == nullptr) return Fill::ReadFailed;
  // The partial object moves to the front; the buffer grows only for an object beyond a chunk.
  if (begin_ > 0) {
    std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (buffer_.size() < wanted) buffer_.resize(wanted);
  while (end_ < wanted && !eof_) {
    const std::size_t got = std::fread(buffer_.data() + end_, 1, buffer_.size() - end_, file_);
    end_ += got;
    if (got == 0) {
      if (std::ferror(file_)) return Fill::ReadFailed;
      eof_ = true;
    }
  }
  return end_ >= wanted ? Fill::Ok : Fill::EndOfFile;
}

}  // namespace shoredaq::dataflow
