#pragma once
// The node's raw-data ring buffer (issue 12; config [ring]): storage::RawSliceRing fed from the
// filter workers through a bounded queue to a thread of its own, and dumps of a UTC window into
// the Tier-0 spool (storage/ring_dump.hpp) on a second thread, so neither ever waits on the
// pipeline nor holds it up:
//  - offer() (filter workers, every built slice) never blocks: when the queue is full the slice
//    is skipped and counted ("queue_full"); the ring may refuse one too ("too_old", "too_large",
//    "write_failed"), counted by that reason.
//  - request_dump() (run control: shorectl dump; a supernova alert) checks the window against the
//    ring at once: refused (FAILED, with the reason) when it is empty or older than the ring;
//    otherwise STARTED. The dump thread waits until the ring holds the window's end (or slices
//    stop coming: the run stopped, the feed ended), then writes it: DONE, or FAILED with why.
// Every dump's state is journalled in <ring dir>/dumps/<id>.json (a supernova alert's by the dump
// thread, so the writer's thread never waits on the disk); at start-up a dump still
// STARTED (the node died during it) becomes FAILED and its partial file is set aside in
// spool/damaged/, so nothing half-written is ever shipped.

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "shoredaq/dataflow/queue.hpp"
#include "shoredaq/firmware/config.hpp"
#include "shoredaq/firmware/metrics.hpp"
#include "shoredaq/formats/timeslice.hpp"
#include "shoredaq/storage/raw_slice_ring.hpp"
#include "shoredaq/storage/ring_dump.hpp"

namespace shoredaq::firmware {

// A dump's time: UTC "2026-12-06T08:15:00Z" (fractions of a second allowed, "Z" required) or
// Unix seconds "1765008900" / "1765008900.25". Unix ns; nullopt when it is neither.
std::optional<std::uint64_t> parse_dump_time(std::string_view text);

enum class DumpState : std::uint8_t { Started, Done, Failed };
const char* to_string(DumpState state) noexcept;  // "STARTED", "DONE", "FAILED"

struct DumpRecord {
  std::string id;
  DumpState state = DumpState::Started;
  std::string reason;  // the requester's
  std::string source;  // "shorectl", "supernova"
  std::uint64_t requested_unix_ns = 0;
  std::uint64_t requested_from_ns = 0, requested_to_ns = 0;
  std::uint64_t from_ns = 0, to_ns = 0;  // clipped
  std::string error;                     // FAILED: why
  std::string file;                      // DONE: name in spool/ready/
  std::uint64_t slices = 0, missing_slices = 0, datagrams = 0, bytes = 0;
  double seconds = 0;  // writing time

  nlohmann::json to_json() const;
  static DumpRecord from_json(const nlohmann::json& j);
};

struct RingServiceOptions {
  RingSection settings;
  std::filesystem::path ring_dir, spool_dir;
  bool fsync = true;
};

class RingService {
 public:
  // Opens (recovers) the ring, settles dumps a crash interrupted, starts both threads. Throws
  // storage::RingError when the ring cannot be made (e.g. no room to preallocate it).
  explicit RingService(RingServiceOptions options);
  ~RingService();
  RingService(const RingService&) = delete;
  RingService& operator=(const RingService&) = delete;

  // Any thread, never blocks.
  void offer(const dataflow::Timeslice& slice);
  // `journal_now`: the request's state is on disk when this returns (run control); false leaves
  // the writing to the dump thread (a supernova alert, on the writer's thread).
  DumpRecord request_dump(std::uint64_t from_ns, std::uint64_t to_ns, std::string reason, std::string source,
                          bool journal_now = true);
  // A dump waiting for its window's end stops waiting when no run takes data.
  void set_taking_data(bool taking);
  void set_provenance(storage::RunProvenance provenance);
  // Finishes the dump in progress, ends both threads; then offer() skips everything.
  void stop();

  nlohmann::json status() const;  // /status "ring"
  std::vector<DumpRecord> dumps() const;  // the last few, oldest first
  // Series that outlive stop(): the registry may be read until the node is gone.
  void register_metrics(MetricsRegistry& registry);
  const storage::RawSliceRing& ring() const noexcept { return *ring_; }

 private:
  struct Item {
    storage::RingSliceMeta meta;
    std::vector<std::uint8_t> records;
  };
  enum Skip : std::size_t { QueueFull, TooOld, TooLarge, WriteFailed, Stopped, kSkips };
  static constexpr std::size_t kDumpsKept = 20;

  void run_ring();
  void run_dumps();
  bool window_end_held(std::uint64_t to_ns);
  void record(const DumpRecord& dump);  // journal + list (the dump thread's)
  void note(const DumpRecord& dump);    // the list and counts (mutex_ held)
  void write_journal(const DumpRecord& dump);
  void flush_journal(std::unique_lock<std::mutex>& lock);  // what note() left (mutex_ held)
  void settle_interrupted_dumps();

  RingServiceOptions options_;
  std::unique_ptr<storage::RawSliceRing> ring_;
  dataflow::BoundedQueue<Item> queue_;
  std::atomic<std::uint64_t> offered_{0}, stored_{0};
  std::array<std::atomic<std::uint64_t>, kSkips> skipped_{};
  std::atomic<std::uint64_t> last_store_steady_ns_{0};
  std::atomic<bool> taking_data_{false}, stopping_{false};

  mutable std::mutex mutex_;  // dumps_, pending_, provenance_, counts
  std::condition_variable wake_;
  std::deque<DumpRecord> dumps_;
  std::deque<DumpRecord> pending_;
  std::deque<DumpRecord> unjournalled_;  // states request_dump() left for the dump thread to write
  storage::RunProvenance provenance_;
  std::uint64_t next_id_ = 1;
  std::array<std::uint64_t, 3> dumps_by_state_{};  // requests that reached each state since start
  std::vector<std::string> set_aside_;             // partial dumps moved to damaged/ at start-up

  std::thread ring_thread_, dump_thread_;
};

}  // namespace shoredaq::firmware
