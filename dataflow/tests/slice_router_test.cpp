// SliceRouter: window N goes to filter N % k from every sender; a filter whose connection closed is
// passed over (its windows go to the next live one) and takes its share again when it is back;
// nothing connected at all: the send times out and is counted.
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "shoredaq/dataflow/partial_slice_merger.hpp"
#include "shoredaq/dataflow/slice_router.hpp"
#include "shoredaq/dataflow/timeslice_transport.hpp"
#include "shoredaq/formats/fb_codec.hpp"

using namespace shoredaq::dataflow;
using namespace std::chrono_literals;

namespace {

std::string ipc(const std::string& name) {
  return "ipc://" + (std::filesystem::temp_directory_path() / ("router-test-" + std::to_string(::getpid()) + "-" + name)).string();
}

Timeslice window(std::uint64_t index) {
  Timeslice t;
  t.header.detector_id = 1;
  t.header.utc_seconds = static_cast<std::uint32_t>(index / 10);
  t.header.ticks_16ns = static_cast<std::uint32_t>(index % 10) * (kSliceDurationNs / 16);
  DomFrame f;
  f.dom_id = 7;
  f.hits.assign(12, 1);
  t.frames.push_back(f);
  return t;
}

// A filter stand-in: receives windows and remembers their indices.
struct Filter {
  std::mutex m;
  std::vector<std::uint64_t> got;
  std::unique_ptr<TimesliceReceiver> receiver;
  Filter(zmq::context_t& ctx, const std::string& endpoint) {
    TimesliceReceiverConfig rc;
    rc.endpoints = {endpoint};
    receiver = std::make_unique<TimesliceReceiver>(ctx, rc, [this](Timeslice&& t) {
      std::lock_guard lock(m);
      got.push_back(slice_index_of(t.header));
    });
    receiver->start();
  }
  std::size_t count() {
    std::lock_guard lock(m);
    return got.size();
  }
};

bool wait_for(const std::function<bool()>& cond) {
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

}  // namespace

TEST(SliceRouter, WindowsGoHomeAndADeadFilterIsPassedOver) {
  zmq::context_t ctx;
  const std::string a = ipc("a"), b = ipc("b");
  auto fa = std::make_unique<Filter>(ctx, a);
  Filter fb(ctx, b);
  SliceRouterConfig rc;
  rc.endpoints = {a, b};
  rc.send_timeout = 2s;
  SliceRouter router(ctx, rc);
  ASSERT_TRUE(wait_for([&] { return router.poll_links() == 2; }));
  for (std::uint64_t i = 1000; i < 1010; ++i) ASSERT_TRUE(router.send(window(i)));
  // The same window always goes to the same filter: the partials of a window meet there.
  ASSERT_TRUE(wait_for([&] { return fa->count() == 5 && fb.count() == 5; }));
  for (std::uint64_t i : fa->got) EXPECT_EQ(i % 2, 0u);
  for (std::uint64_t i : fb.got) EXPECT_EQ(i % 2, 1u);
  EXPECT_EQ(router.home_of(window(1001).header), 1u);

  fa->receiver->stop();  // filter a is gone: its connection closes
  fa.reset();
  ASSERT_TRUE(wait_for([&] { return router.poll_links() == 1; }));
  auto shared = std::make_shared<const std::vector<std::uint8_t>>(encode_timeslice_fb(window(1010)));
  ASSERT_TRUE(router.send_shared(window(1010).header, shared));  // a's window, without a copy
  ASSERT_TRUE(router.send(window(1011)));
  ASSERT_TRUE(wait_for([&] { return fb.count() == 7; }));
  const auto c = router.counters();
  EXPECT_EQ(c[1].taken_over, 1u);
  EXPECT_EQ(c[0].disconnects, 1u);
  EXPECT_FALSE(c[0].connected);

  Filter back(ctx, a);  // it returns and takes its share again
  ASSERT_TRUE(wait_for([&] { return router.poll_links() == 2; }));
  ASSERT_TRUE(router.send(window(1012)));
  ASSERT_TRUE(wait_for([&] { return back.count() == 1; }));
  EXPECT_EQ(router.counters()[0].dropped + router.counters()[1].dropped, 0u);
}

TEST(SliceRouter, NoFilterAtAllTimesOutAndCounts) {
  zmq::context_t ctx;
  SliceRouterConfig rc;
  rc.endpoints = {ipc("nobody")};
  rc.send_timeout = 100ms;
  SliceRouter router(ctx, rc);
  EXPECT_FALSE(router.send(window(5)));
  EXPECT_EQ(router.counters()[0].dropped, 1u);
  EXPECT_EQ(router.counters()[0].sent, 0u);
}
