#pragma once
// The one counter idiom of the node: every stage (ingest, builder, pipeline, writer, each sink)
// describes its counters into a CounterSet, typed, and everything else is derived from that one
// list: the flat names of /status and the run record ("builder.slices_expired", drops as
// "builder.time_jump"), the Prometheus series (shoredaq_builder_slices_expired_total,
// shoredaq_dropped_total{stage,cause}) and the health judgement (what a drop costs: datagrams,
// slices, or a sink's slices). Nobody parses a name back into its parts.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace shoredaq::dataflow {

// What one unit of a drop counter means for the data, so health can weigh it.
enum class LossUnit : std::uint8_t {
  NotLoss,     // a drop that loses nothing (a duplicate copy, a slice the operator paused away) or a size
  Datagrams,   // CLB datagrams that never made it into a slice
  Slices,      // whole slices lost in the pipeline
  SinkSlices,  // slices a sink refused or lost (the store, the run files, ...)
};

struct CounterEntry {
  std::string stage;  // "" for the node's top-level totals ("slices", "events")
  std::string name;   // a total's name, or a drop's cause
  std::uint64_t value = 0;
  bool drop = false;
  LossUnit loss = LossUnit::NotLoss;  // drops only

  // "stage.name" (or "name" at the top level): the name /status and the run record use.
  std::string key() const { return stage.empty() ? name : stage + "." + name; }
};

class CounterSet {
 public:
  void total(std::string_view stage, std::string_view name, std::uint64_t value);
  void drop(std::string_view stage, std::string_view cause, std::uint64_t value, LossUnit loss);

  const std::vector<CounterEntry>& entries() const noexcept { return entries_; }
  // The value of the total or drop with this key (0 when absent).
  std::uint64_t value(std::string_view key, bool drop = false) const;
  // Flat names: totals as key(), drops as "drop." + key() (the run record's counters).
  std::map<std::string, std::uint64_t, std::less<>> flat() const;
  // Element-wise sum with another set of the same shape (a finished run's totals + the next one).
  void add(const CounterSet& other);
  // This set minus `base` (entries absent from `base` count from 0; never below 0): what happened
  // since `base` was taken, e.g. one of several runs of one pipeline.
  CounterSet since(const CounterSet& base) const;

 private:
  std::vector<CounterEntry> entries_;
};

}  // namespace shoredaq::dataflow
