// HIL: the monitoring/ files against the real thing. The Prometheus rules pass promtool, and every
// metric the Grafana dashboard and the rules read is one the node serves on /metrics; a real
// Prometheus (the Debian binary) scraping a running node evaluates the rules without error, keeps
// ShoredaqDomsMissing quiet while du-sim feeds every DOM, and fires it for the right DU when one
// DOM goes silent. Skips when prometheus/promtool are not installed.
#include <gtest/gtest.h>

#include <cctype>
#include <set>

#include "../../firmware/tests/metrics_text_parser.hpp"
#include "hil_support.hpp"
#include "shoredaq/formats/detector.hpp"

using namespace hil;

namespace {

const fs::path kMonitoring = fs::path(SHOREDAQ_SOURCE_DIR) / "monitoring";
const fs::path kRules = kMonitoring / "prometheus" / "shoredaq-rules.yml";
const fs::path kDashboard = kMonitoring / "grafana" / "shoredaq-dashboard.json";

// The executable `name` on PATH, "" when there is none.
std::string on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const fs::path candidate = fs::path(dir) / name;
    if (!dir.empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return {};
}

// The metric names a PromQL expression reads: every identifier outside strings, label matchers,
// range selectors and grouping label lists that is neither a function call nor a keyword.
std::set<std::string> metric_names_in(std::string_view query) {
  static const std::set<std::string, std::less<>> kNotMetrics{
      "and", "or", "unless", "bool", "offset", "inf", "nan", "sum", "min", "max", "avg", "count", "group",
      "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values"};
  static const std::set<std::string, std::less<>> kLabelLists{"by", "without", "on", "ignoring", "group_left",
                                                              "group_right"};
  const auto word_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':'; };
  std::set<std::string> names;
  std::size_t i = 0;
  const auto skip_string = [&] {  // i at the opening quote
    const char quote = query[i];
    for (++i; i < query.size() && query[i] != quote; ++i) i += query[i] == '\\' ? 1 : 0;
    ++i;
  };
  // Moves i past the `close` that ends the construct opened at i, stepping over quoted strings.
  const auto skip_past = [&](char close) {
    for (++i; i < query.size() && query[i] != close;) {
      if (query[i] == '"' || query[i] == '\'') {
        skip_string();
      } else {
        ++i;
      }
    }
    ++i;
  };
  while (i < query.size()) {
    const char c = query[i];
    if (c == '"' || c == '\'') {
      skip_string();
    } else if (c == '{') {
      skip_past('}');
    } else if (c == '[') {
      skip_past(']');
    } else if (c == '$') {  // a Grafana variable
      ++i;
      if (i < query.size() && query[i] == '{') skip_past('}');
      while (i < query.size() && word_char(query[i])) ++i;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {  // numbers and durations (5m, 1e9)
      while (i < query.size() && (word_char(query[i]) || query[i] == '.')) ++i;
    } else if (word_char(c)) {
      const std::size_t start = i;
      while (i < query.size() && word_char(query[i])) ++i;
      const std::string word(query.substr(start, i - start));
      std::size_t next = i;
      while (next < query.size() && query[next] == ' ') ++next;
      const bool call = next < query.size() && query[next] == '(';
      if (kLabelLists.contains(word)) {
        if (call) {
          i = next;
          skip_past(')');
        }
      } else if (!call && !kNotMetrics.contains(word)) {
        names.insert(word);
      }
    } else {
      ++i;
    }
  }
  return names;
}

// Every PromQL expression of the dashboard: panel targets (also inside rows) and the queries of the
// template variables (label_values(<series>, <label>): the series part).
void collect_dashboard_queries(const nlohmann::json& node, std::vector<std::string>& out) {
  if (node.is_object()) {
    if (node.contains("expr") && node["expr"].is_string()) out.push_back(node["expr"]);
    if (node.value("type", "") == "query" && node.contains("query")) {
      const auto& q = node["query"];
      const std::string text = q.is_object() ? q.value("query", "") : q.get<std::string>();
      std::smatch m;
      if (std::regex_match(text, m, std::regex(R"(label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\))"))) {
        out.push_back(m[1].str());
      } else {
        out.push_back(text);
      }
    }
    for (const auto& [key, value] : node.items()) {
      if (key != "expr" && key != "query") collect_dashboard_queries(value, out);
    }
  } else if (node.is_array()) {
    for (const auto& item : node) collect_dashboard_queries(item, out);
  }
}

std::set<std::string> served_metric_names(const std::string& metrics_text) {
  const auto parsed = shoredaq::test::parse_prometheus_text(metrics_text);
  std::set<std::string> names;
  for (const auto& [family, f] : parsed.families) {
    names.insert(family);
    for (const auto& s : f.samples) names.insert(s.name);
  }
  return names;
}

std::string url_encoded(std::string_view text) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// The rules file with every `for:` set to 0s, so an alert fires at its first evaluation that
// matches instead of minutes later (the expressions stay exactly the shipped ones).
std::string rules_firing_at_once(const std::string& rules, int& for_lines) {
  std::istringstream in(rules);
  std::ostringstream out;
  for_lines = 0;
  for (std::string line; std::getline(in, line);) {
    const auto indent = line.find_first_not_of(' ');
    if (indent != std::string::npos && line.compare(indent, 4, "for:") == 0) {
      line = line.substr(0, indent) + "for: 0s";
      ++for_lines;
    }
    out << line << '\n';
  }
  return out.str();
}

// A node fed over ZeroMQ (an ipc:// endpoint of our own) that also has a CLB UDP socket, so that
// every series the dashboard reads exists, with metrics on a port of its choice.
struct MonitoredNode {
  TempDir sockets{"prom-ipc"};
  std::string ingest = "ipc://" + (sockets / "ingest.sock").string();
  Rig rig{"prometheus", "first:2",
          "[ingest]\nendpoints = [\"" + ingest + "\"]\nudp = [\"optical@127.0.0.1:0\"]\n"
          "[metrics]\nenabled = true\nlisten_address = \"127.0.0.1\"\nport = 0\n",
          "", "disk_reserve_mb = 1\n"};
  int metrics_port = metrics_port_of(rig.daemon());

  std::vector<std::string> du_sim(std::uint32_t run, unsigned slices, std::uint64_t seed) const {
    auto args = rig.du_sim_args(run, slices, seed);
    for (std::size_t i = 0; i + 1 < args.size(); ++i) {
      if (args[i] == "--endpoint") args[i + 1] = ingest;
    }
    return args;
  }
};

// A Prometheus server on a free loopback port scraping `target` every second.
class Prometheus {
 public:
  Prometheus(const std::string& binary, const fs::path& dir, const fs::path& rules, int target_port) : port_(free_port()) {
    fs::create_directories(dir / "data");
    write_file(dir / "prometheus.yml",
               "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
               "rule_files:\n  - " + rules.string() + "\n"
               "scrape_configs:\n  - job_name: shoredaq\n    static_configs:\n      - targets: [\"127.0.0.1:" +
                   std::to_string(target_port) + "\"]\n");
    child_ = Child({binary, "--config.file=" + (dir / "prometheus.yml").string(),
                    "--storage.tsdb.path=" + (dir / "data").string(), "--web.listen-address=127.0.0.1:" + std::to_string(port_)},
                   dir / "prometheus.out", dir / "prometheus.err");
  }
  ~Prometheus() {
    child_.signal(SIGTERM);
    if (!child_.wait(10s)) child_.signal(SIGKILL);
  }
  bool ready() { return child_.running() && http_request(port_, "/-/ready").code == 200; }
  std::string log() const { return child_.err(); }

  // The `data` of an API reply whose status is success; null otherwise.
  nlohmann::json api(const std::string& path_and_query) const {
    const auto reply = nlohmann::json::parse(http_get(port_, path_and_query), nullptr, false);
    if (reply.is_discarded() || reply.value("status", "") != "success") return nullptr;
    return reply["data"];
  }
  nlohmann::json query(const std::string& promql) const { return api("/api/v1/query?query=" + url_encoded(promql)); }
  // The instant vector of `promql` (empty when the query fails or matches nothing).
  nlohmann::json vector(const std::string& promql) const {
    const auto data = query(promql);
    return data.is_object() ? data["result"] : nlohmann::json::array();
  }
  nlohmann::json alerts(const std::string& name) const {
    nlohmann::json matching = nlohmann::json::array();
    const auto data = api("/api/v1/alerts");
    if (data.is_object()) {
      for (const auto& a : data["alerts"]) {
        if (a["labels"].value("alertname", "") == name) matching.push_back(a);
      }
    }
    return matching;
  }
  // Every rule of every loaded group, as /api/v1/rules describes it.
  std::vector<nlohmann::json> rules() const {
    std::vector<nlohmann::json> all;
    const auto data = api("/api/v1/rules");
    if (data.is_object()) {
      for (const auto& g : data["groups"]) {
        for (const auto& r : g["rules"]) all.push_back(r);
      }
    }
    return all;
  }
  // Waits until `rule` has been evaluated twice more than when called, so its last evaluation
  // started after this call and sees every sample ingested before it.
  bool wait_two_evaluations_of(const std::string& rule) const {
    const auto last_evaluation = [&] {
      for (const auto& r : rules()) {
        if (r.value("name", "") == rule) return r.value("lastEvaluation", "");
      }
      return std::string();
    };
    std::string seen = last_evaluation();
    int evaluations = 0;
    return wait_until([&] {
      const std::string now = last_evaluation();
      if (!now.empty() && now != seen) {
        seen = now;
        ++evaluations;
      }
      return evaluations >= 2;
    }, 15s, 100ms);
  }

 private:
  int port_;
  Child child_;
};

std::uint32_t first_dom_of(const shoredaq::dataflow::Detector& detector, int du) {
  for (const auto& m : detector.modules()) {
    if (m.du == du && !m.is_base()) return m.id;
  }
  return 0;
}

}  // namespace

TEST(HilPrometheus, RulesAndDashboardReadOnlyServedMetrics) {
  const std::string promtool = on_path("promtool");
  if (promtool.empty()) GTEST_SKIP() << "promtool is not installed (Debian package prometheus): rules not checked";
  TempDir scratch("promtool");
  const auto check = run({promtool, "check", "rules", kRules.string()}, scratch.path());
  ASSERT_EQ(check.code, 0) << check.out << check.err;

  MonitoredNode node;
  ASSERT_GT(node.metrics_port, 0);
  node.rig.start_run(1);  // the per-DU and per-socket series exist from the run's start
  const std::string text = http_get(node.metrics_port, "/metrics");
  const auto served = served_metric_names(text);
  ASSERT_TRUE(served.contains("shoredaq_du_doms_reporting")) << text;

  // The disk series the rules need: free space where the store lives, and the configured reserve.
  const auto parsed = shoredaq::test::parse_prometheus_text(text);
  const auto store_free = parsed.value("shoredaq_disk_free_bytes", {{"area", "store"}});
  ASSERT_TRUE(store_free.has_value()) << text;
  EXPECT_GT(*store_free, 0.0);
  EXPECT_LE(*store_free, static_cast<double>(fs::space(node.rig.node().store()).capacity));
  EXPECT_TRUE(parsed.value("shoredaq_disk_free_bytes", {{"area", "spool"}}).has_value()) << text;
  EXPECT_EQ(parsed.value("shoredaq_disk_reserve_bytes"), 1024.0 * 1024.0) << text;

  const auto dashboard = nlohmann::json::parse(read_file(kDashboard), nullptr, false);
  ASSERT_FALSE(dashboard.is_discarded()) << kDashboard << " is not valid JSON";
  EXPECT_GE(dashboard.value("schemaVersion", 0), 36);  // Grafana 9 and later
  bool has_datasource_variable = false;
  for (const auto& v : dashboard["templating"]["list"])
    has_datasource_variable |= v.value("type", "") == "datasource" && v.value("name", "") == "DS_PROMETHEUS";
  EXPECT_TRUE(has_datasource_variable);
  std::vector<std::string> queries;
  collect_dashboard_queries(dashboard, queries);
  EXPECT_GE(queries.size(), 20u);
  for (const auto& q : queries) {
    const auto names = metric_names_in(q);
    EXPECT_FALSE(names.empty()) << q;
    for (const auto& name : names) EXPECT_TRUE(served.contains(name)) << name << " (in `" << q << "`) is not in /metrics";
  }
  // The extraction itself: grouping labels, functions, strings and durations are not metrics.
  EXPECT_EQ(metric_names_in(R"(sum by (stage) (rate(a_total{cause!~"x.y"}[5m])) > on (job) group_left () b * 2)"),
            (std::set<std::string>{"a_total", "b"}));
  node.rig.stop_run();
  node.rig.quit();
}

TEST(HilPrometheus, DomsMissingAlertFiresOnARealPrometheus) {
  const std::string prometheus_binary = on_path("prometheus");
  if (prometheus_binary.empty()) GTEST_SKIP() << "prometheus is not installed (Debian package prometheus)";

  MonitoredNode node;
  ASSERT_GT(node.metrics_port, 0);
  const fs::path dir = node.rig.tmp() / "prometheus";
  fs::create_directories(dir);
  int for_lines = 0;
  write_file(dir / "rules.yml", rules_firing_at_once(read_file(kRules), for_lines));
  ASSERT_GT(for_lines, 0);
  Prometheus prom(prometheus_binary, dir, dir / "rules.yml", node.metrics_port);
  ASSERT_TRUE(wait_until([&] { return prom.ready(); }, 20s, 100ms)) << prom.log();

  // Healthy: every DOM of both DUs sends; once Prometheus holds that, the alert stays inactive.
  node.rig.start_run(1);
  node.rig.feed(node.du_sim(1, 15, 31));
  ASSERT_TRUE(wait_until([&] {
    return !prom.vector(R"(up{job="shoredaq"} == 1)").empty() && !prom.vector("shoredaq_slices_written_total > 0").empty() &&
           prom.vector("shoredaq_du_doms_expected == 18 and shoredaq_du_doms_reporting == 18").size() == 2;
  }, 20s, 200ms)) << prom.vector("{__name__=~\"shoredaq_du_doms.*\"}").dump() << prom.log();
  ASSERT_TRUE(prom.wait_two_evaluations_of("ShoredaqDomsMissing"));
  EXPECT_TRUE(prom.alerts("ShoredaqDomsMissing").empty()) << prom.alerts("ShoredaqDomsMissing").dump(1);

  // Every shipped rule loaded and evaluates without error, and reads only series the node serves
  // (or Prometheus' own `up`, or the file's recording rules).
  const auto rules = prom.rules();
  EXPECT_EQ(static_cast<int>(std::count_if(rules.begin(), rules.end(), [](const auto& r) { return r["type"] == "alerting"; })),
            for_lines);
  std::set<std::string> known = served_metric_names(http_get(node.metrics_port, "/metrics"));
  known.insert("up");
  for (const auto& r : rules) {
    if (r["type"] == "recording") known.insert(r.value("name", ""));
  }
  for (const auto& r : rules) {
    EXPECT_EQ(r.value("health", ""), "ok") << r.dump(1);
    for (const auto& name : metric_names_in(r.value("query", "")))
      EXPECT_TRUE(known.contains(name)) << name << " in rule " << r.value("name", "");
  }
  // The dashboard's queries run on this Prometheus (Grafana's variables filled in as Grafana would).
  std::vector<std::string> queries;
  collect_dashboard_queries(nlohmann::json::parse(read_file(kDashboard)), queries);
  for (auto q : queries) {
    for (const auto& [variable, value] : {std::pair<std::string, std::string>{"$__rate_interval", "1m"}, {"$instance", ".*"}, {"$du", ".*"}}) {
      for (auto at = q.find(variable); at != std::string::npos; at = q.find(variable)) q.replace(at, variable.size(), value);
    }
    EXPECT_TRUE(prom.query(q).is_object()) << "Prometheus refuses the dashboard query " << q;
  }

  // Faulty: a new run in which one DOM of the second DU sends nothing.
  node.rig.stop_run();
  const auto detector = shoredaq::dataflow::Detector::load(node.rig.detx());
  const int silent_du = detector.du_ids().back();
  const std::uint32_t silent_dom = first_dom_of(detector, silent_du);
  ASSERT_NE(silent_dom, 0u);
  node.rig.start_run(2);
  auto faulty = node.du_sim(2, 15, 32);
  faulty.insert(faulty.end(), {"--silent-dom", std::to_string(silent_dom)});
  node.rig.feed(faulty);
  // At a run's start no DOM has reported yet; the alert to wait for is the one with one DOM missing.
  nlohmann::json firing;
  EXPECT_TRUE(wait_until([&] {
    firing = prom.alerts("ShoredaqDomsMissing");
    return firing.size() == 1 && firing[0].value("state", "") == "firing" && std::stod(firing[0].value("value", "0")) == 1.0;
  }, 20s, 200ms)) << firing.dump(1) << prom.vector("{__name__=~\"shoredaq_du_doms.*\"}").dump();
  ASSERT_EQ(firing.size(), 1u);
  EXPECT_EQ(firing[0]["labels"].value("du", ""), std::to_string(silent_du));
  EXPECT_EQ(firing[0]["labels"].value("severity", ""), "warning");
  EXPECT_NE(firing[0]["annotations"].value("summary", "").find("DU " + std::to_string(silent_du)), std::string::npos)
      << firing.dump(1);
  node.rig.stop_run();
  node.rig.quit();
}
