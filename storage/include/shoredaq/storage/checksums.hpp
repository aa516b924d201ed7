#pragma once
// The checksums of the Tier-0 manifests: Adler-32 (what the collaboration's transfer tools compare)
// and MD5 (RFC 1321), both incremental so a run file is hashed as it is written.

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace shoredaq::storage {

class Adler32 {
 public:
  void update(std::span<const std::uint8_t> bytes) noexcept;
  void update(std::string_view text) noexcept {
    update(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
  }
  std::uint32_t value() const noexcept { return (b_ << 16) | a_; }
  std::string hex() const;  // 8 lower-case hex digits

 private:
  std::uint32_t a_ = 1, b_ = 0;
};

class Md5 {
 public:
  Md5() noexcept;
  void update(std::span<const std::uint8_t> bytes) noexcept;
  void update(std::string_view text) noexcept {
    update(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
  }
  // Finishes a copy, so the running state can still be updated afterwards.
  std::array<std::uint8_t, 16> digest() const noexcept;
  std::string hex() const;  // 32 lower-case hex digits

 private:
  void block(const std::uint8_t* p) noexcept;
  std::array<std::uint32_t, 4> state_;
  std::array<std::uint8_t, 64> pending_{};
  std::size_t pending_bytes_ = 0;
  std::uint64_t total_bytes_ = 0;
};

std::string to_hex(std::span<const std::uint8_t> bytes);

}  // namespace shoredaq::storage
