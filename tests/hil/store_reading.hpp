#pragma once
// Reading what a node under test stored (HIL tests compare stores of two runs of the same feed).

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <vector>

#include "shoredaq/formats/event.hpp"
#include "shoredaq/formats/fb_codec.hpp"
#include "shoredaq/storage/event_store.hpp"

namespace hil {

// Every event of `run`, in store order (each buffer must decode).
inline std::vector<shoredaq::dataflow::Event> stored_events(const std::filesystem::path& store, std::uint32_t run) {
  auto reader = shoredaq::storage::EventStoreReader::open(store);
  std::vector<shoredaq::dataflow::Event> events;
  reader.for_each_event(run, 0, 0xffffffffu, [&](const shoredaq::storage::EventKey&, std::span<const std::uint8_t> b) {
    auto d = shoredaq::dataflow::decode_event_fb(b);
    EXPECT_TRUE(static_cast<bool>(d));
    events.push_back(d.value.event);
    return true;
  });
  return events;
}

}  // namespace hil
