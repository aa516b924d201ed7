#include "shoredaq/storage/checksums.hpp"

#include <cmath>
#include <cstring>

namespace shoredaq::storage {

std::string to_hex(std::span<const std::uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const std::uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xf]);
  }
  return out;
}

// ---- Adler-32 ----

void Adler32::update(std::span<const std::uint8_t> bytes) noexcept {
  constexpr std::uint32_t kModulus = 65521;
  // 5552 is the most bytes after which b cannot yet overflow 32 bits, so the modulo is deferred.
  constexpr std::size_t kMaxRun = 5552;
  std::size_t i = 0;
  while (i < bytes.size()) {
    const std::size_t end = std::min(bytes.size(), i + kMaxRun);
    for (; i < end; ++i) {
      a_ += bytes[i];
      b_ += a_;
    }
    a_ %= kModulus;
    b_ %= kModulus;
  }
}

std::string Adler32::hex() const {
  const std::uint32_t v = value();
  const std::array<std::uint8_t, 4> be{static_cast<std::uint8_t>(v >> 24), static_cast<std::uint8_t>(v >> 16),
                                       static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v)};
  return to_hex(be);
}

// ---- MD5 (RFC 1321) ----

namespace {

struct Md5Tables {
  std::array<std::uint32_t, 64> k{};
  Md5Tables() {
    // K[i] = floor(|sin(i + 1)| * 2^32), as the RFC defines the table.
    for (int i = 0; i < 64; ++i) k[i] = static_cast<std::uint32_t>(std::floor(std::fabs(std::sin(i + 1.0)) * 4294967296.0));
  }
};
const Md5Tables& tables() {
  static const Md5Tables t;
  return t;
}

constexpr std::array<std::uint8_t, 64> kShift{7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                                              5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                                              4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                                              6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};

constexpr std::uint32_t rotl(std::uint32_t x, unsigned n) noexcept { return (x << n) | (x >> (32 - n)); }

}  // namespace

Md5::Md5() noexcept : state_{0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u} { (void)tables(); }

void Md5::block(const std::uint8_t* p) noexcept {
  std::array<std::uint32_t, 16> m{};
  for (int i = 0; i < 16; ++i) {
    m[i] = std::uint32_t{p[4 * i]} | (std::uint32_t{p[4 * i + 1]} << 8) | (std::uint32_t{p[4 * i + 2]} << 16) |
           (std::uint32_t{p[4 * i + 3]} << 24);
  }
  const auto& k = tables().k;
  std::uint32_t a = state_[0], b = state_[1], c = state_[2], d = state_[3];
  for (unsigned i = 0; i < 64; ++i) {
    std::uint32_t f = 0;
    unsigned g = 0;
    if (i < 16) {
      f = (b & c) | (~b & d);
      g = i;
    } else if (i < 32) {
      f = (d & b) | (~d & c);
      g = (5 * i + 1) % 16;
    } else if (i < 48) {
      f = b ^ c ^ d;
      g = (3 * i + 5) % 16;
    } else {
      f = c ^ (b | ~d);
      g = (7 * i) % 16;
    }
    f += a + k[i] + m[g];
    a = d;
    d = c;
    c = b;
    b += rotl(f, kShift[i]);
  }
  state_[0] += a;
  state_[1] += b;
  state_[2] += c;
  state_[3] += d;
}

void Md5::update(std::span<const std::uint8_t> bytes) noexcept {
  total_bytes_ += bytes.size();
  std::size_t i = 0;
  if (pending_bytes_ != 0) {
    const std::size_t take = std::min(bytes.size(), 64 - pending_bytes_);
    std::memcpy(pending_.data() + pending_bytes_, bytes.data(), take);
    pending_bytes_ += take;
    i = take;
    if (pending_bytes_ < 64) return;
    block(pending_.data());
    pending_bytes_ = 0;
  }
  for (; i + 64 <= bytes.size(); i += 64) block(bytes.data() + i);
  pending_bytes_ = bytes.size() - i;
  if (pending_bytes_ != 0) std::memcpy(pending_.data(), bytes.data() + i, pending_bytes_);
}

std::array<std::uint8_t, 16> Md5::digest() const noexcept {
  Md5 copy = *this;
  const std::uint64_t bits = total_bytes_ * 8;
  // Padding: 0x80, zeros up to 56 mod 64, then the bit length little-endian.
  std::array<std::uint8_t, 72> tail{};
  tail[0] = 0x80;
  const std::size_t pad = (copy.pending_bytes_ < 56 ? 56 : 120) - copy.pending_bytes_;
  for (int i = 0; i < 8; ++i) tail[pad + i] = static_cast<std::uint8_t>(bits >> (8 * i));
  copy.update(std::span<const std::uint8_t>(tail.data(), pad + 8));
  std::array<std::uint8_t, 16> out{};
  for (int w = 0; w < 4; ++w) {
    for (int i = 0; i < 4; ++i) out[4 * w + i] = static_cast<std::uint8_t>(copy.state_[w] >> (8 * i));
  }
  return out;
}

std::string Md5::hex() const { return to_hex(digest()); }

}  // namespace shoredaq::storage
