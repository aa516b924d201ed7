#pragma once
// The numbers behind `shore-events plot`: one run of the store reduced to the four figures' data
// (plot_data.cpp), written as plain whitespace-separated files that gnuplot (plot_command.cpp) and
// an operator can read.

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "shoredaq/formats/detector.hpp"
#include "shoredaq/storage/event_store.hpp"

namespace shore_events {

// Where each DOM sits on the DU x floor map.
struct DomPlace {
  int du = 0;
  int floor = 0;
};

struct DomGeometry {
  // Empty: no detector file, the DOMs are placed in the order the summaries store them (see
  // place_unknown_doms): column k holds the stored DOMs 18(k-1)+1 .. 18k.
  std::map<std::uint32_t, DomPlace> places;
  std::string source;        // for the summary lines and data files (with the detector file's path)
  std::string figure_label;  // the same, shorter (the file's name only), for the rate map
  bool from_detector = false;
};

DomGeometry geometry_from_detector(const shoredaq::dataflow::Detector& detector, const std::string& source,
                                   const std::string& figure_label);

// Optical DOMs per DU (floors 1..18): the column height of the stored-order fallback.
inline constexpr int kDomsPerDu = 18;

struct DomRate {
  std::uint32_t dom_id = 0;
  DomPlace place;
  double rate_sum_hz = 0;   // sum over the slices of the DOM's rate (its 31 PMTs added)
  std::uint64_t slices = 0;  // summary slices that carry this DOM
  double mean_rate_hz() const { return slices == 0 ? 0.0 : rate_sum_hz / static_cast<double>(slices); }
};

// One summary slice: time in the run and the summed DOM rate of each DU (by DU number).
struct SliceDuRates {
  double time_s = 0;
  std::map<int, double> du_rate_hz;
};

struct EventSample {
  double time_s = 0;
  std::uint64_t trigger_mask = 0;
};

struct RunPlotData {
  shoredaq::dataflow::RunRecord record;
  DomGeometry geometry;
  std::vector<DomRate> doms;  // sorted by (DU, floor)
  std::uint64_t doms_not_in_detector = 0;  // summary DOMs the detector file does not know: left out
  std::uint64_t summary_slices = 0;
  std::vector<SliceDuRates> du_history;  // in slice order
  std::vector<EventSample> events;
  std::vector<std::uint64_t> triggered_hits;  // per event
  std::vector<std::uint64_t> snapshot_hits;   // per event
  double run_span_s = 0;                      // last slice start - first slice start (summaries and events)
  std::uint64_t undecodable = 0;              // buffers that passed the checksum but not the decoder
  shoredaq::storage::ReadResult damaged;      // damaged records skipped
};

// Reads the run's summaries and events. Times are slice start times relative to the earliest
// slice of the run found in the store.
RunPlotData collect_run(const shoredaq::storage::EventStoreReader& reader, const shoredaq::dataflow::RunRecord& record,
                        DomGeometry geometry);

// Data files for the figures, in `dir`; each returns the one-line summary of its figure.
struct FigureFiles {
  std::string rate_map = "rate_map";
  std::string du_rates = "du_rates";
  std::string trigger_rates = "trigger_rates";
  std::string event_sizes = "event_sizes";
};

// The choices the data files made, which the gnuplot script needs to draw them.
struct PlotLayout {
  std::vector<int> du_columns;                 // DU numbers, left to right on the rate map
  std::vector<std::string> trigger_names;      // one column pair per trigger bit seen
  double du_rate_bin_s = 1;
  double trigger_bin_s = 10;
  std::size_t trigger_bins = 0;
  std::uint64_t event_size_bin = 1;
  bool has_dom_rates = false;  // some DOM on the map has a summary
  bool has_events = false;
};

struct WrittenData {
  PlotLayout layout;
  std::vector<std::string> summary_lines;  // one per figure, in FigureFiles order
};

WrittenData write_plot_data(const RunPlotData& data, const std::filesystem::path& dir, const FigureFiles& files,
                            double trigger_bin_s);

}  // namespace shore_events
