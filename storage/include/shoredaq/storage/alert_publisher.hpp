#pragma once
// The alert stream (DESIGN.md section 4): a ZeroMQ PUB socket sending multipart
// [topic][FlatBuffer] messages, `event.<detector id>` for events that pass a configurable
// pre-selection and `summary.<detector id>` for summary slices; supernova alerts (SNEWS-format
// JSON) on `sn.<detector id>` and SNEWS heartbeats on the sibling `sn_heartbeat.<detector id>` (a
// subscriber of "sn." gets alerts only). Sends never block: at the high-water
// mark a message is dropped and counted (the store stays the source of truth).

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <flatbuffers/flatbuffers.h>
#include <zmq.hpp>

#include "shoredaq/formats/event.hpp"
#include "shoredaq/formats/summary_slice.hpp"

namespace shoredaq::storage {

// An event is published when all of these hold.
struct AlertSelection {
  std::uint64_t trigger_mask = ~std::uint64_t{0};  // any of these trigger bits fired
  std::size_t min_triggered_hits = 0;
  std::vector<std::uint32_t> dom_ids;  // a triggered hit on one of these DOMs (empty = any DOM)
  bool selects(const dataflow::Event& event) const;
};

struct AlertPublisherConfig {
  std::vector<std::string> endpoints{"tcp://127.0.0.1:9570"};  // bound
  std::int32_t detector_id = 0;
  AlertSelection selection;
  bool publish_summaries = true;
  int send_hwm = 1000;  // messages queued per subscriber before drops
  int linger_ms = 200;  // bounded: closing never waits on a dead subscriber for longer
  // With exact drop counting (ZMQ_XPUB_NODROP) a full subscriber makes the send fail, which is
  // counted; the price is that the message is then dropped for every subscriber. Without it libzmq
  // drops silently per subscriber and the counters cannot see it.
  bool count_drops_exactly = true;
  // Called on the PUB socket after the options above and before bind: the owner's hook for
  // settings storage does not know about (e.g. CURVE authentication). Exceptions propagate.
  std::function<void(zmq::socket_t&)> configure_socket;
};

struct AlertPublisherCounters {
  std::uint64_t events_seen = 0;
  std::uint64_t events_not_selected = 0;
  std::uint64_t events_sent = 0;
  std::uint64_t events_dropped = 0;  // at the high-water mark
  std::uint64_t summaries_sent = 0;
  std::uint64_t summaries_dropped = 0;
  std::uint64_t supernova_alerts_sent = 0, supernova_alerts_dropped = 0;
  std::uint64_t snews_heartbeats_sent = 0, snews_heartbeats_dropped = 0;
  std::uint64_t send_errors = 0;  // other ZeroMQ errors
};

class AlertPublisher {
 public:
  AlertPublisher(zmq::context_t& context, AlertPublisherConfig config);  // throws zmq::error_t on bind failure

  // Pre-selects, encodes and sends; true if the event went out.
  bool publish_event(const dataflow::Event& event);
  // Same with an already encoded Event buffer (as the store made it).
  bool publish_event_buffer(const dataflow::Event& event, std::span<const std::uint8_t> buffer);
  bool publish_summary(const dataflow::SummarySlice& summary);
  // A supernova alert (the SNEWS-format JSON text), topic sn.<det>; never pre-selected.
  bool publish_supernova(std::string_view message);
  // A SNEWS heartbeat (JSON text), topic sn_heartbeat.<det>.
  bool publish_heartbeat(std::string_view message);

  const std::string& event_topic() const noexcept { return event_topic_; }
  const std::string& summary_topic() const noexcept { return summary_topic_; }
  const std::string& supernova_topic() const noexcept { return supernova_topic_; }
  const std::string& heartbeat_topic() const noexcept { return heartbeat_topic_; }
  const AlertPublisherCounters& counters() const noexcept { return counters_; }
  // The endpoints as bound (a tcp port 0 / wildcard resolved).
  std::vector<std::string> bound_endpoints() const { return bound_; }

 private:
  enum class SendResult { Sent, Dropped, Error };
  SendResult send(const std::string& topic, std::span<const std::uint8_t> payload);

  AlertPublisherConfig config_;
  zmq::socket_t socket_;
  std::string event_topic_, summary_topic_, supernova_topic_, heartbeat_topic_;
  std::vector<std::string> bound_;
  flatbuffers::FlatBufferBuilder builder_;
  AlertPublisherCounters counters_;
};

}  // namespace shoredaq::storage
