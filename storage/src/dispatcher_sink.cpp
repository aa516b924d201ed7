#include "shoredaq/storage/dispatcher_sink.hpp"

#include <cctype>

namespace shoredaq::storage {

void DispatcherSink::begin_run(const dataflow::RunRecord&) {
  const DispatcherSnapshot now = dispatcher_.snapshot();
  std::lock_guard lock(mutex_);
  baseline_ = now;
}

dataflow::SinkWrite DispatcherSink::write(const dataflow::SliceProducts& slice) {
  if (dispatcher_.has_subscribers(DispatchTag::Event)) {
    for (const auto& event : slice.events) dispatcher_.publish_event(event);
  }
  if (dispatcher_.has_subscribers(DispatchTag::Summary)) dispatcher_.publish_summary(slice.summary);
  for (const auto& tagged : slice.timeslices) {
    const auto tag = dispatch_tag_of(tagged.kind);
    if (tag && dispatcher_.has_subscribers(*tag)) dispatcher_.publish_timeslice(tagged.slice, tagged.kind);
  }
  // A supernova alert (SNEWS-format JSON) under a tag of its own.
  for (const auto& alert : slice.supernova_alerts) {
    dispatcher_.publish(kSupernovaAlertTag, {reinterpret_cast<const std::uint8_t*>(alert.data()), alert.size()});
  }
  if (dispatcher_.has_subscribers(DispatchTag::Monitoring)) {
    for (const auto& packet : slice.monitoring) dispatcher_.publish_monitoring(packet.datagram);
  }
  return {};
}

void DispatcherSink::snews(const dataflow::SnewsMessage& message) {
  if (message.kind != dataflow::SnewsMessage::Kind::Alert) return;
  dispatcher_.publish(kSupernovaAlertTag, {reinterpret_cast<const std::uint8_t*>(message.json.data()), message.json.size()});
}

void DispatcherSink::counters(dataflow::CounterSet& out) const {
  const DispatcherSnapshot now = dispatcher_.snapshot();
  std::lock_guard lock(mutex_);
  describe(now - baseline_, out);
}

void DispatcherSink::describe(const DispatcherSnapshot& run, dataflow::CounterSet& out) {
  // Messages published per tag: dispatcher.published_io_evt, ..._io_tssn, ..._msg.
  for (std::size_t i = 0; i + 1 < kDispatchTags; ++i) {
    std::string name = "published_";
    for (const char c : controlhost_tag(static_cast<DispatchTag>(i))) {
      name.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    }
    out.total("dispatcher", name, run.published_per_tag[i]);
  }
  out.total("dispatcher", "messages_queued", run.messages_queued);  // per client
  out.total("dispatcher", "bytes_sent", run.bytes_sent);
  out.total("dispatcher", "clients_accepted", run.clients_accepted);
  out.total("dispatcher", "clients_refused_max_clients", run.clients_refused);
  out.total("dispatcher", "clients_refused_network", run.clients_refused_network);
  out.total("dispatcher", "clients_disconnected_slow", run.clients_disconnected_slow);
  out.total("dispatcher", "bad_client_messages", run.bad_client_messages);
  // A slow client misses messages; the store and the run files have them all.
  out.drop("dispatcher", "messages_slow_client", run.messages_dropped, dataflow::LossUnit::NotLoss);
  out.drop("dispatcher", "messages_backlog_full", run.messages_dropped_backlog, dataflow::LossUnit::NotLoss);
}

DispatcherSnapshot operator-(const DispatcherSnapshot& later, const DispatcherSnapshot& earlier) noexcept {
  DispatcherSnapshot d;
  d.clients_accepted = later.clients_accepted - earlier.clients_accepted;
  d.clients_refused = later.clients_refused - earlier.clients_refused;
  d.clients_connected = later.clients_connected;
  d.clients_refused_network = later.clients_refused_network - earlier.clients_refused_network;
  d.clients_disconnected_slow = later.clients_disconnected_slow - earlier.clients_disconnected_slow;
  d.subscriptions = later.subscriptions - earlier.subscriptions;
  d.messages_published = later.messages_published - earlier.messages_published;
  d.messages_queued = later.messages_queued - earlier.messages_queued;
  d.messages_dropped = later.messages_dropped - earlier.messages_dropped;
  d.messages_dropped_backlog = later.messages_dropped_backlog - earlier.messages_dropped_backlog;
  d.bytes_sent = later.bytes_sent - earlier.bytes_sent;
  d.bad_client_messages = later.bad_client_messages - earlier.bad_client_messages;
  for (std::size_t i = 0; i < kDispatchTags; ++i) d.published_per_tag[i] = later.published_per_tag[i] - earlier.published_per_tag[i];
  return d;
}

}  // namespace shoredaq::storage
