#pragma once
// SliceRouter: the exit of an ingest process on a farm (DESIGN.md section 6, issue 13). Every
// ingest process builds partial slices of its own DUs; all partials of one 100 ms window must
// reach the same filter process, which merges them (PartialSliceMerger). So the destination is
// chosen from the slice's absolute index, the same in every ingest process: filter
// `index % filters`. A filter process that has gone away (its TCP connection closed, seen by a
// ZeroMQ socket monitor) is passed over: its windows go to the next live filter in the list, so a
// dead filter costs only the slices it held, and the run goes on; it takes its share again once
// it reconnects. A live filter that is slow (its queue at the high-water mark) makes the sender
// wait up to `send_timeout` (back-pressure into the pipeline); then the slice is dropped and
// counted. One PUSH socket per filter process (connect), FlatBuffers Timeslice buffers. A host that
// vanished without closing its connections is noticed by ZeroMQ heartbeats. Two ingest processes may
// notice a filter's death (or return) a few windows apart: those windows are split between two
// filters and merged incomplete (farm_merge.partial_missing), never lost silently.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "shoredaq/formats/timeslice.hpp"

namespace shoredaq::dataflow {

struct SliceRouterConfig {
  std::vector<std::string> endpoints;  // the filter processes, in the farm's order; connected
  int send_hwm = 4;                    // slices queued per filter before the sender waits
  int linger_ms = 2000;                          // the last partials of a stopped run still go out
  std::chrono::milliseconds send_timeout{1000};  // a live filter at its HWM for longer: dropped
  // ZeroMQ heartbeats (timeout 3x): a filter host that vanished without closing its connection is
  // seen as gone within seconds, not when TCP gives up minutes later. 0 = off.
  int heartbeat_ms = 1000;
};

struct SliceRouteCounters {
  std::string endpoint;
  bool connected = false;       // as the socket monitor last said
  std::uint64_t sent = 0;
  std::uint64_t bytes = 0;
  std::uint64_t taken_over = 0;  // windows of a dead filter this one received instead
  std::uint64_t blocked = 0;     // sends that found it at its HWM and waited
  std::uint64_t dropped = 0;     // still blocked after send_timeout (or no filter connected at all)
  std::uint64_t disconnects = 0;
};

class SliceRouter {
 public:
  SliceRouter(zmq::context_t& context, SliceRouterConfig config);
  ~SliceRouter();
  SliceRouter(const SliceRouter&) = delete;
  SliceRouter& operator=(const SliceRouter&) = delete;

  // Thread-safe (pipeline workers call it concurrently). False: dropped, counted.
  bool send(const Timeslice& slice);
  // The same for a slice already encoded (a FlatBuffers Timeslice of `header`'s window).
  bool send_encoded(const SliceHeader& header, std::span<const std::uint8_t> buffer);
  // The same without copying: ZeroMQ sends straight from `buffer` and lets it go once the message
  // is on the wire (a 10-DU slice is ~23 MB; the copy is most of the sender's work).
  bool send_shared(const SliceHeader& header, std::shared_ptr<const std::vector<std::uint8_t>> buffer);
  // The filter a window goes to while every filter is live.
  std::size_t home_of(const SliceHeader& header) const noexcept;
  std::vector<SliceRouteCounters> counters() const;
  // Reads the connection events that arrived since the last send; the filters connected now.
  std::size_t poll_links();

 private:
  struct Route;
  void watch(Route& route);
  std::size_t pick(std::size_t home) const;  // the home filter, or the next live one
  bool send_message(const SliceHeader& header, zmq::message_t& message);

  SliceRouterConfig config_;
  std::vector<std::unique_ptr<Route>> routes_;
};

}  // namespace shoredaq::dataflow
