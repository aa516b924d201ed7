#include "shoredaq/formats/counter_set.hpp"

namespace shoredaq::dataflow {

void CounterSet::total(std::string_view stage, std::string_view name, std::uint64_t value) {
  entries_.push_back(CounterEntry{std::string(stage), std::string(name), value, false, LossUnit::NotLoss});
}

void CounterSet::drop(std::string_view stage, std::string_view cause, std::uint64_t value, LossUnit loss) {
  entries_.push_back(CounterEntry{std::string(stage), std::string(cause), value, true, loss});
}

std::uint64_t CounterSet::value(std::string_view key, bool drop) const {
  for (const auto& e : entries_) {
    if (e.drop == drop && e.key() == key) return e.value;
  }
  return 0;
}

std::map<std::string, std::uint64_t, std::less<>> CounterSet::flat() const {
  std::map<std::string, std::uint64_t, std::less<>> m;
  for (const auto& e : entries_) m[e.drop ? "drop." + e.key() : e.key()] += e.value;
  return m;
}

void CounterSet::add(const CounterSet& other) {
  for (const auto& o : other.entries_) {
    bool found = false;
    for (auto& e : entries_) {
      if (e.drop == o.drop && e.stage == o.stage && e.name == o.name) {
        e.value += o.value;
        found = true;
        break;
      }
    }
    if (!found) entries_.push_back(o);
  }
}

CounterSet CounterSet::since(const CounterSet& base) const {
  CounterSet out = *this;
  for (auto& e : out.entries_) {
    for (const auto& b : base.entries_) {
      if (b.drop == e.drop && b.stage == e.stage && b.name == e.name) {
        e.value = e.value >= b.value ? e.value - b.value : 0;
        break;
      }
    }
  }
  return out;
}

}  // namespace shoredaq::dataflow
