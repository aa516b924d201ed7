#pragma once
// Inside storage (not installed): the fixed head of shoredaq's own preamble-framed run-file objects
// (TMCH packets 3001, supernova alerts 3002): preamble, int16 version, the slice's 20-byte header.
// Each object's own fields follow the head; one writer and one checker for the head, so the two
// objects cannot drift apart.

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "shoredaq/formats/online_format.hpp"
#include "shoredaq/formats/timeslice.hpp"

namespace shoredaq::storage::detail {

inline constexpr std::size_t kOwnObjectHeadBytes =
    dataflow::kOnlinePreambleBytes + dataflow::kOnlineVersionBytes + dataflow::kOnlineHeaderBytes;

void put_le32(std::vector<std::uint8_t>& out, std::uint32_t v);
std::uint32_t get_le32(const std::uint8_t* p) noexcept;

// Appends the head of an object of `size` bytes (head included). Throws std::invalid_argument,
// naming `what`, for a size the int32 preamble cannot hold.
void encode_own_object_head(std::int32_t type, std::int16_t version, std::size_t size,
                            const dataflow::SliceHeader& header, std::string_view what, std::vector<std::uint8_t>& out);

struct OwnObjectHead {
  std::span<const std::uint8_t> object;  // the whole object, as long as its preamble says
  dataflow::SliceHeader header;
  const std::uint8_t* fields = nullptr;  // the first byte after the head
};

// Checks the preamble, the type, that the object holds at least `fixed_bytes` and the version, and
// reads the head; `bytes_used` is the preamble's length once known, as every online decoder gives it.
dataflow::OnlineError decode_own_object_head(std::span<const std::uint8_t> bytes, std::int32_t type,
                                             std::int16_t version, std::size_t fixed_bytes, std::size_t& bytes_used,
                                             OwnObjectHead& head) noexcept;

}  // namespace shoredaq::storage::detail
