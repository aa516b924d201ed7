#include "acoustic_feed.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "sim_random.hpp"

namespace shoredaq::drivers {

std::uint64_t acoustic_datagrams_in_slice(double datagrams_per_s, std::uint32_t frame) noexcept {
  const double per_slice = datagrams_per_s * 0.1;
  return static_cast<std::uint64_t>(std::floor(per_slice * (frame + 1.0)) - std::floor(per_slice * frame));
}

std::uint64_t append_acoustic_datagrams(const AcousticConfig& config, const dataflow::ClbHeader& slice_header,
                                        dataflow::HeaderLayout layout, std::uint64_t seed, std::uint32_t frame,
                                        std::vector<SimDatagram>& out) {
  const std::uint64_t n = acoustic_datagrams_in_slice(config.datagrams_per_s, frame);
  if (n == 0) return 0;
  detail::SimRng rng(seed, detail::Stream::Acoustic, {frame, slice_header.dom_id});
  dataflow::ClbHeader h = slice_header;
  h.data_type = dataflow::DataType::Acoustic;
  h.status1 = dataflow::kStatus1WhiteRabbitOk;
  h.status2 = h.status3 = h.status4 = 0;
  constexpr double kMax = 8'388'607.0;  // 2^23 - 1
  const double phase_step = 2.0 * std::numbers::pi * config.tone_hz / config.sample_rate_hz;
  std::uint64_t sample = 0;  // within the slice
  for (std::uint64_t k = 0; k < n; ++k) {
    h.udp_sequence = static_cast<std::uint32_t>(k);
    SimDatagram dg;
    dg.dom_id = slice_header.dom_id;
    dg.frame_index = frame;
    dataflow::encode_clb_header(h, layout, dg.bytes);
    dg.bytes.reserve(dg.bytes.size() + std::size_t{config.samples_per_datagram} * kAcousticSampleBytes);
    for (unsigned i = 0; i < config.samples_per_datagram; ++i, ++sample) {
      const double value = config.tone_amplitude * std::sin(phase_step * static_cast<double>(sample)) +
                           config.noise_sigma * rng.normal();
      const auto v = static_cast<std::int32_t>(std::lround(std::clamp(value, -kMax, kMax)));
      const auto bits = static_cast<std::uint32_t>(v);
      dg.bytes.push_back(static_cast<std::uint8_t>(bits >> 16));
      dg.bytes.push_back(static_cast<std::uint8_t>(bits >> 8));
      dg.bytes.push_back(static_cast<std::uint8_t>(bits));
    }
    out.push_back(std::move(dg));
  }
  return n;
}

}  // namespace shoredaq::drivers
