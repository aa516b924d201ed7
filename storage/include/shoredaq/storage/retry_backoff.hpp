#pragma once
// When to try again after a failure: exponential backoff with a cap (shore-transfer's retries).
// No jitter: one node retries a handful of files, so there is no herd to spread.

#include <chrono>
#include <cstdint>

namespace shoredaq::storage {

struct RetryBackoff {
  std::chrono::milliseconds initial{10'000};  // the wait after the first failure
  std::chrono::milliseconds max{600'000};     // the cap: a long outage is retried at least this often
  // The wait after `consecutive_failures` failures in a row: initial * 2^(n-1), at most max;
  // zero for n = 0.
  std::chrono::milliseconds delay_after(std::uint32_t consecutive_failures) const noexcept;
};

}  // namespace shoredaq::storage
