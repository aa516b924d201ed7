#pragma once
// A small, strict parser for the Prometheus text exposition format (0.0.4), for tests: it parses
// what /metrics serves and collects every rule violation it finds instead of trusting the renderer.

#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace shoredaq::test {

struct PrometheusSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0.0;
};

struct PrometheusFamily {
  std::string type;
  std::string help;
  std::vector<PrometheusSample> samples;
};

struct PrometheusText {
  std::map<std::string, PrometheusFamily> families;
  std::vector<std::string> errors;  // empty when the text is valid

  // Value of the sample `name` with exactly these labels.
  std::optional<double> value(const std::string& name, const std::map<std::string, std::string>& labels = {}) const {
    for (const auto& [family_name, family] : families) {
      for (const auto& sample : family.samples) {
        if (sample.name == name && sample.labels == labels) {
          return sample.value;
        }
      }
    }
    return std::nullopt;
  }
};

namespace detail {

inline bool valid_name(std::string_view s, bool colon_ok) {
  if (s.empty()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon_ok && c == ':') ||
                    (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

inline std::optional<double> parse_value(std::string_view s) {
  if (s == "+Inf") return HUGE_VAL;
  if (s == "-Inf") return -HUGE_VAL;
  if (s == "NaN") return std::nan("");
  if (s.empty()) return std::nullopt;
  const std::string text(s);
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return std::nullopt;
  return v;
}

inline bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace detail

inline PrometheusText parse_prometheus_text(std::string_view text) {
  PrometheusText out;
  auto error = [&](std::size_t line_no, const std::string& what) {
    out.errors.push_back("line " + std::to_string(line_no) + ": " + what);
  };
  if (!text.empty() && text.back() != '\n') {
    out.errors.push_back("text does not end with a newline");
  }
  std::string current_family;        // family whose samples we are reading
  std::set<std::string> finished;    // families whose block ended (must not reappear)
  std::set<std::string> series_seen; // name + labels
  std::size_t line_no = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t eol = text.find('\n', pos);
    const std::string_view line = text.substr(pos, eol == std::string_view::npos ? text.size() - pos : eol - pos);
    pos = eol == std::string_view::npos ? text.size() : eol + 1;
    ++line_no;
    if (line.empty()) continue;

    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
      const bool is_type = line[2] == 'T';
      const std::string_view rest = line.substr(7);
      const std::size_t space = rest.find(' ');
      const std::string name(rest.substr(0, space));
      const std::string_view arg = space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1);
      if (!detail::valid_name(name, true)) error(line_no, "bad metric name in comment: " + name);
      if (name != current_family) {
        if (!current_family.empty()) finished.insert(current_family);
        if (finished.count(name)) error(line_no, "family " + name + " appears twice (not contiguous)");
        current_family = name;
      }
      auto& family = out.families[name];
      if (is_type) {
        if (!family.type.empty()) error(line_no, "second TYPE for " + name);
        if (!family.samples.empty()) error(line_no, "TYPE after samples for " + name);
        if (arg != "counter" && arg != "gauge" && arg != "histogram" && arg != "summary" && arg != "untyped")
          error(line_no, "unknown type " + std::string(arg));
        family.type = std::string(arg);
      } else {
        if (!family.help.empty()) error(line_no, "second HELP for " + name);
        // HELP escapes: only \\ and \n are allowed.
        std::string help;
        for (std::size_t i = 0; i < arg.size(); ++i) {
          if (arg[i] == '\\') {
            if (i + 1 >= arg.size() || (arg[i + 1] != '\\' && arg[i + 1] != 'n')) error(line_no, "bad escape in HELP");
            help += arg[i + 1] == 'n' ? '\n' : '\\';
            ++i;
          } else {
            help += arg[i];
          }
        }
        family.help = help;
      }
      continue;
    }
    if (line[0] == '#') continue;  // other comments are allowed

    // sample: name[{labels}] value [timestamp]
    PrometheusSample sample;
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    sample.name = std::string(line.substr(0, i));
    if (!detail::valid_name(sample.name, true)) {
      error(line_no, "bad sample name: " + sample.name);
      continue;
    }
    if (i < line.size() && line[i] == '{') {
      ++i;
      bool ok = true;
      while (ok && i < line.size() && line[i] != '}') {
        std::size_t eq = line.find('=', i);
        if (eq == std::string_view::npos) { ok = false; break; }
        const std::string label(line.substr(i, eq - i));
        if (!detail::valid_name(label, false)) { error(line_no, "bad label name: " + label); ok = false; break; }
        i = eq + 1;
        if (i >= line.size() || line[i] != '"') { ok = false; break; }
        ++i;
        std::string value;
        while (i < line.size() && line[i] != '"') {
          if (line[i] == '\\') {
            if (i + 1 >= line.size()) { ok = false; break; }
            const char e = line[i + 1];
            if (e == 'n') value += '\n';
            else if (e == '\\' || e == '"') value += e;
            else { error(line_no, "bad escape in label value"); ok = false; break; }
            i += 2;
          } else {
            value += line[i++];
          }
        }
        if (!ok || i >= line.size()) { ok = false; break; }
        ++i;  // closing quote
        if (sample.labels.count(label)) error(line_no, "duplicate label " + label);
        sample.labels[label] = value;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (!ok || i >= line.size() || line[i] != '}') {
        error(line_no, "malformed label set");
        continue;
      }
      ++i;
    }
    if (i >= line.size() || line[i] != ' ') {
      error(line_no, "missing value");
      continue;
    }
    const std::string_view rest = line.substr(i + 1);
    const std::string_view value_text = rest.substr(0, rest.find(' '));
    const auto value = detail::parse_value(value_text);
    if (!value) {
      error(line_no, "bad value: " + std::string(value_text));
      continue;
    }
    sample.value = *value;

    // Which family does this sample belong to?
    std::string family_name = sample.name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      if (detail::ends_with(sample.name, suffix)) {
        const std::string base = sample.name.substr(0, sample.name.size() - std::string_view(suffix).size());
        if (out.families.count(base) && out.families[base].type == "histogram") family_name = base;
      }
    }
    if (family_name != current_family) {
      error(line_no, "sample " + sample.name + " outside its family block (missing or misplaced TYPE)");
      continue;
    }
    auto& family = out.families[family_name];
    if (family.type.empty()) error(line_no, "sample before TYPE for " + family_name);
    if (family.type == "counter") {
      if (!detail::ends_with(sample.name, "_total")) error(line_no, "counter without _total: " + sample.name);
      if (!(sample.value >= 0)) error(line_no, "negative or NaN counter " + sample.name);
    }
    std::string key = sample.name + "{";
    for (const auto& [k, v] : sample.labels) key += k + "=" + v + ",";
    if (!series_seen.insert(key).second) error(line_no, "duplicate series " + key);
    family.samples.push_back(std::move(sample));
  }

  // Histogram consistency: per label set, buckets sorted by le, cumulative, +Inf == _count.
  for (const auto& [name, family] : out.families) {
    if (family.type != "histogram") continue;
    std::map<std::map<std::string, std::string>, std::vector<std::pair<double, double>>> buckets;
    std::map<std::map<std::string, std::string>, double> counts;
    for (const auto& s : family.samples) {
      if (s.name == name + "_bucket") {
        auto labels = s.labels;
        if (!labels.count("le")) { out.errors.push_back(name + ": bucket without le"); continue; }
        const auto le = detail::parse_value(labels["le"]);
        labels.erase("le");
        if (!le) { out.errors.push_back(name + ": bad le"); continue; }
        buckets[labels].push_back({*le, s.value});
      } else if (s.name == name + "_count") {
        counts[s.labels] = s.value;
      }
    }
    for (const auto& [labels, list] : buckets) {
      for (std::size_t k = 1; k < list.size(); ++k) {
        if (!(list[k].first > list[k - 1].first)) out.errors.push_back(name + ": le not increasing");
        if (list[k].second < list[k - 1].second) out.errors.push_back(name + ": buckets not cumulative");
      }
      if (list.empty() || !std::isinf(list.back().first)) {
        out.errors.push_back(name + ": no +Inf bucket");
      } else if (!counts.count(labels) || counts.at(labels) != list.back().second) {
        out.errors.push_back(name + ": +Inf bucket differs from _count");
      }
    }
  }
  return out;
}

}  // namespace shoredaq::test
