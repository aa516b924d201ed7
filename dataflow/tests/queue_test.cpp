#include "shoredaq/dataflow/queue.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <set>
#include <thread>
#include <vector>

using namespace shoredaq::dataflow;
using namespace std::chrono_literals;

TEST(BoundedQueue, FifoOrderAndCounters) {
  BoundedQueue<int> q(4);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(q.push(i, 0ms), QueueStatus::Ok);
  EXPECT_EQ(q.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    auto v = q.pop(0ms);
    ASSERT_TRUE(v);
    EXPECT_EQ(*v, i);
  }
  const auto c = q.counters();
  EXPECT_EQ(c.pushed, 3u);
  EXPECT_EQ(c.popped, 3u);
  EXPECT_EQ(c.peak_depth, 3u);
  EXPECT_EQ(c.depth, 0u);
}

TEST(BoundedQueue, PushTimesOutWhenFullAndKeepsTheItem) {
  BoundedQueue<std::unique_ptr<int>> q(1);
  ASSERT_EQ(q.push(std::make_unique<int>(1), 0ms), QueueStatus::Ok);
  auto item = std::make_unique<int>(2);
  EXPECT_EQ(q.push(item, 5ms), QueueStatus::Timeout);
  ASSERT_TRUE(item);  // not consumed
  EXPECT_EQ(*item, 2);
  EXPECT_EQ(q.counters().push_timeouts, 1u);
}

TEST(BoundedQueue, PopTimesOutWhenEmpty) {
  BoundedQueue<int> q(1);
  int v = 0;
  EXPECT_EQ(q.pop(v, 5ms), QueueStatus::Timeout);
}

TEST(BoundedQueue, DropOldestReturnsTheWholeOldestItem) {
  BoundedQueue<std::vector<int>> q(2);
  EXPECT_FALSE(q.push_drop_oldest({1, 1}).dropped);
  EXPECT_FALSE(q.push_drop_oldest({2, 2}).dropped);
  auto r = q.push_drop_oldest({3, 3});
  EXPECT_EQ(r.status, QueueStatus::Ok);
  ASSERT_TRUE(r.dropped);
  EXPECT_EQ(*r.dropped, (std::vector<int>{1, 1}));
  EXPECT_EQ(q.counters().dropped_oldest, 1u);
  EXPECT_EQ(q.size(), 2u);
  EXPECT_EQ(*q.pop(0ms), (std::vector<int>{2, 2}));
  EXPECT_EQ(*q.pop(0ms), (std::vector<int>{3, 3}));
}

TEST(BoundedQueue, CloseDrainsThenReportsClosed) {
  BoundedQueue<int> q(4);
  q.push(1, 0ms);
  q.push(2, 0ms);
  q.close();
  EXPECT_EQ(q.push(3, 0ms), QueueStatus::Closed);
  auto r = q.push_drop_oldest(4);
  EXPECT_EQ(r.status, QueueStatus::Closed);
  EXPECT_EQ(r.dropped, 4);
  int v = 0;
  EXPECT_EQ(q.pop(v, 0ms), QueueStatus::Ok);
  EXPECT_EQ(v, 1);
  EXPECT_EQ(q.pop(v, 0ms), QueueStatus::Ok);
  EXPECT_EQ(v, 2);
  EXPECT_EQ(q.pop(v, 1s), QueueStatus::Closed);  // returns at once, not after the timeout
}

TEST(BoundedQueue, CloseWakesBlockedConsumerAndProducer) {
  BoundedQueue<int> q(1);
  q.push(0, 0ms);
  std::atomic<int> producer_status{-1};
  std::thread producer([&] { producer_status = static_cast<int>(q.push(1, 30s)); });
  BoundedQueue<int> empty(1);
  std::atomic<int> consumer_status{-1};
  std::thread consumer([&] {
    int v = 0;
    consumer_status = static_cast<int>(empty.pop(v, 30s));
  });
  q.close();
  empty.close();
  producer.join();
  consumer.join();
  EXPECT_EQ(producer_status, static_cast<int>(QueueStatus::Closed));
  EXPECT_EQ(consumer_status, static_cast<int>(QueueStatus::Closed));
}

TEST(BoundedQueue, ManyProducersManyConsumersLoseNothing) {
  BoundedQueue<int> q(8);
  constexpr int kProducers = 3, kPerProducer = 2000;
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        int item = p * kPerProducer + i;
        while (q.push(item, 100ms) == QueueStatus::Timeout) {
        }
      }
    });
  }
  std::mutex m;
  std::set<int> seen;
  std::vector<std::thread> consumers;
  for (int c = 0; c < 2; ++c) {
    consumers.emplace_back([&] {
      int v = 0;
      for (;;) {
        const auto s = q.pop(v, 100ms);
        if (s == QueueStatus::Closed) return;
        if (s == QueueStatus::Ok) {
          std::lock_guard lock(m);
          seen.insert(v);
        }
      }
    });
  }
  for (auto& t : producers) t.join();
  q.close();
  for (auto& t : consumers) t.join();
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kProducers * kPerProducer));
  EXPECT_LE(q.counters().peak_depth, 8u);
}
