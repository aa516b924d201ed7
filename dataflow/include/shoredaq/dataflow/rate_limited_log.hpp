#pragma once
// RateLimitedLog: logging for the data path, where one bad feed can produce thousands of identical
// complaints per second (DESIGN.md section 5: "rate-limited per cause"). Each cause may log
// `burst` messages per `interval`; further ones are counted, and the next message of that cause
// that gets through says how many similar ones were suppressed. Thread-safe.

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <spdlog/spdlog.h>

namespace shoredaq::dataflow {

class RateLimitedLog {
 public:
  struct Decision {
    bool emit = false;
    std::uint64_t suppressed = 0;  // similar messages dropped since this cause last logged
  };

  // `logger` null = spdlog's default logger (looked up at each call, so a later set_default works).
  explicit RateLimitedLog(std::shared_ptr<spdlog::logger> logger = nullptr,
                          std::chrono::nanoseconds interval = std::chrono::seconds(10), unsigned burst = 5);

  // The pure decision (time injected): may a message of `cause` be logged at `now_ns`?
  Decision allow(std::string_view cause, std::uint64_t now_ns);

  // Logs "<message> (suppressed N similar messages)" when allowed; returns whether it logged.
  template <class... Args>
  bool log(spdlog::level::level_enum level, std::string_view cause, fmt::format_string<Args...> format,
           Args&&... args) {
    return log_at(steady_now_ns(), level, cause, format, std::forward<Args>(args)...);
  }
  // As log(), at an injected time (monotonic ns).
  template <class... Args>
  bool log_at(std::uint64_t now_ns, spdlog::level::level_enum level, std::string_view cause,
              fmt::format_string<Args...> format, Args&&... args) {
    const Decision d = allow(cause, now_ns);
    if (!d.emit) return false;
    write(level, fmt::format(format, std::forward<Args>(args)...), d.suppressed);
    return true;
  }

  std::uint64_t suppressed_total() const;

 private:
  struct CauseState {
    std::uint64_t window_start_ns = 0;
    unsigned emitted_in_window = 0;
    std::uint64_t suppressed = 0;
    bool started = false;
  };
  static std::uint64_t steady_now_ns() noexcept;
  void write(spdlog::level::level_enum level, const std::string& message, std::uint64_t suppressed);

  std::shared_ptr<spdlog::logger> logger_;
  std::uint64_t interval_ns_;
  unsigned burst_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, CauseState> causes_;
  std::uint64_t suppressed_total_ = 0;
};

}  // namespace shoredaq::dataflow
