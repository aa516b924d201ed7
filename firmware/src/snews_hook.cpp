#include "shoredaq/firmware/snews_hook.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

extern char** environ;

namespace shoredaq::firmware {
namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 60'000));
}

// Writes all of `input` to the non-blocking pipe before `deadline`; false when the reader went away
// (EPIPE: SIGPIPE is blocked on the hook's thread) or the time ran out.
bool write_all(int fd, const std::string& input, Clock::time_point deadline) {
  std::size_t done = 0;
  while (done < input.size()) {
    const ssize_t n = ::write(fd, input.data() + done, input.size() - done);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) return false;
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, remaining_ms(deadline)) <= 0) return false;
  }
  return true;
}

bool is_test_message(const std::string& json) {
  const auto m = nlohmann::json::parse(json, nullptr, false);
  return m.is_object() && m.value("is_test", false);
}

}  // namespace

HookCommandResult run_hook_command(const std::vector<std::string>& argv, const std::string& input,
                                   std::chrono::milliseconds timeout) {
  HookCommandResult result;
  const auto deadline = Clock::now() + timeout;
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    result.error = std::string("pipe: ") + std::strerror(errno);
    return result;
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[0], 0);
  // Nothing else of the node's (store, sockets) leaks into the command.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none, pipe_default;
  sigemptyset(&none);
  sigemptyset(&pipe_default);
  sigaddset(&pipe_default, SIGPIPE);
  posix_spawnattr_setsigmask(&attributes, &none);  // the hook's thread blocks SIGPIPE; the command must not
  posix_spawnattr_setsigdefault(&attributes, &pipe_default);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, args[0], &actions, &attributes, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  ::close(pipe_fds[0]);
  if (rc != 0) {
    ::close(pipe_fds[1]);
    result.error = "cannot start " + argv.front() + ": " + std::strerror(rc);
    return result;
  }
  ::fcntl(pipe_fds[1], F_SETFL, O_NONBLOCK);
  const bool written = write_all(pipe_fds[1], input, deadline);
  ::close(pipe_fds[1]);  // end of input

  // Wait for the exit on a pidfd (the child is not reaped yet, so its pid cannot be reused).
  bool exited = false;
  // The raw system call: Debian 12's <sys/pidfd.h> declares pidfd_open without C linkage.
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) {
    pollfd p{pidfd, POLLIN, 0};
    while (true) {
      const int n = ::poll(&p, 1, remaining_ms(deadline));
      if (n < 0 && errno == EINTR) continue;
      exited = n > 0;
      if (n == 0 && remaining_ms(deadline) > 0) continue;  // the 60 s poll cap, not the deadline
      break;
    }
    ::close(pidfd);
  }
  if (!exited) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  if (!exited) {
    result.outcome = HookCommandOutcome::TimedOut;
  } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    // A command that exits 0 without reading its input still got it offered; only a write
    // failure with a failing command is worth telling apart, and the exit status does that.
    result.outcome = HookCommandOutcome::Ok;
  } else {
    result.outcome = HookCommandOutcome::Failed;
  }
  if (!written && result.outcome == HookCommandOutcome::Ok) result.outcome = HookCommandOutcome::Failed;
  return result;
}

SnewsHook::SnewsHook(zmq::context_t* context, SnewsHookConfig config) : config_(std::move(config)) {
  if (!config_.endpoint.empty()) {
    push_.emplace(*context, zmq::socket_type::push);
    push_->set(zmq::sockopt::sndhwm, config_.send_hwm);
    push_->set(zmq::sockopt::linger, config_.linger_ms);  // closing never waits longer on a dead forwarder
    push_->connect(config_.endpoint);
  } else if (!config_.command.empty()) {
    worker_ = std::thread([this] { run_commands(); });
  }
}

SnewsHook::~SnewsHook() {
  if (worker_.joinable()) {
    drain(config_.timeout + std::chrono::seconds(1));
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }
}

void SnewsHook::offer(const dataflow::SnewsMessage& message) {
  const bool test = is_test_message(message.json);
  std::unique_lock lock(mutex_);
  ++(message.kind == dataflow::SnewsMessage::Kind::Alert ? counters_.alerts_offered : counters_.heartbeats_offered);
  if (test && !config_.test_messages) {
    ++counters_.skipped_test;
    return;
  }
  if (push_) {
    try {
      const bool sent = push_->send(zmq::buffer(message.json), zmq::send_flags::dontwait).has_value();
      ++(sent ? counters_.delivered : counters_.dropped_queue_full);
    } catch (const zmq::error_t& e) {
      ++counters_.send_errors;
      spdlog::error("snews hook: send to {} failed: {}", config_.endpoint, e.what());
    }
    return;
  }
  if (!worker_.joinable()) return;
  if (queue_.size() >= config_.queue_messages) {
    ++counters_.dropped_queue_full;
    return;
  }
  queue_.push_back(message.json);
  lock.unlock();
  cv_.notify_all();
}

void SnewsHook::drain(std::chrono::milliseconds deadline) {
  if (!worker_.joinable()) return;
  std::unique_lock lock(mutex_);
  cv_.wait_for(lock, deadline, [&] { return queue_.empty() && !busy_; });
  counters_.dropped_at_stop += queue_.size();
  queue_.clear();
}

SnewsHookCounters SnewsHook::counters() const {
  std::lock_guard lock(mutex_);
  return counters_;
}

void SnewsHook::run_commands() {
  // A command that exits before reading its stdin must not kill the node with SIGPIPE: blocked on
  // this thread, the write fails with EPIPE instead.
  sigset_t pipe_signal;
  sigemptyset(&pipe_signal);
  sigaddset(&pipe_signal, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr);
  std::unique_lock lock(mutex_);
  while (true) {
    // Woken by offer() and the destructor; the timeout only bounds the wait.
    if (!cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_ || !queue_.empty(); })) continue;
    if (queue_.empty()) return;  // stopping, nothing left
    std::string message = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    const HookCommandResult r = run_hook_command(config_.command, message, config_.timeout);
    lock.lock();
    busy_ = false;
    counters_.last_exit_status = r.exit_status;
    switch (r.outcome) {
      case HookCommandOutcome::Ok: ++counters_.delivered; break;
      case HookCommandOutcome::Failed: ++counters_.command_failed; break;
      case HookCommandOutcome::TimedOut: ++counters_.command_timed_out; break;
      case HookCommandOutcome::SpawnError: ++counters_.command_spawn_errors; break;
    }
    if (r.outcome != HookCommandOutcome::Ok) {
      spdlog::warn("snews hook: {} {}", config_.command.front(),
                   r.outcome == HookCommandOutcome::TimedOut ? "killed after " + std::to_string(config_.timeout.count()) + " ms"
                   : r.outcome == HookCommandOutcome::Failed ? "exited with status " + std::to_string(r.exit_status)
                                                             : r.error);
    }
    cv_.notify_all();  // drain() waits for an empty queue and an idle command
  }
}

dataflow::SinkWrite SnewsHookSink::write(const dataflow::SliceProducts& slice) {
  for (const auto& alert : slice.supernova_alerts) hook_->offer({dataflow::SnewsMessage::Kind::Alert, alert});
  return {};
}

void SnewsHookSink::end_run(dataflow::RunRecord& record) {
  hook_->drain(drain_time_);  // the final "OFF" heartbeat went in just before
  const auto c = hook_->counters();
  record.counters["snews_hook.delivered"] = c.delivered;
  record.counters["snews_hook.failed"] = c.command_failed + c.command_timed_out + c.command_spawn_errors + c.send_errors;
  record.counters["snews_hook.dropped"] = c.dropped_queue_full + c.dropped_at_stop;
}

void SnewsHookSink::describe(const SnewsHookCounters& c, dataflow::CounterSet& out) {
  out.total("snews_hook", "alerts_offered", c.alerts_offered);
  out.total("snews_hook", "heartbeats_offered", c.heartbeats_offered);
  out.total("snews_hook", "delivered", c.delivered);
  out.total("snews_hook", "command_failed", c.command_failed);
  out.total("snews_hook", "command_timed_out", c.command_timed_out);
  out.total("snews_hook", "command_spawn_errors", c.command_spawn_errors);
  out.total("snews_hook", "skipped_test", c.skipped_test);
  // A SNEWS message that never left the node: the store and run files keep the alerts regardless.
  out.drop("snews_hook", "dropped_queue_full", c.dropped_queue_full, dataflow::LossUnit::NotLoss);
  out.drop("snews_hook", "dropped_at_stop", c.dropped_at_stop, dataflow::LossUnit::NotLoss);
  out.drop("snews_hook", "send_errors", c.send_errors, dataflow::LossUnit::NotLoss);
}

}  // namespace shoredaq::firmware
