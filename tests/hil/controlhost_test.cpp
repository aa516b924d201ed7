// HIL: the collaboration's consumers on the daemon's ControlHost dispatcher (issue "plug into the
// station", item 2). A client written from the protocol description (storage/tests/
// controlhost_test_client.hpp: plain POSIX sockets, none of the dispatcher's code) subscribes as
// km3mon does and gets every tag it asked for with exact counts: one IO_SUM and one IO_TSSN per
// slice, IO_MONIT per DOM per slice, and IO_EVT byte for byte what the store exports. A second
// client that never reads is disconnected while the run goes on with zero data drops.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <map>
#include <thread>

#include "../../storage/tests/controlhost_test_client.hpp"
#include "hil_support.hpp"

using namespace hil;
using shoredaq::storage::testing::ControlHostClient;

namespace {
std::uint64_t u64(const nlohmann::json& j, const std::string& key) { return j.at(key).get<std::uint64_t>(); }
std::string bytes_of(const std::vector<std::uint8_t>& v) { return {v.begin(), v.end()}; }
}  // namespace

TEST(HilControlHost, ConsumersGetEveryTagTheySubscribedToAndAStalledOneIsDisconnected) {
  // Bounded " a" queues (2 MB) and disconnection, so the stalled client is cut off within a few
  // slices of L0 timeslices (about 1 MB each) while the reading one keeps up (under ASan, beside
  // the daemon on 2 cores, too: it reads each message whole, controlhost_test_client.hpp); port 0:
  // the daemon picks one and /status says which.
  Rig rig("controlhost", "first:2",
          "[dispatcher]\nenabled = true\nport = 0\nclient_queue_mb_all = 2\ndisconnect_slow_all_clients = true\n"
          "[builder]\nqueue_slices = 64\n",
          "[trigger.prescale]\nl0 = 1\nsn = 1\n");
  const auto port = static_cast<std::uint16_t>(rig.status()["dispatcher"]["port"].get<unsigned>());
  ASSERT_GT(port, 0u);

  ControlHostClient monitor(port);
  monitor.subscribe(" a IO_EVT a IO_SUM a IO_TSSN w IO_MONIT");
  ControlHostClient stalled(port, 4096);
  stalled.subscribe(" a IO_TSL0");
  // Both subscriptions are in effect before any data flows.
  ASSERT_TRUE(wait_until([&] { return rig.status()["dispatcher"]["subscriptions"].get<unsigned>() >= 2; }, 30s));

  // The monitoring client reads all along (as km3mon does); the stalled one never reads.
  std::mutex mutex;
  std::map<std::string, std::uint64_t> received;
  std::string sum_and_events;  // per slice: IO_SUM then its IO_EVTs, as `shore-events export` writes them
  std::vector<std::vector<std::uint8_t>> pending_events;  // the dispatcher sends a slice's events before its summary
  std::atomic<bool> reading{true};
  std::thread reader([&] {
    while (reading.load()) {
      auto m = monitor.receive(200ms);
      if (!m) {
        if (monitor.closed()) return;
        continue;
      }
      std::lock_guard lock(mutex);
      ++received[m->tag];
      if (m->tag == "IO_EVT") pending_events.push_back(std::move(m->payload));
      if (m->tag == "IO_SUM") {
        sum_and_events += bytes_of(m->payload);
        for (const auto& e : pending_events) sum_and_events += bytes_of(e);
        pending_events.clear();
      }
    }
  });
  const auto count = [&](const std::string& tag) {
    std::lock_guard lock(mutex);
    return received[tag];
  };

  constexpr unsigned kSlices = 30;
  rig.start_run(71);
  auto a = rig.du_sim_args(71, kSlices, 72);
  a.insert(a.end(), {"--monitoring", "--muon-rate-hz", "20", "--muon-yield", "400"});
  rig.feed(a);
  ASSERT_TRUE(rig.wait_slices(kSlices));
  // The stalled client is cut off while the run goes on.
  EXPECT_TRUE(stalled.wait_until_closed(60s));
  rig.stop_run();
  const auto status = rig.status();
  const auto& c = status["counters"];
  // What the dispatcher published during the run, per tag; the reader has them all in the end.
  const std::uint64_t sums = u64(c, "dispatcher.published_io_sum"), sn = u64(c, "dispatcher.published_io_tssn");
  const std::uint64_t events = u64(c, "dispatcher.published_io_evt"), monit = u64(c, "dispatcher.published_io_monit");
  const bool all_read = wait_until([&] {
    return count("IO_SUM") == sums && count("IO_TSSN") == sn && count("IO_EVT") == events && count("IO_MONIT") == monit;
  }, 60s);
  reading.store(false);
  reader.join();
  ASSERT_TRUE(all_read) << "IO_SUM " << count("IO_SUM") << "/" << sums << ", IO_TSSN " << count("IO_TSSN") << "/" << sn
                        << ", IO_EVT " << count("IO_EVT") << "/" << events << ", IO_MONIT " << count("IO_MONIT") << "/" << monit;

  // Exact counts: every slice its summary and its SN slice, every DOM's TMCH packet of every slice
  // the builder passed on, every event of the store; nothing else was sent to this client.
  EXPECT_EQ(u64(c, "slices_written"), kSlices) << status.dump(1);
  EXPECT_EQ(sums, kSlices);
  EXPECT_EQ(sn, kSlices);
  EXPECT_EQ(monit, u64(c, "builder.monitoring_attached"));
  EXPECT_GE(monit, 36u * (kSlices - 1));
  EXPECT_EQ(events, u64(c, "events"));
  EXPECT_GT(events, 0u) << "du-sim's muons should trigger";
  EXPECT_EQ(received.size(), 4u);
  EXPECT_TRUE(pending_events.empty());

  // IO_SUM and IO_EVT are byte for byte the online objects the store exports.
  const auto exported = run({program("shore-events"), "--store", rig.node().store().string(), "export", "--run", "71",
                             "--format", "online"}, rig.tmp().path());
  ASSERT_EQ(exported.code, 0) << exported.err;
  EXPECT_EQ(exported.out.size(), sum_and_events.size());
  EXPECT_TRUE(exported.out == sum_and_events) << "the ControlHost stream differs from the store's export";

  // The stalled client: disconnected and counted; the run lost nothing.
  EXPECT_EQ(u64(c, "dispatcher.clients_disconnected_slow"), 1u) << status.dump(1);
  // The one message that did not fit the stalled client's queue (the reading client missed nothing:
  // its counts above are exact).
  EXPECT_EQ(u64(status["drops"], "dispatcher.messages_slow_client"), 1u);
  EXPECT_EQ(drops_with_prefix(status, "pipeline."), 0u);
  EXPECT_EQ(drops_with_prefix(status, "store."), 0u);
  EXPECT_EQ(drops_with_prefix(status, "spool."), 0u);
  EXPECT_TRUE(!status.contains("alarm") || status.at("alarm").is_null()) << status.at("alarm").dump();
  EXPECT_EQ(status["dispatcher"]["clients_connected"].get<unsigned>(), 1u);
  rig.quit();
}
