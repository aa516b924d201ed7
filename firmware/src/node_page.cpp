// The live page at / (firmware/page/, compiled in by cmake/ShoredaqEmbed.cmake) and what it reads
// besides /status: the rate map of the latest summary slice and the trigger-rate history.
#include <array>
#include <fstream>

#include "embedded_files.hpp"
#include "node_impl.hpp"
#include "shoredaq/firmware/rate_map.hpp"

namespace shoredaq::firmware {
namespace {

std::string content_type_of(std::string_view url_path) {
  const auto ends_with = [&](std::string_view suffix) { return url_path.ends_with(suffix); };
  if (ends_with(".js")) return "text/javascript; charset=utf-8";
  if (ends_with(".css")) return "text/css; charset=utf-8";
  if (ends_with(".json")) return "application/json";
  return "text/html; charset=utf-8";  // "/" is the page itself
}

}  // namespace

nlohmann::json Node::Impl::rate_map() {
  std::shared_ptr<const DomHealthMonitor> monitor;
  {
    std::lock_guard lock(mutex);
    monitor = latest_dom_health;
  }
  const auto run = run_control.run();
  if (!monitor || !monitor->detector()) {
    // No run configured since the daemon started: no detector to lay the DOMs out on.
    return {{"run", run ? nlohmann::json(*run) : nlohmann::json(nullptr)}, {"frame_index", nullptr}, {"doms", nlohmann::json::array()}};
  }
  const auto latest = monitor->latest_summary();
  return rate_map_json(*monitor->detector(), latest.get(), run.value_or(0));
}

// The transfer agent (shore-transfer) runs beside the node and leaves its state in the spool.
nlohmann::json Node::Impl::transfer_status() const {
  std::ifstream in(config.spool_dir() / "transfer.status.json");
  if (!in) return nullptr;
  auto parsed = nlohmann::json::parse(in, nullptr, false);
  return parsed.is_discarded() ? nlohmann::json(nullptr) : parsed;
}

void Node::Impl::sample_trigger_rates() {
  const dataflow::CounterSet t = totals();
  const std::array<std::uint64_t, 4> counts{t.value("events.3d_muon"), t.value("events.3d_shower"),
                                            t.value("events.mx_shower"), t.value("events")};
  trigger_history.sample(dataflow::unix_now_ns(), counts);
}

std::vector<HttpRoute> Node::Impl::page_routes() {
  std::vector<HttpRoute> routes;
  for (const EmbeddedFile& file : embedded_files()) {
    routes.push_back({std::string(file.url_path), content_type_of(file.url_path),
                      [bytes = file.bytes] { return std::string(bytes); }});
  }
  routes.push_back({"/ratemap.json", "application/json", [this] {
                      return rate_map().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
                    }});
  return routes;
}

}  // namespace shoredaq::firmware
