// shore-events plot: reading one run into the figures' numbers and writing them as data files.

#include "plot_data.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <set>
#include <stdexcept>
#include <tuple>

#include "commands.hpp"
#include "shoredaq/formats/fb_codec.hpp"

namespace sd = shoredaq::dataflow;
namespace st = shoredaq::storage;

namespace shore_events {

namespace {

// The smallest of 1, 2, 5, 10, 20, 50, ... that is >= at_least.
double nice_step(double at_least) {
  double decade = 1;
  while (decade * 10 <= at_least) decade *= 10;
  for (;;) {
    for (const double m : {1.0, 2.0, 5.0}) {
      if (m * decade >= at_least) return m * decade;
    }
    decade *= 10;
  }
}

// A number for the data files: "NaN" for no value (gnuplot leaves such points out).
std::string number(double value, int decimals) {
  if (!std::isfinite(value)) return "NaN";
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

std::ofstream open_data_file(const std::filesystem::path& path) {
  std::ofstream out(path);
  if (!out) throw std::runtime_error("cannot write " + path.string());
  return out;
}

void check_written(std::ofstream& out, const std::filesystem::path& path) {
  out.flush();
  if (!out) throw std::runtime_error("writing " + path.string() + " failed");
}

std::string trigger_label(unsigned bit) {
  const char* name = trigger_name(bit);
  return name != nullptr ? name : "bit" + std::to_string(bit);
}

double seconds_between(std::uint64_t from_ns, std::uint64_t to_ns) {
  return static_cast<double>(to_ns - from_ns) / 1e9;
}

}  // namespace

DomGeometry geometry_from_detector(const sd::Detector& detector, const std::string& source,
                                   const std::string& figure_label) {
  DomGeometry g;
  for (const auto& module : detector.modules()) {
    if (!module.is_base()) g.places[module.id] = DomPlace{module.du, module.floor};
  }
  g.source = source;
  g.figure_label = figure_label;
  g.from_detector = true;
  return g;
}

RunPlotData collect_run(const st::EventStoreReader& reader, const sd::RunRecord& record, DomGeometry geometry) {
  RunPlotData data;
  data.record = record;
  data.geometry = std::move(geometry);
  DomGeometry& places = data.geometry;
  std::map<std::uint32_t, DomRate> doms;
  std::set<std::uint32_t> unknown_doms;
  std::vector<std::uint64_t> slice_start_ns;
  std::uint64_t first_ns = std::numeric_limits<std::uint64_t>::max(), last_ns = 0;
  const auto see_time = [&](std::uint64_t ns) {
    first_ns = std::min(first_ns, ns);
    last_ns = std::max(last_ns, ns);
  };

  data.damaged = reader.for_each_summary(record.run, 0, UINT32_MAX, [&](std::uint32_t, std::uint32_t, std::span<const std::uint8_t> bytes) {
    const auto decoded = sd::decode_summary_slice_fb(bytes);
    if (!decoded) {
      ++data.undecodable;
      return true;
    }
    const sd::SummarySlice& slice = decoded.value;
    SliceDuRates du_rates;
    for (const auto& frame : slice.frames) {
      auto place = places.places.find(frame.dom_id);
      if (place == places.places.end()) {
        if (places.from_detector) {
          unknown_doms.insert(frame.dom_id);
          continue;
        }
        // No detector file: the next free place in stored order, kDomsPerDu DOMs per column.
        const auto index = static_cast<int>(places.places.size());
        place = places.places.emplace(frame.dom_id, DomPlace{index / kDomsPerDu + 1, index % kDomsPerDu + 1}).first;
      }
      double dom_rate_hz = 0;
      for (unsigned channel = 0; channel < sd::kPmtsPerDom; ++channel) dom_rate_hz += frame.rate_hz(channel);
      DomRate& dom = doms[frame.dom_id];
      dom.dom_id = frame.dom_id;
      dom.place = place->second;
      dom.rate_sum_hz += dom_rate_hz;
      ++dom.slices;
      du_rates.du_rate_hz[place->second.du] += dom_rate_hz;
    }
    ++data.summary_slices;
    slice_start_ns.push_back(slice.header.slice_start_ns());
    see_time(slice.header.slice_start_ns());
    data.du_history.push_back(std::move(du_rates));
    return true;
  });

  std::vector<std::uint64_t> event_start_ns;
  merge_read_results(data.damaged, reader.for_each_event(record.run, 0, UINT32_MAX, [&](const st::EventKey&, std::span<const std::uint8_t> bytes) {
    const auto decoded = sd::decode_event_fb(bytes);
    if (!decoded) {
      ++data.undecodable;
      return true;
    }
    const sd::Event& event = decoded.value.event;
    event_start_ns.push_back(event.header.slice_start_ns());
    see_time(event.header.slice_start_ns());
    data.events.push_back(EventSample{0, event.trigger_mask});
    data.triggered_hits.push_back(event.triggered.size());
    data.snapshot_hits.push_back(event.snapshot.size());
    return true;
  }));

  if (first_ns <= last_ns) {
    data.run_span_s = seconds_between(first_ns, last_ns);
    for (std::size_t i = 0; i < slice_start_ns.size(); ++i) data.du_history[i].time_s = seconds_between(first_ns, slice_start_ns[i]);
    for (std::size_t i = 0; i < event_start_ns.size(); ++i) data.events[i].time_s = seconds_between(first_ns, event_start_ns[i]);
  }
  // Every placed DOM is on the map, those without a summary as "no data".
  for (const auto& [dom_id, place] : places.places) {
    auto& dom = doms[dom_id];
    dom.dom_id = dom_id;
    dom.place = place;
  }
  for (auto& [dom_id, dom] : doms) data.doms.push_back(dom);
  std::sort(data.doms.begin(), data.doms.end(), [](const DomRate& a, const DomRate& b) {
    return std::tie(a.place.du, a.place.floor, a.dom_id) < std::tie(b.place.du, b.place.floor, b.dom_id);
  });
  data.doms_not_in_detector = unknown_doms.size();
  return data;
}

namespace {

std::string write_rate_map(const RunPlotData& data, const std::filesystem::path& path, PlotLayout& layout) {
  std::set<int> dus;
  for (const auto& dom : data.doms) dus.insert(dom.place.du);
  layout.du_columns.assign(dus.begin(), dus.end());
  auto out = open_data_file(path);
  out << "# shore-events plot: run " << data.record.run << ", mean rate of each DOM over the run (its 31 PMTs added), from "
      << data.summary_slices << " summary slices\n"
      << "# geometry: " << data.geometry.source << "\n"
      << "# du_column: the DU's column on the map (0 = leftmost); slices: summary slices holding the DOM "
         "(0 = no data, rate NaN)\n"
      << "# columns: du_column du floor dom_id mean_rate_khz slices\n";
  const DomRate* lowest = nullptr;
  const DomRate* highest = nullptr;
  double rate_sum_hz = 0;
  std::uint64_t doms_with_data = 0;
  for (const auto& dom : data.doms) {
    const auto column = std::lower_bound(layout.du_columns.begin(), layout.du_columns.end(), dom.place.du) - layout.du_columns.begin();
    const double rate_hz = dom.slices == 0 ? NAN : dom.mean_rate_hz();
    out << column << ' ' << dom.place.du << ' ' << dom.place.floor << ' ' << dom.dom_id << ' ' << number(rate_hz / 1e3, 4)
        << ' ' << dom.slices << '\n';
    if (dom.slices == 0) continue;
    ++doms_with_data;
    rate_sum_hz += rate_hz;
    if (lowest == nullptr || rate_hz < lowest->mean_rate_hz()) lowest = &dom;
    if (highest == nullptr || rate_hz > highest->mean_rate_hz()) highest = &dom;
  }
  check_written(out, path);
  char line[512];
  if (doms_with_data == 0) {
    std::snprintf(line, sizeof line, "rate map: no summary slices in run %u (%zu DOMs placed; geometry: %s)", data.record.run,
                  data.doms.size(), data.geometry.source.c_str());
    if (data.summary_slices != 0) {
      std::snprintf(line, sizeof line, "rate map: none of the %llu DOMs of the %llu summary slices is in the %s",
                    static_cast<unsigned long long>(data.doms_not_in_detector),
                    static_cast<unsigned long long>(data.summary_slices), data.geometry.source.c_str());
    }
    return line;
  }
  std::snprintf(line, sizeof line,
                "rate map: %llu DOMs with data on %zu DUs from %llu summary slices, mean DOM rate %.2f kHz "
                "(lowest %.2f kHz DOM %u DU %d floor %d, highest %.2f kHz DOM %u DU %d floor %d); geometry: %s",
                static_cast<unsigned long long>(doms_with_data), layout.du_columns.size(),
                static_cast<unsigned long long>(data.summary_slices), rate_sum_hz / static_cast<double>(doms_with_data) / 1e3,
                lowest->mean_rate_hz() / 1e3, lowest->dom_id, lowest->place.du, lowest->place.floor,
                highest->mean_rate_hz() / 1e3, highest->dom_id, highest->place.du, highest->place.floor,
                data.geometry.source.c_str());
  std::string summary = line;
  if (data.doms_not_in_detector != 0) {
    summary += "; " + std::to_string(data.doms_not_in_detector) + " DOMs not in the detector file left out";
  }
  return summary;
}

std::string write_du_rates(const RunPlotData& data, const std::filesystem::path& path, PlotLayout& layout) {
  // At most ~1000 points per line, and bins of at least 1 s (10 slices of 100 ms).
  layout.du_rate_bin_s = nice_step(std::max(1.0, data.run_span_s / 1000.0));
  const auto bins = static_cast<std::size_t>(std::floor(data.run_span_s / layout.du_rate_bin_s)) + 1;
  // Per DU and bin: sum of the slices' summed rates and the number of slices.
  std::map<int, std::vector<std::pair<double, std::uint64_t>>> per_du;
  for (const int du : layout.du_columns) per_du[du].assign(bins, {0.0, 0});
  for (const auto& slice : data.du_history) {
    const auto bin = std::min(bins - 1, static_cast<std::size_t>(slice.time_s / layout.du_rate_bin_s));
    for (const auto& [du, rate_hz] : slice.du_rate_hz) {
      auto& cell = per_du[du][bin];
      cell.first += rate_hz;
      ++cell.second;
    }
  }
  auto out = open_data_file(path);
  out << "# shore-events plot: run " << data.record.run << ", summed DOM rate of each DU (all its DOMs' 31 PMTs) vs time in "
      << "the run, mean over the summary slices of each " << layout.du_rate_bin_s << " s bin (NaN: no slice)\n"
      << "# geometry: " << data.geometry.source << "\n"
      << "# columns: time_s";
  for (const int du : layout.du_columns) out << " DU" << du << "_khz";
  out << '\n';
  std::map<int, std::pair<double, std::uint64_t>> du_totals;
  for (std::size_t bin = 0; bin < bins && !data.du_history.empty(); ++bin) {
    out << number((static_cast<double>(bin) + 0.5) * layout.du_rate_bin_s, 3);
    for (const int du : layout.du_columns) {
      const auto& [sum_hz, slices] = per_du[du][bin];
      out << ' ' << number(slices == 0 ? NAN : sum_hz / static_cast<double>(slices) / 1e3, 3);
      du_totals[du].first += sum_hz;
      du_totals[du].second += slices;
    }
    out << '\n';
  }
  check_written(out, path);
  std::string summary = "DU rates: " + std::to_string(layout.du_columns.size()) + " DUs, " +
                        std::to_string(data.du_history.size()) + " summary slices over " + number(data.run_span_s, 1) +
                        " s in " + number(layout.du_rate_bin_s, 0) + " s bins";
  std::string means;
  for (const auto& [du, total] : du_totals) {
    if (total.second == 0) continue;
    means += (means.empty() ? "; mean summed rate DU" : ", DU") + std::to_string(du) + " " +
             number(total.first / static_cast<double>(total.second) / 1e3, 1) + " kHz";
  }
  return summary + means;
}

std::string write_trigger_rates(const RunPlotData& data, const std::filesystem::path& path, PlotLayout& layout,
                                double trigger_bin_s) {
  // At most kMaxTriggerBins bins: a longer run gets wider ones than asked for.
  constexpr double kMaxTriggerBins = 100'000;
  trigger_bin_s = std::max(trigger_bin_s, nice_step(data.run_span_s / kMaxTriggerBins));
  layout.trigger_bin_s = trigger_bin_s;
  std::set<unsigned> bits_seen;
  for (const auto& event : data.events) {
    for (unsigned bit = 0; bit < 64; ++bit) {
      if ((event.trigger_mask & sd::trigger_bit(bit)) != 0) bits_seen.insert(bit);
    }
  }
  const std::vector<unsigned> bits(bits_seen.begin(), bits_seen.end());
  for (const unsigned bit : bits) layout.trigger_names.push_back(trigger_label(bit));
  const auto bins = static_cast<std::size_t>(std::floor(data.run_span_s / trigger_bin_s)) + 1;
  layout.trigger_bins = bins;
  std::vector<std::vector<std::uint64_t>> counts(bits.size(), std::vector<std::uint64_t>(bins, 0));
  for (const auto& event : data.events) {
    const auto bin = std::min(bins - 1, static_cast<std::size_t>(event.time_s / trigger_bin_s));
    for (std::size_t k = 0; k < bits.size(); ++k) {
      if ((event.trigger_mask & sd::trigger_bit(bits[k])) != 0) ++counts[k][bin];
    }
  }
  auto out = open_data_file(path);
  out << "# shore-events plot: run " << data.record.run << ", events per trigger bit in bins of " << trigger_bin_s
      << " s of the run (an event with several bits counts for each); <name>_hz = <name>_events / bin width (the last "
         "bin may be cut short by the run's end)\n"
      << "# columns: bin_start_s bin_end_s";
  for (const auto& name : layout.trigger_names) out << ' ' << name << "_events " << name << "_hz";
  out << '\n';
  for (std::size_t bin = 0; bin < bins && !data.events.empty(); ++bin) {
    out << number(static_cast<double>(bin) * trigger_bin_s, 3) << ' ' << number(static_cast<double>(bin + 1) * trigger_bin_s, 3);
    for (std::size_t k = 0; k < bits.size(); ++k) {
      out << ' ' << counts[k][bin] << ' ' << number(static_cast<double>(counts[k][bin]) / trigger_bin_s, 4);
    }
    out << '\n';
  }
  check_written(out, path);
  std::string summary = "trigger rates: " + std::to_string(data.events.size()) + " events in " +
                        std::to_string(data.events.empty() ? 0 : bins) + " bins of " + number(trigger_bin_s, 1) + " s";
  const double span_s = std::max(data.run_span_s, trigger_bin_s);
  for (std::size_t k = 0; k < bits.size(); ++k) {
    std::uint64_t total = 0;
    for (const auto n : counts[k]) total += n;
    summary += (k == 0 ? "; " : ", ") + layout.trigger_names[k] + " " + std::to_string(total) + " (" +
               number(static_cast<double>(total) / span_s, 2) + " Hz)";
  }
  return summary;
}

std::string write_event_sizes(const RunPlotData& data, const std::filesystem::path& path, PlotLayout& layout) {
  std::uint64_t max_hits = 0;
  for (const auto n : data.snapshot_hits) max_hits = std::max(max_hits, n);
  for (const auto n : data.triggered_hits) max_hits = std::max(max_hits, n);
  // At most ~100 bins.
  layout.event_size_bin = static_cast<std::uint64_t>(nice_step(static_cast<double>(max_hits + 1) / 100.0));
  const std::size_t bins = max_hits / layout.event_size_bin + 1;
  std::vector<std::uint64_t> triggered(bins, 0), snapshot(bins, 0);
  for (const auto n : data.triggered_hits) ++triggered[n / layout.event_size_bin];
  for (const auto n : data.snapshot_hits) ++snapshot[n / layout.event_size_bin];
  auto out = open_data_file(path);
  out << "# shore-events plot: run " << data.record.run << ", events by number of hits: triggered hits and snapshot hits "
      << "per event, in bins [hits_from, hits_to)\n"
      << "# columns: hits_from hits_to triggered_events snapshot_events\n";
  for (std::size_t bin = 0; bin < bins && !data.events.empty(); ++bin) {
    out << bin * layout.event_size_bin << ' ' << (bin + 1) * layout.event_size_bin << ' ' << triggered[bin] << ' '
        << snapshot[bin] << '\n';
  }
  check_written(out, path);
  if (data.events.empty()) return "event sizes: no events in run " + std::to_string(data.record.run);
  const auto mean = [](const std::vector<std::uint64_t>& values) {
    double sum = 0;
    for (const auto v : values) sum += static_cast<double>(v);
    return sum / static_cast<double>(values.size());
  };
  return "event sizes: " + std::to_string(data.events.size()) + " events, triggered hits per event mean " +
         number(mean(data.triggered_hits), 1) + " (max " +
         std::to_string(*std::max_element(data.triggered_hits.begin(), data.triggered_hits.end())) +
         "), snapshot hits mean " + number(mean(data.snapshot_hits), 1) + " (max " +
         std::to_string(*std::max_element(data.snapshot_hits.begin(), data.snapshot_hits.end())) + "), in bins of " +
         std::to_string(layout.event_size_bin) + (layout.event_size_bin == 1 ? " hit" : " hits");
}

}  // namespace

WrittenData write_plot_data(const RunPlotData& data, const std::filesystem::path& dir, const FigureFiles& files,
                            double trigger_bin_s) {
  WrittenData written;
  PlotLayout& layout = written.layout;
  // A figure with nothing to draw gets a placeholder (gnuplot refuses a plot without a valid point).
  layout.has_dom_rates = std::any_of(data.doms.begin(), data.doms.end(), [](const DomRate& d) { return d.slices != 0; });
  layout.has_events = !data.events.empty();
  written.summary_lines.push_back(write_rate_map(data, dir / (files.rate_map + ".dat"), layout));
  written.summary_lines.push_back(write_du_rates(data, dir / (files.du_rates + ".dat"), layout));
  written.summary_lines.push_back(write_trigger_rates(data, dir / (files.trigger_rates + ".dat"), layout, trigger_bin_s));
  written.summary_lines.push_back(write_event_sizes(data, dir / (files.event_sizes + ".dat"), layout));
  return written;
}

}  // namespace shore_events
