#include "record_codec.hpp"

#include <xxhash.h>

#include <algorithm>

namespace shoredaq::storage::detail {

std::uint64_t record_checksum(std::span<const std::uint8_t> key, std::span<const std::uint8_t> payload) noexcept {
  const XXH64_hash_t seed = XXH3_64bits(key.data(), key.size());
  return XXH3_64bits_withSeed(payload.data(), payload.size(), seed);
}

void put_checksum(std::span<const std::uint8_t> key, std::span<const std::uint8_t> payload, std::uint8_t* out) noexcept {
  const std::uint64_t sum = record_checksum(key, payload);
  for (std::size_t i = 0; i < kChecksumBytes; ++i) out[i] = static_cast<std::uint8_t>(sum >> (8 * i));
}

std::vector<std::uint8_t> seal_record(std::span<const std::uint8_t> key, std::span<const std::uint8_t> payload) {
  std::vector<std::uint8_t> value(payload.size() + kChecksumBytes);
  std::copy(payload.begin(), payload.end(), value.begin());
  put_checksum(key, payload, value.data() + payload.size());
  return value;
}

std::string_view to_string(RecordCheck check) noexcept {
  switch (check) {
    case RecordCheck::Ok: return "ok";
    case RecordCheck::TooShort: return "too short to hold a checksum";
    case RecordCheck::Mismatch: return "checksum mismatch";
  }
  return "unknown";
}

OpenedRecord open_record(std::span<const std::uint8_t> key, std::span<const std::uint8_t> value) noexcept {
  OpenedRecord opened;
  if (value.size() < kChecksumBytes) {
    opened.check = RecordCheck::TooShort;
    return opened;
  }
  const auto payload = value.first(value.size() - kChecksumBytes);
  // Byte by byte: an LMDB value has no alignment to speak of.
  std::uint64_t stored = 0;
  for (std::size_t i = kChecksumBytes; i-- > 0;) stored = (stored << 8) | value[payload.size() + i];
  if (stored != record_checksum(key, payload)) {
    opened.check = RecordCheck::Mismatch;
    return opened;
  }
  opened.check = RecordCheck::Ok;
  opened.payload = payload;
  return opened;
}

}  // namespace shoredaq::storage::detail
