#pragma once
// Inside storage (not installed): whole-buffer file I/O. read()/write() may move fewer bytes than
// asked or be interrupted by a signal; these go on until every byte has moved. They return false
// with errno set on failure: a write that moves nothing sets ENOSPC, a read at the end of the file
// sets ENODATA. (The spools' own write paths do more, a byte count per record, and stay their own.)

#include <cstddef>
#include <cstdint>

namespace shoredaq::storage::detail {

bool write_fully(int fd, const void* data, std::size_t bytes) noexcept;
bool pwrite_fully(int fd, const void* data, std::size_t bytes, std::uint64_t offset) noexcept;
bool pread_fully(int fd, void* data, std::size_t bytes, std::uint64_t offset) noexcept;

}  // namespace shoredaq::storage::detail
