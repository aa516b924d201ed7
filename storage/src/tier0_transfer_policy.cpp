// The plain policies of the Tier-0 transfer: retry backoff, the bandwidth limiter, retention of
// done/ and the remote path layout.

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include "shoredaq/storage/bandwidth_limiter.hpp"
#include "shoredaq/storage/retry_backoff.hpp"
#include "shoredaq/storage/spool_retention.hpp"
#include "shoredaq/storage/tier0_transfer.hpp"

namespace shoredaq::storage {

std::chrono::milliseconds RetryBackoff::delay_after(std::uint32_t consecutive_failures) const noexcept {
  if (consecutive_failures == 0) return std::chrono::milliseconds{0};
  auto delay = initial;
  // Doubling stops at the cap, so the shift never overflows however long the outage.
  for (std::uint32_t n = 1; n < consecutive_failures && delay < max; ++n) delay *= 2;
  return std::min(delay, max);
}

std::chrono::nanoseconds BandwidthLimiter::cost_of(std::uint64_t bytes) const noexcept {
  const long double seconds = static_cast<long double>(bytes) / static_cast<long double>(bytes_per_s_);
  return std::chrono::nanoseconds{static_cast<std::int64_t>(seconds * 1e9L)};
}

BandwidthLimiter::Clock::time_point BandwidthLimiter::reserve(std::uint64_t bytes, Clock::time_point now) {
  if (bytes_per_s_ == 0) return now;
  const std::lock_guard lock(mutex_);
  // Idle time is not saved up: after a pause the link is "paid" up to now, plus the burst.
  paid_until_ = std::max(paid_until_, now) + cost_of(bytes);
  return std::max(now, paid_until_ - cost_of(burst_bytes_));
}

std::vector<std::string> plan_retention(std::vector<DoneFile> files, const RetentionPolicy& policy,
                                        std::chrono::system_clock::time_point now) {
  std::sort(files.begin(), files.end(), [](const DoneFile& a, const DoneFile& b) {
    return a.done_at != b.done_at ? a.done_at < b.done_at : a.name < b.name;
  });
  std::uint64_t total = 0;
  for (const auto& f : files) total += f.bytes;
  std::vector<std::string> prune;
  for (const auto& f : files) {
    const bool too_old = policy.max_age.count() > 0 && now - f.done_at > policy.max_age;
    const bool too_much = policy.max_bytes > 0 && total > policy.max_bytes;
    if (!too_old && !too_much) break;  // oldest first: everything after is younger and fits
    prune.push_back(f.name);
    total -= f.bytes;
  }
  return prune;
}

namespace {

// Calls `on_text` for literal text and `on_field` for each {placeholder}; false on a broken brace.
template <typename Text, typename Field>
bool walk_template(const std::string& t, Text on_text, Field on_field) {
  std::size_t i = 0;
  while (i < t.size()) {
    const std::size_t open = t.find_first_of("{}", i);
    if (open == std::string::npos) {
      on_text(t.substr(i));
      break;
    }
    if (t[open] == '}') return false;
    const std::size_t close = t.find('}', open);
    if (close == std::string::npos) return false;
    on_text(t.substr(i, open - i));
    if (!on_field(t.substr(open + 1, close - open - 1))) return false;
    i = close + 1;
  }
  return true;
}

bool known_field(const std::string& f) {
  return f == "detector" || f == "run" || f == "run_thousands" || f == "file" || f == "scope" || f == "data_type";
}

}  // namespace

std::optional<std::string> check_remote_path_template(const std::string& path_template) {
  if (path_template.empty() || path_template.front() != '/') return "must be an absolute path (start with /)";
  bool has_file = false;
  std::string unknown;
  const bool ok = walk_template(path_template, [](const std::string&) {}, [&](const std::string& f) {
    if (!known_field(f)) unknown = f;
    has_file = has_file || f == "file";
    return known_field(f);
  });
  if (!unknown.empty()) {
    return "unknown placeholder {" + unknown + "} (known: detector, run, run_thousands, file, scope, data_type)";
  }
  if (!ok) return "unbalanced { }";
  if (!has_file) return "must contain {file}";
  if (path_template.find("/../") != std::string::npos || path_template.find("/./") != std::string::npos) {
    return "must not contain . or .. segments";
  }
  return std::nullopt;
}

std::string expand_remote_path(const std::string& path_template, const Tier0TransferManifest& m) {
  if (const auto problem = check_remote_path_template(path_template)) {
    throw std::invalid_argument("remote path template '" + path_template + "': " + *problem);
  }
  std::string out;
  walk_template(path_template, [&](const std::string& text) { out += text; }, [&](const std::string& f) {
    char number[32];
    if (f == "detector") {
      std::snprintf(number, sizeof number, "%08d", m.detector_id);
      out += number;
    } else if (f == "run") {
      std::snprintf(number, sizeof number, "%08u", m.run);
      out += number;
    } else if (f == "run_thousands") {
      out += std::to_string(m.run / 1000);
    } else if (f == "file") {
      out += m.name;
    } else if (f == "scope") {
      out += m.scope;
    } else {
      out += m.data_type;
    }
    return true;
  });
  return out;
}

}  // namespace shoredaq::storage
