// Replays a fuzz target's seed corpus plus deterministic mutations of it as a plain test, so every
// parser's fuzz target also runs in ctest (and under the sanitizers with ./dev test --sanitize).
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char** argv) {
  std::vector<std::vector<std::uint8_t>> seeds;
  if (argc > 1 && std::filesystem::is_directory(argv[1])) {
    for (const auto& entry : std::filesystem::directory_iterator(argv[1])) {
      std::ifstream in(entry.path(), std::ios::binary);
      seeds.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
  }
  seeds.emplace_back();  // the empty input
  std::mt19937_64 rng(20261127);
  std::size_t runs = 0;
  for (const auto& seed : seeds) {
    LLVMFuzzerTestOneInput(seed.data(), seed.size());
    ++runs;
    // Mutations: bit flips, truncations, random splices; fixed seed so a failure reproduces.
    for (int i = 0; i < 200; ++i) {
      std::vector<std::uint8_t> m = seed;
      const int kind = static_cast<int>(rng() % 3);
      if (kind == 0 && !m.empty()) {
        for (int f = 0; f < 4; ++f) m[rng() % m.size()] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
      } else if (kind == 1 && !m.empty()) {
        m.resize(rng() % m.size());
      } else {
        const std::size_t n = rng() % 512;
        const std::size_t at = m.empty() ? 0 : rng() % m.size();
        std::vector<std::uint8_t> noise(n);
        for (auto& b : noise) b = static_cast<std::uint8_t>(rng());
        m.insert(m.begin() + static_cast<std::ptrdiff_t>(at), noise.begin(), noise.end());
      }
      LLVMFuzzerTestOneInput(m.data(), m.size());
      ++runs;
    }
  }
  std::printf("fuzz regression: %zu inputs from %zu seeds, no crash\n", runs, seeds.size());
  return 0;
}
