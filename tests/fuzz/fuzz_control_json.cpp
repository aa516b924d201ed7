// Fuzz target: the control-socket request dispatcher. Every input gets a JSON object reply with
// "ok" and "state"; nothing throws. The run control has no hooks, so commands only move the state.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>

#include "shoredaq/firmware/control_socket.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace shoredaq::firmware;
  static std::unique_ptr<RunControl> run_control = std::make_unique<RunControl>();
  if (run_control->state() == RunState::Exited) run_control = std::make_unique<RunControl>();
  ControlDispatcher dispatcher(*run_control, [] { return nlohmann::json{{"counters", {{"slices", 1}}}}; });
  const std::string reply = dispatcher.handle(std::string_view(reinterpret_cast<const char*>(data), size));
  const nlohmann::json parsed = nlohmann::json::parse(reply, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object() || !parsed.contains("ok") || !parsed.contains("state")) std::abort();
  return 0;
}
