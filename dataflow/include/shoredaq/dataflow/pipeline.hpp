#pragma once
// Pipeline: the node's data threads (DESIGN.md section 6, issue 4 item 3):
//
//   ZmqIngest thread --messages--> builder thread --whole slices--> N worker threads
//        --results--> reorder buffer --frame order--> one writer thread
//
// dataflow knows nothing about filters or storage: the slice processing (`Processor`, e.g.
// filters::DataFilter::process) and the writer are callables, the result type a template
// parameter. The processor is called concurrently from the workers, so it must be thread-safe.
//
// Bounded everywhere: when the message or slice queue is full, the OLDEST WHOLE item is dropped
// and counted (never part of a slice); the reorder buffer holds at most `reorder_window_slices`
// results, so a slow writer backs up into the slice queue, which then drops. Every wait has a
// timeout (`tick`), so stop() and control never wait behind data.
//
// stop() drains: ingest stops, every message already received is built, open slices are expired
// (flushed), every slice is processed and handed to the writer in frame order; if that does not
// finish by the deadline, the stages abort (a processor or writer call in progress still finishes).
//
// Lossless mode (offline replay): queues block (in `tick` steps) instead of dropping, and the
// builder should run with data-time expiry only (expiry_wall_ns = 0).

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "shoredaq/dataflow/pipeline_types.hpp"
#include "shoredaq/dataflow/queue.hpp"
#include "shoredaq/dataflow/rate_limited_log.hpp"
#include "shoredaq/dataflow/reorder_buffer.hpp"
#include "shoredaq/formats/timeslice.hpp"
#include "shoredaq/dataflow/timeslice_builder.hpp"
#include "shoredaq/dataflow/zmq_ingest.hpp"

namespace shoredaq::dataflow {

template <class Result>
class Pipeline {
 public:
  using Processor = std::function<Result(const Timeslice&)>;
  using Writer = std::function<void(ProcessedSlice<Result>&&)>;
  using DropObserver = std::function<void(const SliceInfo&, SliceDropCause)>;

  // `context` is needed only with an ingest config; it must outlive the pipeline.
  Pipeline(PipelineConfig config, Processor processor, Writer writer, zmq::context_t* context = nullptr,
           RateLimitedLog* log = nullptr)
      : config_(std::move(config)),
        processor_(std::move(processor)),
        writer_(std::move(writer)),
        log_(log),
        messages_(config_.message_queue_capacity),
        slices_(config_.slice_queue_capacity),
        reorder_(config_.reorder_window_slices) {
    if (config_.workers == 0) config_.workers = default_worker_count();
    if (config_.ingest) {
      ingest_ = std::make_unique<ZmqIngest>(
          *context, *config_.ingest, [this](ParsedMessage&& m) { accept_message(std::move(m)); }, log_);
    }
  }
  ~Pipeline() { stop(std::chrono::seconds(5)); }
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Called from whichever thread drops a slice; must not block.
  void set_drop_observer(DropObserver observer) { drop_observer_ = std::move(observer); }
  // Called on the builder thread for every TMCH datagram; must not block.
  void set_monitoring_sink(TimesliceBuilder::MonitoringSink sink) { monitoring_sink_ = std::move(sink); }
  // Called on the builder thread for every TAES datagram; must not block. Set before start().
  void set_acoustic_sink(TimesliceBuilder::AcousticSink sink) { acoustic_sink_ = std::move(sink); }
  // Called on the writer thread whenever it waited a tick without a slice (e.g. to flush what the
  // writer buffered); set before start().
  void set_writer_idle(std::function<void()> idle) { writer_idle_ = std::move(idle); }

  // Binds the ingest sockets (throws zmq::error_t on a bad endpoint) and starts every thread.
  void start() {
    if (started_) return;
    started_ = true;
    builder_thread_ = std::thread([this] { run_builder(); });
    for (std::size_t i = 0; i < config_.workers; ++i) workers_.emplace_back([this] { run_worker(); });
    writer_thread_ = std::thread([this] { run_writer(); });
    if (ingest_) {
      try {
        ingest_->start();
      } catch (...) {
        stop(std::chrono::seconds(1));
        throw;
      }
    }
  }

  // Hands a message to the builder (offline replay, tests, a bridge). Lossless mode waits up to
  // `timeout` for room; otherwise the oldest queued message is dropped when full.
  template <class Rep, class Period>
  QueueStatus feed(ParsedMessage&& message, std::chrono::duration<Rep, Period> timeout) {
    if (config_.lossless) {
      const QueueStatus s = messages_.push(message, timeout);
      if (s == QueueStatus::Ok) ingest_stage_.add_out(1, unix_now_ns());
      return s;
    }
    accept_message(std::move(message));
    return QueueStatus::Ok;
  }

  // Hands a whole slice straight to the workers, bypassing the builder: the entry of a filter node
  // fed by a TimesliceReceiver. Lossless mode waits up to `timeout` (on Timeout/Closed the slice is
  // left in `slice`); otherwise the oldest queued slice is dropped when full.
  template <class Rep, class Period>
  QueueStatus feed_slice(Timeslice&& slice, std::chrono::duration<Rep, Period> timeout) {
    SliceItem item{next_sequence_.fetch_add(1), std::move(slice)};
    if (config_.lossless) {
      const QueueStatus s = slices_.push(item, timeout);
      if (s != QueueStatus::Ok) {
        reorder_.skip(item.sequence);    // not queued: the writer must not wait for this sequence
        slice = std::move(item.slice);   // handed back: the caller may retry (counted once, when taken)
        return s;
      }
      builder_stage_.add_in();
      builder_stage_.add_out(1, unix_now_ns());
      return s;
    }
    builder_stage_.add_in();
    builder_stage_.add_out(1, unix_now_ns());
    auto r = slices_.push_drop_oldest(std::move(item));
    if (r.status == QueueStatus::Closed) {
      reorder_.skip(r.dropped->sequence);
      return QueueStatus::Closed;
    }
    if (r.dropped) {
      reorder_.skip(r.dropped->sequence);
      note_drop(SliceInfo::of(r.dropped->slice, r.dropped->sequence), SliceDropCause::SliceQueueFull);
    }
    return QueueStatus::Ok;
  }

  // Drains (see the top of this file) within `deadline`; idempotent. start() and stop() belong to
  // one controlling thread.
  StopReport stop(std::chrono::milliseconds deadline = std::chrono::seconds(10)) {
    const auto t0 = std::chrono::steady_clock::now();
    StopReport report;
    if (!started_ || stopped_) {
      report.drained = drained_;
      return report;
    }
    stopped_ = true;
    draining_ = true;              // from now on the builder waits for room instead of dropping
    if (ingest_) ingest_->stop();  // returns within about one poll interval
    messages_.close();
    {
      std::unique_lock lock(done_mutex_);
      drained_ = done_cv_.wait_until(lock, t0 + deadline, [&] { return writer_done_; });
    }
    if (!drained_) {
      abort_ = true;  // every loop notices within one tick
      messages_.close();
      slices_.close();
      reorder_.close();
    }
    if (builder_thread_.joinable()) builder_thread_.join();
    for (auto& w : workers_) w.join();
    workers_.clear();
    if (writer_thread_.joinable()) writer_thread_.join();
    if (!drained_) account_leftovers();
    report.drained = drained_;
    report.took = std::chrono::steady_clock::now() - t0;
    return report;
  }

  PipelineStats stats() const {
    PipelineStats s;
    if (ingest_) s.ingest = ingest_->counters();
    {
      std::lock_guard lock(builder_counters_mutex_);
      s.builder = builder_counters_;
      s.implausible_time_doms = implausible_time_doms_;
    }
    s.ingest_stage = ingest_stage_.snapshot();
    if (ingest_) {
      s.ingest_stage.in = s.ingest.messages;
      s.ingest_stage.last_wakeup_unix_ns = ingest_->last_poll_unix_ns();
    }
    s.builder_stage = builder_stage_.snapshot();
    s.worker_stage = worker_stage_.snapshot();
    s.writer_stage = writer_stage_.snapshot();
    s.message_queue = messages_.counters();
    s.slice_queue = slices_.counters();
    s.messages_dropped = messages_dropped_.load();
    s.datagrams_dropped = datagrams_dropped_.load();
    s.slices_dropped_queue_full = slices_dropped_full_.load();
    s.processor_errors = processor_errors_.load();
    s.slices_aborted = slices_aborted_.load();
    s.messages_discarded = messages_discarded_.load();
    s.datagrams_discarded = datagrams_discarded_.load();
    s.open_slices_discarded = open_slices_discarded_.load();
    s.messages_after_stop = messages_after_stop_.load();
    s.reorder_pending = reorder_.size();
    return s;
  }

  const PipelineConfig& config() const noexcept { return config_; }
  const ZmqIngest* ingest() const noexcept { return ingest_.get(); }

 private:
  struct SliceItem {
    std::uint64_t sequence = 0;
    Timeslice slice;
  };

  // Ingest thread (or feed): never blocks; the oldest whole message goes when the queue is full.
  // Lossless (back-pressure): waits for room instead, so the ingest sockets stop being read and
  // ZeroMQ PUSH senders wait; once stop() begins it no longer waits, so stop never hangs on it.
  void accept_message(ParsedMessage&& m) {
    ingest_stage_.add_in();
    if (config_.lossless) {
      while (!abort_.load(std::memory_order_relaxed) && !draining_.load(std::memory_order_relaxed)) {
        const QueueStatus s = messages_.push(m, config_.tick);
        if (s == QueueStatus::Ok) {
          ingest_stage_.add_out(1, unix_now_ns());
          return;
        }
        if (s == QueueStatus::Closed) {
          messages_after_stop_.fetch_add(1, std::memory_order_relaxed);
          return;
        }
      }
    }
    auto r = messages_.push_drop_oldest(std::move(m));
    if (r.status == QueueStatus::Closed) {
      messages_after_stop_.fetch_add(1, std::memory_order_relaxed);  // arrived after stop(): not ours
      return;
    }
    if (r.dropped) {
      messages_dropped_.fetch_add(1, std::memory_order_relaxed);
      datagrams_dropped_.fetch_add(r.dropped->records.size(), std::memory_order_relaxed);
      ingest_stage_.add_dropped();
      if (log_ != nullptr) {
        log_->log(spdlog::level::warn, "message_queue_full",
                  "pipeline: builder behind, dropped the oldest queued message ({} datagrams)",
                  r.dropped->records.size());
      }
    }
    ingest_stage_.add_out(1, unix_now_ns());
  }

  // After an abort: what is still queued is counted, never silently lost.
  void account_leftovers() {
    ParsedMessage m;
    while (messages_.pop(m, std::chrono::milliseconds(0)) == QueueStatus::Ok) {
      messages_discarded_.fetch_add(1, std::memory_order_relaxed);
      datagrams_discarded_.fetch_add(m.records.size(), std::memory_order_relaxed);
    }
    SliceItem item;
    while (slices_.pop(item, std::chrono::milliseconds(0)) == QueueStatus::Ok) {
      note_drop(SliceInfo::of(item.slice, item.sequence), SliceDropCause::Aborted);
    }
  }

  void publish_builder_counters(const TimesliceBuilder& b) {
    std::lock_guard lock(builder_counters_mutex_);
    // The per-DOM list is rebuilt only when it changed (it rarely does).
    if (b.counters().implausible_time_datagrams != builder_counters_.implausible_time_datagrams) {
      implausible_time_doms_ = b.implausible_time_doms();
    }
    builder_counters_ = b.counters();
  }

  void emit_slice(Timeslice&& slice) {
    SliceItem item{next_sequence_.fetch_add(1), std::move(slice)};
    builder_stage_.add_out(1, unix_now_ns());
    if (config_.lossless || draining_.load(std::memory_order_relaxed)) {
      while (!abort_.load(std::memory_order_relaxed)) {
        const QueueStatus s = slices_.push(item, config_.tick);
        if (s != QueueStatus::Timeout) return;
      }
      note_drop(SliceInfo::of(item.slice, item.sequence), SliceDropCause::Aborted);
      reorder_.skip(item.sequence);
      return;
    }
    auto r = slices_.push_drop_oldest(std::move(item));
    if (r.dropped) {
      // A whole slice, never part of one; the writer must not wait for it.
      reorder_.skip(r.dropped->sequence);
      note_drop(SliceInfo::of(r.dropped->slice, r.dropped->sequence), SliceDropCause::SliceQueueFull);
    }
  }

  void note_drop(const SliceInfo& info, SliceDropCause cause) {
    switch (cause) {
      case SliceDropCause::SliceQueueFull:
        slices_dropped_full_.fetch_add(1, std::memory_order_relaxed);
        builder_stage_.add_dropped();
        break;
      case SliceDropCause::ProcessorError:
        processor_errors_.fetch_add(1, std::memory_order_relaxed);
        worker_stage_.add_dropped();
        break;
      case SliceDropCause::Aborted:
        slices_aborted_.fetch_add(1, std::memory_order_relaxed);
        break;
    }
    if (log_ != nullptr) {
      log_->log(spdlog::level::warn, to_string(cause), "pipeline: dropped slice frame {} of run {}: {}",
                info.header.frame_index, info.header.run, to_string(cause));
    }
    if (drop_observer_) drop_observer_(info, cause);
  }

  void run_builder() {
    TimesliceBuilder builder(config_.builder, [this](Timeslice&& t) { emit_slice(std::move(t)); });
    if (monitoring_sink_) builder.set_monitoring_sink(monitoring_sink_);
    if (acoustic_sink_) builder.set_acoustic_sink(acoustic_sink_);
    if (log_ != nullptr) {
      builder.set_drop_sink([this](BuilderDropReason r, const ClbHeader& h) {
        log_->log(spdlog::level::warn, to_string(r), "builder: dropped datagram of DOM {} (run {}, seq {}): {}",
                  h.dom_id, h.run_number, h.udp_sequence, to_string(r));
      });
    }
    ParsedMessage m;
    while (!abort_.load(std::memory_order_relaxed)) {
      const QueueStatus s = messages_.pop(m, config_.tick);
      const std::uint64_t now = unix_now_ns();
      builder_stage_.wakeup(now);
      if (s == QueueStatus::Closed) break;
      if (s == QueueStatus::Ok) {
        builder_stage_.add_in(m.records.size());
        for (std::size_t i = 0; i < m.records.size(); ++i) builder.add(m.datagram(i), m.receive_unix_ns);
        m = ParsedMessage{};
      }
      builder.poll(now);
      publish_builder_counters(builder);
    }
    if (!abort_.load()) {
      builder.flush(unix_now_ns());  // stop: expire what is still open
    } else {
      open_slices_discarded_.fetch_add(builder.open_slices(), std::memory_order_relaxed);
    }
    publish_builder_counters(builder);
    slices_.close();
  }

  void run_worker() {
    SliceItem item;
    while (!abort_.load(std::memory_order_relaxed)) {
      const QueueStatus s = slices_.pop(item, config_.tick);
      worker_stage_.wakeup(unix_now_ns());
      if (s == QueueStatus::Closed) break;
      if (s != QueueStatus::Ok) continue;
      worker_stage_.add_in();
      ProcessedSlice<Result> out;
      out.info = SliceInfo::of(item.slice, item.sequence);
      try {
        out.result = processor_(item.slice);
      } catch (const std::exception& e) {
        if (log_ != nullptr) log_->log(spdlog::level::err, "processor_error", "pipeline: processor failed: {}", e.what());
        reorder_.skip(item.sequence);
        note_drop(out.info, SliceDropCause::ProcessorError);
        continue;
      } catch (...) {
        reorder_.skip(item.sequence);
        note_drop(out.info, SliceDropCause::ProcessorError);
        continue;
      }
      out.monitoring = std::move(item.slice.monitoring);
      item.slice = Timeslice{};  // free the hits before waiting for the writer
      out.processed_unix_ns = unix_now_ns();
      const SliceInfo info = out.info;
      QueueStatus put = QueueStatus::Timeout;
      while (put == QueueStatus::Timeout && !abort_.load(std::memory_order_relaxed)) {
        put = reorder_.put(info.sequence, std::move(out), config_.tick);
      }
      if (put == QueueStatus::Ok) {
        worker_stage_.add_out(1, unix_now_ns());
      } else {
        note_drop(info, SliceDropCause::Aborted);
      }
    }
    if (active_workers_.fetch_sub(1) == 1) reorder_.close();  // the last worker out
  }

  void run_writer() {
    ProcessedSlice<Result> p;
    for (;;) {
      const QueueStatus s = reorder_.take(p, config_.tick);
      writer_stage_.wakeup(unix_now_ns());
      if (s == QueueStatus::Closed) break;
      if (s != QueueStatus::Ok) {
        if (writer_idle_) writer_idle_();
        continue;
      }
      writer_stage_.add_in();
      if (abort_.load(std::memory_order_relaxed)) {
        note_drop(p.info, SliceDropCause::Aborted);
        continue;
      }
      writer_(std::move(p));
      writer_stage_.add_out(1, unix_now_ns());
    }
    {
      std::lock_guard lock(done_mutex_);
      writer_done_ = true;
    }
    done_cv_.notify_all();
  }

  PipelineConfig config_;
  Processor processor_;
  Writer writer_;
  DropObserver drop_observer_;
  TimesliceBuilder::MonitoringSink monitoring_sink_;
  TimesliceBuilder::AcousticSink acoustic_sink_;
  std::function<void()> writer_idle_;
  RateLimitedLog* log_;
  std::unique_ptr<ZmqIngest> ingest_;
  BoundedQueue<ParsedMessage> messages_;
  BoundedQueue<SliceItem> slices_;
  ReorderBuffer<ProcessedSlice<Result>> reorder_;

  std::thread builder_thread_, writer_thread_;
  std::vector<std::thread> workers_;
  std::atomic<std::size_t> active_workers_{config_.workers == 0 ? default_worker_count() : config_.workers};
  std::atomic<bool> abort_{false};
  std::atomic<bool> draining_{false};
  bool started_ = false, stopped_ = false, drained_ = false;
  std::mutex done_mutex_;
  std::condition_variable done_cv_;
  bool writer_done_ = false;

  std::atomic<std::uint64_t> next_sequence_{0};  // builder thread and feed_slice()
  mutable std::mutex builder_counters_mutex_;
  TimesliceBuilderCounters builder_counters_;
  std::vector<DomCount> implausible_time_doms_;
  StageStats ingest_stage_, builder_stage_, worker_stage_, writer_stage_;
  std::atomic<std::uint64_t> messages_dropped_{0}, datagrams_dropped_{0}, slices_dropped_full_{0},
      processor_errors_{0}, slices_aborted_{0}, messages_discarded_{0}, datagrams_discarded_{0},
      open_slices_discarded_{0}, messages_after_stop_{0};
};

}  // namespace shoredaq::dataflow
