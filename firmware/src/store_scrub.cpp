#include "shoredaq/firmware/store_scrub.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace shoredaq::firmware {

StoreScrubThread::StoreScrubThread(const storage::EventStoreReader& reader, std::uint64_t bytes_per_second)
    : scrubber_(reader), bytes_per_second_(bytes_per_second) {
  thread_ = std::thread([this] { run(); });
}

StoreScrubThread::~StoreScrubThread() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void StoreScrubThread::run() {
  std::unique_lock lock(mutex_);
  auto next = std::chrono::steady_clock::now();
  while (!stopping_) {
    lock.unlock();
    try {
      const auto step = scrubber_.scrub_step(bytes_per_second_);
      for (const auto& d : step.damaged) spdlog::error("ALARM: store scrub: damaged record {}", d.describe());
      if (step.pass_completed) {
        const auto st = scrubber_.status();
        spdlog::info("store scrub: pass {} done, {} damaged records", st.passes_completed, st.last_pass_damaged_count);
      }
    } catch (const std::exception& e) {
      spdlog::warn("store scrub: step failed (retried): {}", e.what());
    }
    lock.lock();
    // One budget per second, never a burst to catch up after a slow step.
    next = std::max(next + std::chrono::seconds(1), std::chrono::steady_clock::now());
    wake_.wait_until(lock, next, [this] { return stopping_; });
  }
}

}  // namespace shoredaq::firmware
