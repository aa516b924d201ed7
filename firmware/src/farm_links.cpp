#include "shoredaq/firmware/farm_links.hpp"

#include <thread>
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

}  // namespace

FarmLinks::FarmLinks(const TopologySection& topology, zmq::context_t& context, dataflow::RateLimitedLog* log)
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
    results_out_ = std::make_unique<dataflow::TimesliceSender>(context_, sc);
  }
  if (topology_.writer && !topology_.filter) {
    orderer_ = std::make_unique<dataflow::FrameOrderer<FilteredSlice>>(
        std::uint64_t{topology_.gap_timeout_ms} * 1'000'000ull, 4 * std::size_t{topology_.max_pending_slices});
  }
}

FarmLinks::~FarmLinks() {
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
        [this](dataflow::Timeslice&& partial) { merge(std::move(partial), dataflow::unix_now_ns()); }, log_,
        [this](std::uint64_t now_ns) { merge_poll(now_ns); });
    partials_in_->start();
  }
  if (orderer_) {
    results_in_ = std::make_unique<dataflow::BufferReceiver>(
        context_, receiver_config(topology_.results_endpoint, 4 * topology_.send_hwm),
        [this](std::span<const std::uint8_t> bytes) { return take_result(bytes); },
        [this](std::uint64_t now_ns) {
          release_results(now_ns);
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
  for (auto& s : merged_) feed_(std::move(s));
  merged_.clear();
}

dataflow::FbError FarmLinks::take_result(std::span<const std::uint8_t> bytes) {
  auto decoded = decode_filtered_slice_fb(bytes);
  if (!decoded) return decoded.error;
  const dataflow::SliceHeader header = decoded.value.info.header;
  {
    std::lock_guard lock(orderer_mutex_);
    orderer_->add(dataflow::slice_index_of(header), header.frame_index, std::move(decoded.value), dataflow::unix_now_ns());
  }
  release_results(dataflow::unix_now_ns());
  return dataflow::FbError::None;
}

void FarmLinks::release_results(std::uint64_t now_ns) {
  std::vector<FilteredSlice> due;
  {
    std::lock_guard lock(orderer_mutex_);
    orderer_->release(now_ns, [&](FilteredSlice&& s) { due.push_back(std::move(s)); });
  }
  for (auto& s : due) write_(std::move(s));  // outside the lock: describe() never waits for the store
}

void FarmLinks::wait_quiet(const std::function<std::uint64_t()>& last_receive_ns, std::chrono::milliseconds quiet,
                           std::chrono::steady_clock::time_point until) {
  const auto quiet_ns = static_cast<std::uint64_t>(std::chrono::nanoseconds(quiet).count());
  while (std::chrono::steady_clock::now() < until) {
    const std::uint64_t now = dataflow::unix_now_ns();
    const std::uint64_t last = last_receive_ns();
    if (last == 0 || now >= last + quiet_ns) {
      // Quiet now; a stop begun before anything arrived still gives the senders one period.
      std::this_thread::sleep_for(quiet);
      if (last_receive_ns() == last) return;
      continue;
    }
    std::this_thread::sleep_for(std::chrono::nanoseconds(last + quiet_ns - now));
  }
}

void FarmLinks::drain(std::chrono::milliseconds quiet, std::chrono::milliseconds deadline) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  if (partials_in_) {
    wait_quiet([this] { return partials_in_->counters().last_receive_unix_ns; }, quiet, until);
    partials_in_->stop();
    {
      std::lock_guard lock(merger_mutex_);
      merger_->flush();
    }
    hand_on_merged();
  }
  if (results_in_) {
    wait_quiet([this] { return results_in_->counters().last_receive_unix_ns; }, quiet, until);
    results_in_->stop();
    std::vector<FilteredSlice> rest;
    {
      std::lock_guard lock(orderer_mutex_);
      orderer_->flush([&](FilteredSlice&& s) { rest.push_back(std::move(s)); });
    }
    for (auto& s : rest) write_(std::move(s));
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
  if (router_) {
    std::uint64_t sent = 0, bytes = 0, taken = 0, blocked = 0, dropped = 0, disconnects = 0, connected = 0;
    for (const auto& r : router_->counters()) {
      sent += r.sent;
      bytes += r.bytes;
      taken += r.taken_over;
      blocked += r.blocked;
      dropped += r.dropped;
      disconnects += r.disconnects;
      connected += r.connected ? 1 : 0;
    }
    out.total("farm_route", "slices_sent", sent);
    out.total("farm_route", "bytes_sent", bytes);
    out.total("farm_route", "slices_taken_over", taken);
    out.total("farm_route", "sends_blocked", blocked);
    out.total("farm_route", "filter_disconnects", disconnects);
    out.total("farm_route", "filters_connected", connected);
    out.drop("farm_route", "send_timeout", dropped, LossUnit::Slices);
  }
  if (partials_in_) {
    const auto rc = partials_in_->counters();
    out.total("farm_merge", "partials_received", rc.received);
    out.drop("farm_merge", "bad_buffer", rc.bad_buffers, LossUnit::Slices);
    std::lock_guard lock(merger_mutex_);
    const auto& m = merger_->counters();
    out.total("farm_merge", "slices_merged", m.slices_out);
    out.total("farm_merge", "slices_pending", merger_->pending());
    out.total("farm_merge", "slices_incomplete", m.slices_incomplete);
    out.total("farm_merge", "slices_pushed_out", m.slices_pushed_out);
    out.drop("farm_merge", "partial_missing", m.partials_missing, LossUnit::Slices);
    out.drop("farm_merge", "partial_late", m.partials_late, LossUnit::Slices);
    out.drop("farm_merge", "duplicate_frame", m.frames_duplicate, LossUnit::NotLoss);
    out.drop("farm_merge", "header_mismatch", m.header_mismatches, LossUnit::Slices);
  }
  if (results_out_) {
    const auto c = results_out_->counters();
    out.total("farm_results", "slices_sent", c.sent);
    out.total("farm_results", "bytes_sent", c.bytes);
    out.total("farm_results", "sends_blocked", c.blocked);
    out.drop("farm_results", "send_timeout", c.dropped, LossUnit::Slices);
  }
  if (results_in_) {
    const auto rc = results_in_->counters();
    out.total("farm_order", "slices_received", rc.received);
    out.drop("farm_order", "bad_buffer", rc.bad_buffers, LossUnit::Slices);
    std::lock_guard lock(orderer_mutex_);
    const auto& o = orderer_->counters();
    out.total("farm_order", "slices_released", o.out);
    out.total("farm_order", "slices_waiting", orderer_->pending());
    out.total("farm_order", "gaps", o.gaps);
    out.drop("farm_order", "gap_slice", o.gap_slices, LossUnit::Slices);
    out.drop("farm_order", "late_slice", o.late, LossUnit::Slices);
    out.drop("farm_order", "duplicate_slice", o.duplicates, LossUnit::NotLoss);
  }
}

}  // namespace shoredaq::firmware
