#include "shoredaq/drivers/threaded_feed_sink.hpp"

#include <chrono>
#include <stdexcept>

namespace shoredaq::drivers {

namespace {
constexpr auto kStopCheck = std::chrono::milliseconds(50);  // how soon a waiting write() notices `stop`
}

ThreadedFeedSink::ThreadedFeedSink(std::unique_ptr<FeedSink> inner, std::size_t max_pending_writes,
                                   const std::atomic<bool>* stop)
    : inner_(std::move(inner)), max_pending_(max_pending_writes == 0 ? 1 : max_pending_writes), stop_(stop) {
  if (!inner_) throw std::invalid_argument("ThreadedFeedSink: no inner sink");
  thread_ = std::thread([this] { run(); });
}

ThreadedFeedSink::~ThreadedFeedSink() {
  try {
    finish();
  } catch (...) {  // a destructor must not throw; finish() reports errors when called explicitly
  }
  if (thread_.joinable()) thread_.join();
}

void ThreadedFeedSink::rethrow_inner_error() {
  if (error_) {
    auto e = error_;
    error_ = nullptr;
    std::rethrow_exception(e);
  }
}

void ThreadedFeedSink::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    changed_.wait(lock, [&] { return !queue_.empty() || closing_; });
    if (queue_.empty()) return;  // closing, and nothing left
    std::vector<SimDatagram> slice = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    lock.unlock();
    std::exception_ptr error;
    try {
      inner_->write(slice);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    writing_ = false;
    if (error && !error_) error_ = error;
    changed_.notify_all();
  }
}

void ThreadedFeedSink::write(std::span<const SimDatagram> datagrams) {
  std::unique_lock lock(mutex_);
  if (finished_) throw std::logic_error("ThreadedFeedSink: write after finish");
  rethrow_inner_error();
  while (queue_.size() + (writing_ ? 1 : 0) >= max_pending_) {
    if (stop_ != nullptr && stop_->load()) {
      dropped_on_stop_ += datagrams.size();
      return;
    }
    changed_.wait_for(lock, kStopCheck);
  }
  queue_.emplace_back(datagrams.begin(), datagrams.end());
  changed_.notify_all();
}

void ThreadedFeedSink::finish() {
  {
    std::unique_lock lock(mutex_);
    if (finished_) {
      rethrow_inner_error();
      return;
    }
    finished_ = true;
    closing_ = true;
    changed_.notify_all();
  }
  if (thread_.joinable()) thread_.join();  // after every queued write
  std::exception_ptr error;
  {
    std::lock_guard lock(mutex_);
    error = error_;
    error_ = nullptr;
  }
  if (!error) {
    try {
      inner_->finish();
    } catch (...) {
      error = std::current_exception();
    }
  }
  counters_ = inner_->counters();
  counters_.dropped_on_stop += dropped_on_stop_;
  if (error) std::rethrow_exception(error);
}

}  // namespace shoredaq::drivers
