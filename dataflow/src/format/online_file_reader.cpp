// Walking a buffer or a file of the collaboration's online objects by their preambles (the
// objects themselves are decoded in online_format.cpp).
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include "shoredaq/formats/online_format.hpp"

namespace shoredaq::dataflow {

bool OnlineObjectReader::next(OnlineObject& object) noexcept {
  if (error_ != OnlineError::None || offset_ >= bytes_.size()) return false;
  const auto preamble = decode_online_preamble(bytes_.subspan(offset_));
  if (!preamble) {
    error_ = preamble.error;
    return false;
  }
  object.type = preamble.value.type;
  object.bytes = bytes_.subspan(offset_, preamble.bytes_used);
  offset_ += preamble.bytes_used;
  ++objects_;
  return true;
}

OnlineFileReader::OnlineFileReader(const std::filesystem::path& path, std::size_t max_object_bytes)
    : max_object_bytes_(max_object_bytes) {
  if (!file_.open(path, std::size_t{1} << 20)) {
    throw std::runtime_error("cannot open online-format file '" + path.string() + "': " + std::strerror(errno));
  }
}

OnlineFileReader::~OnlineFileReader() = default;

bool OnlineFileReader::fill(std::size_t wanted) {
  switch (file_.ensure(wanted)) {
    case ChunkedFileReader::Fill::Ok:
      return true;
    case ChunkedFileReader::Fill::ReadFailed:
      read_failed_ = true;
      error_ = OnlineError::Truncated;
      return false;
    case ChunkedFileReader::Fill::EndOfFile:
      break;
  }
  return false;
}

bool OnlineFileReader::next(OnlineObject& object) {
  if (error_ != OnlineError::None) return false;
  if (!fill(kOnlinePreambleBytes)) {
    if (error_ == OnlineError::None && !file_.buffered().empty()) error_ = OnlineError::Truncated;
    return false;
  }
  const auto preamble = decode_online_preamble(file_.buffered());
  if (preamble.error == OnlineError::BadLength) {
    error_ = preamble.error;
    return false;
  }
  const std::size_t length = static_cast<std::size_t>(preamble.value.length);
  if (length > max_object_bytes_) {
    error_ = OnlineError::BadLength;
    return false;
  }
  if (!fill(length)) {
    if (error_ == OnlineError::None) error_ = OnlineError::Truncated;
    return false;
  }
  object.type = preamble.value.type;
  object.bytes = file_.buffered().first(length);
  file_.consume(length);
  offset_ += length;
  ++objects_;
  return true;
}

}  // namespace shoredaq::dataflow
