#pragma once
// PartialSliceMerger: the entry of a filter process on a farm (DESIGN.md section 6, issue 13).
// Several ingest processes each build a *partial* slice of the same 100 ms window from their own
// DUs and send it to the same filter process (SliceRouter, chosen from the slice's index); this
// puts the partials of one window back together into the whole slice a single-process node would
// have built: frames of every partial, sorted by DOM id like the TimesliceBuilder's, an empty frame
// for every expected DOM that none brought, the White Rabbit flag set if any partial had it.
//
// A window is emitted as soon as `sources` partials arrived, or `timeout_ns` after its first
// partial (an ingest process is dead or far behind: emitted incomplete, the missing partials
// counted). No clock of its own: the caller passes `now_ns` to add() and poll(). Bounded: at most
// `max_pending_slices` windows wait; a newer one pushes the oldest out early (counted). A partial
// for a window already emitted is late and dropped (counted); a DOM frame a window already holds
// is a duplicate and dropped (counted). Not thread-safe: one thread feeds it.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <vector>

#include "shoredaq/formats/timeslice.hpp"

namespace shoredaq::dataflow {

struct PartialSliceMergerConfig {
  std::size_t sources = 1;                      // ingest processes feeding this filter
  std::uint64_t timeout_ns = 1'000'000'000ull;  // after a window's first partial
  std::size_t max_pending_slices = 64;          // windows waiting for partials
  // The DOMs of every ingest process (the detector's optical modules): a DOM no partial brought
  // gets an empty frame (daq 0), as the builder gives a DOM that sent nothing. Empty: none added.
  std::vector<std::uint32_t> expected_doms;
};

struct PartialSliceMergerCounters {
  std::uint64_t partials_in = 0;
  std::uint64_t slices_out = 0;
  std::uint64_t slices_incomplete = 0;   // emitted with fewer than `sources` partials
  std::uint64_t partials_missing = 0;    // summed over the incomplete slices
  std::uint64_t frames_added_empty = 0;  // expected DOMs no partial brought (daq 0 frames)
  std::uint64_t slices_pushed_out = 0;   // emitted early because max_pending_slices was reached
  std::uint64_t partials_late = 0;       // for a window already emitted: dropped
  std::uint64_t frames_duplicate = 0;    // a DOM the window already had: dropped
  std::uint64_t header_mismatches = 0;   // detector or run differ from the window's first partial: dropped
};

class PartialSliceMerger {
 public:
  using Sink = std::function<void(Timeslice&&)>;
  PartialSliceMerger(PartialSliceMergerConfig config, Sink sink);

  void add(Timeslice&& partial, std::uint64_t now_ns);
  // Emits the windows whose timeout has passed.
  void poll(std::uint64_t now_ns);
  // Emits every waiting window (stop: what arrived is filtered, incomplete or not).
  void flush();

  const PartialSliceMergerCounters& counters() const noexcept { return counters_; }
  std::size_t pending() const noexcept { return pending_.size(); }

 private:
  struct Window {
    Timeslice slice;
    std::size_t partials = 0;
    std::uint64_t first_arrival_ns = 0;
  };
  void emit(std::map<std::uint64_t, Window>::iterator it);
  bool already_emitted(std::uint64_t slice_index) const;

  PartialSliceMergerConfig config_;
  Sink sink_;
  std::map<std::uint64_t, Window> pending_;  // by slice index (slice start / 100 ms)
  // Recently emitted windows, to recognise a late partial; bounded like pending_.
  std::deque<std::uint64_t> emitted_;
  PartialSliceMergerCounters counters_;
};

// The absolute index of a slice (its start time / 100 ms): the same in every process that sees
// the same data, whatever frame 1 of its run was.
std::uint64_t slice_index_of(const SliceHeader& header) noexcept;

}  // namespace shoredaq::dataflow
