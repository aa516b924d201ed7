// [ring]: the raw-data ring buffer and its dumps (config.hpp RingSection).
#include "config_reader.hpp"

namespace shoredaq::firmware::config_detail {

void read_ring_section(const toml::table& root, NodeConfig& c) {
  SectionReader r(section(root, "ring"), "ring");
  r.boolean("enabled", c.ring.enabled);
  r.file_path("dir", c.ring.dir);
  r.integer("seconds", c.ring.seconds, 1, 86'400);
  r.integer("max_mb", c.ring.max_mb, 1, 16 * 1024 * 1024);
  r.integer("queue_slices", c.ring.queue_slices, 1, 10'000);
  r.integer("max_dump_seconds", c.ring.max_dump_seconds, 1, 86'400);
  r.boolean("sn_dump", c.ring.sn_dump);
  r.integer("sn_dump_before_s", c.ring.sn_dump_before_s, 0, 86'400);
  r.integer("sn_dump_after_s", c.ring.sn_dump_after_s, 0, 86'400);
  r.reject_unknown();
  if (c.ring.enabled && !c.spool.enabled)
    fail("ring.enabled", "dumps are written into the Tier-0 spool: the ring needs spool.enabled = true");
  if (c.ring.sn_dump_before_s + c.ring.sn_dump_after_s == 0)
    fail("ring.sn_dump_after_s", "the supernova dump window is empty (sn_dump_before_s + sn_dump_after_s = 0)");
}

}  // namespace shoredaq::firmware::config_detail
