#include "shoredaq/storage/alert_publisher.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "shoredaq/formats/fb_codec.hpp"

namespace shoredaq::storage {

bool AlertSelection::selects(const dataflow::Event& event) const {
  if ((event.trigger_mask & trigger_mask) == 0) return false;
  if (event.triggered.size() < min_triggered_hits) return false;
  if (dom_ids.empty()) return true;
  return std::any_of(event.triggered.begin(), event.triggered.end(), [&](const dataflow::TriggeredHit& h) {
    return std::find(dom_ids.begin(), dom_ids.end(), h.dom_id) != dom_ids.end();
  });
}

AlertPublisher::AlertPublisher(zmq::context_t& context, AlertPublisherConfig config)
    : config_(std::move(config)),
      socket_(context, zmq::socket_type::pub),
      event_topic_("event." + std::to_string(config_.detector_id)),
      summary_topic_("summary." + std::to_string(config_.detector_id)),
      supernova_topic_("sn." + std::to_string(config_.detector_id)),
      heartbeat_topic_("sn_heartbeat." + std::to_string(config_.detector_id)) {
  socket_.set(zmq::sockopt::linger, config_.linger_ms);
  socket_.set(zmq::sockopt::sndhwm, config_.send_hwm);
  if (config_.count_drops_exactly) socket_.set(zmq::sockopt::xpub_nodrop, 1);
  if (config_.configure_socket) config_.configure_socket(socket_);
  for (const auto& endpoint : config_.endpoints) {
    socket_.bind(endpoint);
    bound_.push_back(socket_.get(zmq::sockopt::last_endpoint));
  }
}

AlertPublisher::SendResult AlertPublisher::send(const std::string& topic, std::span<const std::uint8_t> payload) {
  try {
    // Frames of a multipart message are queued together: once the topic went, the payload does too.
    if (!socket_.send(zmq::buffer(topic), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
      return SendResult::Dropped;
    }
    if (!socket_.send(zmq::const_buffer(payload.data(), payload.size()), zmq::send_flags::dontwait)) {
      return SendResult::Dropped;
    }
    return SendResult::Sent;
  } catch (const zmq::error_t& e) {
    ++counters_.send_errors;
    spdlog::error("alert publisher: send failed: {}", e.what());
    return SendResult::Error;
  }
}

bool AlertPublisher::publish_event(const dataflow::Event& event) {
  if (!config_.selection.selects(event)) {
    ++counters_.events_seen;
    ++counters_.events_not_selected;
    return false;
  }
  dataflow::encode_event_fb(event, builder_);
  return publish_event_buffer(event, {builder_.GetBufferPointer(), builder_.GetSize()});
}

bool AlertPublisher::publish_event_buffer(const dataflow::Event& event, std::span<const std::uint8_t> buffer) {
  ++counters_.events_seen;
  if (!config_.selection.selects(event)) {
    ++counters_.events_not_selected;
    return false;
  }
  const auto r = send(event_topic_, buffer);
  if (r == SendResult::Sent) ++counters_.events_sent;
  if (r == SendResult::Dropped) ++counters_.events_dropped;
  return r == SendResult::Sent;
}

bool AlertPublisher::publish_summary(const dataflow::SummarySlice& summary) {
  if (!config_.publish_summaries) return false;
  dataflow::encode_summary_slice_fb(summary, builder_);
  const auto r = send(summary_topic_, {builder_.GetBufferPointer(), builder_.GetSize()});
  if (r == SendResult::Sent) ++counters_.summaries_sent;
  if (r == SendResult::Dropped) ++counters_.summaries_dropped;
  return r == SendResult::Sent;
}

bool AlertPublisher::publish_supernova(std::string_view message) {
  const auto r = send(supernova_topic_, {reinterpret_cast<const std::uint8_t*>(message.data()), message.size()});
  if (r == SendResult::Sent) ++counters_.supernova_alerts_sent;
  if (r == SendResult::Dropped) ++counters_.supernova_alerts_dropped;
  return r == SendResult::Sent;
}

}  // namespace shoredaq::storage

namespace shoredaq::storage {

bool AlertPublisher::publish_heartbeat(std::string_view message) {
  const auto r = send(heartbeat_topic_, {reinterpret_cast<const std::uint8_t*>(message.data()), message.size()});
  if (r == SendResult::Sent) ++counters_.snews_heartbeats_sent;
  if (r == SendResult::Dropped) ++counters_.snews_heartbeats_dropped;
  return r == SendResult::Sent;
}

}  // namespace shoredaq::storage
