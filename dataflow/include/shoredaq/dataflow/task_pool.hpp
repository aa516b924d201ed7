#pragma once
// TaskPool: helper threads that share the tasks of one call with the calling thread. The filter
// workers hand it the per-DOM work of their slice (DataFilter::process with a TaskRunner), so an
// idle core shortens a slice's latency instead of waiting for the next slice. Several callers may
// run() at once; each call's tasks are taken in order by whoever is free, the caller included, so a
// call never waits for a helper that is busy elsewhere. Every wait is bounded by the tasks
// themselves (no queue between callers and helpers can fill up).

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace shoredaq::dataflow {

class TaskPool {
 public:
  explicit TaskPool(std::size_t helpers);
  ~TaskPool();  // stops and joins the helpers (no run() may be in progress)
  TaskPool(const TaskPool&) = delete;
  TaskPool& operator=(const TaskPool&) = delete;

  // Runs task(0) .. task(tasks - 1) and returns when all have returned; rethrows the first
  // exception a task threw (the other tasks still run).
  void run(std::size_t tasks, const std::function<void(std::size_t)>& task);
  std::size_t helpers() const noexcept { return threads_.size(); }

 private:
  struct Job;
  void helper_loop();
  void take_tasks(Job& job);  // runs this job's tasks until none is left to take

  std::mutex mutex_;
  std::condition_variable work_cv_;  // helpers: a job has tasks left, or stop
  std::condition_variable done_cv_;  // callers: a job finished
  std::vector<Job*> jobs_;           // calls in progress with tasks left to take
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace shoredaq::dataflow
