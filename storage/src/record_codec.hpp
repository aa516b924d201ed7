#pragma once
// The stored form of every record (store schema 2):
//   value = [payload][checksum: 8 bytes, little-endian]
//   checksum = XXH3_64bits_withSeed(payload, seed = XXH3_64bits(key))
// XXH3-64 from libxxhash (Debian libxxhash-dev): it hashes at memory speed (well over 10 GB/s a
// core), so checksumming a commit costs microseconds next to its fsync, and 64 bits leave a random
// damage undetected with probability 2^-64. Seeding with the key's hash ties a value to its key:
// damaged key bytes, or a value under another key, fail the check too.
// A trailer rather than a header: the payload starts at the value's first byte, so it is exactly as
// aligned as before (values in LMDB overflow pages, above ~2 KB, start 8-byte aligned and readers
// get a zero-copy view; smaller values in leaf pages never were aligned and fb_codec copies them
// before decoding, as it always did). MDB_APPEND is unaffected: keys do not change.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace shoredaq::storage::detail {

inline constexpr std::size_t kChecksumBytes = 8;

std::uint64_t record_checksum(std::span<const std::uint8_t> key, std::span<const std::uint8_t> payload) noexcept;

// Writes the checksum of (key, payload) into out[0..8).
void put_checksum(std::span<const std::uint8_t> key, std::span<const std::uint8_t> payload, std::uint8_t* out) noexcept;

// payload + checksum, for small values built on the spot (run records, meta).
std::vector<std::uint8_t> seal_record(std::span<const std::uint8_t> key, std::span<const std::uint8_t> payload);

enum class RecordCheck : std::uint8_t { Ok, TooShort, Mismatch };
std::string_view to_string(RecordCheck check) noexcept;

struct OpenedRecord {
  RecordCheck check = RecordCheck::Mismatch;
  std::span<const std::uint8_t> payload;  // a view into the value (no copy); empty unless Ok
};
OpenedRecord open_record(std::span<const std::uint8_t> key, std::span<const std::uint8_t> value) noexcept;

inline std::span<const std::uint8_t> text_bytes(std::string_view text) noexcept {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

}  // namespace shoredaq::storage::detail
