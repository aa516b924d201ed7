#pragma once
// FarmLinks: the boundaries of one run's data path when this process runs only some of the roles
// (config.hpp TopologySection, issue 13). A RunSession owns one; with every role it is empty.
//
//   ingest without filter: route() sends each built (partial) slice to the filter process chosen
//     from its window (SliceRouter);
//   filter without ingest: a PULL socket receives the partials, a PartialSliceMerger puts each
//     window together, and the whole slice goes to the pipeline's workers (`feed`);
//   filter without writer: send_result() PUSHes each filtered slice (FlatBuffers FilteredSlice) to
//     the writer process, from the pipeline's writer thread;
//   writer without filter: a PULL socket receives the filtered slices of every filter process, a
//     FrameOrderer restores slice order (a slice lost with a dead filter process is passed over after
//     gap_timeout_ms and counted), the writer numbers the run's frames from its first slice (frame 1)
//     by slice index, and `write` gets them, on the receiver's thread.
//
// drain() (run stop) keeps receiving until the inputs have been quiet for a moment (the upstream
// processes stopped first and their last slices are in flight), then hands on everything still
// held; all of it bounded by the deadline, what is left then is counted.

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include <flatbuffers/flatbuffers.h>
#include <zmq.hpp>

#include "shoredaq/dataflow/frame_orderer.hpp"
#include "shoredaq/dataflow/partial_slice_merger.hpp"
#include "shoredaq/dataflow/queue.hpp"
#include "shoredaq/dataflow/rate_limited_log.hpp"
#include "shoredaq/dataflow/slice_router.hpp"
#include "shoredaq/dataflow/timeslice_transport.hpp"
#include "shoredaq/firmware/config.hpp"
#include "shoredaq/firmware/filtered_slice_fb.hpp"
#include "shoredaq/formats/counter_set.hpp"

namespace shoredaq::firmware {

class FarmLinks {
 public:
  // One try to hand a merged slice to the workers; on Timeout the slice is left in the argument.
  using Feed = std::function<dataflow::QueueStatus(dataflow::Timeslice&)>;
  using Write = std::function<void(FilteredSlice&&)>;

  // `expected_doms`: the detector's optical modules (a merged window gets an empty frame for each
  // one no partial brought).
  FarmLinks(const TopologySection& topology, std::vector<std::uint32_t> expected_doms, zmq::context_t& context,
            dataflow::RateLimitedLog* log);
  ~FarmLinks();
  FarmLinks(const FarmLinks&) = delete;
  FarmLinks& operator=(const FarmLinks&) = delete;

  // Ingest without filter; thread-safe. False: dropped (counted by the router).
  bool route(const dataflow::Timeslice& slice);
  // Filter without writer; one thread.
  void send_result(const FilteredSlice& slice);
  // Binds the receivers (throws zmq::error_t) and starts their threads. `idle` runs on the
  // writer's receiver thread at least every 20 ms (the writer's buffered sinks flush there).
  void start(Feed feed, Write write, std::function<void()> idle);
  // Keeps receiving until the input was quiet for `quiet` (at most until `deadline`), then hands on
  // every partial window and waiting slice, in order; a merged slice the workers still cannot take
  // at the deadline is counted (farm_merge.not_fed).
  void drain(std::chrono::milliseconds quiet, std::chrono::milliseconds deadline);
  // Stops the receivers at once (a session torn down without a stop): nothing more is handed on.
  void stop();
  void describe(dataflow::CounterSet& out) const;
  // The oldest last loop of the receiver threads (the watchdog's "thread has run" check); 0 = none.
  std::uint64_t receivers_last_wakeup_unix_ns() const noexcept;

 private:
  void merge(dataflow::Timeslice&& partial, std::uint64_t now_ns);
  void merge_poll(std::uint64_t now_ns);
  void hand_on_merged();  // to feed_, outside the merger's lock (feed may wait for room)
  dataflow::FbError take_result(std::span<const std::uint8_t> bytes, const std::function<void()>& accepted);
  void release_results(std::uint64_t now_ns);
  void write_numbered(std::vector<FilteredSlice>& slices);

  TopologySection topology_;
  zmq::context_t& context_;
  dataflow::RateLimitedLog* log_;
  Feed feed_;
  Write write_;
  std::function<void()> idle_;
  // Steady-clock ns after which a merged slice that finds no room is given up (0: wait, the
  // back-pressure of a running run); set by drain().
  std::atomic<std::int64_t> feed_until_ns_{0};
  std::atomic<std::uint64_t> not_fed_{0};

  std::unique_ptr<dataflow::SliceRouter> router_;  // ingest without filter
  // filter without ingest; the merger is used on the receiver's thread, and by drain() after it stopped
  mutable std::mutex merger_mutex_;  // for describe()
  std::unique_ptr<dataflow::PartialSliceMerger> merger_;
  std::vector<dataflow::Timeslice> merged_;  // emitted by the merger, not yet fed
  std::unique_ptr<dataflow::TimesliceReceiver> partials_in_;
  // filter without writer
  std::unique_ptr<dataflow::TimesliceSender> results_out_;
  flatbuffers::FlatBufferBuilder result_fbb_;
  // writer without filter
  mutable std::mutex orderer_mutex_;
  std::unique_ptr<dataflow::FrameOrderer<FilteredSlice>> orderer_;
  std::unique_ptr<dataflow::BufferReceiver> results_in_;
};

// The run's frame number on every header of a filtered slice (the writer process numbers them).
void set_frame_index(FilteredSlice& slice, std::uint32_t frame_index);

}  // namespace shoredaq::firmware
