#pragma once
// Reading a file an operator names (the node's configuration, a detector file or a run setup given
// to `configure`). Such a path can be anything: /dev/zero, a FIFO nobody writes to, a 2 GiB log.
// Read whole and blindly, the first grows the daemon until the kernel kills it and the second wedges
// the thread that reads it. So: only regular files, at most `max_bytes`, opened without blocking,
// read within `timeout` (a stuck network file system ends in an error, not in a hung daemon).

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace shoredaq::firmware {

class InputFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The whole file as text. Throws InputFileError naming the path and the reason ("not a regular
// file (a FIFO)", "3 GiB is more than the 16 MiB allowed (node.max_input_file_mb)", ...);
// `limit_name` is the setting that raises the limit, quoted in that message.
std::string read_input_file(const std::filesystem::path& path, std::size_t max_bytes,
                            std::chrono::milliseconds timeout, const std::string& limit_name = {});

// The size limit in words ("16 MiB", "700 KiB", "12 B").
std::string byte_size_text(std::uint64_t bytes);

}  // namespace shoredaq::firmware
