#include "shoredaq/storage/acoustic_publisher.hpp"

#include <spdlog/spdlog.h>

namespace shoredaq::storage {

AcousticPublisher::AcousticPublisher(zmq::context_t& context, AcousticPublisherConfig config)
    : config_(std::move(config)),
      socket_(context, zmq::socket_type::pub),
      topic_("acoustic." + std::to_string(config_.detector_id)) {
  socket_.set(zmq::sockopt::linger, config_.linger_ms);
  socket_.set(zmq::sockopt::sndhwm, config_.send_hwm);
  if (config_.count_drops_exactly) socket_.set(zmq::sockopt::xpub_nodrop, 1);
  if (config_.configure_socket) config_.configure_socket(socket_);
  for (const auto& endpoint : config_.endpoints) {
    socket_.bind(endpoint);
    bound_.push_back(socket_.get(zmq::sockopt::last_endpoint));
  }
}

bool AcousticPublisher::publish(std::span<const std::uint8_t> datagram) noexcept {
  try {
    // Frames of a multipart message are queued together: once the topic went, the datagram does too.
    if (!socket_.send(zmq::buffer(topic_), zmq::send_flags::sndmore | zmq::send_flags::dontwait) ||
        !socket_.send(zmq::const_buffer(datagram.data(), datagram.size()), zmq::send_flags::dontwait)) {
      ++counters_.datagrams_dropped;
      return false;
    }
    ++counters_.datagrams_sent;
    return true;
  } catch (const zmq::error_t& e) {
    if (counters_.send_errors++ == 0) spdlog::error("acoustic publisher: send failed: {}", e.what());
    return false;
  }
}

}  // namespace shoredaq::storage
