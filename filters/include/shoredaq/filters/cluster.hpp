#pragma once
// Clique clustering (DOMAIN.md section 5): among n hits with a symmetric match relation, drop the
// hit with the fewest matches until every remaining hit matches every other one.

#include <cstdint>
#include <vector>

namespace shoredaq::filters {

struct CliqueScratch {
  std::vector<std::uint8_t> matrix;
  std::vector<std::uint32_t> degree;
  std::vector<std::uint8_t> alive;
};

// match(i, j) for i < j. Writes the surviving indices, ascending, to `survivors`. Ties in the
// number of matches drop the later hit, so a seed at index 0 is the last to go.
template <class Match>
void clique_cluster(std::size_t n, Match&& match, std::vector<std::uint32_t>& survivors,
                    CliqueScratch& scratch) {
  survivors.clear();
  auto& m = scratch.matrix;
  auto& degree = scratch.degree;
  auto& alive = scratch.alive;
  m.assign(n * n, 0);
  degree.assign(n, 0);
  alive.assign(n, 1);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = i + 1; j < n; ++j) {
      if (match(i, j)) {
        m[i * n + j] = m[j * n + i] = 1;
        ++degree[i];
        ++degree[j];
      }
    }
  }
  std::size_t remaining = n;
  while (remaining > 1) {
    std::size_t worst = n;
    for (std::size_t i = 0; i < n; ++i)
      if (alive[i] && (worst == n || degree[i] <= degree[worst])) worst = i;
    if (degree[worst] + 1 == remaining) break;  // the fewest matches is "all others": a clique
    alive[worst] = 0;
    --remaining;
    for (std::size_t j = 0; j < n; ++j)
      if (alive[j] && m[worst * n + j]) --degree[j];
  }
  for (std::size_t i = 0; i < n; ++i)
    if (alive[i]) survivors.push_back(static_cast<std::uint32_t>(i));
}

}  // namespace shoredaq::filters
