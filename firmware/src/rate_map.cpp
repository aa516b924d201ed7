#include "shoredaq/firmware/rate_map.hpp"

#include <algorithm>
#include <cmath>
#include <unordered_map>

namespace shoredaq::firmware {

nlohmann::json rate_map_json(const dataflow::Detector& detector, const dataflow::SummarySlice* latest, std::uint32_t run) {
  // The DOM's first frame with data counts (the builder adds an empty frame for a silent DOM; a
  // duplicate frame in one slice is ignored, as DomHealthMonitor does).
  std::unordered_map<std::uint32_t, const dataflow::SummaryFrame*> frame_of;
  if (latest != nullptr) {
    for (const auto& frame : latest->frames) {
      if (frame.status.datagrams_received() > 0) frame_of.emplace(frame.dom_id, &frame);
    }
  }
  int max_floor = 0;
  nlohmann::json doms = nlohmann::json::array();
  for (const auto& module : detector.modules()) {
    if (module.is_base()) continue;
    max_floor = std::max(max_floor, module.floor);
    nlohmann::json dom = {{"id", module.id}, {"du", module.du}, {"floor", module.floor}};
    nlohmann::json flags = nlohmann::json::array();
    nlohmann::json pmt_khz = nlohmann::json::array();
    double rate_hz = 0;
    const auto found = frame_of.find(module.id);
    if (found == frame_of.end()) {
      if (latest != nullptr) flags.push_back("missing");
    } else {
      const dataflow::SummaryFrame& frame = *found->second;
      if (!frame.status.complete()) flags.push_back("incomplete");
      const std::uint32_t hrv_mask = frame.status.hrv_mask();
      if (hrv_mask != 0) flags.push_back("hrv");
      if (!frame.status.white_rabbit_ok()) flags.push_back("wr_unlocked");
      if (hrv_mask != 0) dom["hrv_mask"] = hrv_mask;
      for (unsigned channel = 0; channel < dataflow::kPmtsPerDom; ++channel) {
        const double channel_hz = frame.rate_hz(channel);
        rate_hz += channel_hz;
        pmt_khz.push_back(std::round(channel_hz / 100.0) / 10.0);
      }
    }
    dom["rate_hz"] = std::llround(rate_hz);
    dom["flags"] = std::move(flags);
    dom["pmt_khz"] = std::move(pmt_khz);
    doms.push_back(std::move(dom));
  }
  return {{"run", run},
          {"frame_index", latest != nullptr ? nlohmann::json(latest->header.frame_index) : nlohmann::json(nullptr)},
          {"detector_id", detector.id()},
          {"dus", detector.du_ids()},
          {"max_floor", max_floor},
          {"doms", std::move(doms)}};
}

}  // namespace shoredaq::firmware
