#include "shoredaq/dataflow/partial_slice_merger.hpp"

#include <algorithm>

namespace shoredaq::dataflow {

std::uint64_t slice_index_of(const SliceHeader& header) noexcept { return header.slice_start_ns() / kSliceDurationNs; }

PartialSliceMerger::PartialSliceMerger(PartialSliceMergerConfig config, Sink sink)
    : config_(config), sink_(std::move(sink)) {
  if (config_.sources == 0) config_.sources = 1;
  if (config_.max_pending_slices == 0) config_.max_pending_slices = 1;
  std::sort(config_.expected_doms.begin(), config_.expected_doms.end());
  config_.expected_doms.erase(std::unique(config_.expected_doms.begin(), config_.expected_doms.end()),
                              config_.expected_doms.end());
}

bool PartialSliceMerger::already_emitted(std::uint64_t slice_index) const {
  return std::find(emitted_.begin(), emitted_.end(), slice_index) != emitted_.end();
}

void PartialSliceMerger::add(Timeslice&& partial, std::uint64_t now_ns) {
  ++counters_.partials_in;
  const std::uint64_t index = slice_index_of(partial.header);
  if (already_emitted(index)) {
    ++counters_.partials_late;
    return;
  }
  auto it = pending_.find(index);
  if (it == pending_.end()) {
    if (pending_.size() >= config_.max_pending_slices) {
      ++counters_.slices_pushed_out;
      emit(pending_.begin());
    }
    Window w;
    w.first_arrival_ns = now_ns;
    w.partials = 1;
    w.slice = std::move(partial);
    it = pending_.emplace(index, std::move(w)).first;
  } else {
    Window& w = it->second;
    if (partial.header.detector_id != w.slice.header.detector_id || partial.header.run != w.slice.header.run) {
      ++counters_.header_mismatches;
      return;
    }
    ++w.partials;
    w.slice.header.utc_seconds |= partial.header.utc_seconds & 0x8000'0000u;  // White Rabbit not OK anywhere
    // Each ingest process numbers frames from its own first slice; the largest number is that of
    // the one that started first in data time, the run's numbering, so that every filter keeps the
    // same prescaled windows whichever partial came first.
    w.slice.header.frame_index = std::max(w.slice.header.frame_index, partial.header.frame_index);
    // Duplicate DOMs are removed at emit(), after sorting.
    for (DomFrame& f : partial.frames) w.slice.frames.push_back(std::move(f));
    // The slice is as old as its first datagram and complete when its last partial was.
    SliceStamps& st = w.slice.stamps;
    if (partial.stamps.received_unix_ns != 0 &&
        (st.received_unix_ns == 0 || partial.stamps.received_unix_ns < st.received_unix_ns))
      st.received_unix_ns = partial.stamps.received_unix_ns;
    st.completed_unix_ns = std::max(st.completed_unix_ns, partial.stamps.completed_unix_ns);
    for (RawMonitoring& m : partial.monitoring) w.slice.monitoring.push_back(std::move(m));
  }
  if (it->second.partials >= config_.sources) emit(it);
}

void PartialSliceMerger::poll(std::uint64_t now_ns) {
  for (auto it = pending_.begin(); it != pending_.end();) {
    auto next = std::next(it);
    if (now_ns >= it->second.first_arrival_ns + config_.timeout_ns) emit(it);
    it = next;
  }
}

void PartialSliceMerger::flush() {
  while (!pending_.empty()) emit(pending_.begin());
}

void PartialSliceMerger::emit(std::map<std::uint64_t, Window>::iterator it) {
  Window w = std::move(it->second);
  emitted_.push_back(it->first);
  while (emitted_.size() > 4 * config_.max_pending_slices) emitted_.pop_front();
  pending_.erase(it);
  if (w.partials < config_.sources) {
    ++counters_.slices_incomplete;
    counters_.partials_missing += config_.sources - w.partials;
  }
  // The builder's order: one frame per expected DOM, by DOM id; of a DOM sent twice (two ingest
  // processes configured with the same DU) the first partial's frame stays.
  std::vector<DomFrame>& frames = w.slice.frames;
  std::stable_sort(frames.begin(), frames.end(), [](const DomFrame& a, const DomFrame& b) { return a.dom_id < b.dom_id; });
  const auto last = std::unique(frames.begin(), frames.end(), [](const DomFrame& a, const DomFrame& b) { return a.dom_id == b.dom_id; });
  counters_.frames_duplicate += static_cast<std::uint64_t>(frames.end() - last);
  frames.erase(last, frames.end());
  if (!config_.expected_doms.empty() && frames.size() < config_.expected_doms.size()) {
    std::vector<DomFrame> whole;
    whole.reserve(config_.expected_doms.size());
    auto f = frames.begin();
    for (std::uint32_t dom : config_.expected_doms) {
      while (f != frames.end() && f->dom_id < dom) whole.push_back(std::move(*f++));  // not expected: kept
      if (f != frames.end() && f->dom_id == dom) {
        whole.push_back(std::move(*f++));
      } else {
        DomFrame empty;
        empty.dom_id = dom;
        whole.push_back(std::move(empty));
        ++counters_.frames_added_empty;
      }
    }
    while (f != frames.end()) whole.push_back(std::move(*f++));
    frames = std::move(whole);
  }
  ++counters_.slices_out;
  sink_(std::move(w.slice));
}

}  // namespace shoredaq::dataflow
