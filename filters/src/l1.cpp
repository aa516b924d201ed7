#include "shoredaq/filters/l1.hpp"

#include <algorithm>

#include "coincidence_steps.hpp"

namespace shoredaq::filters {

void build_l1_dom(std::span<const L0Hit> dom_hits, std::uint32_t first_index, std::uint32_t dom_slot,
                  const dataflow::Vec3& dom_position_m, const L1Settings& settings,
                  std::vector<L1Hit>& out) {
  const std::size_t n = dom_hits.size();
  const double window = settings.window_ns;
  std::size_t i = 0;
  while (i + 1 < n) {
    // Most hits are alone: skip four at a time with one branch (the same tests, hit by hit).
    const auto alone = [&](std::size_t k) -> int { return dom_hits[k + 1].time_ns - dom_hits[k].time_ns > window; };
    if (i + 4 < n && alone(i) + alone(i + 1) + alone(i + 2) + alone(i + 3) == 4) {
      i += 4;
      continue;
    }
    if (dom_hits[i + 1].time_ns - dom_hits[i].time_ns > window) {
      ++i;
      continue;
    }
    i = detail::take_l1_coincidence(dom_hits.data(), n, i, first_index, dom_slot, dom_position_m, settings, out);
  }
}

bool is_l2(std::span<const L0Hit> l1_hits, std::span<const dataflow::Vec3> pmt_directions,
           const L2Settings& settings) noexcept {
  if (l1_hits.empty() || static_cast<int>(l1_hits.size()) < settings.min_hits) return false;
  const L0Hit& first = l1_hits.front();
  if (first.channel >= pmt_directions.size()) return false;
  const dataflow::Vec3 axis = pmt_directions[first.channel];
  int count = 1;
  for (std::size_t k = 1; k < l1_hits.size(); ++k) {
    const L0Hit& h = l1_hits[k];
    if (h.time_ns - first.time_ns > settings.window_ns) break;
    if (h.channel >= pmt_directions.size()) continue;
    if (axis.dot(pmt_directions[h.channel]) >= settings.ct_min) ++count;
  }
  return count >= settings.min_hits;
}

void sort_l1_by_time(std::vector<L1Hit>& l1, L1SortBuffers& buffers) {
  auto& keys = buffers.keys;
  keys.resize(l1.size());
  for (std::size_t k = 0; k < l1.size(); ++k) keys[k] = {l1[k].time_ns, static_cast<std::uint32_t>(k)};
  std::sort(keys.begin(), keys.end(), [](const L1SortBuffers::Key& a, const L1SortBuffers::Key& b) { return a.time_ns < b.time_ns; });
  auto& sorted = buffers.sorted;
  sorted.resize(l1.size());
  for (std::size_t k = 0; k < keys.size(); ++k) sorted[k] = l1[keys[k].index];
  l1.swap(sorted);
}

}  // namespace shoredaq::filters
