#include "shoredaq/filters/trigger_parameters.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <vector>

#include <toml++/toml.h>

namespace shoredaq::filters {
namespace {

// One key of the [trigger] section: where it lives, its type, its allowed range and the field.
struct Field {
  const char* table;  // sub-table of [trigger], "" for [trigger] itself
  const char* key;
  enum class Kind { Bool, Int, Double, Hrv } kind;
  double min = 0, max = 0;
  void* target = nullptr;
};

void add_trigger(std::vector<Field>& f, const char* table, TriggerSettings& s) {
  f.push_back({table, "enabled", Field::Kind::Bool, 0, 0, &s.enabled});
  f.push_back({table, "number_of_hits", Field::Kind::Int, 2, 10000, &s.number_of_hits});
  f.push_back({table, "number_of_modules", Field::Kind::Int, 1, 10000, &s.number_of_modules});
  f.push_back({table, "d_max_m", Field::Kind::Double, 1, 2000, &s.d_max_m});
  f.push_back({table, "t_max_extra_ns", Field::Kind::Double, 0, 1000, &s.t_max_extra_ns});
  f.push_back({table, "factory_limit", Field::Kind::Int, 2, 1000000, &s.factory_limit});
}

std::vector<Field> fields_of(TriggerParameters& p) {
  std::vector<Field> f;
  f.push_back({"", "snapshot_window_ns", Field::Kind::Double, 0, 1e6, &p.snapshot_window_ns});
  f.push_back({"", "snapshot_max_distance_m", Field::Kind::Double, 0, 1e5, &p.snapshot_max_distance_m});
  f.push_back({"", "max_hits_per_frame", Field::Kind::Int, 1, 1e8, &p.max_hits_per_frame});
  f.push_back({"", "high_rate_veto_hz", Field::Kind::Double, 0, 1e9, &p.high_rate_veto_hz});
  f.push_back({"", "hrv_policy", Field::Kind::Hrv, 0, 0, &p.hrv_policy});
  f.push_back({"l1", "window_ns", Field::Kind::Double, 0.1, 1000, &p.l1_window_ns});
  f.push_back({"l1", "combine", Field::Kind::Bool, 0, 0, &p.combine_l1});
  f.push_back({"l2", "ct_min", Field::Kind::Double, -1, 1, &p.ct_min});
  f.push_back({"l2", "window_ns", Field::Kind::Double, 0.1, 1000, &p.l2_window_ns});
  f.push_back({"l2", "min_hits", Field::Kind::Int, 2, 31, &p.l2_min});
  add_trigger(f, "shower3d", p.shower3d);
  add_trigger(f, "mxshower", p.mxshower);
  add_trigger(f, "muon3d", p.muon3d);
  f.push_back({"muon3d", "road_width_m", Field::Kind::Double, 1, 500, &p.muon3d.road_width_m});
  f.push_back({"muon3d", "grid_angle_deg", Field::Kind::Double, 1, 90, &p.muon3d.grid_angle_deg});
  f.push_back({"prescale", "l0", Field::Kind::Int, 0, 1e9, &p.prescale_l0});
  f.push_back({"prescale", "l1", Field::Kind::Int, 0, 1e9, &p.prescale_l1});
  f.push_back({"prescale", "l2", Field::Kind::Int, 0, 1e9, &p.prescale_l2});
  f.push_back({"prescale", "sn", Field::Kind::Int, 0, 1e9, &p.prescale_sn});
  f.push_back({"prescale", "sn_min_multiplicity", Field::Kind::Int, 2, 31, &p.sn_min_multiplicity});
  SupernovaSettings& sn = p.supernova;
  f.push_back({"supernova", "enabled", Field::Kind::Bool, 0, 0, &sn.enabled});
  f.push_back({"supernova", "coincidence_window_ns", Field::Kind::Double, 0.1, 1000, &sn.coincidence_window_ns});
  f.push_back({"supernova", "min_multiplicity", Field::Kind::Int, 2, 31, &sn.min_multiplicity});
  f.push_back({"supernova", "max_multiplicity", Field::Kind::Int, 2, 31, &sn.max_multiplicity});
  f.push_back({"supernova", "correlated_veto_window_ns", Field::Kind::Double, 0, 1e6, &sn.correlated_veto_window_ns});
  f.push_back({"supernova", "window_ms", Field::Kind::Double, 100, 60'000, &sn.window_ms});
  f.push_back({"supernova", "baseline_s", Field::Kind::Double, 1, 86'400, &sn.baseline_s});
  f.push_back({"supernova", "min_baseline_s", Field::Kind::Double, 0.1, 86'400, &sn.min_baseline_s});
  f.push_back({"supernova", "alert_threshold_sigma", Field::Kind::Double, 0, 37, &sn.alert_threshold_sigma});
  f.push_back({"supernova", "hold_off_s", Field::Kind::Double, 0, 86'400, &sn.hold_off_s});
  f.push_back({"supernova", "burst_rate_factor", Field::Kind::Double, 0, 1000, &sn.burst_rate_factor});
  f.push_back({"supernova", "burst_median_s", Field::Kind::Double, 1, 300, &sn.burst_median_s});
  return f;
}

std::string path_of(const Field& f) {
  std::string p = "trigger.";
  if (*f.table) p += std::string(f.table) + ".";
  return p + f.key;
}

std::string format_number(double v) {
  std::ostringstream os;
  os.precision(12);
  os << v;
  return os.str();
}

std::string range_text(const Field& f) {
  // Built with += : GCC 12 -O3 warns falsely (-Wrestrict) on "literal" + std::string&&.
  std::string text("[");
  text += format_number(f.min);
  text += ", ";
  text += format_number(f.max);
  text += "]";
  return text;
}

// Applies one TOML value to its field; returns an error text or "".
std::string apply(const Field& f, const toml::node& node) {
  const std::string path = path_of(f);
  switch (f.kind) {
    case Field::Kind::Bool: {
      auto v = node.value_exact<bool>();
      if (!v) return path + ": expected true or false";
      *static_cast<bool*>(f.target) = *v;
      return "";
    }
    case Field::Kind::Int: {
      auto v = node.value_exact<std::int64_t>();
      if (!v) return path + ": expected an integer in " + range_text(f);
      if (static_cast<double>(*v) < f.min || static_cast<double>(*v) > f.max)
        return path + " = " + std::to_string(*v) + ": out of range " + range_text(f);
      *static_cast<int*>(f.target) = static_cast<int>(*v);
      return "";
    }
    case Field::Kind::Double: {
      std::optional<double> v;
      if (node.is_floating_point()) v = node.value_exact<double>();
      else if (node.is_integer()) v = static_cast<double>(*node.value_exact<std::int64_t>());
      if (!v) return path + ": expected a number in " + range_text(f);
      if (!std::isfinite(*v) || *v < f.min || *v > f.max)
        return path + " = " + format_number(*v) + ": out of range " + range_text(f);
      *static_cast<double*>(f.target) = *v;
      return "";
    }
    case Field::Kind::Hrv: {
      auto v = node.value_exact<std::string>();
      if (v && *v == "exclude") *static_cast<HrvPolicy*>(f.target) = HrvPolicy::Exclude;
      else if (v && *v == "keep") *static_cast<HrvPolicy*>(f.target) = HrvPolicy::Keep;
      else return path + ": expected \"exclude\" or \"keep\"";
      return "";
    }
  }
  return path + ": unhandled";
}

const Field* find_field(const std::vector<Field>& fields, std::string_view table, std::string_view key) {
  for (const auto& f : fields)
    if (table == f.table && key == f.key) return &f;
  return nullptr;
}

bool is_sub_table(const std::vector<Field>& fields, std::string_view name) {
  for (const auto& f : fields)
    if (name == f.table) return true;
  return false;
}

}  // namespace

TriggerParametersResult parse_trigger_parameters(std::string_view toml_text) {
  TriggerParametersResult result;
  toml::table root;
  try {
    root = toml::parse(toml_text);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << "TOML syntax error at line " << e.source().begin.line << ": " << e.description();
    result.error = os.str();
    return result;
  }
  TriggerParameters p;
  const auto fields = fields_of(p);
  // Every bad key is reported, not only the first: an operator fixes a run setup in one go.
  std::vector<std::string> errors;
  const toml::node* trigger_node = root.get("trigger");
  if (trigger_node) {
    const toml::table* trigger = trigger_node->as_table();
    if (!trigger) {
      result.error = "trigger: expected a table";
      return result;
    }
    for (const auto& [key, node] : *trigger) {
      const std::string_view k = key.str();
      if (const toml::table* sub = node.as_table(); sub && is_sub_table(fields, k)) {
        for (const auto& [sub_key, sub_node] : *sub) {
          const Field* f = find_field(fields, k, sub_key.str());
          if (!f) {
            errors.push_back(std::string("trigger.") + std::string(k) + "." + std::string(sub_key.str()) + ": unknown key");
          } else if (auto e = apply(*f, sub_node); !e.empty()) {
            errors.push_back(std::move(e));
          }
        }
        continue;
      }
      const Field* f = find_field(fields, "", k);
      if (!f) {
        errors.push_back(std::string("trigger.") + std::string(k) + ": unknown key");
      } else if (auto e = apply(*f, node); !e.empty()) {
        errors.push_back(std::move(e));
      }
    }
  }
  // Cross-field consistency: a cluster needs at least as many hits as modules.
  for (const auto* t : {&p.shower3d, &p.mxshower, static_cast<TriggerSettings*>(&p.muon3d)}) {
    if (t->number_of_modules > t->number_of_hits) {
      const char* name = t == &p.shower3d ? "shower3d" : t == &p.mxshower ? "mxshower" : "muon3d";
      errors.push_back(std::string("trigger.") + name + ".number_of_modules = " + std::to_string(t->number_of_modules) +
                       ": out of range [1, number_of_hits = " + std::to_string(t->number_of_hits) + "]");
    }
  }
  if (p.supernova.min_multiplicity > p.supernova.max_multiplicity)
    errors.push_back("trigger.supernova.min_multiplicity = " + std::to_string(p.supernova.min_multiplicity) +
                     ": out of range [2, max_multiplicity = " + std::to_string(p.supernova.max_multiplicity) + "]");
  if (!errors.empty()) {
    for (const auto& e : errors) result.error += (result.error.empty() ? "" : "; ") + e;
    return result;
  }
  result.parameters = p;
  return result;
}

std::string to_toml(const TriggerParameters& parameters) {
  TriggerParameters p = parameters;
  const auto fields = fields_of(p);
  std::ostringstream os;
  std::string current = "\x01";
  for (const auto& f : fields) {
    if (current != f.table) {
      current = f.table;
      os << (os.tellp() > 0 ? "\n" : "") << "[trigger" << (current.empty() ? "" : ".") << current << "]\n";
    }
    os << f.key << " = ";
    switch (f.kind) {
      case Field::Kind::Bool: os << (*static_cast<bool*>(f.target) ? "true" : "false"); break;
      case Field::Kind::Int: os << *static_cast<int*>(f.target); break;
      case Field::Kind::Double: {
        // Shortest text that reads back to the same double.
        const double v = *static_cast<double*>(f.target);
        char buf[64];
        for (int precision = 1; precision <= 17; ++precision) {
          std::snprintf(buf, sizeof buf, "%.*g", precision, v);
          if (std::strtod(buf, nullptr) == v) break;
        }
        std::string s = buf;
        if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
        os << s;
        break;
      }
      case Field::Kind::Hrv:
        os << (*static_cast<HrvPolicy*>(f.target) == HrvPolicy::Keep ? "\"keep\"" : "\"exclude\"");
        break;
    }
    os << "\n";
  }
  return os.str();
}

}  // namespace shoredaq::filters
