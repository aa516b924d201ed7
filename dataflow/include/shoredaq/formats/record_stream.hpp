#pragma once
// The DU stream record format (DESIGN.md section 3): `[uint32 little-endian length][CLB datagram]`
// repeated. One ZeroMQ message holds one or more records; a .dqd dump file is the same records
// back to back. Readers hand out spans into the message / read buffer, never copies.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "shoredaq/formats/chunked_file_reader.hpp"

namespace shoredaq::dataflow {

inline constexpr std::size_t kRecordLengthBytes = 4;
// Largest record a file reader accepts: far above any UDP datagram (64 KiB), small enough that a
// corrupt length cannot make the reader allocate gigabytes.
inline constexpr std::uint32_t kMaxRecordBytes = 1u << 20;

enum class RecordError : std::uint8_t {
  None,
  TruncatedLength,  // 1-3 bytes left: not even a whole length word
  LengthOverrun,    // the length runs past the end of the message / file
  RecordTooLarge,   // the length exceeds the reader's maximum (file reader)
  ReadFailed,       // I/O error (file reader)
};
std::string_view to_string(RecordError e) noexcept;

// Walks the records of one message. A bad length ends the walk with an error for this message only:
// the records before it were valid and were already returned.
class RecordReader {
 public:
  explicit RecordReader(std::span<const std::uint8_t> message) noexcept : message_(message) {}

  // The next datagram (a view into the message); false at the end or on an error.
  bool next(std::span<const std::uint8_t>& datagram) noexcept;

  RecordError error() const noexcept { return error_; }
  std::size_t records_read() const noexcept { return records_; }
  // Bytes of the message not returned as datagrams because of the error (0 when none).
  std::size_t bytes_rejected() const noexcept { return rejected_; }
  std::size_t offset() const noexcept { return offset_; }  // of the next record in the message

 private:
  std::span<const std::uint8_t> message_;
  std::size_t offset_ = 0;
  std::size_t records_ = 0;
  std::size_t rejected_ = 0;
  RecordError error_ = RecordError::None;
};

struct RecordScanResult {
  std::size_t records = 0;
  std::size_t bytes_rejected = 0;
  RecordError error = RecordError::None;
  explicit operator bool() const noexcept { return error == RecordError::None; }
};

// Calls fn(std::span<const std::uint8_t>) for each datagram of the message.
template <typename Fn>
RecordScanResult for_each_record(std::span<const std::uint8_t> message, Fn&& fn) {
  RecordReader reader(message);
  std::span<const std::uint8_t> datagram;
  while (reader.next(datagram)) fn(datagram);
  return {reader.records_read(), reader.bytes_rejected(), reader.error()};
}

// Appends records to a buffer (one ZeroMQ message, or a chunk of a file).
class RecordWriter {
 public:
  RecordWriter() = default;
  explicit RecordWriter(std::size_t reserve_bytes) { buffer_.reserve(reserve_bytes); }

  void append(std::span<const std::uint8_t> datagram);

  // Encode in place: begin_record() writes a placeholder length and returns its position; the caller
  // appends the datagram to buffer(); end_record() fills in the length.
  std::size_t begin_record();
  void end_record(std::size_t record_start);

  std::vector<std::uint8_t>& buffer() noexcept { return buffer_; }
  const std::vector<std::uint8_t>& bytes() const noexcept { return buffer_; }
  std::size_t size() const noexcept { return buffer_.size(); }
  std::size_t record_count() const noexcept { return records_; }
  bool empty() const noexcept { return records_ == 0; }
  void clear() noexcept {
    buffer_.clear();
    records_ = 0;
  }
  // Hands the buffer over (e.g. to a zmq::message_t) and starts a new one.
  std::vector<std::uint8_t> take() noexcept;

 private:
  std::vector<std::uint8_t> buffer_;
  std::size_t records_ = 0;
};

void append_record(std::vector<std::uint8_t>& out, std::span<const std::uint8_t> datagram);

class RecordFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Streams the records of a .dqd file through a bounded buffer, so files of any size are read with
// constant memory. Throws RecordFileError if the file cannot be opened.
class DqdFileReader {
 public:
  explicit DqdFileReader(const std::filesystem::path& path, std::size_t chunk_bytes = 1u << 20,
                         std::uint32_t max_record_bytes = kMaxRecordBytes);
  ~DqdFileReader();
  DqdFileReader(const DqdFileReader&) = delete;
  DqdFileReader& operator=(const DqdFileReader&) = delete;

  // The next datagram, valid until the following call; false at the end of the file or on an error.
  bool next(std::span<const std::uint8_t>& datagram);

  RecordError error() const noexcept { return error_; }
  std::uint64_t records_read() const noexcept { return records_; }
  std::uint64_t offset() const noexcept { return file_offset_; }  // of the next record in the file

 private:
  bool fill(std::size_t wanted);  // ensures `wanted` bytes are buffered (false at EOF or error)

  ChunkedFileReader file_;
  std::uint32_t max_record_bytes_;
  std::uint64_t file_offset_ = 0;
  std::uint64_t records_ = 0;
  RecordError error_ = RecordError::None;
};

// Writes records to a .dqd file through a buffer. Throws RecordFileError on an I/O error.
class DqdFileWriter {
 public:
  enum class Mode { Truncate, Append };
  explicit DqdFileWriter(const std::filesystem::path& path, Mode mode = Mode::Truncate,
                         std::size_t buffer_bytes = 1u << 20);
  ~DqdFileWriter();  // flushes; errors on this path are swallowed (call close() to see them)
  DqdFileWriter(const DqdFileWriter&) = delete;
  DqdFileWriter& operator=(const DqdFileWriter&) = delete;

  void write(std::span<const std::uint8_t> datagram);
  // Writes an already-framed buffer of records (e.g. a whole ZeroMQ message) unchanged.
  void write_records(std::span<const std::uint8_t> records, std::size_t record_count);
  void flush();
  void close();

  std::uint64_t records_written() const noexcept { return records_; }
  std::uint64_t bytes_written() const noexcept { return bytes_; }

 private:
  std::FILE* file_ = nullptr;
  std::filesystem::path path_;
  RecordWriter pending_;
  std::size_t buffer_bytes_;
  std::uint64_t records_ = 0;
  std::uint64_t bytes_ = 0;
};

// Whole-file helpers for tests and small files.
std::vector<std::vector<std::uint8_t>> read_dqd_file(const std::filesystem::path& path);
void write_dqd_file(const std::filesystem::path& path, std::span<const std::vector<std::uint8_t>> datagrams);

}  // namespace shoredaq::dataflow
