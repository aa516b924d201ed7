#pragma once
// The DU simulator behind `du-sim` (DOMAIN.md sections 1-2): for each 100 ms timeslice it produces
// what the selected DOMs of a detector would send — background (singles, 40K coincidences,
// optional bioluminescence bursts), light of injected atmospheric muons and showers — as the
// truth timeslice, as CLB datagrams (after optional fault injection) and as ground-truth particle
// records. No sockets here: tests and benchmarks use it directly; sinks live in feed_sink.hpp.
//
// Determinism: every random number comes from a stream derived from (seed, frame index, DOM id,
// purpose), so a slice's content depends neither on the DU order, nor on the thread count, nor on
// which slices were generated before it (except the late-DOM fault, which by nature carries
// datagrams from earlier slices).
//
// Time model: the DOM stamps a hit with raw time = true time - PMT t0 (DOMAIN.md section 4:
// calibrated = raw + t0), so physically simultaneous light (40K, muons) is simultaneous in
// *calibrated* time. Singles are uniform in raw time.
//
// Typical muon yield with the defaults (yield 40 pe*m, attenuation 50 m; measured on detector 133
// from the ground truth of 640 muons): a muon crossing the can of the first 2 DUs leaves on average
// 3.7 hits (median 1, 90 % <= 11, max ~35) on 1.9 DOMs; 32 % make an L1 (>= 2 hits within 10 ns on
// one DOM) on >= 1 DOM and 5 % on >= 4 DOMs. Over all 21 DUs: 15 hits on average (median 5, 90 %
// <= 47) on 7.7 DOMs; 54 % with L1 on >= 1 DOM, 33 % on >= 4 DOMs. Raise `muon.light_yield_pe_m`
// (du-sim --muon-yield) for brighter muons; TruthParticle::l1_doms tells which ones are bright.

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shoredaq/formats/clb_datagram.hpp"
#include "shoredaq/formats/detector.hpp"
#include "shoredaq/formats/timeslice.hpp"

namespace shoredaq::drivers {

// Optical background per PMT / DOM (DOMAIN.md section 1).
struct BackgroundConfig {
  // Total single-hit rate per PMT, *including* the hits of 40K coincidences (what a rate meter
  // or the summary slice shows). The uncorrelated part is this minus the coincidence hits per PMT.
  double singles_rate_hz = 7000.0;
  double k40_twofold_hz = 700.0;   // per DOM: genuine coincidences of 2 PMTs
  double k40_threefold_hz = 70.0;
  double k40_fourfold_hz = 7.0;
  double k40_jitter_ns = 0.5;      // Gaussian sigma of each photon's time around the decay time
  // Neighbouring-PMT preference: the other PMTs of a coincidence are drawn with weight
  // exp(-angle / neighbour_angle_rad), angle between the PMT axes.
  double k40_neighbour_angle_rad = 0.6;
  // Bioluminescence bursts: per DOM, Poisson in time; each burst raises a few neighbouring PMTs to
  // `burst_pmt_rate_hz` for an exponentially distributed duration (cut at the slice end).
  double burst_rate_hz_per_dom = 0.0;
  double burst_mean_duration_ms = 20.0;
  double burst_pmt_rate_hz = 200'000.0;
  unsigned burst_pmts = 3;
};

// ToT of one photo-electron: Gaussian; several photo-electrons add ~tot_per_ln_pe_ns * ln(n).
struct TotConfig {
  double mean_ns = 26.9;
  double sigma_ns = 2.4;
  double per_ln_pe_ns = 20.0;
};

// Light propagation shared by muons and showers: expected photo-electrons at a PMT fall as
// exp(-d/attenuation) and with the PMT acceptance, a function of the angle between the PMT axis
// and the incoming photon: acceptance = max(0, (cos(eta_in) + 0.3) / 1.3)^2, cos(eta_in) = -u.dir.
struct LightConfig {
  double attenuation_length_m = 50.0;  // absorption + scattering, effective
  double scattering_delay_ns_per_m = 0.03;  // mean extra delay (exponential), grows with distance
  double pmt_tts_sigma_ns = 2.0;       // PMT transit-time spread
  double max_distance_m = 250.0;       // DOMs further away get no light (speed)
};

// Atmospheric muons: straight, downgoing tracks crossing a vertical cylinder ("can") around the
// selected DOMs, enlarged by `can_margin_m`. Either a fixed `rate_hz` with cos(zenith) distributed
// as cos^2, or, with `depth_m` > 0, the rate and the zenith angles (and the entry depths) of the
// depth-intensity relation in muon_flux.hpp for the can's centre at that depth; the simulator then
// sets `rate_hz` to the computed rate (DuSimulator::config() shows it).
struct MuonConfig {
  double rate_hz = 0.0;                // muons crossing the can, per second
  double depth_m = 0.0;                // > 0: depth of the can's centre below the sea surface
  double light_yield_pe_m = 40.0;      // pe*m: expected pe on a facing PMT at distance d is Y*exp(-d/L)/d
  double energy_min_gev = 50.0;        // energy proxy: power law E^-2.7 in [min, max];
  double energy_max_gev = 100'000.0;   //   light scales with 1 + E / 1 TeV
  double can_margin_m = 50.0;
};

// Showers: point-like light from a vertex uniform in the can, isotropic direction, light peaked
// at the Cherenkov angle around the shower axis; yield Y*E_TeV*profile*acceptance*exp(-d/L)/d^2.
struct ShowerConfig {
  double rate_hz = 0.0;
  double light_yield_pe_m2_per_tev = 20000.0;
  double energy_min_gev = 1000.0;      // power law E^-2 in [min, max]
  double energy_max_gev = 100'000.0;
};

// Faults applied to the datagram list of each slice (never to the truth timeslice).
struct FaultConfig {
  double loss_pct = 0.0;         // each datagram dropped with this probability
  double duplicate_pct = 0.0;    // each datagram sent twice (the copy right after it)
  bool reorder = false;          // the slice's datagram list is shuffled
  std::optional<std::uint32_t> silent_dom;  // this DOM sends nothing at all
  std::optional<std::uint32_t> late_dom;    // this DOM's datagrams arrive `late_slices` slices late
  unsigned late_slices = 2;
  double corrupt_pct = 0.0;      // each datagram corrupted: truncated, bad channel or bad length record
  // Bad slice times (a DOM with a wrong clock): in slices bad_time_at_slice .. + bad_time_count - 1,
  // an extra copy of this DOM's first datagram of the slice, its slice time moved by
  // bad_time_offset_s + k * bad_time_step_s (k = 0, 1, ...; rounded to 100 ms, may be negative),
  // sent first in the slice. The true datagrams still go out, so a receiver that drops the bad
  // copies loses nothing. Nothing is added when the DOM sends nothing in that slice.
  std::optional<std::uint32_t> bad_time_dom;
  double bad_time_offset_s = 3600.0;
  std::uint32_t bad_time_at_slice = 0;
  unsigned bad_time_count = 1;
  double bad_time_step_s = 0.0;
};

// Acoustic (TAES) datagrams, a stand-in for the DOM's piezo sensor: the collaboration's public
// readers (km3pipe, KM3io.jl) know the CLB header and the TAES type tag but no payload layout, so
// the payload is kept simple and documented here: `samples_per_datagram` samples of 3 bytes each,
// signed 24-bit big-endian, sampled at `sample_rate_hz` (a tone of `tone_hz` plus Gaussian noise;
// within a slice, datagram k continues the samples where k-1 stopped). The header is the optical one with
// type TAES: run, a sequence number from 0 in each slice, the slice start, the DOM id, status 1
// with the White Rabbit bit. `datagrams_per_s` per DOM are spread evenly over the slices (the
// count per slice alternates so the long-run rate is exact).
struct AcousticConfig {
  bool enabled = false;
  double datagrams_per_s = 10.0;        // per DOM
  unsigned samples_per_datagram = 128;  // 3 bytes each: 384 bytes of payload by default
  double sample_rate_hz = 195'312.5;
  double tone_hz = 20'000.0;
  double tone_amplitude = 100'000.0;    // in ADC counts (24-bit: up to 8 388 607)
  double noise_sigma = 5'000.0;
};

// A supernova-like burst (issue 12): during [at_s, at_s + duration_s) after the first slice's start
// (data time), every simulated DOM gets extra coincidences of hits on distinct PMTs within a few ns,
// on top of its singles and 40K coincidences: ~10 MeV neutrino interactions near a DOM, a few photons
// each. Off unless `at_s` is set.
// Time profile, per DOM: rate(tau) = scale * peak_rate_hz_per_dom * g(tau) / max(g), tau = time since
// the burst start, g(tau) = (1 - exp(-tau / tau_rise)) * exp(-tau / tau_decay), tau_rise = rise_ms / 3
// (95 % of the rise within rise_ms: a fast rise in ~50 ms, like the accretion phase's onset) and
// tau_decay = duration_s / 3 (an exponential-like cooling; ~5 % of the peak at the end, then cut).
// Multiplicity (distinct PMTs): P(m) ~ multiplicity_ratio^(m - 2) for m = 2..kSupernovaMaxMultiplicity,
// a falling spectrum (few photons per interaction). With the default ratio 0.7: 30.6 % 2-fold,
// 21.4 % 3-fold, 15.0 % 4-fold, ...; 14.3 % in the ARCA-like SN band 7-11.
// The PMTs of a coincidence: a first one uniformly, the others like 40K (BackgroundConfig's
// neighbour preference). The photons share one true time with a Gaussian jitter (cut at +-3 sigma),
// and, like 40K, raw = true - (t0 - mean t0 of the DOM): they coincide in *calibrated* time, so the
// SN filter's 10 ns window sees them as one coincidence.
// Default peak rate: chosen for a clear test signal, not from a supernova flux: at scale 1 the
// burst's peak adds ~7 coincidences/s per DOM in the 7-11 band, i.e. ~64 per 500 ms over one DU
// (18 DOMs), where the simulated background has next to none (40K goes up to 4-fold).
inline constexpr unsigned kSupernovaMaxMultiplicity = 12;
struct SupernovaBurstConfig {
  std::optional<double> at_s;            // burst start, seconds after the run's first slice; unset = no burst
  double duration_s = 10.0;              // burst length; the rate is zero after it
  double scale = 1.0;                    // multiplies peak_rate_hz_per_dom (0: a burst with nothing in it)
  double peak_rate_hz_per_dom = 50.0;    // coincidences (all multiplicities) per DOM per second at the peak
  double rise_ms = 50.0;                 // the rate reaches ~95 % of its rise within this
  double multiplicity_ratio = 0.7;       // P(m + 1) / P(m), m = 2..kSupernovaMaxMultiplicity
  double jitter_ns = 1.0;                // Gaussian sigma of each photon's time around the coincidence time
};

struct DuSimConfig {
  std::shared_ptr<const dataflow::Detector> detector;
  std::vector<int> dus;          // DU numbers to simulate; empty = all DUs of the detector
  std::uint32_t run_number = 1;
  // Start of the first slice (Unix ns, rounded down to a 100 ms boundary). Unset = the wall
  // clock at construction. Hit content never depends on it, only the datagram time stamps do.
  std::optional<std::uint64_t> start_unix_ns;
  std::uint64_t seed = 1;
  BackgroundConfig background;
  TotConfig tot;
  LightConfig light;
  MuonConfig muon;
  ShowerConfig shower;
  FaultConfig faults;
  std::size_t mtu_bytes = 1472;  // largest datagram (UDP payload): 1500-byte Ethernet MTU - IP/UDP headers
  dataflow::HeaderLayout header_layout = dataflow::HeaderLayout::Standard40;
  // High-rate veto: once a PMT's hit count in a slice passes threshold * 0.1 s, its further hits of
  // that slice are not sent and its HRV bit is set in status 1.
  double hrv_threshold_hz = 1'000'000.0;
  // The DOM's readout interleaves channels in blocks of this length: hits are time-ordered per
  // channel, but within a block grouped by channel (so not ordered across channels). 500 ns gives
  // what DOMAIN.md measured in the CLB sample clb.dqd: a few inversions per datagram of ~230 hits
  // (median 6 at 7 kHz per PMT), none stepping back more than ~0.5 us. Longer blocks make a feed
  // the detector never sends (200 us, the default until 2026-12: ~87 % of hits out of order).
  std::uint32_t readout_block_ns = 500;
  unsigned threads = 1;          // worker threads for the per-DOM generation (output identical)
  // Also send one TMCH monitoring packet per DOM and slice (DOMAIN.md section 2: hits per PMT in
  // the slice, HRV mask, slice duration 100 000 us, temperature/humidity), after the DOM's TTDC
  // datagrams. Not part of the truth timeslice's datagram count.
  bool monitoring_packets = false;
  // Also send TAES acoustic datagrams per DOM (AcousticConfig), after the DOM's TTDC and TMCH
  // datagrams of the slice. Not part of the truth timeslice.
  AcousticConfig acoustic;
  SupernovaBurstConfig supernova;
};

// One hit of a ground-truth particle, as sent (raw time, like the datagram).
struct TruthHit {
  std::uint32_t dom_id = 0;
  std::uint8_t channel = 0;
  std::uint32_t time_ns = 0;     // raw, since the slice start
  std::uint8_t tot_ns = 0;
  std::uint16_t photo_electrons = 0;
};

enum class ParticleType : std::uint8_t { Muon, Shower };
std::string_view to_string(ParticleType t) noexcept;

struct TruthParticle {
  ParticleType type = ParticleType::Muon;
  std::uint64_t id = 0;            // frame_index * 1000 + index in slice
  std::uint32_t frame_index = 0;
  std::uint64_t time_unix_ns = 0;  // muon: passing `vertex_m`; shower: at the vertex (calibrated time)
  double time_in_slice_ns = 0;     // the same, since the slice start
  dataflow::Vec3 vertex_m;         // muon: closest approach to the can centre
  dataflow::Vec3 direction;
  double energy_gev = 0;           // energy proxy
  std::vector<TruthHit> hits;      // sorted by (DOM, channel)
  // DOMs with >= 2 of this particle's hits within 10 ns (calibrated): its L1 coincidences.
  unsigned l1_doms = 0;
  unsigned hit_doms = 0;
};

// One JSON object (no newline) for the ground-truth file.
std::string truth_json_line(const TruthParticle& particle);

// The burst as a whole, for the ground-truth file (one line before the slices).
struct SupernovaBurstTruth {
  std::uint64_t start_unix_ns = 0;   // burst start (data time, UTC ns)
  double duration_s = 0;
  double scale = 0;
  double peak_rate_hz_per_dom = 0;   // after the scale
  double rise_ms = 0;
  double multiplicity_ratio = 0;
  std::uint32_t doms = 0;            // DOMs that get the burst (all simulated ones)
};
// The burst's share of one slice (every slice that overlaps the burst, even with nothing injected).
struct SupernovaSliceTruth {
  std::uint32_t frame_index = 0;
  std::uint64_t slice_start_unix_ns = 0;
  double expected_per_dom = 0;       // the profile's mean coincidences per DOM in this slice
  std::uint64_t coincidences = 0;    // injected, summed over the DOMs
  // Injected coincidences by multiplicity (index = distinct PMTs, 2..kSupernovaMaxMultiplicity).
  std::array<std::uint64_t, kSupernovaMaxMultiplicity + 1> by_multiplicity{};
};
std::string truth_json_line(const SupernovaBurstTruth& burst);
std::string truth_json_line(const SupernovaSliceTruth& slice);

enum class DatagramFault : std::uint8_t { None, Truncated, BadChannel, BadLengthRecord, Duplicate, Late, BadTime };
std::string_view to_string(DatagramFault f) noexcept;

struct SimDatagram {
  std::uint32_t dom_id = 0;
  std::uint32_t frame_index = 0;   // the slice it belongs to (differs from the list's for late ones)
  DatagramFault fault = DatagramFault::None;
  // For BadLengthRecord: the bytes are intact; a record writer must give this record a length
  // field that overruns its message / file (see feed_sink.hpp).
  std::vector<std::uint8_t> bytes;
};

struct SliceCounters {
  std::uint64_t hits = 0;                  // in the truth timeslice
  std::uint64_t datagrams_generated = 0;   // before faults (TTDC, plus TMCH and TAES when enabled)
  std::uint64_t monitoring_packets = 0;    // TMCH packets among them
  std::uint64_t acoustic_datagrams = 0;    // TAES datagrams among them
  std::uint64_t k40_coincidences[3] = {0, 0, 0};  // injected 2-, 3-, 4-fold
  std::uint64_t hrv_vetoed_hits = 0;
  std::uint64_t bursts = 0;
  std::uint64_t muons = 0, showers = 0;
  std::uint64_t lost = 0, duplicated = 0, corrupted = 0, delayed = 0, silenced = 0;
  std::uint64_t bad_time = 0;              // extra datagrams with a wrong slice time (FaultConfig)
  std::uint64_t supernova_coincidences = 0;  // injected by the burst (SupernovaBurstConfig)
};

struct SimulatedSlice {
  // As the DOMs produced it (before faults): one frame per selected DOM, sorted by DOM id, with
  // the FrameStatus a perfect receiver would record.
  dataflow::Timeslice truth;
  std::vector<SimDatagram> datagrams;      // after fault injection, in sending order
  std::vector<TruthParticle> particles;
  SliceCounters counters;
  std::optional<SupernovaSliceTruth> supernova;  // set when the slice overlaps the burst
};

class DuSimulator {
 public:
  // Throws std::invalid_argument on a bad configuration (no detector, unknown DU, MTU too small).
  explicit DuSimulator(DuSimConfig config);
  ~DuSimulator();
  DuSimulator(DuSimulator&&) noexcept;
  DuSimulator& operator=(DuSimulator&&) noexcept;

  // Generates the next slice (frame index 0, 1, 2, ...).
  SimulatedSlice next_slice();
  // Generates slice `frame_index` without advancing; deterministic (late-DOM faults excluded).
  SimulatedSlice make_slice(std::uint32_t frame_index) const;
  // Datagrams still held back by the late-DOM fault (call after the last slice).
  std::vector<SimDatagram> drain_late();

  const DuSimConfig& config() const noexcept;
  std::span<const dataflow::Module* const> modules() const noexcept;  // simulated DOMs, by id
  std::uint32_t next_frame_index() const noexcept;
  std::uint64_t slice_start_unix_ns(std::uint32_t frame_index) const noexcept;
  // Per-PMT rate of uncorrelated singles after subtracting the coincidence hits.
  double uncorrelated_rate_hz() const noexcept;
  // The configured burst (SupernovaBurstConfig), unset without one.
  std::optional<SupernovaBurstTruth> supernova_burst() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};


}  // namespace shoredaq::drivers
