#pragma once
// The daemon's background scrub of the event store (DESIGN.md section 4): a thread that gives the
// StoreScrubber one second's byte budget per second ([store] scrub_bytes_per_s), so every stored
// record's checksum is re-read again and again at a bounded I/O rate. Damage found raises the
// node's alarm; progress shows in /status and /metrics. stop() returns within one step.

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>

#include "shoredaq/storage/store_scrubber.hpp"

namespace shoredaq::firmware {

class StoreScrubThread {
 public:
  StoreScrubThread(const storage::EventStoreReader& reader, std::uint64_t bytes_per_second);
  ~StoreScrubThread();
  StoreScrubThread(const StoreScrubThread&) = delete;
  StoreScrubThread& operator=(const StoreScrubThread&) = delete;

  storage::ScrubStatus status() const { return scrubber_.status(); }

 private:
  void run();

  storage::StoreScrubber scrubber_;
  const std::uint64_t bytes_per_second_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace shoredaq::firmware
