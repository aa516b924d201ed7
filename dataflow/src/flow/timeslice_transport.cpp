#include "shoredaq/dataflow/timeslice_transport.hpp"

#include "shoredaq/dataflow/zmq_ingest.hpp"  // unix_now_ns

namespace shoredaq::dataflow {

static_assert(static_cast<std::size_t>(FbError::BadEnum) + 1 == kFbErrorCount, "kFbErrorCount out of date");

TimesliceSender::TimesliceSender(zmq::context_t& context, TimesliceSenderConfig config)
    : config_(std::move(config)), socket_(context, zmq::socket_type::push) {
  socket_.set(zmq::sockopt::linger, config_.linger_ms);
  socket_.set(zmq::sockopt::sndhwm, config_.send_hwm);
  socket_.set(zmq::sockopt::sndtimeo, static_cast<int>(config_.send_timeout.count()));
  // Queue only to peers that are really connected, so a dead receiver does not swallow slices.
  socket_.set(zmq::sockopt::immediate, 1);
  if (config_.heartbeat_ms > 0) {
    socket_.set(zmq::sockopt::heartbeat_ivl, config_.heartbeat_ms);
    socket_.set(zmq::sockopt::heartbeat_timeout, 3 * config_.heartbeat_ms);
    socket_.set(zmq::sockopt::heartbeat_ttl, 3 * config_.heartbeat_ms);
  }
  for (const std::string& ep : config_.endpoints) {
    if (config_.bind) {
      socket_.bind(ep);
    } else {
      socket_.connect(ep);
    }
  }
}

bool TimesliceSender::send(const Timeslice& slice) {
  encode_timeslice_fb(slice, fbb_, config_.kind);
  return send_encoded({fbb_.GetBufferPointer(), fbb_.GetSize()});
}

bool TimesliceSender::send_encoded(std::span<const std::uint8_t> buffer) {
  zmq::send_result_t r = socket_.send(zmq::const_buffer(buffer.data(), buffer.size()), zmq::send_flags::dontwait);
  if (!r) {
    // Every peer at its HWM (or none connected): wait up to the send timeout (ZMQ_SNDTIMEO).
    blocked_.fetch_add(1, std::memory_order_relaxed);
    r = socket_.send(zmq::const_buffer(buffer.data(), buffer.size()), zmq::send_flags::none);
  }
  if (!r) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  sent_.fetch_add(1, std::memory_order_relaxed);
  bytes_.fetch_add(buffer.size(), std::memory_order_relaxed);
  return true;
}

TimesliceSenderCounters TimesliceSender::counters() const {
  TimesliceSenderCounters c;
  c.sent = sent_.load();
  c.bytes = bytes_.load();
  c.blocked = blocked_.load();
  c.dropped = dropped_.load();
  return c;
}

BufferReceiver::BufferReceiver(zmq::context_t& context, TimesliceReceiverConfig config, Decode decode, Idle idle,
                               RateLimitedLog* log)
    : context_(context), config_(std::move(config)), decode_(std::move(decode)), idle_(std::move(idle)), log_(log) {}

BufferReceiver::~BufferReceiver() { stop(); }

void BufferReceiver::start() {
  if (thread_.joinable()) return;
  socket_ = zmq::socket_t(context_, zmq::socket_type::pull);
  socket_.set(zmq::sockopt::linger, config_.linger_ms);
  socket_.set(zmq::sockopt::rcvhwm, config_.receive_hwm);
  if (config_.limits.max_buffer_bytes < static_cast<std::size_t>(INT64_MAX)) {
    // Larger messages cannot verify anyway; let ZeroMQ refuse them before allocating.
    socket_.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(config_.limits.max_buffer_bytes));
  }
  bound_.clear();
  for (const std::string& ep : config_.endpoints) {
    if (config_.bind) {
      socket_.bind(ep);
      bound_.push_back(socket_.get(zmq::sockopt::last_endpoint));
    } else {
      socket_.connect(ep);
    }
  }
  stop_requested_ = false;
  draining_ = false;
  thread_ = std::thread([this] { run(); });
}

void BufferReceiver::stop() {
  stop_requested_ = true;
  if (thread_.joinable()) thread_.join();
  socket_.close();
}

TimesliceReceiverCounters BufferReceiver::counters() const {
  std::lock_guard lock(counters_mutex_);
  return counters_;
}

void BufferReceiver::drain_and_stop(std::chrono::milliseconds quiet, std::chrono::milliseconds deadline) {
  if (thread_.joinable()) {
    drain_quiet_ms_.store(std::max<std::int64_t>(1, quiet.count()));
    drain_until_ns_.store(std::chrono::duration_cast<std::chrono::nanoseconds>(
                              (std::chrono::steady_clock::now() + deadline).time_since_epoch())
                              .count());
    draining_.store(true);
    thread_.join();
  }
  socket_.close();
}

bool BufferReceiver::receive_one() {
  zmq::message_t msg;
  zmq::recv_result_t got;
  try {
    got = socket_.recv(msg, zmq::recv_flags::dontwait);
  } catch (const zmq::error_t&) {
    return false;
  }
  if (!got) return false;
  {
    std::lock_guard lock(counters_mutex_);
    counters_.bytes += msg.size();
    counters_.last_receive_unix_ns = unix_now_ns();  // before the sink: a slow sink is not "quiet"
  }
  const std::span<const std::uint8_t> bytes(static_cast<const std::uint8_t*>(msg.data()), msg.size());
  FbError error = FbError::None;
  const std::function<void()> accepted = [this] {
    std::lock_guard lock(counters_mutex_);
    ++counters_.received;
  };
  try {
    error = decode_(bytes, accepted);  // verifies first, counts, hands on what is good
  } catch (const std::exception& e) {
    // The sink failed, not the buffer: counted, logged, and the thread goes on.
    {
      std::lock_guard lock(counters_mutex_);
      ++counters_.sink_errors;
    }
    if (log_ != nullptr) log_->log(spdlog::level::err, "sink_error", "receiver: the sink failed on a buffer: {}", e.what());
    return true;
  }
  if (error == FbError::None) return true;
  {
    std::lock_guard lock(counters_mutex_);
    ++counters_.bad_buffers;
    const auto i = static_cast<std::size_t>(error);
    if (i < kFbErrorCount) ++counters_.bad_by_error[i];
  }
  if (log_ != nullptr) {
    log_->log(spdlog::level::warn, to_string(error), "receiver: dropped a bad buffer of {} bytes: {}", msg.size(),
              to_string(error));
  }
  return true;
}

void BufferReceiver::run() {
  std::vector<zmq::pollitem_t> items{{socket_.handle(), 0, ZMQ_POLLIN, 0}};
  while (!stop_requested_.load(std::memory_order_relaxed)) {
    const bool draining = draining_.load();
    const auto wait = draining ? std::chrono::milliseconds(drain_quiet_ms_.load()) : config_.poll_interval;
    try {
      zmq::poll(items, wait);
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      if (log_ != nullptr) log_->log(spdlog::level::err, "poll", "receiver: poll failed: {}", e.what());
      break;
    }
    const bool ready = (items[0].revents & ZMQ_POLLIN) != 0;
    for (int n = 0; ready && n < 64 && !stop_requested_.load(std::memory_order_relaxed); ++n) {
      if (!receive_one()) break;
    }
    const std::uint64_t now = unix_now_ns();
    last_wakeup_ns_.store(now, std::memory_order_relaxed);
    if (idle_) {
      try {
        idle_(now);
      } catch (const std::exception& e) {
        {
          std::lock_guard lock(counters_mutex_);
          ++counters_.sink_errors;
        }
        if (log_ != nullptr) log_->log(spdlog::level::err, "sink_error", "receiver: the idle step failed: {}", e.what());
      }
    }
    if (draining) {
      // Stop once the input was quiet for a whole wait; past the deadline, what is still queued is
      // read and counted, not silently closed away.
      const auto steady_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count();
      if (!ready) break;
      if (steady_ns >= drain_until_ns_.load()) {
        std::uint64_t left = 0;
        zmq::message_t msg;
        while (socket_.recv(msg, zmq::recv_flags::dontwait)) ++left;
        std::lock_guard lock(counters_mutex_);
        counters_.discarded_at_stop += left;
        break;
      }
    }
  }
}

TimesliceReceiver::TimesliceReceiver(zmq::context_t& context, TimesliceReceiverConfig config, Sink sink,
                                     RateLimitedLog* log, BufferReceiver::Idle idle)
    : limits_(config.limits),
      sink_(std::move(sink)),
      receiver_(
          context, std::move(config),
          [this](std::span<const std::uint8_t> bytes, const std::function<void()>& accepted) {
            auto decoded = decode_timeslice_fb(bytes, limits_);
            if (!decoded) return decoded.error;
            accepted();
            if (sink_) sink_(std::move(decoded.value.timeslice));
            return FbError::None;
          },
          std::move(idle), log) {}

}  // namespace shoredaq::dataflow
