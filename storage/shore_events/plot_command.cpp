// shore-events plot --run N --out DIR: four figures of one run, drawn by gnuplot (svg terminal)
// from data files written next to them, with the gnuplot script, so an operator can re-plot
// (cd DIR && gnuplot plot.gp):
//   rate_map       mean rate per DOM over the run, DU x floor
//   du_rates       summed DOM rate per DU vs time in the run
//   trigger_rates  events per trigger bit per time bin
//   event_sizes    histogram of hits per event (triggered, snapshot)

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>
#include <thread>

#include "commands.hpp"
#include "plot_data.hpp"

namespace sd = shoredaq::dataflow;
namespace st = shoredaq::storage;

namespace shore_events {

namespace {

constexpr const char* kScriptFile = "plot.gp";
constexpr const char* kGnuplotLog = "gnuplot.log";

// A gnuplot string literal: single quotes take everything literally but a doubled quote.
std::string gp_string(const std::string& text) {
  std::string out = "'";
  for (const char c : text) {
    if (c == '\'') out += '\'';
    if (c != '\n') out += c;
  }
  return out + "'";
}

std::string placeholder(const std::string& message) {
  return "set xrange [0:1]\nset yrange [0:1]\nunset xtics\nunset ytics\nset label 1 " + gp_string(message) +
         " at graph 0.5, graph 0.5 center\nplot 2 notitle\n";
}

std::string figure_start(const std::string& file, const std::string& format, const std::string& title) {
  return "\nreset\nset output " + gp_string(file + "." + format) + "\nset title " + gp_string(title) +
         "\nset grid\nset key outside right top\n";
}

std::string gnuplot_script(const RunPlotData& data, const PlotLayout& layout, const FigureFiles& files,
                           const std::string& format) {
  const std::string run = "run " + std::to_string(data.record.run);
  const std::string no_rates = data.summary_slices == 0 ? "no summary slices stored for " + run
                                                       : "no DOM of the summary slices is in the detector file";
  std::ostringstream gp;
  gp << "# shore-events plot: the figures of " << run << " from the data files beside this script.\n"
     << "# Re-plot: cd to this folder and run gnuplot " << kScriptFile << "\n"
     << "set terminal svg size 900,650 dynamic noenhanced font 'sans,12' background 'white'\n";

  gp << figure_start(files.rate_map, format, run + ": mean DOM rate over the run (kHz, 31 PMTs added)");
  if (!layout.has_dom_rates || layout.du_columns.empty()) {
    gp << placeholder(no_rates);
  } else {
    int top_floor = kDomsPerDu;
    for (const auto& dom : data.doms) top_floor = std::max(top_floor, dom.place.floor);
    gp << "set xlabel " << gp_string(data.geometry.from_detector ? "DU" : "column of 18 DOMs in stored order (no detector file)")
       << "\nset ylabel 'floor'\nset xrange [-0.5:" << layout.du_columns.size() - 0.5 << "]\nset yrange [0.5:"
       << top_floor + 0.5 << "]\nset ytics 1\nset xtics (";
    for (std::size_t i = 0; i < layout.du_columns.size(); ++i) {
      gp << (i == 0 ? "" : ", ") << gp_string(std::to_string(layout.du_columns[i])) << ' ' << i;
    }
    gp << ")\nset grid noxtics noytics\nset cblabel 'mean DOM rate (kHz)'\nset palette rgbformulae 22,13,-31\n"
       << "set bmargin 5\nset label 1 " << gp_string("geometry: " + data.geometry.figure_label)
       << " at screen 0.01, screen 0.02 font ',9'\n"
       << "plot " << gp_string(files.rate_map + ".dat")
       << " using 1:($6 > 0 ? $3 : NaN):(0.45):(0.45):5 with boxxyerror fillstyle solid 1.0 noborder lc palette notitle";
    const bool any_without_data = std::any_of(data.doms.begin(), data.doms.end(), [](const DomRate& d) { return d.slices == 0; });
    if (any_without_data) {
      gp << ", \\\n     '' using 1:($6 > 0 ? NaN : $3):(0.45):(0.45) with boxxyerror fillstyle solid 1.0 noborder "
         << "lc rgb 'gray80' title 'no data'";
    }
    gp << "\n";
  }

  gp << figure_start(files.du_rates, format, run + ": summed DOM rate per DU (mean per " +
                                                 std::to_string(static_cast<long long>(layout.du_rate_bin_s)) + " s)");
  if (!layout.has_dom_rates || layout.du_columns.empty()) {
    gp << placeholder(no_rates);
  } else {
    gp << "set xlabel 'time in the run (s)'\nset ylabel 'summed DOM rate (kHz)'\nplot ";
    for (std::size_t i = 0; i < layout.du_columns.size(); ++i) {
      const std::string label = (data.geometry.from_detector ? "DU " : "column ") + std::to_string(layout.du_columns[i]);
      gp << (i == 0 ? "" : ", \\\n     ") << gp_string(files.du_rates + ".dat") << " using 1:" << i + 2
         << " with linespoints pointtype 7 pointsize 0.4 title " << gp_string(label);
    }
    gp << "\n";
  }

  std::ostringstream bin_text;
  bin_text << layout.trigger_bin_s;
  gp << figure_start(files.trigger_rates, format, run + ": events per trigger (" + bin_text.str() + " s bins)");
  if (!layout.has_events) {
    gp << placeholder("no events stored for " + run);
  } else {
    // Each bin drawn over its whole width (histeps about the bin centres).
    gp << "set xlabel 'time in the run (s)'\nset ylabel 'event rate (Hz)'\nset yrange [0:*]\nset xrange [0:"
       << layout.trigger_bins * layout.trigger_bin_s << "]\nplot ";
    for (std::size_t k = 0; k < layout.trigger_names.size(); ++k) {
      gp << (k == 0 ? "" : ", \\\n     ") << gp_string(files.trigger_rates + ".dat") << " using (($1 + $2) / 2):"
         << 4 + 2 * k << " with histeps linewidth 2 title " << gp_string(layout.trigger_names[k]);
    }
    gp << "\n";
  }

  gp << figure_start(files.event_sizes, format, run + ": hits per event");
  if (!layout.has_events) {
    gp << placeholder("no events stored for " + run);
  } else {
    gp << "set xlabel 'hits per event (bins of " << layout.event_size_bin << ")'\nset ylabel 'events'\n"
       << "set logscale y\nset yrange [0.8:*]\nset style fill transparent solid 0.5 noborder\nplot "
       << gp_string(files.event_sizes + ".dat") << " using (($1 + $2) / 2):($3 > 0 ? $3 : NaN):($2 - $1) with boxes "
       << "lc rgb '#d95f02' title 'triggered hits', \\\n     '' using (($1 + $2) / 2):($4 > 0 ? $4 : NaN):($2 - $1) "
       << "with boxes lc rgb '#1b9e77' title 'snapshot hits'\n";
  }
  gp << "\nunset output\n";
  return gp.str();
}

struct GnuplotOutcome {
  bool ok = false;
  std::string problem;  // when not ok
};

// Runs `program script` in `dir` (stdout to /dev/null, stderr to gnuplot.log there), killed after
// `timeout`.
GnuplotOutcome run_gnuplot(const std::string& program, const std::filesystem::path& dir, std::chrono::milliseconds timeout) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addchdir_np(&actions, dir.c_str());
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, kGnuplotLog, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::string program_arg = program, script_arg = kScriptFile;
  char* argv[] = {program_arg.data(), script_arg.data(), nullptr};
  pid_t pid = 0;
  // The child sees the parent's environment (PATH, fonts, locale).
  const int spawn_error = ::posix_spawnp(&pid, program.c_str(), &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawn_error != 0) {
    std::string why = "cannot run " + program + ": " + std::strerror(spawn_error);
    if (spawn_error == ENOENT) why += " (gnuplot is missing: Debian package gnuplot-nox)";
    return {false, why};
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  for (;;) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (done < 0 && errno != EINTR) return {false, std::string("waiting for gnuplot failed: ") + std::strerror(errno)};
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return {false, program + " did not finish within " + std::to_string(timeout.count()) + " ms: killed"};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // a poll of the child, not a wait for an effect
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    std::error_code ignored;
    std::filesystem::remove(dir / kGnuplotLog, ignored);
    return {true, {}};
  }
  std::ifstream log(dir / kGnuplotLog);
  std::string log_text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  std::string why = program + (WIFEXITED(status) ? " exited with status " + std::to_string(WEXITSTATUS(status))
                                                 : " was killed by signal " + std::to_string(WTERMSIG(status)));
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) why += " (not found?)";
  if (!log_text.empty()) why += "; its messages (" + (dir / kGnuplotLog).string() + "):\n" + log_text;
  return {false, why};
}

struct GeometryChoice {
  std::optional<DomGeometry> geometry;  // nullopt: an explicit --detx could not be used
  std::string problem;
};

GeometryChoice choose_geometry(const sd::RunRecord& record, const std::string& detx_option) {
  const auto load = [&](const std::string& path, const std::string& how) -> GeometryChoice {
    try {
      const auto detector = sd::Detector::load(path);
      if (record.detector_id != 0 && detector.id() != 0 && detector.id() != record.detector_id) {
        return {std::nullopt, path + " is detector " + std::to_string(detector.id()) + ", run " +
                                  std::to_string(record.run) + " was taken with detector " + std::to_string(record.detector_id)};
      }
      return {geometry_from_detector(detector, "detector file " + path + " (" + how + ")",
                                     "detector file " + std::filesystem::path(path).filename().string() + " (" + how + ")"),
              {}};
    } catch (const std::exception& e) {
      return {std::nullopt, path + ": " + e.what()};
    }
  };
  if (!detx_option.empty()) return load(detx_option, "--detx");
  DomGeometry stored_order;
  stored_order.source = "no detector file, so DOMs in the order the summary slices store them, 18 per column (columns "
                        "are not DU numbers)";
  stored_order.figure_label = "no detector file: DOMs in stored order, 18 per column";
  if (record.detector_file.empty()) return {stored_order, {}};
  auto from_record = load(record.detector_file, "named in the run record");
  if (from_record.geometry) return from_record;
  std::cerr << "shore-events: the run's detector file is not usable (" << from_record.problem
            << "): DOMs placed in stored order; give the file with --detx\n";
  stored_order.source = "the run's detector file " + record.detector_file +
                        " is not usable, so DOMs in the order the summary slices store them, 18 per column";
  stored_order.figure_label = "the run's detector file is not usable: DOMs in stored order, 18 per column";
  return {stored_order, {}};
}

}  // namespace

int cmd_plot(const st::EventStoreReader& reader, const PlotOptions& options) {
  const auto record = reader.run(options.run);  // a damaged record throws: never read as "no such run"
  if (!record) {
    std::cerr << "shore-events: run " << options.run << " not in the store\n";
    return kExitProblem;
  }
  auto geometry = choose_geometry(*record, options.detx);
  if (!geometry.geometry) {
    std::cerr << "shore-events: --detx: " << geometry.problem << "\n";
    return kExitUsage;
  }
  const RunPlotData data = collect_run(reader, *record, std::move(*geometry.geometry));
  const std::filesystem::path dir = options.out_dir;
  const FigureFiles files;
  WrittenData written;
  try {
    std::filesystem::create_directories(dir);
    written = write_plot_data(data, dir, files, options.trigger_bin_s);
    std::ofstream script(dir / kScriptFile);
    script << gnuplot_script(data, written.layout, files, options.format);
    script.flush();
    if (!script) throw std::runtime_error("cannot write " + (dir / kScriptFile).string());
  } catch (const std::exception& e) {  // filesystem_error, or a data file that could not be written
    std::cerr << "shore-events: " << e.what() << "\n";
    return kExitCannotOpen;
  }
  print_damaged(data.damaged);
  const auto timeout = std::chrono::milliseconds(static_cast<long long>(options.gnuplot_timeout_s * 1000));
  const auto gnuplot = run_gnuplot(options.gnuplot_program, dir, timeout);
  const std::string names[] = {files.rate_map, files.du_rates, files.trigger_rates, files.event_sizes};
  for (std::size_t i = 0; i < written.summary_lines.size(); ++i) {
    const auto figure = dir / (names[i] + "." + options.format);
    std::cout << (gnuplot.ok ? figure.string() : (dir / (names[i] + ".dat")).string()) << ": " << written.summary_lines[i]
              << "\n";
  }
  if (!gnuplot.ok) {
    std::cerr << "shore-events: " << gnuplot.problem << "\nshore-events: the data files and " << kScriptFile
              << " are in " << dir.string() << "; no figures drawn\n";
    return kExitGnuplot;
  }
  if (data.undecodable != 0) std::cerr << "shore-events: " << data.undecodable << " undecodable records left out\n";
  return data.damaged.damaged == 0 && data.undecodable == 0 ? kExitOk : kExitProblem;
}

}  // namespace shore_events
