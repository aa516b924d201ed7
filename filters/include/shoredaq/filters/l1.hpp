#pragma once
// L1 and L2 hit selection on one DOM (DOMAIN.md section 5).

#include <cstdint>
#include <span>
#include <vector>

#include "shoredaq/formats/detector.hpp"
#include "shoredaq/filters/l0.hpp"

namespace shoredaq::filters {

// A local coincidence: `multiplicity` consecutive L0 hits of one DOM starting at global L0 index
// `first_l0`. Its time is the earliest hit's; its position the DOM's.
struct L1Hit {
  double time_ns = 0;
  dataflow::Vec3 position_m;
  std::uint32_t dom_slot = 0;  // into L0Slice::doms
  std::uint32_t first_l0 = 0;  // into L0Slice::hits
  std::uint16_t multiplicity = 0;
  bool l2 = false;
};

struct L1Settings {
  double window_ns = 10.0;  // TMaxLocal
  bool combine = true;      // chained coincidences form one L1
};

// Appends the L1 hits of one DOM (its L0 hits sorted by time, the first at global index
// `first_index`). Without combine, an L1 holds every hit within window_ns of its first hit and the
// next L1 starts after it; with combine, an L1 extends while the next hit is within window_ns of
// the previous one.
void build_l1_dom(std::span<const L0Hit> dom_hits, std::uint32_t first_index, std::uint32_t dom_slot,
                  const dataflow::Vec3& dom_position_m, const L1Settings& settings,
                  std::vector<L1Hit>& out);

// Sorts L1 hits by time, equal times in exactly the order std::sort comparing times alone gives
// them (the triggers' output depends on it). std::sort's steps depend on nothing but the outcomes
// of its comparisons, so sorting (time, index) keys with the same comparison gives the same
// permutation, for a third of the bytes moved; one gather then puts the hits in that order.
struct L1SortBuffers {
  struct Key {
    double time_ns;
    std::uint32_t index;
  };
  std::vector<Key> keys;
  std::vector<L1Hit> sorted;
};
void sort_l1_by_time(std::vector<L1Hit>& l1, L1SortBuffers& buffers);

struct L2Settings {
  double ct_min = 0.0;      // cos of the largest angle between the PMT axes
  double window_ns = 10.0;  // L2 TMaxLocal
  int min_hits = 2;         // L2Min
};

// Whether an L1 (its hits, time-ordered) is an L2: at least min_hits of its hits lie within
// window_ns of the earliest and have PMT axes within acos(ct_min) of the earliest hit's axis.
bool is_l2(std::span<const L0Hit> l1_hits, std::span<const dataflow::Vec3> pmt_directions,
           const L2Settings& settings) noexcept;

}  // namespace shoredaq::filters
