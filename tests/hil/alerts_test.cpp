// HIL: a stalled alert subscriber (connected, never reading) does not slow the pipeline: every
// slice is still written, and the messages the PUB socket could not queue are counted as drops.
// Also: a reading subscriber receives events and summaries, and the run file is sealed at stop.
#include <gtest/gtest.h>

#include <zmq.hpp>

#include <cstring>

#include "hil_support.hpp"

using namespace hil;

namespace {
std::uint64_t u64(const nlohmann::json& j, const std::string& key) { return j.at(key).get<std::uint64_t>(); }

// Watches a socket's connection events, so a test can wait until its SUB has really joined the
// daemon's PUB before feeding data (PUB sends nothing to a peer that has not joined yet).
class ConnectionWatch {
 public:
  ConnectionWatch(zmq::context_t& ctx, zmq::socket_t& socket, const std::string& name)
      : events_(ctx, zmq::socket_type::pair) {
    const std::string address = "inproc://monitor-" + name;
    if (zmq_socket_monitor(socket.handle(), address.c_str(), ZMQ_EVENT_CONNECTED) != 0) {
      throw zmq::error_t();
    }
    events_.set(zmq::sockopt::linger, 0);
    events_.set(zmq::sockopt::rcvtimeo, 200);
    events_.connect(address);
  }
  bool wait_connected(std::chrono::milliseconds timeout) {
    return wait_until([&] {
      zmq::message_t event, address;
      if (!events_.recv(event)) return false;
      (void)events_.recv(address);
      std::uint16_t id = 0;
      std::memcpy(&id, event.data(), sizeof id);
      return id == ZMQ_EVENT_CONNECTED;
    }, timeout);
  }

 private:
  zmq::socket_t events_;
};
}  // namespace

TEST(HilAlerts, StalledSubscriberDoesNotSlowThePipeline) {
  TempDir probe("alerts-endpoint");  // only for a unique ipc path
  const std::string endpoint = "ipc://" + (probe / "alerts.sock").string();
  // Queues deeper than the whole feed: du-sim sends as fast as it can, so with the default depth
  // a slow filter (wide snapshots below) could drop slices by design, which is not what this tests.
  Rig rig("alerts", "first:2",
          "[alerts]\nendpoint = \"" + endpoint + "\"\nsndhwm = 4\n[builder]\nqueue_slices = 64\n");
  // Wide snapshots make each event large, so the subscriber's buffers fill quickly.
  write_file(rig.tmp() / "noisy.toml",
             "[trigger]\nsnapshot_window_ns = 50000\n[trigger.mxshower]\nnumber_of_hits = 2\nnumber_of_modules = 1\n");
  zmq::context_t ctx(1);
  zmq::socket_t stalled(ctx, zmq::socket_type::sub);
  stalled.set(zmq::sockopt::linger, 0);
  stalled.set(zmq::sockopt::rcvhwm, 2);
  stalled.set(zmq::sockopt::rcvbuf, 4096);
  stalled.set(zmq::sockopt::subscribe, "");
  stalled.connect(endpoint);

  constexpr unsigned kSlices = 40;
  rig.start_run(60, (rig.tmp() / "noisy.toml").string());
  rig.feed(rig.du_sim_args(60, kSlices, 61));
  rig.stop_run();
  const auto status = rig.status();
  const auto& c = status["counters"];
  EXPECT_EQ(u64(c, "slices"), kSlices);
  EXPECT_EQ(u64(c, "slices_written"), kSlices) << status.dump(1);
  EXPECT_EQ(drops_with_prefix(status, "pipeline."), 0u);
  const std::uint64_t dropped = u64(status["drops"], "alerts.events_hwm") + u64(status["drops"], "alerts.summaries_hwm");
  EXPECT_GT(dropped, 0u) << status.dump(1);
  // Every event was either sent or dropped (counted); every summary likewise.
  EXPECT_EQ(u64(c, "alerts.events_sent") + u64(status["drops"], "alerts.events_hwm") + u64(c, "alerts.events_not_selected"),
            u64(c, "events") + u64(status["drops"], "store.events_refused"));
  EXPECT_EQ(u64(c, "alerts.summaries_sent") + u64(status["drops"], "alerts.summaries_hwm"), kSlices);
  // The run file was sealed and listed in ready/ with its manifest.
  EXPECT_EQ(u64(c, "spool.slices"), kSlices);
  ASSERT_TRUE(status.contains("spool"));
  EXPECT_GE(u64(status["spool"], "parts_sealed"), 1u);
  std::size_t daq_files = 0;
  for (const auto& e : fs::directory_iterator(rig.node().spool() / "ready")) {
    if (e.path().extension() == ".daq") ++daq_files;
  }
  EXPECT_GE(daq_files, 1u);
  rig.quit();
}

TEST(HilAlerts, ReadingSubscriberGetsEventsAndSummaries) {
  TempDir probe("alerts-endpoint2");
  const std::string endpoint = "ipc://" + (probe / "alerts.sock").string();
  Rig rig("alerts-read", "first:2", "[alerts]\nendpoint = \"" + endpoint + "\"\nsndhwm = 100000\n");
  zmq::context_t ctx(1);
  zmq::socket_t sub(ctx, zmq::socket_type::sub);
  sub.set(zmq::sockopt::linger, 0);
  sub.set(zmq::sockopt::subscribe, "");
  sub.set(zmq::sockopt::reconnect_ivl, 10);
  ConnectionWatch watch(ctx, sub, "alerts-read");
  sub.connect(endpoint);
  rig.start_run(61);
  // Feed only once the subscriber has joined; its subscription travels with the connection
  // handshake, long before du-sim (a new process) sends its first slice.
  ASSERT_TRUE(watch.wait_connected(30s));
  auto a = rig.du_sim_args(61, 15, 62);
  a.insert(a.end(), {"--muon-rate-hz", "20", "--muon-yield", "400"});
  rig.feed(a);
  std::uint64_t events = 0, summaries = 0;
  ASSERT_TRUE(wait_until([&] {
    zmq::message_t topic, body;
    while (sub.recv(topic, zmq::recv_flags::dontwait)) {
      (void)sub.recv(body);
      if (topic.to_string().rfind("event.", 0) == 0) ++events;
      if (topic.to_string().rfind("summary.", 0) == 0) ++summaries;
    }
    return summaries >= 15;
  }, 60s)) << summaries;
  rig.stop_run();
  const auto status = rig.status();
  EXPECT_EQ(events, u64(status["counters"], "alerts.events_sent"));
  EXPECT_GT(events, 0u);
  rig.quit();
}
