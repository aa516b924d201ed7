#pragma once
// LossMonitor: "is the node losing data now?", from the counters it already keeps. A DAQ that drops
// every datagram while /healthz says 200 is the silent failure shifters fear most; a node that
// still shows "disk reserve reached" after the disk was freed teaches them to ignore alarms. So the
// verdict looks only at the last `window` of counter totals: it raises an alarm while
//  - the share of datagrams lost (ingest rejects, builder drops, full queues) or of slices lost
//    (full queues, processor errors, sink refusals) in the window passes `alarm_fraction`, or
//  - any sink refused or lost a slice in the window (the store is full, the spool cannot write):
//    the source of truth is not being written, whatever the share;
//  - a DOM keeps sending implausible slice times (a bad clock): at least `bad_time_datagrams` of
//    its datagrams in the window were dropped for it, however small its share of the detector;
// and it clears by itself once a whole window has passed without that. Pure logic: the caller
// samples (about once a second) and passes the time.

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <string>

namespace shoredaq::firmware {

// Counter totals at one moment (monotonic: totals since the daemon started, never per run).
struct LossTotals {
  std::uint64_t datagrams_offered = 0;  // every datagram that reached the node (parsed or not)
  std::uint64_t slices_built = 0;       // every slice the builder emitted
  std::map<std::string, std::uint64_t> datagrams_lost;  // by cause, e.g. "builder.time_jump"
  std::map<std::string, std::uint64_t> slices_lost;     // by cause, e.g. "pipeline.slices_queue_full"
  std::map<std::string, std::uint64_t> sink_refusals;   // slices a sink refused/lost, e.g. "store.slices_disk_reserve"
  std::map<std::uint32_t, std::uint64_t> implausible_time_by_dom;  // datagrams dropped for their slice time
};

struct LossVerdict {
  bool losing = false;
  std::string reason;  // e.g. "data loss: 97.3% of datagrams in the last 10 s (builder.time_jump 65921)"
  double datagram_loss_fraction = 0;  // over the window
  double slice_loss_fraction = 0;
};

class LossMonitor {
 public:
  LossMonitor(double alarm_fraction, std::chrono::seconds window, std::uint64_t bad_time_datagrams = 10);

  void observe(std::uint64_t now_unix_ns, const LossTotals& totals);
  // The verdict over the samples of the last window (healthy until two samples exist).
  LossVerdict verdict() const;

 private:
  struct Sample {
    std::uint64_t unix_ns;
    LossTotals totals;
  };
  double alarm_fraction_;
  std::uint64_t window_ns_;
  std::uint64_t bad_time_datagrams_;
  std::deque<Sample> samples_;  // oldest first; the oldest is at least `window` old when possible
};

}  // namespace shoredaq::firmware
