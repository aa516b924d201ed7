#include "shoredaq/firmware/farm_links.hpp"

#include <algorithm>
#include <optional>
#include <vector>

#include "shoredaq/dataflow/zmq_ingest.hpp"  // unix_now_ns

namespace shoredaq::firmware {
namespace {

dataflow::TimesliceReceiverConfig receiver_config(const std::string& endpoint, unsigned hwm) {
  dataflow::TimesliceReceiverConfig c;
  c.endpoints = {endpoint};
  c.bind = true;
  c.receive_hwm = static_cast<int>(hwm);
  return c;
}

std::int64_t steady_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

void set_frame_index(FilteredSlice& slice, std::uint32_t frame_index) {
  const auto apply = [&](dataflow::SliceHeader& h) { h.frame_index = frame_index; };
  apply(slice.info.header);
  for (auto& e : slice.result.events) apply(e.header);
  apply(slice.result.summary.header);
  for (auto& t : slice.result.prescaled) apply(t.slice.header);
  apply(slice.result.error_frames.header);
  if (slice.result.supernova) apply(slice.result.supernova->header);
}

FarmLinks::FarmLinks(const TopologySection& topology, std::vector<std::uint32_t> expected_doms, zmq::context_t& context,
                     dataflow::RateLimitedLog* log)
    : topology_(topology), context_(context), log_(log) {
  const auto send_timeout = std::chrono::milliseconds(topology_.send_timeout_ms);
  if (topology_.ingest && !topology_.filter) {
    dataflow::SliceRouterConfig rc;
    rc.endpoints = topology_.filter_endpoints;
    rc.send_hwm = static_cast<int>(topology_.send_hwm);
    rc.send_timeout = send_timeout;
    router_ = std::make_unique<dataflow::SliceRouter>(context_, rc);
  }
  if (topology_.filter && !topology_.ingest) {
    dataflow::PartialSliceMergerConfig mc;
    mc.sources = topology_.ingest_processes;
    mc.timeout_ns = std::uint64_t{topology_.merge_timeout_ms} * 1'000'000ull;
    mc.max_pending_slices = topology_.max_pending_slices;
    mc.expected_doms = std::move(expected_doms);
    // The merger's windows are handed on outside its lock (feed may wait for room).
    merger_ = std::make_unique<dataflow::PartialSliceMerger>(mc, [this](dataflow::Timeslice&& s) { merged_.push_back(std::move(s)); });
  }
  if (topology_.filter && !topology_.writer) {
    dataflow::TimesliceSenderConfig sc;
    sc.endpoints = {topology_.results_endpoint};
    sc.bind = false;
    sc.send_hwm = static_cast<int>(topology_.send_hwm);
    sc.send_timeout = send_timeout;
    sc.linger_ms = 2000;  // the last results of a stopped run still reach the writer
    sc.heartbeat_ms = 1000;  // a writer host that vanished without closing is noticed
    results_out_ = std::make_unique<dataflow::TimesliceSender>(context_, sc);
  }
  if (topology_.writer && !topology_.filter) {
    orderer_ = std::make_unique<dataflow::FrameOrderer<FilteredSlice>>(
        std::uint64_t{topology_.gap_timeout_ms} * 1'000'000ull, 4 * std::size_t{topology_.max_pending_slices});
  }
}

FarmLinks::~FarmLinks() { stop(); }

void FarmLinks::stop() {
  feed_until_ns_.store(1);  // a feed waiting for room gives up at once
  if (partials_in_) partials_in_->stop();
  if (results_in_) results_in_->stop();
}

bool FarmLinks::route(const dataflow::Timeslice& slice) { return router_ ? router_->send(slice) : false; }

void FarmLinks::send_result(const FilteredSlice& slice) {
  if (!results_out_) return;
  encode_filtered_slice_fb(slice, result_fbb_);
  if (!results_out_->send_encoded({result_fbb_.GetBufferPointer(), result_fbb_.GetSize()}) && log_ != nullptr) {
    log_->log(spdlog::level::warn, "result_dropped", "farm: the writer process took no result for {} ms: slice frame {} dropped",
              topology_.send_timeout_ms, slice.info.header.frame_index);
  }
}

void FarmLinks::start(Feed feed, Write write, std::function<void()> idle) {
  feed_ = std::move(feed);
  write_ = std::move(write);
  idle_ = std::move(idle);
  if (merger_) {
    partials_in_ = std::make_unique<dataflow::TimesliceReceiver>(
        context_, receiver_config(topology_.slices_endpoint, 4 * topology_.send_hwm),
        [this](dataflow::Timeslice&& partial) { merge(std::move(partial), static_cast<std::uint64_t>(steady_now_ns())); },
        log_, [this](std::uint64_t) { merge_poll(static_cast<std::uint64_t>(steady_now_ns())); });
    partials_in_->start();
  }
  if (orderer_) {
    results_in_ = std::make_unique<dataflow::BufferReceiver>(
        context_, receiver_config(topology_.results_endpoint, 4 * topology_.send_hwm),
        [this](std::span<const std::uint8_t> bytes, const std::function<void()>& accepted) {
          return take_result(bytes, accepted);
        },
        [this](std::uint64_t) {
          release_results(steady_now_ns());
          if (idle_) idle_();
        },
        log_);
    results_in_->start();
  }
}

void FarmLinks::merge(dataflow::Timeslice&& partial, std::uint64_t now_ns) {
  {
    std::lock_guard lock(merger_mutex_);
    merger_->add(std::move(partial), now_ns);
  }
  hand_on_merged();
}

void FarmLinks::merge_poll(std::uint64_t now_ns) {
  {
    std::lock_guard lock(merger_mutex_);
    merger_->poll(now_ns);
  }
  hand_on_merged();
}

void FarmLinks::hand_on_merged() {
  for (auto& s : merged_) {
    // With back-pressure the workers may have no room: wait (the ingest processes' sends wait on
    // this filter in turn, up to their send timeout); once a stop sets a deadline, give up then.
    for (;;) {
      const dataflow::QueueStatus status = feed_(s);
      if (status == dataflow::QueueStatus::Ok) break;
      const std::int64_t until = feed_until_ns_.load();
      if (status == dataflow::QueueStatus::Closed || (until != 0 && steady_now_ns() >= until)) {
        not_fed_.fetch_add(1, std::memory_order_relaxed);
        if (log_ != nullptr)
          log_->log(spdlog::level::warn, "not_fed", "farm: merged slice frame {} dropped: the workers took nothing before stop",
                    s.header.frame_index);
        break;
      }
    }
  }
  merged_.clear();
}

dataflow::FbError FarmLinks::take_result(std::span<const std::uint8_t> bytes, const std::function<void()>& accepted) {
  auto decoded = decode_filtered_slice_fb(bytes);
  if (!decoded) return decoded.error;
  accepted();
  const std::uint64_t index = dataflow::slice_index_of(decoded.value.info.header);
  const auto now = static_cast<std::uint64_t>(steady_now_ns());
  {
    std::lock_guard lock(orderer_mutex_);
    orderer_->add(index, std::move(decoded.value), now);
  }
  release_results(now);
  return dataflow::FbError::None;
}

void FarmLinks::release_results(std::uint64_t now_ns) {
  std::vector<FilteredSlice> due;
  {
    std::lock_guard lock(orderer_mutex_);
    orderer_->release(now_ns, [&](FilteredSlice&& s) { due.push_back(std::move(s)); });
  }
  write_numbered(due);
}

// Frame N of the run is the slice N - 1 windows after its first: every ingest process may have
// counted from another first slice, the writer's numbering is the run's. Outside the orderer's
// lock: describe() never waits for the store.
void FarmLinks::write_numbered(std::vector<FilteredSlice>& slices) {
  std::optional<std::uint64_t> first;
  {
    std::lock_guard lock(orderer_mutex_);
    first = orderer_->first();
  }
  for (auto& s : slices) {
    const std::uint64_t index = dataflow::slice_index_of(s.info.header);
    if (first && index >= *first) set_frame_index(s, static_cast<std::uint32_t>(index - *first + 1));
    write_(std::move(s));
  }
  slices.clear();
}

void FarmLinks::drain(std::chrono::milliseconds quiet, std::chrono::milliseconds deadline) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  feed_until_ns_.store(steady_now_ns() + std::chrono::duration_cast<std::chrono::nanoseconds>(deadline).count());
  const auto left = [&] {
    return std::max(std::chrono::milliseconds(0),
                    std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now()));
  };
  if (partials_in_) {
    partials_in_->drain_and_stop(quiet, left());
    {
      std::lock_guard lock(merger_mutex_);
      merger_->flush();
    }
    hand_on_merged();
  }
  if (results_in_) {
    results_in_->drain_and_stop(quiet, left());
    std::vector<FilteredSlice> rest;
    {
      std::lock_guard lock(orderer_mutex_);
      orderer_->flush([&](FilteredSlice&& s) { rest.push_back(std::move(s)); });
    }
    write_numbered(rest);
  }
}

std::uint64_t FarmLinks::receivers_last_wakeup_unix_ns() const noexcept {
  std::uint64_t oldest = 0;
  for (std::uint64_t t : {partials_in_ ? partials_in_->last_wakeup_unix_ns() : 0,
                          results_in_ ? results_in_->last_wakeup_unix_ns() : 0}) {
    if (t != 0 && (oldest == 0 || t < oldest)) oldest = t;
  }
  return oldest;
}

void FarmLinks::describe(dataflow::CounterSet& out) const {
  using dataflow::LossUnit;
  const auto receiver = [&](const char* stage, const dataflow::TimesliceReceiverCounters& rc) {
    out.total(stage, "buffers_received", rc.received);
    out.total(stage, "bytes_received", rc.bytes);
    out.drop(stage, "bad_buffer", rc.bad_buffers, LossUnit::Slices);
    out.drop(stage, "sink_error", rc.sink_errors, LossUnit::Slices);
    out.drop(stage, "discarded_at_stop", rc.discarded_at_stop, LossUnit::Slices);
  };
  if (router_) {
    const auto routes = router_->counters();
    std::uint64_t sent = 0, bytes = 0, taken = 0, blocked = 0, dropped = 0;
    for (std::size_t i = 0; i < routes.size(); ++i) {
      const auto& r = routes[i];
      sent += r.sent;
      bytes += r.bytes;
      taken += r.taken_over;
      blocked += r.blocked;
      dropped += r.dropped;
      // Per filter process, in the order of filter_endpoints: which one is gone or slow.
      const std::string f = "filter" + std::to_string(i) + "_";
      out.total("farm_route", f + "slices_sent", r.sent);
      out.total("farm_route", f + "disconnects", r.disconnects);
      out.drop("farm_route", f + "send_timeout", r.dropped, LossUnit::NotLoss);  // counted below as slices
    }
    out.total("farm_route", "slices_sent", sent);
    out.total("farm_route", "bytes_sent", bytes);
    out.total("farm_route", "slices_taken_over", taken);
    out.total("farm_route", "sends_blocked", blocked);
    out.drop("farm_route", "send_timeout", dropped, LossUnit::Slices);
  }
  if (partials_in_) {
    receiver("farm_merge", partials_in_->counters());
    out.drop("farm_merge", "not_fed", not_fed_.load(), LossUnit::Slices);
    std::lock_guard lock(merger_mutex_);
    const auto& m = merger_->counters();
    out.total("farm_merge", "partials_in", m.partials_in);
    out.total("farm_merge", "slices_merged", m.slices_out);
    out.total("farm_merge", "slices_incomplete", m.slices_incomplete);
    out.total("farm_merge", "slices_pushed_out", m.slices_pushed_out);
    out.total("farm_merge", "frames_added_empty", m.frames_added_empty);
    // A missing or late partial's DOMs are written as missing frames of a written slice (the
    // detector health shows them): counted, not a slice lost.
    out.drop("farm_merge", "partial_missing", m.partials_missing, LossUnit::NotLoss);
    out.drop("farm_merge", "partial_late", m.partials_late, LossUnit::NotLoss);
    out.drop("farm_merge", "duplicate_frame", m.frames_duplicate, LossUnit::NotLoss);
    out.drop("farm_merge", "header_mismatch", m.header_mismatches, LossUnit::NotLoss);
  }
  if (results_out_) {
    const auto c = results_out_->counters();
    out.total("farm_results", "slices_sent", c.sent);
    out.total("farm_results", "bytes_sent", c.bytes);
    out.total("farm_results", "sends_blocked", c.blocked);
    out.drop("farm_results", "send_timeout", c.dropped, LossUnit::Slices);
  }
  if (results_in_) {
    receiver("farm_order", results_in_->counters());
    std::lock_guard lock(orderer_mutex_);
    const auto& o = orderer_->counters();
    out.total("farm_order", "slices_released", o.out);
    out.total("farm_order", "gaps", o.gaps);
    out.drop("farm_order", "gap_slice", o.gap_slices, LossUnit::Slices);
    // Behind the order: its index was passed over as a gap and counted there.
    out.drop("farm_order", "late_slice", o.late, LossUnit::NotLoss);
    out.drop("farm_order", "duplicate_slice", o.duplicates, LossUnit::NotLoss);
  }
}

}  // namespace shoredaq::firmware
