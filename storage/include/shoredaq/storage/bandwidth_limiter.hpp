#pragma once
// A bandwidth cap shared by parallel transfers: a token bucket in "time paid" form. Each chunk
// costs bytes / rate seconds of the link; reserve() says when the chunk may go so that, from any
// idle start, no more than rate * t + burst bytes leave in t seconds. Plain logic: the caller
// passes the time and does the waiting. Thread-safe.

#include <chrono>
#include <cstdint>
#include <mutex>

namespace shoredaq::storage {

class BandwidthLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  // bytes_per_s = 0: no limit. burst_bytes: how far ahead of the rate a sender may be (one chunk
  // is a good value: the first chunk after a pause goes at once).
  explicit BandwidthLimiter(std::uint64_t bytes_per_s = 0, std::uint64_t burst_bytes = 0) noexcept
      : bytes_per_s_(bytes_per_s), burst_bytes_(burst_bytes) {}
  BandwidthLimiter(const BandwidthLimiter&) = delete;
  BandwidthLimiter& operator=(const BandwidthLimiter&) = delete;

  // Books `bytes` on the link; returns when they may be sent (`now` when there is room).
  Clock::time_point reserve(std::uint64_t bytes, Clock::time_point now);
  std::uint64_t bytes_per_s() const noexcept { return bytes_per_s_; }
  bool limited() const noexcept { return bytes_per_s_ != 0; }

 private:
  std::chrono::nanoseconds cost_of(std::uint64_t bytes) const noexcept;

  std::mutex mutex_;
  const std::uint64_t bytes_per_s_;
  const std::uint64_t burst_bytes_;
  Clock::time_point paid_until_{};  // when every byte booked so far has passed at the rate
};

}  // namespace shoredaq::storage
