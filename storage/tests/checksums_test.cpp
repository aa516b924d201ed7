#include "shoredaq/storage/checksums.hpp"

#include <gtest/gtest.h>

#include <vector>

using shoredaq::storage::Adler32;
using shoredaq::storage::Md5;

namespace {
std::string md5_of(std::string_view text) {
  Md5 m;
  m.update(text);
  return m.hex();
}
std::uint32_t adler_of(std::string_view text) {
  Adler32 a;
  a.update(text);
  return a.value();
}
}  // namespace

TEST(Adler32, KnownVectors) {
  EXPECT_EQ(adler_of(""), 1u);
  EXPECT_EQ(adler_of("Wikipedia"), 0x11E60398u);
  EXPECT_EQ(adler_of("a"), 0x00620062u);
  EXPECT_EQ(adler_of("abc"), 0x024d0127u);
  Adler32 w;
  w.update("Wikipedia");
  EXPECT_EQ(w.hex(), "11e60398");
}

TEST(Adler32, LongInputAndChunkingAgree) {
  // 1 MB of 0xff exercises the deferred modulo (the worst case for overflow).
  const std::vector<std::uint8_t> ones(1'000'000, 0xff);
  Adler32 whole;
  whole.update(ones);
  Adler32 pieces;
  for (std::size_t i = 0; i < ones.size(); i += 7777) {
    pieces.update(std::span<const std::uint8_t>(ones).subspan(i, std::min<std::size_t>(7777, ones.size() - i)));
  }
  EXPECT_EQ(whole.value(), pieces.value());
  // Reference by the definition, byte by byte with the modulo every step.
  std::uint32_t a = 1, b = 0;
  for (const auto byte : ones) {
    a = (a + byte) % 65521;
    b = (b + a) % 65521;
  }
  EXPECT_EQ(whole.value(), (b << 16) | a);
}

TEST(Md5, Rfc1321TestSuite) {
  EXPECT_EQ(md5_of(""), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(md5_of("a"), "0cc175b9c0f1b6a831c399e269772661");
  EXPECT_EQ(md5_of("abc"), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(md5_of("message digest"), "f96b697d7cb7938d525a2f31aaf161d0");
  EXPECT_EQ(md5_of("abcdefghijklmnopqrstuvwxyz"), "c3fcd3d76192e4007dfb496cca67e13b");
  EXPECT_EQ(md5_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"),
            "d174ab98d277d9f5a5611c2c9f419d9f");
  EXPECT_EQ(md5_of("12345678901234567890123456789012345678901234567890123456789012345678901234567890"),
            "57edf4a22be3c955ac49da2e2107b67a");
  EXPECT_EQ(md5_of("The quick brown fox jumps over the lazy dog"), "9e107d9d372bb6826bd81d3542a419d6");
}

TEST(Md5, PaddingBoundariesAndChunkingAgree) {
  // Lengths around the 56- and 64-byte padding boundaries, fed whole and byte by byte.
  std::string text;
  for (int len = 0; len < 200; ++len) {
    Md5 whole;
    whole.update(text);
    Md5 bytewise;
    for (char c : text) bytewise.update(std::string_view(&c, 1));
    EXPECT_EQ(whole.hex(), bytewise.hex()) << "length " << len;
    text.push_back(static_cast<char>('a' + len % 26));
  }
  // digest() does not disturb the running state.
  Md5 running;
  running.update("abc");
  (void)running.hex();
  running.update("defghijklmnopqrstuvwxyz");
  EXPECT_EQ(running.hex(), "c3fcd3d76192e4007dfb496cca67e13b");
}
