// TaskPool: every task of every call runs exactly once, helpers really share a call's tasks, calls
// from several threads at once do not mix, and a task's exception reaches its caller.
#include "shoredaq/dataflow/task_pool.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

using shoredaq::dataflow::TaskPool;

TEST(TaskPool, EveryTaskOfEveryCallRunsOnceAlsoWithCallersAtOnce) {
  TaskPool pool(2);
  constexpr std::size_t kCallers = 3, kCalls = 200, kTasks = 17;
  std::vector<std::atomic<int>> runs(kCallers * kCalls * kTasks);
  std::vector<std::thread> callers;
  for (std::size_t c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      for (std::size_t call = 0; call < kCalls; ++call) {
        const std::size_t base = (c * kCalls + call) * kTasks;
        pool.run(kTasks, [&](std::size_t i) { runs[base + i].fetch_add(1); });
        // Everything of this call has run when run() returns.
        for (std::size_t i = 0; i < kTasks; ++i) ASSERT_EQ(runs[base + i].load(), 1);
      }
    });
  }
  for (auto& t : callers) t.join();
  for (const auto& r : runs) EXPECT_EQ(r.load(), 1);
}

TEST(TaskPool, AHelperTakesPartOfACall) {
  TaskPool pool(1);
  // Each task waits (bounded) until two tasks are inside at once: only possible if the helper
  // runs one while the caller runs the other.
  std::mutex m;
  std::condition_variable cv;
  int inside = 0, most = 0;
  std::set<std::thread::id> threads;
  pool.run(2, [&](std::size_t) {
    std::unique_lock lock(m);
    threads.insert(std::this_thread::get_id());
    most = std::max(most, ++inside);
    cv.notify_all();
    cv.wait_for(lock, std::chrono::seconds(20), [&] { return most >= 2; });
    --inside;
  });
  EXPECT_EQ(most, 2);
  EXPECT_EQ(threads.size(), 2u);
  EXPECT_TRUE(threads.contains(std::this_thread::get_id()));
}

TEST(TaskPool, WithoutHelpersTheCallerRunsEverythingInOrder) {
  TaskPool pool(0);
  std::vector<std::size_t> order;
  const auto caller = std::this_thread::get_id();
  pool.run(5, [&](std::size_t i) {
    EXPECT_EQ(std::this_thread::get_id(), caller);
    order.push_back(i);
  });
  EXPECT_EQ(order, (std::vector<std::size_t>{0, 1, 2, 3, 4}));
  pool.run(0, [&](std::size_t) { ADD_FAILURE() << "no task"; });
}

TEST(TaskPool, AnExceptionReachesTheCallerAfterTheOtherTasksRan) {
  TaskPool pool(2);
  std::atomic<int> ran{0};
  EXPECT_THROW(pool.run(8,
                        [&](std::size_t i) {
                          ran.fetch_add(1);
                          if (i == 3) throw std::runtime_error("task 3");
                        }),
               std::runtime_error);
  EXPECT_EQ(ran.load(), 8);
  // The pool still works.
  std::atomic<int> again{0};
  pool.run(4, [&](std::size_t) { again.fetch_add(1); });
  EXPECT_EQ(again.load(), 4);
}
