// The supernova search on a background-only feed (issue 12 acceptance): DU simulator slices with
// no burst (the reference workload: 7 kHz singles per PMT, 40K coincidences, muons), as fast as
// possible, through the node's DataFilter (SN figure with the muon veto) into the SupernovaMonitor
// at the run setup's defaults. Prints, per significance threshold, the share of ready steps that
// reached it against what the monitor's on/off model predicts (the model behind its published
// false-alarm rate), the implied rates per day, and the alerts (expected: none). A measurement,
// never pass/fail; the CI check is filters/tests/supernova_background_test.cpp.
//
//   build/tests/bench/bench_supernova_background [--slices 10000] [--dus 1] [--seed 1]
//       [--min-multiplicity 7] [--max-multiplicity 11] [--correlated-veto-ns 1000] [--muon-rate-hz-per-du 3]
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "shoredaq/drivers/du_simulator.hpp"
#include "shoredaq/filters/data_filter.hpp"
#include "shoredaq/filters/supernova_background.hpp"

using namespace shoredaq;

int main(int argc, char** argv) {
  unsigned slices = 10'000, dus = 1;
  std::uint64_t seed = 1;
  filters::TriggerParameters parameters;
  double muon_rate_hz_per_du = 3.0;  // ~3 Hz per DU at ARCA depth, as the other benchmarks
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    const long value = std::strtol(argv[i + 1], nullptr, 10);
    const double real = std::strtod(argv[i + 1], nullptr);
    if (key == "--slices") slices = static_cast<unsigned>(value);
    else if (key == "--dus") dus = static_cast<unsigned>(value);
    else if (key == "--seed") seed = static_cast<std::uint64_t>(value);
    else if (key == "--min-multiplicity") parameters.supernova.min_multiplicity = static_cast<int>(value);
    else if (key == "--max-multiplicity") parameters.supernova.max_multiplicity = static_cast<int>(value);
    else if (key == "--correlated-veto-ns") parameters.supernova.correlated_veto_window_ns = real;
    else if (key == "--muon-rate-hz-per-du") muon_rate_hz_per_du = real;
    else {
      std::fprintf(stderr, "unknown option %s\n", key.c_str());
      return 3;
    }
  }
  const auto detector = std::make_shared<const dataflow::Detector>(
      dataflow::Detector::load(std::string(SHOREDAQ_TESTDATA_DIR) + "/detx/KM3NeT_00000133_20221025.detx"));
  drivers::DuSimConfig c;
  c.detector = detector;
  const auto all = detector->du_ids();
  c.dus.assign(all.begin(), all.begin() + std::min<std::size_t>(all.size(), dus));
  c.start_unix_ns = 1'700'000'000'000'000'000ull;
  c.seed = seed;
  c.muon.rate_hz = muon_rate_hz_per_du * dus;
  drivers::DuSimulator sim(c);
  const filters::DataFilter filter(*detector, parameters);
  filters::SupernovaMonitor monitor(parameters.supernova);
  filters::SupernovaBackgroundTally tally(parameters.supernova,
                                          {1.0, 2.0, 3.0, 4.0, 5.0, parameters.supernova.alert_threshold_sigma});
  std::uint64_t coincidences = 0, dom_slices = 0, vetoed_triggered = 0, vetoed_correlated = 0;
  // Spread of the per-slice kept count over ready steps: variance / mean is 1 for a Poisson process;
  // more means clustered background (e.g. one muon, several DOMs), which the model (Poisson counts) misses.
  double ready_sum = 0, ready_sum2 = 0, dispersion_sum = 0, dispersion_last = 1;
  std::uint64_t ready_slices = 0;
  std::array<std::uint64_t, 5> recent_counts{};  // the window's slices (5 at the default 500 ms)
  std::array<std::string, 5> recent_doms;
  const auto t0 = std::chrono::steady_clock::now();
  // Kept coincidences against the simulated muons of the slice: a muon lights DOMs independently
  // of the others, so the kept count given n muons should grow as n x (kept per muon).
  constexpr std::size_t kMuonBins = 8;
  std::array<std::uint64_t, kMuonBins> slices_by_muons{}, kept_by_muons{};
  std::array<std::uint64_t, 6> slices_by_kept{};  // last bin: 5 or more
  for (unsigned k = 0; k < slices; ++k) {
    const auto sim_slice = sim.next_slice();
    const auto result = filter.process(sim_slice.truth);
    if (!result.supernova) continue;
    const std::size_t muons = std::min<std::size_t>(sim_slice.particles.size(), kMuonBins - 1);
    ++slices_by_muons[muons];
    kept_by_muons[muons] += result.supernova->coincidences();
    ++slices_by_kept[std::min<std::size_t>(result.supernova->coincidences(), slices_by_kept.size() - 1)];
    const auto step = monitor.observe(*result.supernova);
    coincidences += step.slice_count;
    dom_slices += step.effective_doms;
    vetoed_triggered += step.slice_vetoed_triggered;
    vetoed_correlated += step.slice_vetoed_correlated;
    if (step.ready) {
      const double n = static_cast<double>(step.slice_count);
      ready_sum += n;
      ready_sum2 += n * n;
      ++ready_slices;
      dispersion_sum += step.dispersion;
      dispersion_last = step.dispersion;
    }
    tally.add(step);
    recent_counts[k % recent_counts.size()] = step.slice_count;
    std::string& doms_text = recent_doms[k % recent_doms.size()];
    doms_text.clear();  // "DOM(DU)xN" of the DOMs with kept coincidences in this slice
    for (const auto& dom : result.supernova->doms) {
      if (dom.state != filters::SupernovaDomState::Included || dom.coincidences == 0) continue;
      const auto* module = detector->find(dom.dom_id);
      doms_text += " " + std::to_string(dom.dom_id) + "(DU" + std::to_string(module ? module->du : 0) + ")x" +
                   std::to_string(dom.coincidences);
    }
    if (step.ready && step.significance_sigma >= 4.0) {  // the rare ones, for a look at their slices
      std::string slices_text;
      for (std::size_t i = recent_counts.size(); i-- > 0;)
        slices_text += " " + std::to_string(recent_counts[(k + recent_counts.size() - i) % recent_counts.size()]);
      std::printf("step past 4 sigma: frame %u, N = %llu, B = %.3f, %.2f sigma; kept per slice, oldest first:%s\n",
                  step.frame_index, static_cast<unsigned long long>(step.window_count), step.baseline_count,
                  step.significance_sigma, slices_text.c_str());
      for (std::size_t i = recent_doms.size(); i-- > 0;)
        std::printf("  slice %u:%s\n", step.frame_index - static_cast<std::uint32_t>(i),
                    recent_doms[(k + recent_doms.size() - i) % recent_doms.size()].c_str());
    }
    if ((k + 1) % 1000 == 0) std::fprintf(stderr, "%u slices\n", k + 1);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto& s = parameters.supernova;
  std::printf("background-only feed: %u slices (%.0f s of data) of %u DU(s), seed %llu, in %.0f s (%.1f slices/s)\n",
              slices, slices * 0.1, dus, static_cast<unsigned long long>(seed), seconds, slices / seconds);
  std::printf("SN settings: multiplicity %d-%d, correlated-DOM veto %.0f ns, window %.0f ms, baseline %.0f s (min %.0f s), "
              "threshold %.1f sigma; muons %.1f Hz per DU\n",
              s.min_multiplicity, s.max_multiplicity, s.correlated_veto_window_ns, s.window_ms, s.baseline_s,
              s.min_baseline_s, s.alert_threshold_sigma, muon_rate_hz_per_du);
  const double slice_mean = ready_slices == 0 ? 0 : ready_sum / static_cast<double>(ready_slices);
  const double slice_variance = ready_slices < 2 ? 0 : (ready_sum2 - ready_sum * slice_mean) / static_cast<double>(ready_slices - 1);
  std::printf("in-band coincidences: %llu kept, %llu vetoed as triggered, %llu vetoed as correlated DOMs; "
              "per ready slice: mean %.3f, variance / mean %.3f (1 for Poisson)\n",
              static_cast<unsigned long long>(coincidences), static_cast<unsigned long long>(vetoed_triggered),
              static_cast<unsigned long long>(vetoed_correlated), slice_mean,
              slice_mean > 0 ? slice_variance / slice_mean : 0.0);
  std::printf("dispersion of the baseline's window counts (the monitor's own, 1 for Poisson): mean over ready steps "
              "%.3f, at the end %.3f\n",
              ready_slices == 0 ? 1.0 : dispersion_sum / static_cast<double>(ready_slices), dispersion_last);
  std::printf("kept coincidences per slice by simulated muons in the slice:");
  for (std::size_t n = 0; n < kMuonBins; ++n)
    if (slices_by_muons[n] > 0)
      std::printf(" %zu%s: %.4f (%llu slices)", n, n + 1 == kMuonBins ? "+" : "",
                  static_cast<double>(kept_by_muons[n]) / static_cast<double>(slices_by_muons[n]),
                  static_cast<unsigned long long>(slices_by_muons[n]));
  std::printf("\n");
  {  // The per-slice count against a Poisson law of the same mean: clustering shows in the tail.
    std::uint64_t n_slices = 0, n_kept = 0;
    for (std::size_t j = 0; j < slices_by_kept.size(); ++j) {
      n_slices += slices_by_kept[j];
      n_kept += j * slices_by_kept[j];  // the last bin counted as 5: only for the mean
    }
    const double mean = n_slices == 0 ? 0.0 : static_cast<double>(n_kept) / static_cast<double>(n_slices);
    std::printf("slices by kept coincidences (observed / Poisson of the same mean):");
    double pmf = std::exp(-mean), below = 0;
    for (std::size_t j = 0; j < slices_by_kept.size(); ++j) {
      const bool last = j + 1 == slices_by_kept.size();
      const double p = last ? 1.0 - below : pmf;
      std::printf(" %zu%s: %llu / %.3g", j, last ? "+" : "", static_cast<unsigned long long>(slices_by_kept[j]),
                  p * static_cast<double>(n_slices));
      below += pmf;
      pmf *= mean / static_cast<double>(j + 1);
    }
    std::printf("\n");
  }
  std::printf("kept coincidences: %.4f per DOM and slice; mean background B in the window %.3f; ready steps %llu\n",
              dom_slices == 0 ? 0.0 : static_cast<double>(coincidences) / static_cast<double>(dom_slices),
              tally.mean_baseline_count(), static_cast<unsigned long long>(tally.steps()));
  std::printf("alerts: %llu; largest significance %.2f sigma; published false-alarm rate (mean) %.3g per day\n",
              static_cast<unsigned long long>(tally.alerts()), tally.max_significance_sigma(),
              tally.mean_published_far_per_day());
  std::printf("%10s %10s %12s %12s %14s %14s %10s\n", "threshold", "observed", "expected", "obs/exp", "observed /day",
              "model /day", "deviation");
  for (const auto& row : tally.rows()) {
    std::printf("%8.1f s %10llu %12.3f %12.3f %14.4g %14.4g %9.2fs\n", row.threshold_sigma,
                static_cast<unsigned long long>(row.observed), row.expected,
                row.expected > 0 ? static_cast<double>(row.observed) / row.expected : 0.0, row.observed_per_day(),
                row.expected_per_day(), row.deviation_sigma(monitor.window_slices()));
  }
  std::printf("(expected: the monitor's on/off (binomial) model summed over the ready steps; deviation: (obs - exp) / "
              "sqrt(exp x %zu window slices), as neighbouring steps share slices)\n",
              monitor.window_slices());
  return 0;
}
