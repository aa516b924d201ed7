#pragma once
// Per-slice single rates of every DOM (DOMAIN.md section 3): 31 one-byte rate codes per DOM.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "shoredaq/formats/clb_datagram.hpp"
#include "shoredaq/formats/timeslice.hpp"

namespace shoredaq::dataflow {

inline constexpr double kRateCodeMinimumHz = 2000.0;
// ln(1000)/255: codes 1..255 span 2 kHz .. 2 MHz logarithmically.
inline const double kRateCodeStep = std::log(1000.0) / 255.0;

inline double decode_rate_code(std::uint8_t code) noexcept {
  return code == 0 ? 0.0 : kRateCodeMinimumHz * std::exp(code * kRateCodeStep);
}
inline std::uint8_t encode_rate_hz(double rate_hz) noexcept {
  if (!(rate_hz >= kRateCodeMinimumHz)) return 0;  // also catches NaN
  const double code = std::round(std::log(rate_hz / kRateCodeMinimumHz) / kRateCodeStep);
  return static_cast<std::uint8_t>(std::clamp(code, 1.0, 255.0));
}

struct SummaryFrame {
  std::uint32_t dom_id = 0;
  FrameStatus status;
  std::array<std::uint8_t, kPmtsPerDom> rate_codes{};
  double rate_hz(unsigned channel) const noexcept { return decode_rate_code(rate_codes[channel]); }
  friend bool operator==(const SummaryFrame&, const SummaryFrame&) = default;
};

struct SummarySlice {
  SliceHeader header;
  std::vector<SummaryFrame> frames;
  friend bool operator==(const SummarySlice&, const SummarySlice&) = default;
};

}  // namespace shoredaq::dataflow
