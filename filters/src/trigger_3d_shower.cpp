#include "shoredaq/filters/trigger_3d_shower.hpp"

#include "shoredaq/formats/event.hpp"

namespace shoredaq::filters {

std::size_t trigger_3d_shower(std::span<const L1Hit> l1, const TriggerSettings& settings,
                              std::vector<TriggerCandidate>& out, TriggerScratch& scratch) {
  if (!settings.enabled) return 0;
  const Match3D match{settings.d_max_m, settings.t_max_extra_ns};
  const double window_ns = match.max_time_difference_ns();
  const std::size_t min_hits = static_cast<std::size_t>(settings.number_of_hits);
  const std::size_t min_doms = static_cast<std::size_t>(settings.number_of_modules);
  const std::uint64_t bit = dataflow::trigger_bit(dataflow::kTriggerBit3DShower);
  auto& used = scratch.used;
  used.assign(l1.size(), 0);
  std::size_t fired = 0;
  for (std::size_t i = 0; i < l1.size(); ++i) {
    if (used[i]) continue;
    auto& cands = scratch.candidates;
    cands.clear();
    cands.push_back(static_cast<std::uint32_t>(i));
    for (std::size_t j = i + 1; j < l1.size() && l1[j].time_ns - l1[i].time_ns <= window_ns; ++j)
      if (match(l1[i].position_m, l1[i].time_ns, l1[j].position_m, l1[j].time_ns))
        cands.push_back(static_cast<std::uint32_t>(j));
    if (cands.size() < min_hits || count_l1_doms(l1, cands, scratch.doms) < min_doms) continue;
    const std::vector<std::uint32_t>* cluster = &cands;
    std::uint64_t mask = bit;
    if (cands.size() > static_cast<std::size_t>(settings.factory_limit)) {
      mask |= dataflow::trigger_bit(dataflow::kTriggerBitFactoryLimit);
    } else {
      clique_cluster(
          cands.size(),
          [&](std::size_t a, std::size_t b) {
            const L1Hit& x = l1[cands[a]];
            const L1Hit& y = l1[cands[b]];
            return match(x.position_m, x.time_ns, y.position_m, y.time_ns);
          },
          scratch.survivors, scratch.clique);
      for (auto& s : scratch.survivors) s = cands[s];
      if (scratch.survivors.size() < min_hits || count_l1_doms(l1, scratch.survivors, scratch.doms) < min_doms)
        continue;
      cluster = &scratch.survivors;
    }
    for (auto k : *cluster) used[k] = 1;
    out.push_back(candidate_from_l1(l1, *cluster, mask));
    ++fired;
  }
  return fired;
}

}  // namespace shoredaq::filters
