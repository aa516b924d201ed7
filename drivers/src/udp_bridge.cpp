#include "shoredaq/drivers/udp_bridge.hpp"

#include <vector>

#include "shoredaq/formats/record_stream.hpp"

namespace shoredaq::drivers {

namespace {
std::size_t header_bytes(dataflow::HeaderLayout layout) noexcept {
  return layout == dataflow::HeaderLayout::Legacy28 ? dataflow::kLegacyClbHeaderBytes : dataflow::kClbHeaderBytes;
}
}  // namespace

UdpBridge::UdpBridge(zmq::context_t& context, UdpBridgeConfig config, dataflow::RateLimitedLog* log)
    : context_(context),
      config_(std::move(config)),
      log_(log),
      receiver_(config_.receiver, [this](dataflow::ParsedMessage&& m) { forward(std::move(m)); }, log) {}

UdpBridge::~UdpBridge() { stop(); }

void UdpBridge::start() {
  if (receiver_.running()) return;
  auto socket = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::push);
  socket->set(zmq::sockopt::linger, config_.linger_ms);
  socket->set(zmq::sockopt::sndhwm, config_.send_hwm);
  if (config_.configure_socket) config_.configure_socket(*socket);
  if (config_.bind)
    socket->bind(config_.endpoint);
  else
    socket->connect(config_.endpoint);
  socket_ = std::move(socket);
  try {
    receiver_.start();
  } catch (...) {
    socket_.reset();
    throw;
  }
}

void UdpBridge::stop() {
  receiver_.stop();  // after this the receiver thread no longer touches socket_
  socket_.reset();   // bounded linger
}

UdpBridgeCounters UdpBridge::counters() const {
  std::lock_guard lock(counters_mutex_);
  return counters_;
}

void UdpBridge::forward(dataflow::ParsedMessage&& message) {
  // Did the parser accept every record of the batch? Then the bytes go on unchanged.
  std::size_t framed = 0;
  dataflow::for_each_record(message.bytes(), [&](std::span<const std::uint8_t>) { ++framed; });
  const std::size_t records = message.records.size();
  zmq::message_t out;
  bool reframed = false;
  if (framed == records) {
    out = std::move(message.message);
  } else {
    std::vector<std::uint8_t> buffer;
    const auto bytes = message.bytes();
    for (const dataflow::ParsedRecord& r : message.records) {
      const std::size_t header = header_bytes(r.layout);
      dataflow::append_record(buffer, bytes.subspan(r.payload_offset - header, header + r.payload_size));
    }
    out = zmq::message_t(buffer.data(), buffer.size());
    reframed = true;
  }
  const std::size_t size = out.size();

  bool sent = false, blocked = false, failed = false;
  try {
    sent = socket_->send(out, zmq::send_flags::dontwait).has_value();
    if (!sent) {
      blocked = true;
      const auto deadline = std::chrono::steady_clock::now() + config_.max_block;
      while (!sent) {
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) break;
        zmq::pollitem_t item{socket_->handle(), 0, ZMQ_POLLOUT, 0};
        zmq::poll(&item, 1, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now) +
                                std::chrono::milliseconds(1));
        sent = socket_->send(out, zmq::send_flags::dontwait).has_value();
      }
    }
  } catch (const zmq::error_t& e) {
    failed = true;
    if (log_ != nullptr) log_->log(spdlog::level::err, "bridge_send", "clb-bridge: send failed: {}", e.what());
  }
  if (!sent && !failed && log_ != nullptr) {
    log_->log(spdlog::level::warn, "bridge_hwm_drop",
              "clb-bridge: {} still at its high-water mark after {} ms: dropped a batch of {} datagrams",
              config_.endpoint, config_.max_block.count(), records);
  }
  std::lock_guard lock(counters_mutex_);
  counters_.reframed_messages += reframed ? 1 : 0;
  counters_.hwm_blocked += blocked ? 1 : 0;
  if (sent) {
    ++counters_.messages_forwarded;
    counters_.records_forwarded += records;
    counters_.bytes_forwarded += size;
  } else if (failed) {
    ++counters_.send_errors;
    counters_.send_error_records += records;
  } else {
    ++counters_.hwm_dropped_messages;
    counters_.hwm_dropped_records += records;
  }
}

}  // namespace shoredaq::drivers
