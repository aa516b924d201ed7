// shore-events alerts --run N [--json]: the supernova alerts the store kept for a run (in its run
// record, each as the SNEWS 2.0-style message the node sent), oldest first.

#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.hpp"

namespace shore_events {

namespace st = shoredaq::storage;

int cmd_alerts(const st::EventStoreReader& reader, std::uint32_t run, bool as_json) {
  const auto record = reader.run(run);  // a damaged record throws: never read as "no alerts"
  if (!record) {
    std::cerr << "run " << run << " not in the store\n";
    return kExitProblem;
  }
  int rc = kExitOk;
  nlohmann::json all = nlohmann::json::array();
  for (const auto& text : record->supernova_alerts) {
    auto alert = nlohmann::json::parse(text, nullptr, false);
    if (!alert.is_object()) {
      std::cerr << "run " << run << ": a supernova alert that is not JSON: " << text << "\n";
      rc = kExitProblem;
      continue;
    }
    all.push_back(std::move(alert));
  }
  if (as_json) {
    std::cout << all.dump() << "\n";
    return rc;
  }
  std::printf("run %u: %zu supernova alert(s)\n", run, all.size());
  for (const auto& a : all) {
    const auto meta = a.value("meta", nlohmann::json::object());
    std::printf("  neutrino_time %s  p_val %.3g  %.1f sigma  frame %llu  %llu coincidences vs %.2f expected  %llu DOMs  "
                "FAR %.3g/day  is_test %s\n",
                a.value("neutrino_time", std::string("?")).c_str(), a.value("p_val", 1.0),
                meta.value("significance_sigma", 0.0),
                static_cast<unsigned long long>(meta.value("frame_index", std::uint64_t{0})),
                static_cast<unsigned long long>(meta.value("window_count", std::uint64_t{0})),
                meta.value("baseline_count", 0.0),
                static_cast<unsigned long long>(meta.value("effective_doms", std::uint64_t{0})),
                meta.value("false_alarm_rate_per_day", 0.0), a.value("is_test", false) ? "true" : "false");
  }
  return rc;
}

}  // namespace shore_events
