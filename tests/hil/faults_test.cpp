// HIL: named fault scenarios on the live feed (du-sim fault flags and raw garbage from the test):
// silent DOM, late DOM, 10 % datagram loss, duplicates, garbage messages, wrong run number. In each
// the run continues, every slice is accounted for and every dropped datagram/byte has its cause.
#include <gtest/gtest.h>

#include <zmq.hpp>

#include "hil_support.hpp"
#include "shoredaq/formats/detector.hpp"

using namespace hil;

namespace {

std::uint32_t some_dom(const fs::path& detx, std::size_t which) {
  const auto d = shoredaq::dataflow::Detector::load(detx);
  std::vector<std::uint32_t> ids;
  for (const auto& m : d.modules()) {
    if (!m.is_base()) ids.push_back(m.id);
  }
  return ids.at(which % ids.size());
}

std::uint64_t u64(const nlohmann::json& j, const std::string& key) { return j.at(key).get<std::uint64_t>(); }

// Written + dropped-with-a-cause == built, and nothing lost for lack of room.
void expect_all_slices_accounted(const nlohmann::json& status, std::uint64_t expected_slices) {
  const auto& c = status["counters"];
  EXPECT_EQ(u64(c, "slices"), expected_slices) << status.dump(1);
  EXPECT_EQ(u64(c, "slices_written") + drops_with_prefix(status, "pipeline.slices") + drops_with_prefix(status, "store.slices"),
            expected_slices)
      << status.dump(1);
}

constexpr unsigned kSlices = 25;

}  // namespace

TEST(HilFaults, SilentDomSlicesExpireMarkedIncomplete) {
  Rig rig("silent");
  const std::uint32_t dom = some_dom(rig.detx(), 3);
  rig.start_run(1);
  auto sim = rig.feed([&] {
    auto a = rig.du_sim_args(1, kSlices, 11);
    a.insert(a.end(), {"--silent-dom", std::to_string(dom)});
    return a;
  }());
  EXPECT_GT(u64(sim["faults"], "silenced"), 0u);  // datagrams not sent
  // Data-time expiry: all but the last ~10 slices expire while the run goes on.
  ASSERT_TRUE(rig.wait_slices(kSlices - 11)) << rig.status().dump();
  EXPECT_EQ(rig.status()["state"], "Running");
  rig.stop_run();
  const auto status = rig.status();
  const auto& c = status["counters"];
  expect_all_slices_accounted(status, kSlices);
  EXPECT_EQ(u64(c, "builder.slices_expired"), kSlices);
  EXPECT_EQ(u64(c, "builder.slices_complete"), 0u);
  EXPECT_EQ(u64(c, "builder.frames_missing"), kSlices);  // one DOM in every slice
  EXPECT_EQ(u64(c, "filter.frames_missing"), kSlices);
  EXPECT_EQ(u64(c, "ingest.datagrams"), u64(sim, "datagrams_out"));
  // /status names the silent DOM first among the worst DOMs.
  const auto& health = status["detector_health"];
  ASSERT_FALSE(health["worst_doms"].empty()) << health.dump(1);
  EXPECT_EQ(health["worst_doms"][0]["dom_id"], dom) << health.dump(1);
  EXPECT_EQ(health["worst_doms"][0]["slices_missing"], kSlices) << health.dump(1);
  EXPECT_EQ(health["dus"][0]["doms_reporting"], 17) << health.dump(1);
  rig.quit();
}

TEST(HilFaults, TenPercentDatagramLoss) {
  Rig rig("loss");
  rig.start_run(2);
  auto a = rig.du_sim_args(2, kSlices, 12);
  a.insert(a.end(), {"--loss-pct", "10"});
  const auto sim = rig.feed(a);
  const std::uint64_t lost = u64(sim["faults"], "lost");
  EXPECT_GT(lost, u64(sim, "datagrams_generated") / 20);
  rig.stop_run();
  const auto status = rig.status();
  const auto& c = status["counters"];
  expect_all_slices_accounted(status, kSlices);
  // What was sent arrived; what du-sim lost shows as incomplete frames, never as a crash.
  EXPECT_EQ(u64(c, "ingest.datagrams"), u64(sim, "datagrams_out"));
  EXPECT_EQ(u64(c, "builder.datagrams"), u64(sim, "datagrams_out"));
  EXPECT_GT(u64(c, "builder.frames_incomplete"), 0u);
  EXPECT_GT(u64(c, "filter.frames_defective"), 0u);  // EUDP
  rig.quit();
}

TEST(HilFaults, DuplicatesAreCountedAndDropped) {
  Rig rig("dup");
  rig.start_run(3);
  auto a = rig.du_sim_args(3, kSlices, 13);
  a.insert(a.end(), {"--dup-pct", "5"});
  const auto sim = rig.feed(a);
  const std::uint64_t duplicated = u64(sim["faults"], "duplicated");
  ASSERT_GT(duplicated, 0u);
  rig.stop_run();
  const auto status = rig.status();
  const auto& c = status["counters"];
  expect_all_slices_accounted(status, kSlices);
  // A copy of the datagram that completed its slice comes after the slice went out: the builder
  // no longer holds it and counts the copy as late. Every copy is dropped and counted either way.
  EXPECT_EQ(u64(status["drops"], "builder.duplicate") + u64(status["drops"], "builder.late_datagram"), duplicated)
      << status["drops"].dump();
  EXPECT_GE(u64(status["drops"], "builder.duplicate"), duplicated * 9 / 10);
  EXPECT_EQ(u64(c, "builder.slices_complete"), kSlices);
  EXPECT_EQ(u64(c, "builder.datagrams") + duplicated, u64(sim, "datagrams_out"));
  rig.quit();
}

TEST(HilFaults, GarbageMessagesAreRejectedByCause) {
  Rig rig("garbage");
  rig.start_run(4);
  // Raw garbage straight into the ingest socket: random bytes, a bad length prefix, a short header.
  {
    zmq::context_t ctx(1);
    zmq::socket_t push(ctx, zmq::socket_type::push);
    push.set(zmq::sockopt::linger, 5000);
    push.connect(rig.node().ingest);
    std::mt19937 rng(7);
    for (int i = 0; i < 50; ++i) {
      std::vector<std::uint8_t> junk(1 + rng() % 2000);
      for (auto& b : junk) b = static_cast<std::uint8_t>(rng());
      push.send(zmq::buffer(junk), zmq::send_flags::none);
    }
    const std::uint8_t overrun[] = {0xff, 0xff, 0xff, 0x7f, 1, 2, 3};
    push.send(zmq::buffer(overrun), zmq::send_flags::none);
    const std::uint8_t short_header[] = {4, 0, 0, 0, 'T', 'T', 'D', 'C'};
    push.send(zmq::buffer(short_header), zmq::send_flags::none);
  }
  auto a = rig.du_sim_args(4, kSlices, 14);
  a.insert(a.end(), {"--corrupt-pct", "3"});
  const auto sim = rig.feed(a);
  ASSERT_GT(u64(sim["faults"], "corrupted"), 0u);
  rig.stop_run();
  const auto status = rig.status();
  const auto& c = status["counters"];
  // Still one slice per simulated slice: garbage never creates or destroys a slice.
  expect_all_slices_accounted(status, kSlices);
  EXPECT_GT(drops_with_prefix(status, "ingest."), 0u) << status.dump(1);
  EXPECT_GT(u64(status["drops"], "ingest.bad_record_length.bytes"), 0u);
  EXPECT_GT(u64(status["drops"], "ingest.truncated_header.records"), 0u);
  EXPECT_EQ(u64(c, "ingest.messages"), u64(sim["output"], "messages") + 52);
  EXPECT_EQ(status["state"], "Standby");
  rig.quit();
}

TEST(HilFaults, WrongRunNumberIsDropped) {
  Rig rig("wrongrun");
  rig.start_run(5);
  const auto wrong = rig.feed(rig.du_sim_args(6, 10, 15));
  ASSERT_TRUE(wait_until([&] { return u64(rig.status()["drops"], "builder.wrong_run") >= u64(wrong, "datagrams_out"); }, 30s));
  auto status = rig.status();
  EXPECT_EQ(u64(status["counters"], "slices"), 0u);
  EXPECT_EQ(u64(status["counters"], "builder.datagrams"), 0u);
  // The right run number still gets through in the same run.
  rig.feed(rig.du_sim_args(5, 10, 16));
  rig.stop_run();
  status = rig.status();
  expect_all_slices_accounted(status, 10);
  EXPECT_EQ(u64(status["drops"], "builder.wrong_run"), u64(wrong, "datagrams_out"));
  rig.quit();
}

TEST(HilFaults, LateDomDatagramsCountedAndRunContinues) {
  Rig rig("late");
  const std::uint32_t dom = some_dom(rig.detx(), 5);
  rig.start_run(8);
  auto a = rig.du_sim_args(8, kSlices, 17);
  a.insert(a.end(), {"--late-dom", std::to_string(dom), "--late-slices", "2"});
  const auto sim = rig.feed(a);
  rig.stop_run();
  const auto status = rig.status();
  const auto& c = status["counters"];
  // A DOM two slices behind still completes its slices within the 1 s expiry.
  expect_all_slices_accounted(status, kSlices);
  EXPECT_EQ(u64(c, "ingest.datagrams"), u64(sim, "datagrams_out"));
  EXPECT_EQ(u64(c, "builder.datagrams") + drops_with_prefix(status, "builder."), u64(sim, "datagrams_out"));
  rig.quit();
}
