#include "shoredaq/firmware/metrics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace shoredaq::firmware {

namespace {

bool is_metric_name(std::string_view name) {
  if (name.empty()) {
    return false;
  }
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    const bool digit = c >= '0' && c <= '9';
    if (!alpha && !(digit && i > 0)) {
      return false;
    }
  }
  return true;
}

bool is_label_name(std::string_view name) {
  if (name.empty() || name.substr(0, 2) == "__") {
    return false;
  }
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (!alpha && !(digit && i > 0)) {
      return false;
    }
  }
  return true;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Label values escape backslash, double quote and newline; HELP text only backslash and newline.
void append_escaped(std::string& out, std::string_view text, bool escape_quote) {
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && escape_quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

std::string format_value(double v) {
  if (std::isnan(v)) {
    return "NaN";
  }
  if (std::isinf(v)) {
    return v > 0 ? "+Inf" : "-Inf";
  }
  return fmt::format("{}", v);  // shortest representation that round-trips
}

// `{a="x",b="y"}` (empty string for no labels), optionally with one extra label appended last.
std::string render_labels(const MetricLabels& labels, std::string_view extra_name = {},
                          std::string_view extra_value = {}) {
  if (labels.empty() && extra_name.empty()) {
    return {};
  }
  std::string out = "{";
  bool first = true;
  auto add = [&](std::string_view name, std::string_view value) {
    if (!first) {
      out += ',';
    }
    first = false;
    out += name;
    out += "=\"";
    append_escaped(out, value, true);
    out += '"';
  };
  for (const auto& [name, value] : labels) {
    add(name, value);
  }
  if (!extra_name.empty()) {
    add(extra_name, extra_value);
  }
  out += '}';
  return out;
}

const char* type_name(int type) {
  switch (type) {
    case 0: return "counter";
    case 1: return "gauge";
    default: return "histogram";
  }
}

void atomic_max(std::atomic<double>& target, double value) {
  double current = target.load(std::memory_order_relaxed);
  while (value > current && !target.compare_exchange_weak(current, value, std::memory_order_relaxed)) {
  }
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds) : upper_bounds_(std::move(upper_bounds)) {
  for (std::size_t i = 0; i < upper_bounds_.size(); ++i) {
    if (!std::isfinite(upper_bounds_[i]) || (i > 0 && upper_bounds_[i] <= upper_bounds_[i - 1])) {
      throw std::invalid_argument("histogram bucket bounds must be finite and strictly increasing");
    }
  }
  buckets_ = std::make_unique<std::atomic<std::uint64_t>[]>(upper_bounds_.size() + 1);
}

void Histogram::observe(double value) noexcept {
  // Prometheus buckets are "less than or equal": value == bound belongs to that bound's bucket.
  const auto it = std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value);
  const auto index = static_cast<std::size_t>(it - upper_bounds_.begin());
  buckets_[index].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
  atomic_max(max_, value);
  count_.fetch_add(1, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.upper_bounds = upper_bounds_;
  s.bucket_counts.resize(upper_bounds_.size() + 1);
  // Count is derived from the buckets so a scrape during observe() stays self-consistent
  // (+Inf bucket == _count), as Prometheus requires.
  for (std::size_t i = 0; i <= upper_bounds_.size(); ++i) {
    s.bucket_counts[i] = buckets_[i].load(std::memory_order_relaxed);
    s.count += s.bucket_counts[i];
  }
  s.sum = sum_.load(std::memory_order_relaxed);
  s.max = max_.load(std::memory_order_relaxed);
  return s;
}

double Histogram::quantile(double q) const {
  const Snapshot s = snapshot();
  if (s.count == 0) {
    return 0.0;
  }
  q = std::clamp(q, 0.0, 1.0);
  const double rank = q * static_cast<double>(s.count);
  std::uint64_t below = 0;
  for (std::size_t i = 0; i < s.bucket_counts.size(); ++i) {
    const std::uint64_t in_bucket = s.bucket_counts[i];
    if (in_bucket > 0 && static_cast<double>(below + in_bucket) >= rank) {
      if (i == s.upper_bounds.size()) {
        return s.max;  // +Inf bucket: the largest observation is the best estimate we have
      }
      const double lower = i == 0 ? std::min(0.0, s.upper_bounds[0]) : s.upper_bounds[i - 1];
      const double upper = s.upper_bounds[i];
      const double fraction = (rank - static_cast<double>(below)) / static_cast<double>(in_bucket);
      return std::min(lower + (upper - lower) * std::clamp(fraction, 0.0, 1.0), s.max);
    }
    below += in_bucket;
  }
  return s.max;
}

std::vector<double> exponential_buckets(double start, double factor, std::size_t count) {
  if (start <= 0.0 || factor <= 1.0) {
    throw std::invalid_argument("exponential_buckets needs start > 0 and factor > 1");
  }
  std::vector<double> bounds;
  bounds.reserve(count);
  double bound = start;
  for (std::size_t i = 0; i < count; ++i) {
    bounds.push_back(bound);
    bound *= factor;
  }
  return bounds;
}

std::vector<double> latency_buckets_seconds() { return exponential_buckets(100e-6, 2.0, 21); }

MetricsRegistry::Series& MetricsRegistry::series_for(std::string_view name, std::string_view help, Type type,
                                                     MetricLabels& labels,
                                                     const std::vector<double>* upper_bounds) {
  if (!is_metric_name(name) || name.substr(0, 9) != "shoredaq_") {
    throw std::invalid_argument(fmt::format("metric name '{}' must match shoredaq_[a-zA-Z0-9_:]*", name));
  }
  if (type == Type::counter && !ends_with(name, "_total")) {
    throw std::invalid_argument(fmt::format("counter name '{}' must end in _total", name));
  }
  if (type != Type::counter && ends_with(name, "_total")) {
    throw std::invalid_argument(fmt::format("only counters may end in _total: '{}'", name));
  }
  std::sort(labels.begin(), labels.end());
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const auto& label = labels[i].first;
    if (!is_label_name(label) || (type == Type::histogram && label == "le")) {
      throw std::invalid_argument(fmt::format("invalid label name '{}' for metric '{}'", label, name));
    }
    if (i > 0 && labels[i - 1].first == label) {
      throw std::invalid_argument(fmt::format("label '{}' given twice for metric '{}'", label, name));
    }
  }

  auto it = families_.find(name);
  if (it == families_.end()) {
    Family family{type, std::string(help), upper_bounds ? *upper_bounds : std::vector<double>{}, {}};
    it = families_.emplace(std::string(name), std::move(family)).first;
  } else if (it->second.type != type) {
    throw std::invalid_argument(fmt::format("metric '{}' already registered as a {}", name,
                                            type_name(static_cast<int>(it->second.type))));
  } else if (upper_bounds && it->second.upper_bounds != *upper_bounds) {
    throw std::invalid_argument(fmt::format("histogram '{}' already registered with other buckets", name));
  }
  const std::string key = render_labels(labels);
  auto [series, inserted] = it->second.series.try_emplace(key);
  if (inserted) {
    series->second.labels = labels;
  }
  return series->second;
}

Counter& MetricsRegistry::counter(std::string_view name, std::string_view help, MetricLabels labels) {
  std::lock_guard lock(mutex_);
  Series& series = series_for(name, help, Type::counter, labels, nullptr);
  if (series.read_counter) {
    throw std::invalid_argument(fmt::format("counter '{}' with these labels is read from a callback", name));
  }
  if (!series.counter) {
    series.counter = std::make_unique<Counter>();
  }
  return *series.counter;
}

Gauge& MetricsRegistry::gauge(std::string_view name, std::string_view help, MetricLabels labels) {
  std::lock_guard lock(mutex_);
  Series& series = series_for(name, help, Type::gauge, labels, nullptr);
  if (series.read_gauge) {
    throw std::invalid_argument(fmt::format("gauge '{}' with these labels is read from a callback", name));
  }
  if (!series.gauge) {
    series.gauge = std::make_unique<Gauge>();
  }
  return *series.gauge;
}

Histogram& MetricsRegistry::histogram(std::string_view name, std::string_view help,
                                      std::vector<double> upper_bounds, MetricLabels labels) {
  std::lock_guard lock(mutex_);
  Series& series = series_for(name, help, Type::histogram, labels, &upper_bounds);
  if (!series.histogram) {
    series.histogram = std::make_unique<Histogram>(std::move(upper_bounds));
  }
  return *series.histogram;
}

void MetricsRegistry::counter_callback(std::string_view name, std::string_view help, MetricLabels labels,
                                       std::function<std::uint64_t()> read) {
  std::lock_guard lock(mutex_);
  Series& series = series_for(name, help, Type::counter, labels, nullptr);
  if (series.counter) {
    throw std::invalid_argument(fmt::format("counter '{}' with these labels is already owned", name));
  }
  series.read_counter = std::move(read);
}

void MetricsRegistry::gauge_callback(std::string_view name, std::string_view help, MetricLabels labels,
                                     std::function<double()> read) {
  std::lock_guard lock(mutex_);
  Series& series = series_for(name, help, Type::gauge, labels, nullptr);
  if (series.gauge) {
    throw std::invalid_argument(fmt::format("gauge '{}' with these labels is already owned", name));
  }
  series.read_gauge = std::move(read);
}

std::string MetricsRegistry::render_prometheus() const {
  // Copy what to render under the lock, then read values and run callbacks without it: a
  // callback may take the daemon's own locks, and a thread holding those may be registering a
  // series right now (lock-order inversion otherwise). Series are never removed, so the
  // pointers stay valid and are copied under the lock.
  struct Item {
    std::string labels_text;
    const Counter* counter;
    const Gauge* gauge;
    const Histogram* histogram;
    MetricLabels labels;
    std::function<std::uint64_t()> read_counter;
    std::function<double()> read_gauge;
  };
  struct FamilyView {
    std::string name;
    Type type;
    std::string help;
    std::vector<Item> items;
  };
  std::vector<FamilyView> view;
  {
    std::lock_guard lock(mutex_);
    view.reserve(families_.size());
    for (const auto& [name, family] : families_) {
      FamilyView f{name, family.type, family.help, {}};
      f.items.reserve(family.series.size());
      for (const auto& [labels_text, series] : family.series) {
        f.items.push_back(Item{labels_text, series.counter.get(), series.gauge.get(), series.histogram.get(),
                               series.labels, series.read_counter, series.read_gauge});
      }
      view.push_back(std::move(f));
    }
  }

  std::string out;
  for (const auto& family : view) {
    const std::string& name = family.name;
    out += "# HELP ";
    out += name;
    out += ' ';
    append_escaped(out, family.help, false);
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type_name(static_cast<int>(family.type));
    out += '\n';
    for (const auto& item : family.items) {
      const std::string& labels_text = item.labels_text;
      switch (family.type) {
        case Type::counter: {
          std::uint64_t value = 0;
          if (item.read_counter) {
            try {
              value = item.read_counter();
            } catch (...) {
              continue;  // a broken source must not break the whole scrape
            }
          } else if (item.counter) {
            value = item.counter->value();
          } else {
            continue;
          }
          out += fmt::format("{}{} {}\n", name, labels_text, value);
          break;
        }
        case Type::gauge: {
          double value = 0.0;
          if (item.read_gauge) {
            try {
              value = item.read_gauge();
            } catch (...) {
              continue;
            }
          } else if (item.gauge) {
            value = item.gauge->value();
          } else {
            continue;
          }
          out += fmt::format("{}{} {}\n", name, labels_text, format_value(value));
          break;
        }
        case Type::histogram: {
          if (!item.histogram) {
            continue;
          }
          const Histogram::Snapshot s = item.histogram->snapshot();
          std::uint64_t cumulative = 0;
          for (std::size_t i = 0; i < s.bucket_counts.size(); ++i) {
            cumulative += s.bucket_counts[i];
            const std::string le = i < s.upper_bounds.size() ? format_value(s.upper_bounds[i]) : "+Inf";
            out += fmt::format("{}_bucket{} {}\n", name, render_labels(item.labels, "le", le), cumulative);
          }
          out += fmt::format("{}_sum{} {}\n", name, labels_text, format_value(s.sum));
          out += fmt::format("{}_count{} {}\n", name, labels_text, s.count);
          break;
        }
      }
    }
  }
  return out;
}

}  // namespace shoredaq::firmware
