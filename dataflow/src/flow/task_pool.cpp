#include "shoredaq/dataflow/task_pool.hpp"

#include <algorithm>
#include <exception>

namespace shoredaq::dataflow {

struct TaskPool::Job {
  const std::function<void(std::size_t)>* task = nullptr;
  std::size_t tasks = 0;
  // All under the pool's mutex.
  std::size_t next = 0;      // the next task to hand out
  std::size_t finished = 0;  // tasks returned
  std::size_t helping = 0;   // helpers inside take_tasks() of this job: the caller's stack frame
                             // must outlive them
  std::exception_ptr error;
};

TaskPool::TaskPool(std::size_t helpers) {
  threads_.reserve(helpers);
  for (std::size_t i = 0; i < helpers; ++i) threads_.emplace_back([this] { helper_loop(); });
}

TaskPool::~TaskPool() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void TaskPool::run(std::size_t tasks, const std::function<void(std::size_t)>& task) {
  if (tasks == 0) return;
  if (threads_.empty() || tasks == 1) {
    for (std::size_t i = 0; i < tasks; ++i) task(i);
    return;
  }
  Job job;
  job.task = &task;
  job.tasks = tasks;
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(&job);
  }
  work_cv_.notify_all();
  take_tasks(job);
  std::unique_lock lock(mutex_);
  done_cv_.wait(lock, [&] { return job.finished == job.tasks && job.helping == 0; });
  std::erase(jobs_, &job);  // normally gone already: the last task handed out removes it
  lock.unlock();
  if (job.error) std::rethrow_exception(job.error);
}

void TaskPool::take_tasks(Job& job) {
  std::unique_lock lock(mutex_);
  while (job.next < job.tasks) {
    const std::size_t i = job.next++;
    if (job.next == job.tasks) std::erase(jobs_, &job);  // nothing left for the helpers
    lock.unlock();
    std::exception_ptr error;
    try {
      (*job.task)(i);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    if (error && !job.error) job.error = error;
    ++job.finished;
  }
  if (job.finished == job.tasks) done_cv_.notify_all();
}

void TaskPool::helper_loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    work_cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
    if (stop_) return;
    Job& job = *jobs_.front();
    ++job.helping;
    lock.unlock();
    take_tasks(job);
    lock.lock();
    --job.helping;
    if (job.finished == job.tasks && job.helping == 0) done_cv_.notify_all();
  }
}

}  // namespace shoredaq::dataflow
