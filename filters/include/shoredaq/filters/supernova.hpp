#pragma once
// Supernova (SN) search, per-slice part (DOMAIN.md section 5 "Supernova (SN) search", issue 12):
// per DOM, coincidences of hits on distinct PMTs within a short window after calibration, kept when
// their multiplicity lies in a band and none of their hits belongs to a triggered event of the same
// slice. Pure: plain data in, plain data out; the detector-level window, baseline and alert decision
// are SupernovaMonitor's (supernova_monitor.hpp).

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "shoredaq/formats/detector.hpp"
#include "shoredaq/formats/event.hpp"
#include "shoredaq/formats/timeslice.hpp"
#include "shoredaq/filters/l0.hpp"
#include "shoredaq/filters/l1.hpp"
#include "shoredaq/filters/supernova_settings.hpp"

namespace shoredaq::filters {

// Why a DOM takes part in a slice's SN count or not (every cause reported, never silently dropped).
enum class SupernovaDomState : std::uint8_t {
  Included,
  Missing,     // frame never arrived
  Incomplete,  // datagrams or trailer missing, or another frame defect
  HighRate,    // a PMT in the CLB's high-rate veto or above the filter's high-rate threshold
  Burst,       // summed rate far above the DOM's running median: SupernovaMonitor decides it (burst_dom_ids)
};

struct SupernovaDomFigure {
  std::uint32_t dom_id = 0;
  SupernovaDomState state = SupernovaDomState::Included;
  std::uint32_t hits = 0;          // every hit of the frame (summed rate = hits / 0.1 s)
  std::uint32_t coincidences = 0;  // multiplicity in the band and not vetoed
  std::uint32_t vetoed = 0;        // multiplicity in the band, but a hit is a triggered hit
  std::uint32_t correlated = 0;    // in the band, not triggered, but another DOM's coincidence is near (muon-like)
  friend bool operator==(const SupernovaDomFigure&, const SupernovaDomFigure&) = default;
};

// The SN figure of one slice: per DOM, and the multiplicity spectrum of the included DOMs.
struct SupernovaSliceFigure {
  dataflow::SliceHeader header;
  std::vector<SupernovaDomFigure> doms;  // one per frame of a known optical DOM, in frame order
  // Coincidences of included DOMs by multiplicity (index = distinct PMTs, 2..31), before the band
  // and the veto: the 40K spectrum falls ~x10 per PMT, so it is also a calibration monitor.
  std::array<std::uint32_t, dataflow::kPmtsPerDom + 1> multiplicity_counts{};
  std::uint64_t coincidences() const noexcept;  // kept, over included DOMs
  std::uint32_t included_doms() const noexcept;
  std::uint32_t doms_in_state(SupernovaDomState state) const noexcept;
  friend bool operator==(const SupernovaSliceFigure&, const SupernovaSliceFigure&) = default;
};

// The triggered hits of a slice's events, for the muon veto; built once per slice.
class SupernovaVeto {
 public:
  SupernovaVeto() = default;
  explicit SupernovaVeto(std::span<const dataflow::Event> events);
  // Whether the raw hit (channel, raw time) of this DOM is a triggered hit.
  bool contains(std::uint32_t dom_id, std::uint8_t channel, std::uint32_t raw_time_ns) const noexcept;
  bool empty() const noexcept { return keys_.empty(); }

 private:
  struct Key {
    std::uint32_t dom_id, raw_time_ns;
    std::uint8_t channel;
    friend auto operator<=>(const Key&, const Key&) = default;
  };
  std::vector<Key> keys_;  // sorted
};

// A coincidence of at least min_multiplicity PMTs, for the correlated-DOM veto.
struct SupernovaCoincidenceTime {
  double time_ns = 0;           // calibrated time of its first hit, in the slice
  std::uint32_t dom_index = 0;  // into SupernovaSliceFigure::doms
  bool kept = false;            // counted in that DOM's `coincidences` (in the band, not triggered)
};

// Counts one DOM's coincidences. `hits_by_time` are the DOM's L0 hits sorted by calibrated time. A
// coincidence is every hit within coincidence_window_ns (inclusive) of its first hit; the next one
// starts at the first hit after it; its multiplicity is the number of distinct PMTs. Adds to
// figure.coincidences / figure.vetoed and to `multiplicity_counts` (coincidences of >= 2 PMTs), and
// appends every coincidence of at least min_multiplicity PMTs to `times` (when given) with `dom_index`.
void count_supernova_coincidences(std::span<const L0Hit> hits_by_time, const SupernovaSettings& settings,
                                  const SupernovaVeto& veto, SupernovaDomFigure& figure,
                                  std::array<std::uint32_t, dataflow::kPmtsPerDom + 1>& multiplicity_counts,
                                  std::vector<SupernovaCoincidenceTime>* times = nullptr, std::uint32_t dom_index = 0);

// count_supernova_coincidences in two steps, so that the first runs while a DOM's hits are in
// cache and the second once the slice's events (the veto) are known: a coincidence of >= 2 PMTs,
// as hits [first, end) of the DOM's hits by time.
struct SupernovaCluster {
  std::uint32_t first = 0, end = 0;
  std::uint32_t multiplicity = 0;  // distinct PMTs, >= 2
};
void find_supernova_clusters(std::span<const L0Hit> hits_by_time, double coincidence_window_ns,
                             std::vector<SupernovaCluster>& out);
// build_l1_dom and then find_supernova_clusters on the same DOM's hits, with the same outputs, in
// one pass: both look at every hit and most hits are alone under both windows, so the pair is
// told apart once (the per-DOM pass the filter runs while the hits are in cache).
void build_l1_dom_and_supernova_clusters(std::span<const L0Hit> dom_hits, std::uint32_t first_index,
                                         std::uint32_t dom_slot, const dataflow::Vec3& dom_position_m,
                                         const L1Settings& l1_settings, std::vector<L1Hit>& l1_out,
                                         double coincidence_window_ns, std::vector<SupernovaCluster>& sn_out);
void count_supernova_clusters(std::span<const L0Hit> hits_by_time, std::span<const SupernovaCluster> clusters,
                              const SupernovaSettings& settings, const SupernovaVeto& veto, SupernovaDomFigure& figure,
                              std::array<std::uint32_t, dataflow::kPmtsPerDom + 1>& multiplicity_counts,
                              std::vector<SupernovaCoincidenceTime>* times, std::uint32_t dom_index);

// The correlated-DOM veto over a whole slice (settings.correlated_veto_window_ns, 0 = off): every
// kept coincidence in `times` with another one within the window moves, in its DOM's figure, from
// `coincidences` to `correlated`. Sorts `times`. Coincidences near a slice edge are compared only
// with their own slice (a partner in the next slice is not seen: a small, bounded leak).
void veto_correlated_supernova_coincidences(std::vector<SupernovaCoincidenceTime>& times,
                                            const SupernovaSettings& settings, SupernovaSliceFigure& figure);

// The DOM state a frame gives (before the burst check, which needs history): `defects` are
// check_frame()'s bits; `channel_hits` the hits per channel, compared with high_rate_veto_hz (0 = off).
SupernovaDomState supernova_frame_state(const dataflow::DomFrame& frame, std::uint32_t defects,
                                        std::span<const std::uint32_t> channel_hits, double high_rate_veto_hz) noexcept;

// The whole per-slice SN figure from a raw timeslice and the events DataFilter built from it
// (standalone: calibrates and sorts the hits itself, the way L0 does). process() is const and
// thread-safe; per-call buffers are thread_local.
class SupernovaCoincidences {
 public:
  SupernovaCoincidences(const dataflow::Detector& detector, SupernovaSettings settings,
                        double high_rate_veto_hz = 1.0e6, int max_hits_per_frame = 1'000'000);

  SupernovaSliceFigure process(const dataflow::Timeslice& slice, std::span<const dataflow::Event> events) const;

  const SupernovaSettings& settings() const noexcept { return settings_; }

 private:
  dataflow::Detector detector_;
  SupernovaSettings settings_;
  double high_rate_veto_hz_;
  int max_hits_per_frame_;
  std::vector<DomCalibration> calibrations_;  // by module index
};

}  // namespace shoredaq::filters
