#pragma once
// The external SNEWS hook (issue 12): every SNEWS message of a run (alerts and heartbeats, as the
// alert stream carries them) handed to a SNEWS client outside the node. Off by default; `[snews]`
// chooses one of
//   - a command (hook_command, no shell): run once per message with the JSON on its stdin, on a
//     thread of its own behind a bounded queue, killed after hook_timeout_ms; exit statuses counted;
//   - a ZeroMQ PUSH (hook_endpoint) that connects to a forwarder: sent without waiting, bounded
//     high-water mark and linger.
// Never blocks the writer: a full queue (or PUSH high-water mark) drops the message, counted.
// Messages with is_test = true (runs other than "physics") are skipped, counted, unless
// hook_test_messages.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "shoredaq/formats/sink.hpp"

namespace shoredaq::firmware {

struct SnewsHookConfig {
  std::vector<std::string> command;  // absolute program path first
  std::string endpoint;              // or this (PUSH, connects)
  std::chrono::milliseconds timeout{10000};
  std::size_t queue_messages = 64;
  int send_hwm = 100;
  int linger_ms = 1000;
  bool test_messages = true;
};

struct SnewsHookCounters {
  std::uint64_t alerts_offered = 0, heartbeats_offered = 0;
  std::uint64_t delivered = 0;             // command exited 0 / PUSH queued the message
  std::uint64_t command_failed = 0;        // exited non-zero or died of a signal
  std::uint64_t command_timed_out = 0;     // killed after the timeout
  std::uint64_t command_spawn_errors = 0;  // could not be started (or its stdin written)
  std::uint64_t dropped_queue_full = 0;    // command queue full / PUSH at its high-water mark
  std::uint64_t dropped_at_stop = 0;       // still queued when the run's drain time was over
  std::uint64_t skipped_test = 0;          // is_test messages with hook_test_messages = false
  std::uint64_t send_errors = 0;           // other ZeroMQ errors
  int last_exit_status = 0;                // of the latest command (128 + signal when killed)
};

// How one command run ended.
enum class HookCommandOutcome : std::uint8_t { Ok, Failed, TimedOut, SpawnError };
struct HookCommandResult {
  HookCommandOutcome outcome = HookCommandOutcome::SpawnError;
  int exit_status = -1;  // exit code, or 128 + signal
  std::string error;     // for SpawnError
};
// Runs `argv` (argv[0] an absolute path, no shell) with `input` on stdin and the node's stdout and
// stderr; kills it (SIGKILL) once `timeout` has passed. Blocks the calling thread up to ~timeout.
HookCommandResult run_hook_command(const std::vector<std::string>& argv, const std::string& input,
                                   std::chrono::milliseconds timeout);

class SnewsHook {
 public:
  // Throws zmq::error_t for an endpoint that cannot be connected.
  SnewsHook(zmq::context_t* context, SnewsHookConfig config);
  ~SnewsHook();  // stops after the drain below (bounded)
  SnewsHook(const SnewsHook&) = delete;
  SnewsHook& operator=(const SnewsHook&) = delete;

  // Never blocks (any thread, one at a time).
  void offer(const dataflow::SnewsMessage& message);
  // Waits until every queued message was handled or `deadline` passed; what is left is dropped and
  // counted. The hook keeps working afterwards.
  void drain(std::chrono::milliseconds deadline);
  SnewsHookCounters counters() const;

 private:
  void run_commands();

  SnewsHookConfig config_;
  std::optional<zmq::socket_t> push_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  bool busy_ = false;  // a command is running
  bool stopping_ = false;
  SnewsHookCounters counters_;
  std::thread worker_;
};

// The hook as one of the run's outputs: alerts from the written slices, heartbeats (and alerts
// while paused) from snews(); end_run waits for the queue up to the command timeout + 1 s.
class SnewsHookSink final : public dataflow::Sink {
 public:
  SnewsHookSink(std::unique_ptr<SnewsHook> hook, std::chrono::milliseconds drain_time)
      : hook_(std::move(hook)), drain_time_(drain_time) {}
  std::string_view name() const noexcept override { return "snews_hook"; }
  void begin_run(const dataflow::RunRecord&) override {}
  dataflow::SinkWrite write(const dataflow::SliceProducts& slice) override;
  void snews(const dataflow::SnewsMessage& message) override { hook_->offer(message); }
  void end_run(dataflow::RunRecord& record) override;
  void counters(dataflow::CounterSet& out) const override { describe(hook_->counters(), out); }

  // The counter names with given values (all zero: the shape of /metrics before a run).
  static void describe(const SnewsHookCounters& c, dataflow::CounterSet& out);

 private:
  std::unique_ptr<SnewsHook> hook_;
  std::chrono::milliseconds drain_time_;
};

}  // namespace shoredaq::firmware
