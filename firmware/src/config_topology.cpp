// [topology]: the roles of this process on a farm and the endpoints between them (config.hpp
// TopologySection).
#include "config_reader.hpp"

namespace shoredaq::firmware {

std::string TopologySection::roles_text() const {
  std::string out;
  for (const auto& [on, name] : {std::pair{ingest, "ingest"}, std::pair{filter, "filter"}, std::pair{writer, "writer"}}) {
    if (!on) continue;
    if (!out.empty()) out += '+';
    out += name;
  }
  return out;
}

namespace config_detail {

void read_topology_section(const toml::table& root, NodeConfig& c) {
  SectionReader r(section(root, "topology"), "topology");
  TopologySection& t = c.topology;
  std::vector<std::string> roles{"ingest", "filter", "writer"};
  r.string_list("roles", roles);
  t.ingest = t.filter = t.writer = false;
  for (const std::string& role : roles) {
    bool& on = role == "ingest" ? t.ingest : role == "filter" ? t.filter : t.writer;
    if (role != "ingest" && role != "filter" && role != "writer")
      fail("topology.roles", "\"" + role + "\" is not a role; expected ingest, filter or writer");
    if (on) fail("topology.roles", "\"" + role + "\" is named twice");
    on = true;
  }
  if (roles.empty()) fail("topology.roles", "at least one role (ingest, filter, writer) is required");
  if (t.ingest && t.writer && !t.filter)
    fail("topology.roles", "ingest and writer without filter: the slices between them would not be filtered");
  if (t.filter && t.writer && !t.ingest)
    fail("topology.roles", "filter and writer without ingest: the merged windows would reach the writer out of order; "
                           "run the writer as a process of its own (roles = [\"writer\"])");
  r.integer_list("dus", t.dus, 1, 0xffff'ffffLL);
  if (!t.dus.empty() && !(t.ingest && !t.filter))
    fail("topology.dus", "only an ingest process without the filter role builds part of the detector (its partial slices "
                         "are merged by the filter processes)");
  r.string_list("filter_endpoints", t.filter_endpoints);
  for (const auto& e : t.filter_endpoints) check_endpoint("topology.filter_endpoints", e);
  r.string("slices_endpoint", t.slices_endpoint);
  r.integer("ingest_processes", t.ingest_processes, 1, 1024);
  r.integer("merge_timeout_ms", t.merge_timeout_ms, 10, 600'000);
  r.integer("max_pending_slices", t.max_pending_slices, 1, 4096);
  r.string("results_endpoint", t.results_endpoint);
  r.integer("gap_timeout_ms", t.gap_timeout_ms, 10, 600'000);
  r.integer("send_hwm", t.send_hwm, 1, 100'000);
  r.integer("send_timeout_ms", t.send_timeout_ms, 1, 600'000);
  r.reject_unknown();

  if (t.ingest && !t.filter && t.filter_endpoints.empty())
    fail("topology.filter_endpoints", "an ingest process without the filter role must name the filter processes");
  if (t.filter && !t.ingest) {
    if (t.slices_endpoint.empty())
      fail("topology.slices_endpoint", "a filter process without the ingest role must bind an endpoint for the partial slices");
    check_endpoint("topology.slices_endpoint", t.slices_endpoint);
  }
  if (t.filter != t.writer) {
    if (t.results_endpoint.empty())
      fail("topology.results_endpoint", "a filter or writer process without the other role must name the endpoint between them");
    check_endpoint("topology.results_endpoint", t.results_endpoint);
  }
  if (!t.ingest && !c.ingest.udp.empty())
    fail("ingest.udp", "this process does not have the ingest role: it must not bind CLB UDP ports");
}

}  // namespace config_detail
}  // namespace shoredaq::firmware
