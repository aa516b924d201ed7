#include "shoredaq/dataflow/slice_router.hpp"

#include <flatbuffers/flatbuffers.h>

#include "shoredaq/dataflow/partial_slice_merger.hpp"  // slice_index_of
#include "shoredaq/formats/fb_codec.hpp"

namespace shoredaq::dataflow {
namespace {

enum class Link : int { Unknown, Up, Down };

// Connection events of one PUSH socket, polled by whoever holds the route's lock.
class LinkMonitor : public zmq::monitor_t {
 public:
  explicit LinkMonitor(std::atomic<int>& link, std::atomic<std::uint64_t>& disconnects)
      : link_(link), disconnects_(disconnects) {}
  void on_event_connected(const zmq_event_t&, const char*) override { link_.store(static_cast<int>(Link::Up)); }
  void on_event_disconnected(const zmq_event_t&, const char*) override {
    link_.store(static_cast<int>(Link::Down));
    disconnects_.fetch_add(1, std::memory_order_relaxed);
  }

 private:
  std::atomic<int>& link_;
  std::atomic<std::uint64_t>& disconnects_;
};

std::atomic<std::uint64_t> next_monitor_id{0};

}  // namespace

struct SliceRouter::Route {
  std::string endpoint;
  std::mutex mutex;  // the socket and its monitor: one sender at a time
  zmq::socket_t socket;
  // A filter never seen is presumed live (the farm starts filters before ingest): its windows wait
  // for its connection instead of being scattered over the others at start.
  std::atomic<int> link{static_cast<int>(Link::Unknown)};
  std::atomic<std::uint64_t> sent{0}, bytes{0}, taken_over{0}, blocked{0}, dropped{0}, disconnects{0};
  std::unique_ptr<LinkMonitor> monitor;  // after socket: destroyed first
};

SliceRouter::SliceRouter(zmq::context_t& context, SliceRouterConfig config) : config_(std::move(config)) {
  for (const std::string& ep : config_.endpoints) {
    auto r = std::make_unique<Route>();
    r->endpoint = ep;
    r->socket = zmq::socket_t(context, zmq::socket_type::push);
    r->socket.set(zmq::sockopt::linger, config_.linger_ms);
    r->socket.set(zmq::sockopt::sndhwm, config_.send_hwm);
    r->socket.set(zmq::sockopt::immediate, 1);  // never queue for a filter that is not connected
    if (config_.heartbeat_ms > 0) {
      r->socket.set(zmq::sockopt::heartbeat_ivl, config_.heartbeat_ms);
      r->socket.set(zmq::sockopt::heartbeat_timeout, 3 * config_.heartbeat_ms);
      r->socket.set(zmq::sockopt::heartbeat_ttl, 3 * config_.heartbeat_ms);
    }
    r->monitor = std::make_unique<LinkMonitor>(r->link, r->disconnects);
    r->monitor->init(r->socket, "inproc://shoredaq-slice-router-" + std::to_string(next_monitor_id.fetch_add(1)),
                     ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED);
    r->socket.connect(ep);
    routes_.push_back(std::move(r));
  }
}

SliceRouter::~SliceRouter() {
  for (auto& r : routes_) r->monitor.reset();  // stops monitoring before the sockets close
}

std::size_t SliceRouter::home_of(const SliceHeader& header) const noexcept {
  return routes_.empty() ? 0 : static_cast<std::size_t>(slice_index_of(header) % routes_.size());
}

void SliceRouter::watch(Route& route) {
  std::unique_lock lock(route.mutex, std::try_to_lock);
  if (!lock) return;  // a sender holds it and polls the monitor itself
  while (route.monitor->check_event(0)) {
  }
}

std::size_t SliceRouter::pick(std::size_t home) const {
  for (std::size_t i = 0; i < routes_.size(); ++i) {
    const std::size_t d = (home + i) % routes_.size();
    if (routes_[d]->link.load() != static_cast<int>(Link::Down)) return d;
  }
  return home;  // none live: wait for the home filter to come back (or time out)
}

bool SliceRouter::send(const Timeslice& slice) {
  if (routes_.empty()) return false;
  thread_local flatbuffers::FlatBufferBuilder fbb(1 << 20);
  encode_timeslice_fb(slice, fbb, TimesliceKind::L0);
  return send_encoded(slice.header, {fbb.GetBufferPointer(), fbb.GetSize()});
}

bool SliceRouter::send_encoded(const SliceHeader& header, std::span<const std::uint8_t> bytes) {
  zmq::message_t message(bytes.data(), bytes.size());
  return send_message(header, message);
}

bool SliceRouter::send_shared(const SliceHeader& header, std::shared_ptr<const std::vector<std::uint8_t>> buffer) {
  if (!buffer) return false;
  // The message holds a reference until ZeroMQ frees it (possibly on its I/O thread).
  auto* keep = new std::shared_ptr<const std::vector<std::uint8_t>>(std::move(buffer));
  zmq::message_t message(
      const_cast<std::uint8_t*>((*keep)->data()), (*keep)->size(),
      [](void*, void* hint) { delete static_cast<std::shared_ptr<const std::vector<std::uint8_t>>*>(hint); }, keep);
  return send_message(header, message);
}

bool SliceRouter::send_message(const SliceHeader& header, zmq::message_t& message) {
  if (routes_.empty()) return false;
  const std::size_t bytes = message.size();
  const std::size_t home = home_of(header);
  const auto deadline = std::chrono::steady_clock::now() + config_.send_timeout;
  bool waited = false;
  for (;;) {
    for (auto& r : routes_) watch(*r);
    const std::size_t chosen = pick(home);
    Route& r = *routes_[chosen];
    {
      std::lock_guard lock(r.mutex);
      while (r.monitor->check_event(0)) {
      }
      // Waits in short steps, so a filter that dies meanwhile (its connection closes) hands the
      // window on to the next live one instead of holding the sender for the whole timeout. A
      // message that could not be sent is left intact by ZeroMQ, ready for the next try.
      bool sent = static_cast<bool>(r.socket.send(message, zmq::send_flags::dontwait));
      if (!sent) {
        if (!waited) r.blocked.fetch_add(1, std::memory_order_relaxed);
        waited = true;
        zmq::pollitem_t item{r.socket.handle(), 0, ZMQ_POLLOUT, 0};
        zmq::poll(&item, 1, std::chrono::milliseconds(20));
        if ((item.revents & ZMQ_POLLOUT) != 0) sent = static_cast<bool>(r.socket.send(message, zmq::send_flags::dontwait));
      }
      if (sent) {
        if (chosen != home) r.taken_over.fetch_add(1, std::memory_order_relaxed);
        r.sent.fetch_add(1, std::memory_order_relaxed);
        r.bytes.fetch_add(bytes, std::memory_order_relaxed);
        return true;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        r.dropped.fetch_add(1, std::memory_order_relaxed);
        return false;
      }
    }
  }
}

std::size_t SliceRouter::poll_links() {
  std::size_t up = 0;
  for (auto& r : routes_) {
    watch(*r);
    if (r->link.load() == static_cast<int>(Link::Up)) ++up;
  }
  return up;
}

std::vector<SliceRouteCounters> SliceRouter::counters() const {
  std::vector<SliceRouteCounters> out;
  for (const auto& r : routes_) {
    SliceRouteCounters c;
    c.endpoint = r->endpoint;
    c.connected = r->link.load() == static_cast<int>(Link::Up);
    c.sent = r->sent.load();
    c.bytes = r->bytes.load();
    c.taken_over = r->taken_over.load();
    c.blocked = r->blocked.load();
    c.dropped = r->dropped.load();
    c.disconnects = r->disconnects.load();
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace shoredaq::dataflow
