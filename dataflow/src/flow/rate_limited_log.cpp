#include "shoredaq/dataflow/rate_limited_log.hpp"

#include <iterator>

namespace shoredaq::dataflow {
namespace {
constexpr std::size_t kMaxCauses = 1024;
constexpr std::string_view kOtherCauses = "(other causes)";
}  // namespace

RateLimitedLog::RateLimitedLog(std::shared_ptr<spdlog::logger> logger, std::chrono::nanoseconds interval,
                               unsigned burst)
    : logger_(std::move(logger)),
      interval_ns_(static_cast<std::uint64_t>(interval.count() > 0 ? interval.count() : 1)),
      burst_(burst == 0 ? 1 : burst) {}

RateLimitedLog::Decision RateLimitedLog::allow(std::string_view cause, std::uint64_t now_ns) {
  std::lock_guard lock(mutex_);
  auto it = causes_.find(std::string(cause));
  if (it == causes_.end()) {
    // Causes may carry peer names: bound the table. When full, forget the causes that are quiet
    // (window over, nothing suppressed); if none is, new causes share one "(other causes)" budget.
    if (causes_.size() >= kMaxCauses) {
      for (auto c = causes_.begin(); c != causes_.end();) {
        const bool quiet = c->second.suppressed == 0 && (now_ns < c->second.window_start_ns ||
                                                         now_ns - c->second.window_start_ns >= interval_ns_);
        c = quiet ? causes_.erase(c) : std::next(c);
      }
    }
    const std::string key = causes_.size() >= kMaxCauses ? std::string(kOtherCauses) : std::string(cause);
    it = causes_.try_emplace(key).first;
  }
  CauseState& s = it->second;
  if (!s.started || now_ns < s.window_start_ns || now_ns - s.window_start_ns >= interval_ns_) {
    s.started = true;
    s.window_start_ns = now_ns;
    s.emitted_in_window = 0;
  }
  if (s.emitted_in_window >= burst_) {
    ++s.suppressed;
    ++suppressed_total_;
    return Decision{false, 0};
  }
  ++s.emitted_in_window;
  const Decision d{true, s.suppressed};
  s.suppressed = 0;
  return d;
}

std::uint64_t RateLimitedLog::suppressed_total() const {
  std::lock_guard lock(mutex_);
  return suppressed_total_;
}

std::uint64_t RateLimitedLog::steady_now_ns() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

void RateLimitedLog::write(spdlog::level::level_enum level, const std::string& message, std::uint64_t suppressed) {
  const auto logger = logger_ ? logger_ : spdlog::default_logger();
  if (!logger) return;
  if (suppressed == 0) {
    logger->log(level, "{}", message);
  } else {
    logger->log(level, "{} (suppressed {} similar messages)", message, suppressed);
  }
}

}  // namespace shoredaq::dataflow
