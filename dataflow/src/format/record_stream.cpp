// Length-prefixed record framing for ZeroMQ messages and .dqd files (DESIGN.md section 3).
#include "shoredaq/formats/record_stream.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace shoredaq::dataflow {
namespace {

inline std::uint32_t load_le32(const std::uint8_t* p) noexcept {
  return std::uint32_t{p[0]} | (std::uint32_t{p[1]} << 8) | (std::uint32_t{p[2]} << 16) | (std::uint32_t{p[3]} << 24);
}
inline void store_le32(std::uint8_t* p, std::uint32_t v) noexcept {
  p[0] = static_cast<std::uint8_t>(v);
  p[1] = static_cast<std::uint8_t>(v >> 8);
  p[2] = static_cast<std::uint8_t>(v >> 16);
  p[3] = static_cast<std::uint8_t>(v >> 24);
}

std::uint32_t checked_length(std::size_t n) {
  if (n > 0xffff'ffffu) throw std::length_error("record longer than 4 GiB");
  return static_cast<std::uint32_t>(n);
}

std::string io_error(const char* what, const std::filesystem::path& path) {
  return std::string(what) + " '" + path.string() + "': " + std::strerror(errno);
}

}  // namespace

std::string_view to_string(RecordError e) noexcept {
  switch (e) {
    case RecordError::None: return "none";
    case RecordError::TruncatedLength: return "truncated record length";
    case RecordError::LengthOverrun: return "record length overruns the message";
    case RecordError::RecordTooLarge: return "record length above the maximum";
    case RecordError::ReadFailed: return "read failed";
  }
  return "unknown error";
}

// ---------------------------------------------------------------------------------------------
bool RecordReader::next(std::span<const std::uint8_t>& datagram) noexcept {
  if (error_ != RecordError::None) return false;
  const std::size_t left = message_.size() - offset_;
  if (left == 0) return false;
  if (left < kRecordLengthBytes) {
    error_ = RecordError::TruncatedLength;
    rejected_ = left;
    return false;
  }
  const std::uint32_t length = load_le32(message_.data() + offset_);
  if (length > left - kRecordLengthBytes) {
    error_ = RecordError::LengthOverrun;
    rejected_ = left;
    return false;
  }
  datagram = message_.subspan(offset_ + kRecordLengthBytes, length);
  offset_ += kRecordLengthBytes + length;
  ++records_;
  return true;
}

// ---------------------------------------------------------------------------------------------
void append_record(std::vector<std::uint8_t>& out, std::span<const std::uint8_t> datagram) {
  const std::uint32_t length = checked_length(datagram.size());
  const std::size_t at = out.size();
  out.resize(at + kRecordLengthBytes + datagram.size());
  store_le32(out.data() + at, length);
  if (!datagram.empty()) std::memcpy(out.data() + at + kRecordLengthBytes, datagram.data(), datagram.size());
}

void RecordWriter::append(std::span<const std::uint8_t> datagram) {
  append_record(buffer_, datagram);
  ++records_;
}

std::size_t RecordWriter::begin_record() {
  const std::size_t at = buffer_.size();
  buffer_.resize(at + kRecordLengthBytes);
  return at;
}

void RecordWriter::end_record(std::size_t record_start) {
  if (record_start + kRecordLengthBytes > buffer_.size()) throw std::logic_error("end_record without begin_record");
  store_le32(buffer_.data() + record_start, checked_length(buffer_.size() - record_start - kRecordLengthBytes));
  ++records_;
}

std::vector<std::uint8_t> RecordWriter::take() noexcept {
  std::vector<std::uint8_t> out;
  out.swap(buffer_);
  records_ = 0;
  return out;
}

// ---------------------------------------------------------------------------------------------
DqdFileReader::DqdFileReader(const std::filesystem::path& path, std::size_t chunk_bytes,
                             std::uint32_t max_record_bytes)
    : max_record_bytes_(max_record_bytes) {
  if (!file_.open(path, chunk_bytes)) throw RecordFileError(io_error("cannot open record file", path));
}

DqdFileReader::~DqdFileReader() = default;

bool DqdFileReader::fill(std::size_t wanted) {
  switch (file_.ensure(wanted)) {
    case ChunkedFileReader::Fill::Ok:
      return true;
    case ChunkedFileReader::Fill::ReadFailed:
      error_ = RecordError::ReadFailed;
      return false;
    case ChunkedFileReader::Fill::EndOfFile:
      break;
  }
  return false;
}

bool DqdFileReader::next(std::span<const std::uint8_t>& datagram) {
  if (error_ != RecordError::None) return false;
  if (!fill(kRecordLengthBytes)) {
    if (error_ == RecordError::None && !file_.buffered().empty()) error_ = RecordError::TruncatedLength;
    return false;
  }
  const std::uint32_t length = load_le32(file_.buffered().data());
  if (length > max_record_bytes_) {
    error_ = RecordError::RecordTooLarge;
    return false;
  }
  if (!fill(kRecordLengthBytes + std::size_t{length})) {
    if (error_ == RecordError::None) error_ = RecordError::LengthOverrun;
    return false;
  }
  datagram = file_.buffered().subspan(kRecordLengthBytes, length);
  file_.consume(kRecordLengthBytes + length);
  file_offset_ += kRecordLengthBytes + length;
  ++records_;
  return true;
}

// ---------------------------------------------------------------------------------------------
DqdFileWriter::DqdFileWriter(const std::filesystem::path& path, Mode mode, std::size_t buffer_bytes)
    : path_(path), pending_(buffer_bytes), buffer_bytes_(buffer_bytes) {
  file_ = std::fopen(path.c_str(), mode == Mode::Append ? "ab" : "wb");
  if (file_ == nullptr) throw RecordFileError(io_error("cannot open record file", path));
}

DqdFileWriter::~DqdFileWriter() {
  try {
    close();
  } catch (const RecordFileError&) {
  }
}

void DqdFileWriter::write(std::span<const std::uint8_t> datagram) {
  if (file_ == nullptr) throw RecordFileError("record file '" + path_.string() + "' is closed");
  pending_.append(datagram);
  ++records_;
  bytes_ += kRecordLengthBytes + datagram.size();
  if (pending_.size() >= buffer_bytes_) flush();
}

void DqdFileWriter::write_records(std::span<const std::uint8_t> records, std::size_t record_count) {
  if (file_ == nullptr) throw RecordFileError("record file '" + path_.string() + "' is closed");
  flush();
  if (!records.empty() && std::fwrite(records.data(), 1, records.size(), file_) != records.size()) {
    throw RecordFileError(io_error("cannot write record file", path_));
  }
  records_ += record_count;
  bytes_ += records.size();
}

void DqdFileWriter::flush() {
  if (file_ == nullptr) return;
  const auto& bytes = pending_.bytes();
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size()) {
    throw RecordFileError(io_error("cannot write record file", path_));
  }
  pending_.clear();
  if (std::fflush(file_) != 0) throw RecordFileError(io_error("cannot flush record file", path_));
}

void DqdFileWriter::close() {
  if (file_ == nullptr) return;
  std::FILE* f = file_;
  try {
    flush();
  } catch (...) {
    std::fclose(f);
    file_ = nullptr;
    throw;
  }
  file_ = nullptr;
  if (std::fclose(f) != 0) throw RecordFileError(io_error("cannot close record file", path_));
}

// ---------------------------------------------------------------------------------------------
std::vector<std::vector<std::uint8_t>> read_dqd_file(const std::filesystem::path& path) {
  DqdFileReader reader(path);
  std::vector<std::vector<std::uint8_t>> out;
  std::span<const std::uint8_t> datagram;
  while (reader.next(datagram)) out.emplace_back(datagram.begin(), datagram.end());
  if (reader.error() != RecordError::None) {
    throw RecordFileError("record file '" + path.string() + "': " + std::string(to_string(reader.error())) +
                          " at byte " + std::to_string(reader.offset()));
  }
  return out;
}

void write_dqd_file(const std::filesystem::path& path, std::span<const std::vector<std::uint8_t>> datagrams) {
  DqdFileWriter writer(path);
  for (const auto& d : datagrams) writer.write(d);
  writer.close();
}

}  // namespace shoredaq::dataflow
