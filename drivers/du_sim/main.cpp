// du-sim: a simulated DU feed (DOMAIN.md sections 1-2) for hardware-in-the-loop tests and
// benchmarks. See `du-sim --help`.

#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "du_sim.hpp"
#include "shoredaq/formats/record_stream.hpp"
#include "shoredaq/drivers/du_simulator.hpp"
#include "shoredaq/drivers/feed_sink.hpp"
#include "shoredaq/drivers/threaded_feed_sink.hpp"

namespace du_sim {
std::atomic<bool> g_stop{false};
}  // namespace du_sim

namespace {

using namespace du_sim;
using shoredaq::drivers::DuSimConfig;
using shoredaq::drivers::DuSimulator;

extern "C" void on_signal(int) { g_stop.store(true); }

// CPU time of the whole process: the fair measure of generation speed on a shared machine
// (wall time stretches when other processes, or a CPU quota, take the cores).
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  DuSimConfig cfg;
  cfg.muon.rate_hz = 10;  // the program simulates some muons by default; the library defaults to none
  std::string header_layout = "40";

  CLI::App app{
      "du-sim: simulated KM3NeT-style DU feed. For every 100 ms timeslice each DOM of the selected DUs sends\n"
      "its hits as CLB UDP datagrams (40-byte header, 6-byte hits, split at the MTU, sequence numbers, trailer\n"
      "bit), framed as records [u32 LE length][datagram] into a .dqd file and/or ZeroMQ messages, and/or as real\n"
      "UDP datagrams (--udp); optionally TMCH monitoring (--monitoring) and TAES acoustic (--acoustic) datagrams too.\n"
      "Background: singles, 40K coincidences, optional bioluminescence; physics: atmospheric muons and\n"
      "showers with a ground-truth JSON-lines file; faults for tests (loss, duplicates, reordering, silent/late DOM,\n"
      "corruption, bad slice times). Output is deterministic per --seed.\n"
      "Prints a summary on stdout at the end (or JSON with --json)."};
  app.option_defaults()->always_capture_default();

  app.add_option("--detx", o.detx, "Detector file (.detx, v1-v5): DOM ids, PMT positions, directions, t0 (required unless --replay)")
      ->check(CLI::ExistingFile);
  app.add_option("--replay", o.replay,
                 "Replay a recorded/pre-generated .dqd to --endpoint and/or --udp instead of simulating: one slice per "
                 "100 ms with --realtime, else as fast as possible")
      ->check(CLI::ExistingFile);
  app.add_option("--loop", o.loops, "With --replay: play the file this many times, shifting the slice times of each "
                                    "pass after the previous one (so slices never repeat)");
  app.add_option("--skip-slices", o.skip_slices,
                 "With --replay: leave out the first N slices of the file (counted from its first datagram's slice, on "
                 "the first pass), as from a DU that starts sending later in the run");
  app.add_option("--dus", o.dus,
                 "DUs to simulate, by DU number: 'all', '9', '9-12', '5,9,11', or 'first:N' (the N lowest-numbered)");
  auto* seconds = app.add_option("--seconds", o.seconds, "Detector time to simulate in seconds (10 slices per second)");
  auto* slices = app.add_option("--slices", o.slices, "Number of 100 ms slices to simulate (0 with no --seconds: until SIGINT/SIGTERM)");
  seconds->excludes(slices);
  app.add_option("--run", cfg.run_number, "Run number written into every datagram header");
  app.add_option("--seed", cfg.seed, "Random seed: same seed and options give byte-identical output");
  app.add_option("--start-utc", o.start_utc_s,
                 "UTC of the first slice, seconds since the epoch (rounded down to 100 ms); -1: the wall clock");
  app.add_option("--threads", cfg.threads, "Worker threads for generation (output does not depend on it)");

  app.add_option("--out", o.out, "Write the record stream to this .dqd file");
  app.add_option("--endpoint", o.endpoint, "Send the record stream over ZeroMQ to this endpoint (e.g. tcp://127.0.0.1:5555)");
  app.add_option("--socket", o.socket, "ZeroMQ socket type: push (PUSH->PULL, blocks at HWM) or pub (PUB->SUB, drops at HWM)")
      ->check(CLI::IsMember({"push", "pub"}));
  app.add_flag("--bind", o.bind, "Bind the ZeroMQ socket instead of connecting (the node normally binds)");
  app.add_option("--hwm", o.hwm, "ZeroMQ send high-water mark (messages); blocks (push) / drops (pub) are counted");
  app.add_option("--linger-ms", o.linger_ms, "ZeroMQ linger at exit (bounded)");
  app.add_option("--curve-secret", o.curve_secret, "CURVE: this DU's secret key file (for a node with [ingest] curve = true)");
  app.add_option("--server-key", o.server_key, "CURVE: the node's public key file");
  app.add_option("--udp", o.udp,
                 "Send real UDP datagrams, one per CLB datagram, to this HOST:PORT (optical TTDC; a CLB's port "
                 "is 56015), as a CLB does; works with --replay too");
  app.add_option("--udp-monitoring", o.udp_monitoring,
                 "UDP HOST:PORT for the TMCH monitoring packets (--monitoring; a CLB's port is 56017)");
  app.add_option("--udp-acoustic", o.udp_acoustic,
                 "UDP HOST:PORT for the TAES acoustic datagrams (--acoustic; the node's acoustic port, 56016 by "
                 "default: unconfirmed for real CLBs)");
  app.add_option("--udp-rate-limit", o.udp_rate_limit,
                 "Most UDP datagrams per second (UDP has no back-pressure: a faster sender overruns a local receiver "
                 "and its kernel drops). 0: 50000/s (about 3 DU-equivalents) as fast as possible, none with "
                 "--realtime (the slice spread paces)")
      ->check(CLI::Range(0.0, 1e9));
  app.add_option("--udp-byte-rate-limit", o.udp_byte_rate_limit, "Most UDP payload bytes per second; 0: none")
      ->check(CLI::Range(0.0, 1e12));
  app.add_option("--udp-spread-ms", o.udp_spread_ms,
                 "With --realtime: each slice's UDP datagrams are spread evenly over this long after the slice is due "
                 "(a CLB sends while it takes data, not in one burst); sending runs beside the generation of the next slice")
      ->check(CLI::Range(0.0, 100.0));
  app.add_option("--batch-bytes", o.batch_bytes, "Largest ZeroMQ message: records are batched up to this size (always flushed per slice)");
  app.add_flag("--realtime", o.realtime, "Pace output: one slice per 100 ms of wall clock (default: as fast as possible)");
  app.add_option("--truth", o.truth,
                 "Write the injected particles (muons, showers) and their hits as JSON lines to this file; with "
                 "--sn-burst-at also the burst (a first line of type sn_burst) and its coincidences per slice (sn_slice)");
  double sn_burst_at_s = -1;
  auto& sn = cfg.supernova;
  app.add_option("--sn-burst-at", sn_burst_at_s,
                 "Supernova-like burst: its start in seconds after the first slice (data time); every DOM gets extra "
                 "coincidences on 2-12 distinct PMTs within a few ns, rising in ~50 ms, decaying over the burst; -1: none")
      ->check(CLI::Range(-1.0, 1e9));
  app.add_option("--sn-burst-seconds", sn.duration_s, "With --sn-burst-at: burst length, seconds (exponential-like decay over it)")
      ->check(CLI::Range(0.001, 1e6));
  app.add_option("--sn-burst-scale", sn.scale,
                 "With --sn-burst-at: scale of the extra rate; 1: a peak of 50 coincidences/s per DOM, ~7/s per DOM in "
                 "the 7-11-fold band")
      ->check(CLI::Range(0.0, 1e6));

  auto& bg = cfg.background;
  app.add_option("--singles-hz", bg.singles_rate_hz, "Total hit rate per PMT in Hz, including the 40K coincidence hits");
  app.add_option("--k40-2fold-hz", bg.k40_twofold_hz, "40K 2-fold coincidences per DOM, Hz");
  app.add_option("--k40-3fold-hz", bg.k40_threefold_hz, "40K 3-fold coincidences per DOM, Hz");
  app.add_option("--k40-4fold-hz", bg.k40_fourfold_hz, "40K 4-fold coincidences per DOM, Hz");
  app.add_option("--k40-jitter-ns", bg.k40_jitter_ns, "Gaussian time jitter of each 40K coincidence photon, ns");
  app.add_option("--burst-rate-hz", bg.burst_rate_hz_per_dom, "Bioluminescence bursts per DOM per second (0: none)");
  app.add_option("--burst-pmt-rate-hz", bg.burst_pmt_rate_hz, "Hit rate of a PMT during a burst, Hz");
  app.add_option("--burst-duration-ms", bg.burst_mean_duration_ms, "Mean burst duration (exponential), ms");
  app.add_option("--tot-mean-ns", cfg.tot.mean_ns, "Mean ToT of one photo-electron, ns");
  app.add_option("--tot-sigma-ns", cfg.tot.sigma_ns, "Sigma of the one-pe ToT, ns");

  auto* muon_rate = app.add_option("--muon-rate-hz", cfg.muon.rate_hz,
                                   "Atmospheric muons crossing the can around the selected DUs, per second");
  app.add_option("--depth-m", cfg.muon.depth_m,
                 "Depth of the can's centre below the sea surface, m: the muon rate and zenith angles then follow the "
                 "depth-intensity relation of Menon et al. 1967 for that can (e.g. 3100 for ARCA, 2400 for ORCA)")
      ->check(CLI::PositiveNumber)
      ->excludes(muon_rate);
  app.add_option("--muon-yield", cfg.muon.light_yield_pe_m,
                 "Muon light yield Y (pe*m): expected pe on a facing PMT at photon path d is Y*exp(-d/L)/d");
  app.add_option("--shower-rate-hz", cfg.shower.rate_hz, "Showers (point-like light in the can), per second");
  app.add_option("--shower-yield", cfg.shower.light_yield_pe_m2_per_tev, "Shower light yield, pe*m^2 per TeV");
  app.add_option("--attenuation-m", cfg.light.attenuation_length_m, "Effective light attenuation length L, m");

  app.add_option("--mtu", cfg.mtu_bytes, "Largest datagram in bytes (header + hits); a DOM's slice is split into datagrams of at most this size");
  app.add_option("--header", header_layout, "CLB header layout: 40 (current firmware) or 28 (legacy, one status word, no trailer bit)")
      ->check(CLI::IsMember({"40", "28"}));
  bool legacy = false;
  app.add_flag("--legacy-header", legacy, "Same as --header 28");
  app.add_flag("--monitoring", cfg.monitoring_packets,
               "Also send one TMCH monitoring packet (hits per PMT, HRV, temperature) per DOM and slice");
  app.add_flag("--acoustic", cfg.acoustic.enabled,
               "Also send TAES acoustic datagrams per DOM, after its optical and monitoring ones of the slice: the CLB "
               "header (type TAES, sequence from 0 per slice) and signed 24-bit big-endian samples of a tone plus noise "
               "(a stand-in: the payload format is not public)");
  app.add_option("--acoustic-rate-hz", cfg.acoustic.datagrams_per_s, "With --acoustic: datagrams per DOM per second")
      ->check(CLI::Range(0.0, 100'000.0));
  app.add_option("--acoustic-samples", cfg.acoustic.samples_per_datagram,
                 "With --acoustic: samples per datagram (3 bytes each; header + samples must fit in --mtu)")
      ->check(CLI::Range(1u, 20'000u));
  app.add_option("--acoustic-sample-rate-hz", cfg.acoustic.sample_rate_hz, "With --acoustic: sampling rate of the samples")
      ->check(CLI::Range(1.0, 1e7));
  app.add_option("--readout-block-ns", cfg.readout_block_ns,
                 "DOM readout order: hits time-ordered per channel, across channels grouped by channel within "
                 "blocks of this length (500: as the CLB sample clb.dqd, nearly time-ordered)")
      ->check(CLI::Range(1u, 100'000'000u));
  app.add_option("--hrv-threshold-hz", cfg.hrv_threshold_hz,
                 "High-rate veto: once a PMT passes this rate within a slice, its further hits are not sent and its HRV bit is set");

  auto& f = cfg.faults;
  std::uint32_t silent_dom = 0, late_dom = 0;
  app.add_option("--loss-pct", f.loss_pct, "Fault: drop each datagram with this probability (%)")->check(CLI::Range(0.0, 100.0));
  app.add_option("--dup-pct", f.duplicate_pct, "Fault: send each datagram twice with this probability (%)")->check(CLI::Range(0.0, 100.0));
  app.add_flag("--reorder", f.reorder, "Fault: shuffle the datagrams of each slice");
  app.add_option("--silent-dom", silent_dom, "Fault: this DOM id sends nothing (0: none)");
  app.add_option("--late-dom", late_dom, "Fault: this DOM id's datagrams arrive --late-slices slices late (0: none)");
  app.add_option("--late-slices", f.late_slices, "Delay of --late-dom, in slices");
  app.add_option("--corrupt-pct", f.corrupt_pct,
                 "Fault: corrupt each datagram with this probability (%): truncated, a hit with channel >= 31, or a record length that overruns its message")
      ->check(CLI::Range(0.0, 100.0));
  std::uint32_t bad_time_dom = 0;
  app.add_option("--bad-time-dom", bad_time_dom,
                 "Fault: this DOM id also sends a copy of its first datagram of a slice with a wrong slice time, first in "
                 "the slice (a DOM with a bad clock); its true datagrams still go out (0: none)");
  app.add_option("--bad-time-offset-s", f.bad_time_offset_s,
                 "With --bad-time-dom: how far the bad copy's slice time is from the true one, seconds (rounded to 100 ms; "
                 "negative: in the past)");
  app.add_option("--bad-time-at-slice", f.bad_time_at_slice,
                 "With --bad-time-dom: the first slice (0 = the first of the run) that gets a bad copy");
  app.add_option("--bad-time-count", f.bad_time_count,
                 "With --bad-time-dom: how many consecutive slices get a bad copy (one each)");
  app.add_option("--bad-time-step-s", f.bad_time_step_s,
                 "With --bad-time-dom: each further bad copy is this much further off, seconds (e.g. --bad-time-offset-s 55 "
                 "--bad-time-step-s 55 --bad-time-count 12: +55 s, +110 s, ... a creeping clock)");

  app.add_flag("--progress", o.progress, "Progress line on stderr (once a second; default on when stderr is a terminal)");
  app.add_flag("--json", o.json, "Print the final summary as one JSON object");

  CLI11_PARSE(app, argc, argv);

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  if (legacy || header_layout == "28") cfg.header_layout = shoredaq::dataflow::HeaderLayout::Legacy28;

  try {
    if (!o.replay.empty())
      return run_replay(o, cfg.header_layout == shoredaq::dataflow::HeaderLayout::Legacy28
                               ? shoredaq::dataflow::kLegacyClbHeaderBytes
                               : shoredaq::dataflow::kClbHeaderBytes);
    if (o.detx.empty()) throw std::runtime_error("--detx is required (unless --replay)");
    auto detector = std::make_shared<const shoredaq::dataflow::Detector>(shoredaq::dataflow::Detector::load(o.detx));
    cfg.detector = detector;
    cfg.dus = shoredaq::dataflow::parse_du_selection(o.dus, *detector);
    if (o.start_utc_s >= 0) cfg.start_unix_ns = static_cast<std::uint64_t>(o.start_utc_s * 1e9);
    if (silent_dom) cfg.faults.silent_dom = silent_dom;
    if (late_dom) cfg.faults.late_dom = late_dom;
    if (bad_time_dom) cfg.faults.bad_time_dom = bad_time_dom;
    if (sn_burst_at_s >= 0) cfg.supernova.at_s = sn_burst_at_s;
    std::uint32_t total_slices = o.slices;
    if (o.seconds > 0) total_slices = static_cast<std::uint32_t>(o.seconds * 10.0 + 0.5);

    DuSimulator sim(cfg);

    std::vector<std::unique_ptr<shoredaq::drivers::FeedSink>> sinks;
    if (!o.out.empty()) sinks.push_back(std::make_unique<shoredaq::drivers::DqdFileSink>(o.out));
    if (auto zmq_sender = make_zmq_sender(o)) sinks.push_back(std::move(zmq_sender));
    if (cfg.monitoring_packets && !o.udp.empty() && o.udp_monitoring.empty())
      throw std::runtime_error("--monitoring with --udp: the TMCH packets need their own port (--udp-monitoring)");
    if (cfg.acoustic.enabled && !o.udp.empty() && o.udp_acoustic.empty())
      throw std::runtime_error("--acoustic with --udp: the TAES datagrams need their own port (--udp-acoustic)");
    const shoredaq::drivers::UdpFeedSender* udp_sender = nullptr;
    if (auto sender = make_udp_sender(o)) {
      // On a thread of its own: pacing a slice's datagrams overlaps with generating the next one.
      udp_sender = sender.get();
      sinks.push_back(std::make_unique<shoredaq::drivers::ThreadedFeedSink>(std::move(sender), 2, &g_stop));
    }
    std::ofstream truth;
    if (!o.truth.empty()) {
      truth.open(o.truth, std::ios::trunc);
      if (!truth) throw std::runtime_error("cannot create " + o.truth);
    }
    const auto sn_burst = sim.supernova_burst();
    if (truth && sn_burst) truth << shoredaq::drivers::truth_json_line(*sn_burst) << '\n';
    const bool show_progress = o.progress || isatty(STDERR_FILENO);

    // Totals.
    const auto modules = sim.modules();
    std::size_t n_pmts = 0;
    for (const auto* m : modules) n_pmts += std::min<std::size_t>(m->pmts.size(), shoredaq::dataflow::kPmtsPerDom);
    std::vector<std::uint64_t> pmt_hits(modules.size() * shoredaq::dataflow::kPmtsPerDom, 0);
    shoredaq::drivers::SliceCounters total{};
    std::uint64_t datagrams_out = 0, slices_done = 0, particle_hits = 0;
    std::uint64_t muons_with_hits = 0, muons_l1_4doms = 0;
    double generate_seconds = 0, generate_cpu_seconds = 0;
    double max_lag_ms = 0;            // real time: the largest lag of a slice behind its due time
    std::uint64_t behind_slices = 0;  // real time: slices sent more than one slice period late

    const auto wall_start = Clock::now();
    auto last_progress = wall_start;
    // Real time: with the wall clock as slice time, slice k is complete (and sent) at its end.
    const std::uint64_t first_slice_unix_ns = sim.slice_start_unix_ns(0);
    const auto system_now_ns = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
    const auto pace_origin = wall_start - std::chrono::nanoseconds(
        !cfg.start_unix_ns && system_now_ns > first_slice_unix_ns ? system_now_ns - first_slice_unix_ns : 0);

    for (std::uint32_t k = 0; (total_slices == 0 || k < total_slices) && !g_stop.load(); ++k) {
      const auto t0 = Clock::now();
      const double cpu0 = process_cpu_seconds();
      shoredaq::drivers::SimulatedSlice slice = sim.next_slice();
      generate_seconds += seconds_since(t0);
      generate_cpu_seconds += process_cpu_seconds() - cpu0;

      const auto& c = slice.counters;
      total.hits += c.hits;
      total.datagrams_generated += c.datagrams_generated;
      total.monitoring_packets += c.monitoring_packets;
      total.acoustic_datagrams += c.acoustic_datagrams;
      for (int j = 0; j < 3; ++j) total.k40_coincidences[j] += c.k40_coincidences[j];
      total.hrv_vetoed_hits += c.hrv_vetoed_hits;
      total.bursts += c.bursts;
      total.muons += c.muons;
      total.showers += c.showers;
      total.lost += c.lost;
      total.duplicated += c.duplicated;
      total.corrupted += c.corrupted;
      total.delayed += c.delayed;
      total.silenced += c.silenced;
      total.bad_time += c.bad_time;
      total.supernova_coincidences += c.supernova_coincidences;
      if (truth && slice.supernova) truth << shoredaq::drivers::truth_json_line(*slice.supernova) << '\n';
      for (std::size_t i = 0; i < slice.truth.frames.size(); ++i) {
        const auto& fr = slice.truth.frames[i];
        const std::uint8_t* p = fr.hits.data();
        for (std::size_t h = 0; h < fr.hit_count(); ++h, p += shoredaq::dataflow::kHitBytes)
          if (*p < shoredaq::dataflow::kPmtsPerDom) ++pmt_hits[i * shoredaq::dataflow::kPmtsPerDom + *p];
      }
      for (const auto& particle : slice.particles) {
        particle_hits += particle.hits.size();
        if (particle.type == shoredaq::drivers::ParticleType::Muon) {
          muons_with_hits += particle.hits.empty() ? 0 : 1;
          muons_l1_4doms += particle.l1_doms >= 4 ? 1 : 0;
        }
        if (truth) truth << shoredaq::drivers::truth_json_line(particle) << '\n';
      }

      if (o.realtime) {
        const auto due = pace_origin + std::chrono::milliseconds(100) * (k + 1);
        const double lag_ms = std::chrono::duration<double, std::milli>(Clock::now() - due).count();
        if (lag_ms > 0) {  // generation could not keep up with the wall clock
          max_lag_ms = std::max(max_lag_ms, lag_ms);
          behind_slices += lag_ms > 100 ? 1 : 0;
        }
        std::this_thread::sleep_until(due);
      }
      for (auto& sink : sinks) sink->write(slice.datagrams);
      datagrams_out += slice.datagrams.size();
      ++slices_done;

      if (show_progress && seconds_since(last_progress) >= 1.0) {
        last_progress = Clock::now();
        std::fprintf(stderr, "du-sim: slice %llu%s  %.1f s detector time  %.3g hits  %.3g Mhits/s generated  muons %llu\n",
                     static_cast<unsigned long long>(slices_done),
                     total_slices ? (" / " + std::to_string(total_slices)).c_str() : "", slices_done * 0.1,
                     static_cast<double>(total.hits), total.hits / std::max(1e-9, generate_seconds) / 1e6,
                     static_cast<unsigned long long>(total.muons));
      }
    }
    // Datagrams still held back by --late-dom go out after the last slice.
    const auto late = sim.drain_late();
    if (!late.empty()) {
      for (auto& sink : sinks) sink->write(late);
      datagrams_out += late.size();
    }
    for (auto& sink : sinks) sink->finish();

    const double detector_seconds = slices_done * 0.1;
    double rate_sum = 0, rate_min = 1e300, rate_max = 0;
    std::size_t counted = 0;
    for (std::size_t i = 0; i < modules.size(); ++i)
      for (std::size_t ch = 0; ch < std::min<std::size_t>(modules[i]->pmts.size(), shoredaq::dataflow::kPmtsPerDom); ++ch) {
        const double r = detector_seconds > 0 ? pmt_hits[i * shoredaq::dataflow::kPmtsPerDom + ch] / detector_seconds : 0;
        rate_sum += r, rate_min = std::min(rate_min, r), rate_max = std::max(rate_max, r), ++counted;
      }
    const double rate_mean = counted ? rate_sum / counted : 0;
    if (!counted) rate_min = 0;
    const double per_dom = detector_seconds > 0 ? 1.0 / (detector_seconds * modules.size()) : 0;
    shoredaq::drivers::SinkCounters sink_total{};
    for (auto& sink : sinks) {
      const auto& s = sink->counters();
      sink_total.records += s.records, sink_total.messages += s.messages, sink_total.bytes += s.bytes;
      sink_total.hwm_blocked += s.hwm_blocked, sink_total.hwm_dropped += s.hwm_dropped;
      sink_total.bad_length_records += s.bad_length_records, sink_total.dropped_on_stop += s.dropped_on_stop;
    }

    nlohmann::json j;
    j["detector_id"] = detector->id();
    j["dus"] = cfg.dus;
    j["doms"] = modules.size();
    j["pmts"] = n_pmts;
    j["run"] = cfg.run_number;
    j["seed"] = cfg.seed;
    j["slices"] = slices_done;
    j["detector_seconds"] = detector_seconds;
    j["hits"] = total.hits;
    j["datagrams_generated"] = total.datagrams_generated;
    j["datagrams_out"] = datagrams_out;
    j["monitoring_packets"] = total.monitoring_packets;
    j["acoustic_datagrams"] = total.acoustic_datagrams;
    j["pmt_rate_hz"] = {{"mean", rate_mean}, {"min", rate_min}, {"max", rate_max}};
    j["k40_coincidences_per_dom_hz"] = {{"2fold", total.k40_coincidences[0] * per_dom},
                                        {"3fold", total.k40_coincidences[1] * per_dom},
                                        {"4fold", total.k40_coincidences[2] * per_dom}};
    j["hrv_vetoed_hits"] = total.hrv_vetoed_hits;
    j["bursts"] = total.bursts;
    j["muons"] = {{"injected", total.muons}, {"with_hits", muons_with_hits}, {"l1_on_4_doms", muons_l1_4doms},
                  {"rate_hz", sim.config().muon.rate_hz}};
    if (cfg.muon.depth_m > 0) j["muons"]["depth_m"] = cfg.muon.depth_m;
    j["showers"] = total.showers;
    j["particle_hits"] = particle_hits;
    if (sn_burst)
      j["sn_burst"] = {{"start_unix_ns", sn_burst->start_unix_ns}, {"duration_s", sn_burst->duration_s},
                       {"scale", sn_burst->scale}, {"coincidences", total.supernova_coincidences}};
    j["faults"] = {{"lost", total.lost},           {"duplicated", total.duplicated}, {"corrupted", total.corrupted},
                   {"delayed", total.delayed},     {"silenced", total.silenced},
                   {"bad_time", total.bad_time},   {"bad_length_records", sink_total.bad_length_records}};
    j["output"] = {{"records", sink_total.records},         {"messages", sink_total.messages},
                   {"bytes", sink_total.bytes},             {"hwm_blocked", sink_total.hwm_blocked},
                   {"hwm_dropped", sink_total.hwm_dropped}, {"dropped_on_stop", sink_total.dropped_on_stop}};
    if (udp_sender) j["udp"] = udp_json(udp_sender->udp_counters());
    j["wall_seconds"] = seconds_since(wall_start);
    if (o.realtime) j["realtime"] = {{"max_lag_ms", max_lag_ms}, {"slices_behind", behind_slices}};
    j["generation_hits_per_s"] = generate_seconds > 0 ? total.hits / generate_seconds : 0.0;
    j["generation_hits_per_cpu_s"] = generate_cpu_seconds > 0 ? total.hits / generate_cpu_seconds : 0.0;

    if (o.json) {
      std::cout << j.dump() << '\n';
    } else {
      std::printf("du-sim summary\n");
      std::printf("  detector %d, DUs %s: %zu DOMs, %zu PMTs; run %u, seed %llu\n", detector->id(), o.dus.c_str(),
                  modules.size(), n_pmts, cfg.run_number, static_cast<unsigned long long>(cfg.seed));
      std::printf("  slices %llu (%.1f s detector time), datagrams %llu generated / %llu sent, hits %llu\n",
                  static_cast<unsigned long long>(slices_done), detector_seconds,
                  static_cast<unsigned long long>(total.datagrams_generated), static_cast<unsigned long long>(datagrams_out),
                  static_cast<unsigned long long>(total.hits));
      std::printf("  rate per PMT: mean %.0f Hz (min %.0f, max %.0f), setting %.0f Hz\n", rate_mean, rate_min, rate_max,
                  bg.singles_rate_hz);
      if (total.monitoring_packets || total.acoustic_datagrams)
        std::printf("  monitoring packets %llu, acoustic datagrams %llu\n",
                    static_cast<unsigned long long>(total.monitoring_packets),
                    static_cast<unsigned long long>(total.acoustic_datagrams));
      std::printf("  40K coincidences per DOM (injected): 2-fold %.1f Hz, 3-fold %.1f Hz, 4-fold %.1f Hz\n",
                  total.k40_coincidences[0] * per_dom, total.k40_coincidences[1] * per_dom, total.k40_coincidences[2] * per_dom);
      if (cfg.muon.depth_m > 0)
        std::printf("  muon rate %.3g Hz through the can at %.0f m depth (Menon et al. 1967)\n", sim.config().muon.rate_hz,
                    cfg.muon.depth_m);
      std::printf("  muons %llu (%llu with hits, %llu with L1 on >= 4 DOMs), showers %llu, particle hits %llu\n",
                  static_cast<unsigned long long>(total.muons), static_cast<unsigned long long>(muons_with_hits),
                  static_cast<unsigned long long>(muons_l1_4doms), static_cast<unsigned long long>(total.showers),
                  static_cast<unsigned long long>(particle_hits));
      if (sn_burst)
        std::printf("  supernova burst at %.3f s for %.3f s (scale %g): %llu coincidences injected\n",
                    sn_burst->start_unix_ns * 1e-9, sn_burst->duration_s, sn_burst->scale,
                    static_cast<unsigned long long>(total.supernova_coincidences));
      if (total.bursts || total.hrv_vetoed_hits)
        std::printf("  bioluminescence bursts %llu, HRV-vetoed hits %llu\n", static_cast<unsigned long long>(total.bursts),
                    static_cast<unsigned long long>(total.hrv_vetoed_hits));
      if (total.lost || total.duplicated || total.corrupted || total.delayed || total.silenced || total.bad_time)
        std::printf("  faults: lost %llu, duplicated %llu, corrupted %llu (bad length %llu), delayed %llu, silenced %llu, "
                    "bad slice time %llu\n",
                    static_cast<unsigned long long>(total.lost), static_cast<unsigned long long>(total.duplicated),
                    static_cast<unsigned long long>(total.corrupted),
                    static_cast<unsigned long long>(sink_total.bad_length_records),
                    static_cast<unsigned long long>(total.delayed), static_cast<unsigned long long>(total.silenced),
                    static_cast<unsigned long long>(total.bad_time));
      if (!sinks.empty())
        std::printf("  output: %llu records, %.1f MB, %llu ZeroMQ messages, HWM blocked %llu / dropped %llu\n",
                    static_cast<unsigned long long>(sink_total.records), sink_total.bytes / 1e6,
                    static_cast<unsigned long long>(sink_total.messages),
                    static_cast<unsigned long long>(sink_total.hwm_blocked),
                    static_cast<unsigned long long>(sink_total.hwm_dropped));
      if (udp_sender) {
        const auto& u = udp_sender->udp_counters();
        std::printf("  UDP: %llu datagrams sent, %llu failed, ENOBUFS %llu, refused %llu, unrouted %llu\n",
                    static_cast<unsigned long long>(u.datagrams_sent), static_cast<unsigned long long>(u.datagrams_failed),
                    static_cast<unsigned long long>(u.enobufs), static_cast<unsigned long long>(u.refused),
                    static_cast<unsigned long long>(u.unrouted));
      }
      if (o.realtime)
        std::printf("  real time: max lag %.1f ms, %llu slices more than 100 ms late%s\n", max_lag_ms,
                    static_cast<unsigned long long>(behind_slices),
                    behind_slices ? " (generation slower than real time: fewer DUs or --threads)" : "");
      std::printf("  generation: %.2f M hits per CPU second (%.2f M hits/s of wall time; %.2f s generating, %.2f s wall)\n",
                  generate_cpu_seconds > 0 ? total.hits / generate_cpu_seconds / 1e6 : 0.0,
                  generate_seconds > 0 ? total.hits / generate_seconds / 1e6 : 0.0, generate_seconds,
                  seconds_since(wall_start));
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "du-sim: %s\n", e.what());
    return 1;
  }
}
