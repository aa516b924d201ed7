// The DU simulator: one DOM's slice - singles, 40K coincidences, bursts, high-rate veto, particle
// light - packed into CLB datagrams.

#include <functional>
#include <utility>

#include "du_simulator_impl.hpp"

namespace shoredaq::drivers {

DomOutput DuSimulator::Impl::generate_dom(std::size_t index, std::uint32_t frame,
                                          const std::vector<Particle>& particles) const {
  const DomModel& dom = doms[index];
  const std::uint32_t dom_id = dom.module->id;
  const BackgroundConfig& bg = config.background;
  DomOutput out;
  std::array<std::vector<SimHit>, dataflow::kPmtsPerDom> extra;

  // 40K coincidences: one decay time (calibrated), photons on a first PMT and its neighbours.
  if (dom.n_pmts >= 4) {
    SimRng rng(config.seed, Stream::K40, {frame, dom_id});
    const double rates[3] = {bg.k40_twofold_hz, bg.k40_threefold_hz, bg.k40_fourfold_hz};
    for (unsigned fold_index = 0; fold_index < 3; ++fold_index) {
      const unsigned fold = fold_index + 2;
      const unsigned n_events = rng.poisson(rates[fold_index] * kSliceSeconds);
      out.k40[fold_index] = n_events;
      for (unsigned e = 0; e < n_events; ++e) {
        const double t = rng.uniform(0, kSliceNs);
        std::array<unsigned, 4> chosen{};
        chosen[0] = rng.below(dom.n_pmts);
        for (unsigned j = 1; j < fold; ++j) {
          for (;;) {
            const auto& cdf = dom.neighbour_cdf[chosen[0]];
            const float u = static_cast<float>(rng.uniform());
            unsigned pick = static_cast<unsigned>(std::upper_bound(cdf.begin(), cdf.begin() + dom.n_pmts, u) - cdf.begin());
            pick = std::min(pick, dom.n_pmts - 1);
            if (pick != chosen[0] && std::find(chosen.begin() + 1, chosen.begin() + j, pick) == chosen.begin() + j) {
              chosen[j] = pick;
              break;
            }
          }
        }
        for (unsigned j = 0; j < fold; ++j) {
          const unsigned c = chosen[j];
          const double raw = std::round(t + bg.k40_jitter_ns * rng.normal() - (dom.t0_ns[c] - dom.t0_mean_ns));
          if (raw < 0 || raw >= kSliceNs) continue;
          extra[c].push_back(SimHit{static_cast<std::uint32_t>(raw), tot_one_pe(rng), kSourceCorrelated, 1});
        }
      }
    }
  }

  // Bioluminescence bursts: a few neighbouring PMTs see a high rate for a while.
  if (bg.burst_rate_hz_per_dom > 0 && dom.n_pmts > 0) {
    SimRng rng(config.seed, Stream::Burst, {frame, dom_id});
    const unsigned n_bursts = rng.poisson(bg.burst_rate_hz_per_dom * kSliceSeconds);
    out.bursts = n_bursts;
    for (unsigned b = 0; b < n_bursts; ++b) {
      const double start = rng.uniform(0, kSliceNs);
      const double end = std::min(kSliceNs, start + rng.exponential(bg.burst_mean_duration_ms * 1e6));
      const unsigned first = rng.below(dom.n_pmts);
      const auto& cdf = dom.neighbour_cdf[first];
      for (unsigned j = 0; j < std::max(1u, bg.burst_pmts); ++j) {
        unsigned c = first;
        if (j > 0) {
          c = static_cast<unsigned>(std::upper_bound(cdf.begin(), cdf.begin() + dom.n_pmts,
                                                     static_cast<float>(rng.uniform())) - cdf.begin());
          c = std::min(c, dom.n_pmts - 1);
        }
        const double mean_gap = 1e9 / std::max(1.0, bg.burst_pmt_rate_hz);
        for (double t = start + rng.exponential_fast(mean_gap); t < end; t += rng.exponential_fast(mean_gap))
          extra[c].push_back(SimHit{static_cast<std::uint32_t>(t), tot_one_pe(rng), kSourceCorrelated, 1});
      }
    }
  }

  add_supernova_coincidences(dom, frame, out, extra);
  for (std::size_t k = 0; k < particles.size(); ++k) add_particle_light(dom, k, particles[k], frame, extra);

  // Singles per channel as a Poisson process in time (already ordered), merged on the fly with
  // the sorted extra hits.
  std::array<std::vector<SimHit>, dataflow::kPmtsPerDom> channels;
  std::array<std::uint32_t, dataflow::kPmtsPerDom> seen_per_channel{};  // before the veto
  std::uint32_t hrv_mask = 0;
  std::size_t total = 0;
  const auto hrv_limit = static_cast<std::size_t>(config.hrv_threshold_hz * kSliceSeconds);
  {
    SimRng rng(config.seed, Stream::Background, {frame, dom_id});
    const double mean_gap_ns = uncorrelated_rate_hz > 0 ? 1e9 / uncorrelated_rate_hz : 0.0;
    for (unsigned c = 0; c < dom.n_pmts; ++c) {
      auto& ex = extra[c];
      std::sort(ex.begin(), ex.end(), [](const SimHit& a, const SimHit& b) { return a.time_ns < b.time_ns; });
      auto& hits = channels[c];
      hits.reserve(static_cast<std::size_t>(uncorrelated_rate_hz * kSliceSeconds * 1.1) + ex.size() + 16);
      std::size_t xi = 0;
      if (mean_gap_ns > 0) {
        for (double t = rng.exponential_fast(mean_gap_ns); t < kSliceNs; t += rng.exponential_fast(mean_gap_ns)) {
          const auto time = static_cast<std::uint32_t>(t);
          while (xi < ex.size() && ex[xi].time_ns <= time) hits.push_back(ex[xi++]);
          hits.push_back(SimHit{time, tot_one_pe(rng), kSourceBackground, 1});
        }
      }
      hits.insert(hits.end(), ex.begin() + static_cast<std::ptrdiff_t>(xi), ex.end());
      seen_per_channel[c] = static_cast<std::uint32_t>(hits.size());
      if (hits.size() > hrv_limit) {  // high-rate veto: later hits of this slice are not sent
        out.hrv_vetoed += hits.size() - hrv_limit;
        hits.resize(hrv_limit);
        hrv_mask |= 1u << c;
      }
      total += hits.size();
    }
  }

  // The readout, in the order (block of readout_block_ns, channel, time): time-ordered per
  // channel, and within one block grouped by channel. A 31-way merge on that key: each channel's
  // hits are already in time order, and only the head of each channel is compared.
  out.frame.dom_id = dom_id;
  out.frame.hits.resize(total * dataflow::kHitBytes);
  {
    const std::uint64_t block_ns = config.readout_block_ns;
    auto key_of = [&](unsigned c, std::size_t i) { return ((channels[c][i].time_ns / block_ns) << 5) | c; };
    using Head = std::pair<std::uint64_t, unsigned>;  // (key of the channel's next hit, channel)
    std::array<Head, dataflow::kPmtsPerDom> heap_storage{};
    std::size_t heap_size = 0;
    for (unsigned c = 0; c < dom.n_pmts; ++c)
      if (!channels[c].empty()) heap_storage[heap_size++] = {key_of(c, 0), c};
    const auto later = std::greater<Head>{};  // a min-heap: keys are unique, (block, channel)
    std::make_heap(heap_storage.begin(), heap_storage.begin() + static_cast<std::ptrdiff_t>(heap_size), later);
    std::array<std::size_t, dataflow::kPmtsPerDom> cursor{};
    std::uint8_t* w = out.frame.hits.data();
    while (heap_size > 0) {
      std::pop_heap(heap_storage.begin(), heap_storage.begin() + static_cast<std::ptrdiff_t>(heap_size), later);
      const auto [key, c] = heap_storage[heap_size - 1];
      const auto& hits = channels[c];
      std::size_t i = cursor[c];
      do {  // the channel's hits of this block
        const SimHit& h = hits[i];
        dataflow::encode_hit(dataflow::Hit{static_cast<std::uint8_t>(c), h.time_ns, h.tot_ns}, w);
        w += dataflow::kHitBytes;
        if (h.source >= kSourceParticleBase)
          out.particle_hits.emplace_back(static_cast<std::uint16_t>(h.source - kSourceParticleBase),
                                         TruthHit{dom_id, static_cast<std::uint8_t>(c), h.time_ns, h.tot_ns,
                                                  h.photo_electrons});
        ++i;
      } while (i < hits.size() && key_of(c, i) == key);
      cursor[c] = i;
      if (i < hits.size()) {
        heap_storage[heap_size - 1] = {key_of(c, i), c};
        std::push_heap(heap_storage.begin(), heap_storage.begin() + static_cast<std::ptrdiff_t>(heap_size), later);
      } else {
        --heap_size;
      }
    }
  }

  // Datagrams: split at the MTU, sequence numbers from 0, trailer bit on the last.
  const std::size_t n_datagrams = std::max<std::size_t>(1, (total + hits_per_datagram - 1) / hits_per_datagram);
  dataflow::ClbHeader header;
  header.data_type = dataflow::DataType::Optical;
  header.run_number = config.run_number;
  const std::uint64_t slice_start = start_ns + std::uint64_t{frame} * dataflow::kSliceDurationNs;
  header.utc_seconds = static_cast<std::uint32_t>(slice_start / 1'000'000'000ull);
  header.ticks_16ns = static_cast<std::uint32_t>((slice_start % 1'000'000'000ull) / dataflow::kTickNs);
  header.dom_id = dom_id;
  header.status1 = dataflow::kStatus1WhiteRabbitOk | hrv_mask;
  out.datagrams.reserve(n_datagrams);
  for (std::size_t i = 0; i < n_datagrams; ++i) {
    header.udp_sequence = static_cast<std::uint32_t>(i);
    header.status2 = i + 1 == n_datagrams ? dataflow::kStatus2Trailer : 0u;
    const std::size_t first = i * hits_per_datagram;
    const std::size_t count = std::min(hits_per_datagram, total - std::min(total, first));
    SimDatagram dg;
    dg.dom_id = dom_id;
    dg.frame_index = frame;
    dg.bytes.reserve(header_bytes + count * dataflow::kHitBytes);
    dataflow::encode_clb_header(header, config.header_layout, dg.bytes);
    const auto* src = out.frame.hits.data() + first * dataflow::kHitBytes;
    dg.bytes.insert(dg.bytes.end(), src, src + count * dataflow::kHitBytes);
    out.datagrams.push_back(std::move(dg));
  }
  if (config.monitoring_packets) {
    // The CLB's monitoring packet of this slice: hit counts as seen by the TDCs (vetoed ones too).
    SimRng rng(config.seed, Stream::Monitoring, {frame, dom_id});
    dataflow::MonitoringPacket m;
    m.header = header;
    m.header.data_type = dataflow::DataType::Monitoring;
    m.header.udp_sequence = 0;
    m.header.status2 = 0;
    m.hit_counts = seen_per_channel;
    m.hrv_mask = hrv_mask;
    m.temperature_c = std::round((30.0 + 0.5 * rng.normal()) * 100) / 100;
    m.humidity_pct = std::round((17.0 + 0.3 * rng.normal()) * 100) / 100;
    m.slice_duration = 100'000;  // us
    SimDatagram dg;
    dg.dom_id = dom_id;
    dg.frame_index = frame;
    dg.bytes = dataflow::encode_monitoring_packet(m);
    out.datagrams.push_back(std::move(dg));
    out.monitoring = 1;
  }
  if (config.acoustic.enabled) {
    out.acoustic = append_acoustic_datagrams(config.acoustic, header, config.header_layout, config.seed, frame, out.datagrams);
  }
  out.frame.status.daq = dataflow::FrameStatus::make_daq(static_cast<std::uint32_t>(n_datagrams),
                                                         static_cast<std::uint32_t>(n_datagrams - 1));
  out.frame.status.status = header.status1;
  out.frame.status.fifo = dataflow::kStatus2Trailer;
  return out;
}

}  // namespace shoredaq::drivers
