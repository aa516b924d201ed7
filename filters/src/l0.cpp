#include "shoredaq/filters/l0.hpp"

#include <algorithm>
#include <bit>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cmath>
#include <limits>
#include <optional>
#include <type_traits>

#include "shoredaq/formats/clb_datagram.hpp"

namespace shoredaq::filters {

DomCalibration DomCalibration::of(const dataflow::Module& module) {
  DomCalibration c;
  const std::size_t n = std::min<std::size_t>(module.pmts.size(), dataflow::kPmtsPerDom);
  for (std::size_t ch = 0; ch < n; ++ch) {
    c.t0_ns[ch] = module.pmts[ch].t0_ns;
    c.present_channels |= 1u << ch;
  }
  return c;
}

std::size_t L0Slice::dom_slot_of(std::uint32_t hit_index) const noexcept {
  auto it = std::upper_bound(doms.begin(), doms.end(), hit_index,
                             [](std::uint32_t i, const L0Dom& d) { return i < d.end; });
  return static_cast<std::size_t>(it - doms.begin());
}

// Exact to a group of 8 hits: bucket b holds the first group whose last hit has time >= b * W.
// One store per 8 hits, no branch per bucket: a walk stopping at every bucket boundary cost ~10 %
// of the filter (a mispredicted exit per bucket).
void L0TimeIndex::build(std::span<const L0Hit> hits, std::uint32_t first_hit, std::uint32_t* buckets) noexcept {
  constexpr std::size_t kGroup = 8;
  const std::size_t groups = hits.size() / kGroup;
  // Hits after the last whole group: any search that gets there starts at the tail.
  std::fill(buckets, buckets + kBuckets, first_hit + static_cast<std::uint32_t>(groups * kGroup));
  constexpr double kLastBucket = static_cast<double>(kBuckets - 1);
  for (std::size_t k = groups; k-- > 0;) {  // backwards: a bucket keeps its earliest group
    const double b = hits[k * kGroup + kGroup - 1].time_ns / kBucketNs;
    buckets[static_cast<std::size_t>(b >= 0 ? std::min(b, kLastBucket) : 0.0)] =
        first_hit + static_cast<std::uint32_t>(k * kGroup);
  }
  // A bucket no group ends in starts where the next one does.
  for (std::size_t b = kBuckets - 1; b-- > 0;) buckets[b] = std::min(buckets[b], buckets[b + 1]);
}

std::size_t build_l0_dom(const dataflow::DomFrame& frame, const DomCalibration& calibration,
                         std::uint32_t excluded_channels, std::vector<L0Hit>& out, L0Scratch& scratch) {
  const std::size_t base = out.size();
  out.resize(base + frame.hit_count());
  const std::size_t m = build_l0_dom_into(frame, calibration, excluded_channels, out.data() + base, scratch);
  out.resize(base + m);
  return m;
}

namespace {

// The CLB's order (DOMAIN.md): time-ordered per channel and nearly so across channels, a few hits
// per datagram stepping back less than a microsecond. On such a frame, decoding in frame order and
// inserting each hit into place is one pass, with about one move per out-of-order hit. Gives up
// (returns nullopt) when the moves pass `max_moves`, so a frame in another order costs at most
// that much before the general sort.
// With a FrameScanner, every hit (used or not) is also handed to it.
template <class Scanner = std::nullptr_t>
std::optional<std::size_t> insert_in_frame_order(const dataflow::DomFrame& frame, const DomCalibration& calibration,
                                                 std::uint32_t usable, L0Hit* dst, std::size_t max_moves,
                                                 Scanner* scanner = nullptr) noexcept {
  const std::size_t n = frame.hit_count();
  const std::uint8_t* p = frame.hits.data();
  std::size_t m = 0, moves = 0;
  double latest_ns = -std::numeric_limits<double>::infinity();  // dst[m - 1].time_ns, kept in a register
  for (std::size_t i = 0; i < n; ++i, p += dataflow::kHitBytes) {
    const unsigned ch = p[0];
    const std::uint32_t t = dataflow::decode_hit_time(p);
    if constexpr (!std::is_same_v<Scanner, std::nullptr_t>) scanner->add(ch, t);
    if (ch >= 32 || !(usable & (1u << ch))) continue;
    const L0Hit h{t + calibration.t0_ns[ch], t, static_cast<std::uint8_t>(ch), p[5]};
    if (!(h.time_ns < latest_ns)) {  // in order: most hits
      dst[m++] = h;
      latest_ns = h.time_ns;
      continue;
    }
    std::size_t j = m;  // inserted before the latest, which stays the latest
    while (j > 0 && h.time_ns < dst[j - 1].time_ns) {
      dst[j] = dst[j - 1];
      --j;
    }
    moves += m - j;
    if (moves > max_moves) return std::nullopt;
    dst[j] = h;
    ++m;
  }
  return m;
}

// Any order: counting sort into ~1-hit-wide time buckets keyed by the whole ns of (calibrated time -
// the DOM's smallest t0), then an insertion pass on the exact calibrated times, which only moves
// hits within their bucket. The key is computed from the calibrated time itself, so equal times
// have equal keys and a bucket keeps frame order: the stable sort, as the one-pass insertion.
// Exact, linear in practice, and faster than std::sort or a 31-way heap merge.
std::size_t bucket_sort(const dataflow::DomFrame& frame, const DomCalibration& calibration, std::uint32_t usable,
                        L0Hit* dst, L0Scratch& scratch) {
  double t0_min = std::numeric_limits<double>::max();
  for (unsigned ch = 0; ch < dataflow::kPmtsPerDom; ++ch)
    if (usable & (1u << ch)) t0_min = std::min(t0_min, calibration.t0_ns[ch]);
  constexpr double kLargestKey = 4.0e9;  // keys past it share the last buckets (only with absurd t0s)

  const std::size_t n = frame.hit_count();
  // Pass 1: the bucket key of every hit (kExcluded for hits left out) and the largest key.
  constexpr std::uint32_t kExcluded = UINT32_MAX;
  auto& keys = scratch.keys;
  keys.resize(n);
  std::size_t m = 0;
  std::uint32_t max_key = 0;
  const std::uint8_t* const raw = frame.hits.data();
  const std::uint8_t* p = raw;
  for (std::size_t i = 0; i < n; ++i, p += dataflow::kHitBytes) {
    const unsigned ch = p[0];
    if (ch >= 32 || !(usable & (1u << ch))) {
      keys[i] = kExcluded;
      continue;
    }
    // >= 0: hit times are >= 0 and rounding is monotone; truncation is floor here.
    const double since_min = (dataflow::decode_hit_time(p) + calibration.t0_ns[ch]) - t0_min;
    const auto key = static_cast<std::uint32_t>(since_min >= 0 ? std::min(since_min, kLargestKey) : 0.0);
    keys[i] = key;
    max_key = std::max(max_key, key);
    ++m;
  }
  auto decode = [&](const std::uint8_t* h) {
    const std::uint32_t t = dataflow::decode_hit_time(h);
    return L0Hit{t + calibration.t0_ns[h[0]], t, h[0], h[5]};
  };
  if (m < 64) {
    std::size_t k = 0;
    for (std::size_t i = 0; i < n; ++i)
      if (keys[i] != kExcluded) dst[k++] = decode(raw + i * dataflow::kHitBytes);
  } else {
    // Pass 2: counting sort into about one bucket per hit, decoding straight into place.
    const std::size_t buckets = std::bit_ceil(m);
    unsigned shift = 0;
    while ((std::uint64_t{max_key} >> shift) >= buckets) ++shift;
    auto& starts = scratch.bucket_starts;
    starts.assign(buckets + 1, 0);
    for (std::size_t i = 0; i < n; ++i)
      if (keys[i] != kExcluded) ++starts[(keys[i] >> shift) + 1];
    for (std::size_t b = 1; b <= buckets; ++b) starts[b] += starts[b - 1];
    for (std::size_t i = 0; i < n; ++i)
      if (keys[i] != kExcluded) dst[starts[keys[i] >> shift]++] = decode(raw + i * dataflow::kHitBytes);
  }
  // Insertion pass: hits are at most a bucket (or a whole-ns rounding) away from their place.
  for (std::size_t i = 1; i < m; ++i) {
    if (!(dst[i].time_ns < dst[i - 1].time_ns)) continue;
    const L0Hit h = dst[i];
    std::size_t j = i;
    do {
      dst[j] = dst[j - 1];
      --j;
    } while (j > 0 && h.time_ns < dst[j - 1].time_ns);
    dst[j] = h;
  }
  return m;
}

}  // namespace

// Both orders give the stable sort by calibrated time: hits of equal time stay in frame order.
std::size_t build_l0_dom_into(const dataflow::DomFrame& frame, const DomCalibration& calibration,
                              std::uint32_t excluded_channels, L0Hit* dst, L0Scratch& scratch) {
  const std::uint32_t usable = calibration.present_channels & ~excluded_channels;
  const std::size_t n = frame.hit_count();
  if (const auto m = insert_in_frame_order(frame, calibration, usable, dst, n / 2 + 64)) return *m;
  return bucket_sort(frame, calibration, usable, dst, scratch);
}

CheckedL0 build_l0_dom_checked(const dataflow::DomFrame& frame, const DomCalibration& calibration,
                               std::uint32_t excluded_channels, std::size_t max_hits_per_frame, L0Hit* dst,
                               L0Scratch& scratch) {
  const std::uint32_t usable = calibration.present_channels & ~excluded_channels;
  const std::size_t n = frame.hit_count();
  FrameScanner scanner(frame, max_hits_per_frame);
  // A frame rejected whatever its hits (incomplete, too big, torn) gets no L0.
  if (scanner.frame_defective()) return {scan_frame(frame, max_hits_per_frame), 0};
  if (const auto m = insert_in_frame_order(frame, calibration, usable, dst, n / 2 + 64, &scanner))
    return {scanner.finish(), *m};
  // Far from time order: the scan was cut short with the insertion. Check the whole frame first: a
  // defective one gets no L0 (its times may be anything, which the bucket sort is not built for).
  const FrameScan scan = scan_frame(frame, max_hits_per_frame);
  if (scan.defects) return {scan, 0};
  return {scan, bucket_sort(frame, calibration, usable, dst, scratch)};
}

}  // namespace shoredaq::filters
