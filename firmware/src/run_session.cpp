#include "shoredaq/firmware/run_session.hpp"

#include <algorithm>

namespace shoredaq::firmware {
namespace {

dataflow::HeaderLayoutMode layout_mode(HeaderLayoutSetting s) {
  switch (s) {
    case HeaderLayoutSetting::Auto: return dataflow::HeaderLayoutMode::Auto;
    case HeaderLayoutSetting::Standard40: return dataflow::HeaderLayoutMode::Standard40;
    case HeaderLayoutSetting::Legacy28: return dataflow::HeaderLayoutMode::Legacy28;
  }
  return dataflow::HeaderLayoutMode::Auto;
}

}  // namespace

dataflow::PipelineConfig live_pipeline_config(const NodeConfig& config, const dataflow::Detector& detector,
                                              std::uint32_t run,
                                              std::function<void(zmq::socket_t&)> configure_ingest_socket) {
  dataflow::PipelineConfig p;
  p.builder.detector_id = detector.id();
  p.builder.run_number = run;
  p.builder.expected_doms = dataflow::TimesliceBuilderConfig::expected_doms_of(detector);
  if (!config.topology.dus.empty()) {
    // One ingest process of a farm: the frames of its DUs; the others' datagrams are not its own.
    const auto& dus = config.topology.dus;
    const auto mine = [&](int du) { return std::find(dus.begin(), dus.end(), static_cast<std::uint32_t>(du)) != dus.end(); };
    std::vector<std::uint32_t> own;
    for (std::uint32_t id : p.builder.expected_doms) {
      if (const dataflow::Module* m = detector.find(id); m != nullptr && mine(m->du)) own.push_back(id);
    }
    for (const dataflow::Module& m : detector.modules()) {
      if (!mine(m.du)) p.builder.other_ingest_doms.push_back(m.id);
    }
    p.builder.expected_doms = std::move(own);
  }
  p.builder.max_open_slices = config.builder.max_open_slices;
  p.builder.expiry_lag_slices = std::max(1u, config.builder.expiry_ms / 100);
  p.builder.expiry_wall_ns = std::uint64_t{config.builder.wall_clock_expiry_ms} * 1'000'000ull;
  p.builder.time_quorum_doms = config.builder.time_quorum_doms;
  p.builder.max_wall_clock_offset_s = config.builder.max_wall_clock_offset_s;
  dataflow::ZmqIngestConfig ingest;
  for (const auto& e : config.ingest.endpoints) {
    dataflow::IngestEndpoint ep;
    ep.address = e;
    ep.kind = config.ingest.socket == IngestSocket::Sub ? dataflow::IngestSocketKind::Sub : dataflow::IngestSocketKind::Pull;
    ep.bind = config.ingest.bind;
    ep.layout = layout_mode(config.ingest.header_layout);
    ingest.endpoints.push_back(ep);
  }
  ingest.receive_hwm = config.ingest.rcvhwm;
  ingest.configure_socket = std::move(configure_ingest_socket);
  // UDP only: no ZeroMQ sockets at all (the receiver feeds the pipeline).
  if (!ingest.endpoints.empty() && config.topology.ingest) p.ingest = ingest;
  p.lossless = config.builder.backpressure;
  p.workers = config.worker_count();
  p.slice_queue_capacity = config.builder.queue_slices;
  p.reorder_window_slices = std::max<std::size_t>(config.builder.queue_slices, 2 * p.workers);
  return p;
}

drivers::UdpReceiverConfig live_udp_config(const NodeConfig& config) {
  drivers::UdpReceiverConfig u;
  for (const auto& port : config.ingest.udp) {
    drivers::UdpPortConfig p;
    p.data_type = port.data_type;
    p.bind = drivers::UdpEndpoint{port.address, port.port};
    p.header_layout = layout_mode(config.ingest.header_layout);
    p.receive_buffer_bytes = static_cast<int>(config.ingest.udp_receive_buffer_mb << 20);
    u.ports.push_back(p);
  }
  u.endpoint_index_base = config.ingest.endpoints.size();
  return u;
}

RunSession::RunSession(RunSessionInputs in)
    : setup_(in.setup),
      topology_(in.config->topology),
      paused_(in.paused),
      supernova_alert_(in.supernova_alert),
      writer_(in.record, std::move(in.sinks)),
      dom_health_(std::make_shared<DomHealthMonitor>(in.setup->detector)),
      supernova_(std::make_shared<SupernovaWatch>(in.setup->parameters.supernova, in.setup->detector->id(),
                                                  in.record.run_type != "physics",
                                                  in.config->snews.heartbeat_period_s)),
      slice_pool_(in.config->slice_thread_count() > 1 && topology_.filter
                      ? std::make_shared<dataflow::TaskPool>(in.config->slice_thread_count() - 1)
                      : nullptr),
      links_(topology_.whole_node()
                 ? nullptr
                 : std::make_unique<FarmLinks>(topology_, dataflow::TimesliceBuilderConfig::expected_doms_of(*in.setup->detector),
                                               *in.context, in.log)),
      pipeline_(live_pipeline_config(*in.config, *in.setup->detector, in.clb_run != 0 ? in.clb_run : in.record.run,
                                     std::move(in.configure_ingest_socket)),
                make_processor(in), make_writer(), in.context, in.log) {
  // No slice arrives while the feed is quiet, yet what a sink buffered must still reach its disk.
  // (A writer process without the filter role writes on its receiver's thread, and idles there.)
  if (topology_.writer && topology_.filter) pipeline_.set_writer_idle([this] { writer_.idle(); });
  if (in.acoustic) pipeline_.set_acoustic_sink(std::move(in.acoustic));
  if (!in.config->ingest.udp.empty() && topology_.ingest) {
    // Lossy mode: feed never waits (a full queue drops its oldest message, counted), so the
    // receiver thread keeps draining the kernel buffer.
    const auto feed = [this](dataflow::ParsedMessage&& m) { pipeline_.feed(std::move(m), std::chrono::milliseconds(0)); };
    udp_ = std::make_unique<drivers::UdpReceiver>(live_udp_config(*in.config), feed, in.log);
  }
}

dataflow::Pipeline<filters::FilterResult>::Processor RunSession::make_processor(const RunSessionInputs& in) {
  if (!topology_.filter) {
    // An ingest process: its workers encode and send the partial slices (in parallel; the router
    // keeps one sender per filter process). The result is empty: nothing is written here.
    return [links = links_.get()](const dataflow::Timeslice& t) {
      links->route(t);
      return filters::FilterResult{};
    };
  }
  return [filter = in.setup->filter, raw = in.raw_slice, pool = slice_pool_,
          threads = in.config->slice_thread_count()](const dataflow::Timeslice& t) {
    if (raw) raw(t);
    if (!pool) return filter->process(t);
    return filter->process(
        t, [&pool](std::size_t n, const std::function<void(std::size_t)>& task) { pool->run(n, task); }, threads);
  };
}

dataflow::Pipeline<filters::FilterResult>::Writer RunSession::make_writer() {
  if (!topology_.filter) return [](dataflow::ProcessedSlice<filters::FilterResult>&&) {};  // routed by the workers
  if (!topology_.writer) {
    return [links = links_.get()](dataflow::ProcessedSlice<filters::FilterResult>&& p) { links->send_result(p); };
  }
  return [this](dataflow::ProcessedSlice<filters::FilterResult>&& p) { write_slice(std::move(p)); };
}

void RunSession::write_slice(dataflow::ProcessedSlice<filters::FilterResult>&& p) {
  wait_until_open();
  dom_health_->observe(p.result.summary);  // also while paused: the sea does not pause
  dom_health_->observe_monitoring(p.monitoring);
  const bool paused = paused_->load(std::memory_order_relaxed);
  std::vector<std::string> alerts;
  if (auto alert = supernova_->observe(p.result)) {
    if (supernova_alert_) supernova_alert_(*alert);
    // A paused slice is not written: its alert still goes to the outputs that publish.
    if (paused) writer_.snews({dataflow::SnewsMessage::Kind::Alert, std::move(*alert)});
    else alerts.push_back(std::move(*alert));
  }
  if (auto beat = supernova_->heartbeat(writer_.run()))
    writer_.snews({dataflow::SnewsMessage::Kind::Heartbeat, std::move(*beat)});
  writer_.write(std::move(p), paused, std::move(alerts));
}

RunSession::~RunSession() {
  if (udp_) udp_->stop();  // nothing may feed a pipeline that is being torn down
  if (links_) links_->stop();
  pipeline_.stop(std::chrono::seconds(5));
}

void RunSession::start() {
  if (udp_) {
    try {
      udp_->open();  // bound before anything runs: a bad port refuses the start
    } catch (const std::exception& e) {
      udp_->stop();
      throw UdpOpenError(e.what());
    }
  }
  try {
    pipeline_.start();
    if (links_) {
      links_->start(
          // A merged slice to the workers: lossy, the oldest queued slice gives way; with
          // back-pressure a Timeout hands the slice back and FarmLinks tries again (until a stop).
          [this](dataflow::Timeslice& slice) { return pipeline_.feed_slice(std::move(slice), std::chrono::milliseconds(100)); },
          [this](FilteredSlice&& p) { write_slice(std::move(p)); }, [this] { writer_.idle(); });
    }
  } catch (...) {
    if (udp_) udp_->stop();
    pipeline_.stop(std::chrono::seconds(1));
    throw;
  }
  if (udp_) udp_->start();
}

void RunSession::open() {
  writer_.begin_run();
  {
    std::lock_guard lock(open_mutex_);
    opened_ = true;
  }
  open_cv_.notify_all();
}

void RunSession::wait_until_open() {
  std::unique_lock lock(open_mutex_);
  open_cv_.wait_for(lock, std::chrono::seconds(30), [this] { return opened_; });
}

dataflow::StopReport RunSession::stop(std::chrono::milliseconds deadline, dataflow::RunRecord& record) {
  // The receiver first: what it handed over is drained, what arrives later stays in the kernel.
  if (udp_) udp_->stop();
  // A filter or writer process: the processes upstream stopped first; what they sent last is
  // received, merged (or put in order) and handed on before the pipeline drains.
  const auto t0 = std::chrono::steady_clock::now();
  if (links_) links_->drain(std::chrono::milliseconds(300), deadline / 2);
  const auto spent = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  const auto report = pipeline_.stop(std::max(std::chrono::milliseconds(100), deadline - spent));
  // The writer thread is gone: the final "OFF" heartbeat goes out before the sinks end the run.
  if (auto off = supernova_->final_heartbeat(writer_.run()))
    writer_.snews({dataflow::SnewsMessage::Kind::Heartbeat, std::move(*off)});
  writer_.end_run(record);
  return report;
}

void RunSession::describe(dataflow::CounterSet& out) const {
  describe_pipeline(pipeline_.stats(), out);
  if (links_) links_->describe(out);
  supernova_->describe(out);
  if (udp_) describe_udp(udp_->counters(), out);
  writer_.describe(out);
}

}  // namespace shoredaq::firmware
