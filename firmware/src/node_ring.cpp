// The node's raw-data ring buffer (config [ring], ring_service.hpp): opened with the spool at
// start-up, fed by every run's workers, dumped on `shorectl dump` and on a supernova alert.
#include <spdlog/spdlog.h>

#include "node_impl.hpp"

namespace shoredaq::firmware {

void Node::Impl::open_ring() {
  if (ring || !config.ring.enabled || !spool) return;
  RingServiceOptions o;
  o.settings = config.ring;
  o.ring_dir = config.ring_dir();
  o.spool_dir = config.spool_dir();
  o.fsync = config.store.durability != Durability::NoSync;
  try {
    auto opened = std::make_unique<RingService>(std::move(o));
    std::lock_guard lock(mutex);
    ring = std::move(opened);
  } catch (const std::exception& e) {
    // Data taking does not depend on the ring: the node runs on without it, loudly.
    spdlog::error("ALARM: raw-data ring {} not opened: {}", config.ring_dir().string(), e.what());
  }
}

void Node::Impl::attach_ring(RunSessionInputs& inputs, const storage::RunProvenance& provenance) {
  if (!ring) return;
  ring->set_provenance(provenance);
  ring->set_taking_data(true);
  RingService* r = ring.get();
  inputs.raw_slice = [r](const dataflow::Timeslice& slice) { r->offer(slice); };
  if (!config.ring.sn_dump) return;
  const std::uint64_t before_ns = std::uint64_t{config.ring.sn_dump_before_s} * 1'000'000'000ull;
  const std::uint64_t after_ns = std::uint64_t{config.ring.sn_dump_after_s} * 1'000'000'000ull;
  inputs.supernova_alert = [r, before_ns, after_ns](const std::string& message) {
    // The SNEWS message carries the estimated start of the excess (supernova_watch.hpp).
    const auto m = nlohmann::json::parse(message, nullptr, false);
    const auto* meta = m.is_object() && m.contains("meta") ? &m["meta"] : nullptr;
    if (meta == nullptr || !meta->contains("neutrino_time_ns") || !(*meta)["neutrino_time_ns"].is_number_unsigned()) {
      spdlog::warn("ring dump: the supernova alert carries no neutrino_time_ns; no dump");
      return;
    }
    const auto t = (*meta)["neutrino_time_ns"].get<std::uint64_t>();
    r->request_dump(t > before_ns ? t - before_ns : 0, t + after_ns, "supernova alert", "supernova",
                    /*journal_now=*/false);
  };
}

nlohmann::json Node::Impl::request_dump(const nlohmann::json& request) {
  const auto refuse = [this](const std::string& why) {
    return nlohmann::json{{"ok", false}, {"state", std::string(to_string(run_control.state()))}, {"error", why}};
  };
  RingService* service = nullptr;
  {
    std::lock_guard lock(mutex);
    service = ring.get();
  }
  if (service == nullptr)
    return refuse(config.ring.enabled ? "the raw-data ring is not open (see the log)" : "no raw-data ring ([ring] enabled = false)");
  std::optional<std::uint64_t> from, to;
  for (const char* key : {"from", "to"}) {
    const auto it = request.find(key);
    std::optional<std::uint64_t> t;
    if (it != request.end() && it->is_string()) t = parse_dump_time(it->get<std::string>());
    if (!t) return refuse(std::string("dump needs \"") + key + "\": UTC as 2026-12-06T08:15:00[.123]Z or Unix seconds");
    (std::string(key) == "from" ? from : to) = t;
  }
  const auto reason = request.find("reason");
  if (reason == request.end() || !reason->is_string() || reason->get<std::string>().empty() ||
      reason->get<std::string>().size() > 1024)
    return refuse("dump needs \"reason\": a text of 1..1024 characters");
  const DumpRecord d = service->request_dump(*from, *to, reason->get<std::string>(), "shorectl");
  nlohmann::json r{{"ok", d.state != DumpState::Failed}, {"state", std::string(to_string(run_control.state()))},
                   {"dump", d.to_json()}};
  if (d.state == DumpState::Failed) r["error"] = d.error;
  return r;
}

}  // namespace shoredaq::firmware
