#pragma once
// Small, fast, reproducible random numbers for the DU simulator (private to drivers/).
// xoshiro256** generator, seeded through splitmix64 from a key of several integers, so every
// (seed, slice, DOM, purpose) gets an independent stream. Distributions are written here rather
// than taken from <random> because the standard ones differ between library implementations.

#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>

namespace shoredaq::drivers::detail {

inline std::uint64_t splitmix64(std::uint64_t& state) noexcept {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Stream purposes, part of the key.
enum class Stream : std::uint64_t { Background = 1, K40, Burst, Particles, ParticleLight, Faults, Monitoring, Acoustic, Supernova };

class SimRng {
 public:
  SimRng(std::uint64_t seed, Stream purpose, std::initializer_list<std::uint64_t> key) noexcept {
    // The seed and the purpose are mixed in (splitmix64's output, not just its state step) before
    // the first key: a key XORed onto an unmixed seed made seeds that differ in a few low bits
    // give the same streams for permuted slice numbers (seeds 1, 2 and 3 had the same muons).
    std::uint64_t h = seed ^ 0x5d3f0c1a2b4e6987ull;
    h = splitmix64(h);
    h ^= static_cast<std::uint64_t>(purpose) * 0x9e3779b97f4a7c15ull;
    h = splitmix64(h);
    for (std::uint64_t k : key) {
      h ^= k + 0x632be59bd9b4e019ull;
      h = splitmix64(h);
    }
    std::uint64_t s = h;
    for (auto& word : state_) word = splitmix64(s);
  }

  std::uint64_t next() noexcept {
    const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const std::uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }
  // Uniform in [0, 1).
  double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  // Uniform in (0, 1]: safe for log().
  double uniform_open0() noexcept { return static_cast<double>((next() >> 11) + 1) * 0x1.0p-53; }
  double uniform(double lo, double hi) noexcept { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [0, n), n > 0 (multiply-shift; the tiny bias is irrelevant here).
  std::uint32_t below(std::uint32_t n) noexcept {
    return static_cast<std::uint32_t>(((next() >> 32) * std::uint64_t{n}) >> 32);
  }
  double exponential(double mean) noexcept { return -mean * std::log(uniform_open0()); }
  // The same distribution without calling log(): for u = 2^-(z+1) * (1 + f), z the leading zeros
  // of a random word (exactly geometric) and f uniform from the bits after the first set bit,
  // -ln u = ln2 * (z + 1 - log2(1 + f)); log2(1 + f) from a 1024-entry table with linear
  // interpolation (error < 2e-7). Used for the singles, the bulk of all hits.
  double exponential_fast(double mean) noexcept {
    const std::uint64_t r = next();
    if (r == 0) return exponential(mean);  // probability 2^-64
    const int z = std::countl_zero(r);
    const std::uint64_t f_bits = (r << z) << 1;  // bits after the leading one, left-aligned
    const auto& table = log2_table();
    const std::size_t i = f_bits >> 54;           // top 10 bits
    const double frac = static_cast<double>((f_bits >> 22) & 0xffffffffull) * 0x1.0p-32;
    const double log2_1pf = table[i] + (table[i + 1] - table[i]) * frac;
    return mean * 0.6931471805599453 * (static_cast<double>(z + 1) - log2_1pf);
  }
  double normal() noexcept {  // Box-Muller, one value per call (simple and reproducible)
    const double r = std::sqrt(-2.0 * std::log(uniform_open0()));
    return r * std::cos(6.283185307179586 * uniform());
  }
  // Poisson by counting exponential gaps: fine for the small means used per slice.
  std::uint32_t poisson(double mean) noexcept {
    if (mean <= 0) return 0;
    if (mean > 200) {  // normal approximation for large means (bursts); never negative
      const double v = std::floor(mean + std::sqrt(mean) * normal() + 0.5);
      return v < 0 ? 0u : static_cast<std::uint32_t>(v);
    }
    std::uint32_t n = 0;
    double t = exponential(1.0);
    while (t < mean) {
      ++n;
      t += exponential(1.0);
    }
    return n;
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
  static const std::array<double, 1025>& log2_table() noexcept {
    static const std::array<double, 1025> table = [] {
      std::array<double, 1025> t{};
      for (std::size_t i = 0; i <= 1024; ++i) t[i] = std::log2(1.0 + static_cast<double>(i) / 1024.0);
      return t;
    }();
    return table;
  }
  std::array<std::uint64_t, 4> state_{};
};

}  // namespace shoredaq::drivers::detail
