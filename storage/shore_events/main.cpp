// shore-events: reads a shoredaq event store (read-only; safe beside a running daemon).
//   shore-events --store DIR runs [--json]
//   shore-events --store DIR events --run N [--from F --to F] [--json]
//   shore-events --store DIR summary --run N [--json]
//   shore-events --store DIR alerts --run N [--json]
//   shore-events --store DIR plot --run N --out DIR [--format svg] [--detx FILE]   (needs gnuplot)
//   shore-events --store DIR verify [--deep] [--json]
//   shore-events --store DIR export --run N --format online [--skip-damaged] > file
//   shore-events --store DIR backup --to NEWDIR [--json]
//   shore-events --store DIR upgrade --to NEWDIR      (a store of an older schema; daemon stopped)
//   shore-events runfile FILE [--json] [--export KIND [--out FILE]]   (a spool file; no store)
// Every record's checksum is checked when it is read: a damaged record is never printed or
// exported, it is named on stderr (and the command exits 1).
// Commands run in a child process: a crash of LMDB on its own damaged pages is reported as damage.
// Exit codes: 0 ok; 1 damage or another problem found (verify), a damaged record refused, a store
// damaged as a whole (LMDB cannot read it, or reading it crashed), a run not found, a backup that
// does not verify; 2 cannot open the store (missing, not a store, no permission) or make the
// backup/upgrade, or write the plot files; 3 usage (also an unusable --detx); 4 the store has
// another schema version (run upgrade); 5 plot: gnuplot missing, failed or timed out.

#include <CLI/CLI.hpp>

#include <iostream>
#include <string>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "commands.hpp"
#include "shoredaq/storage/event_store.hpp"

namespace st = shoredaq::storage;
using namespace shore_events;

int main(int argc, char** argv) {
  // stdout carries the data (JSON, online objects): the store's log lines go to stderr.
  spdlog::set_default_logger(spdlog::stderr_color_mt("shore-events"));
  CLI::App app{
      "shore-events: read a shoredaq event store, or a spool file.\n"
      "The store keeps the events and summary slices; the run files (spool, .daq) also keep the prescaled\n"
      "L0/L1/L2 timeslices, the SN slices, the error stream and the TMCH monitoring packets, and the acoustic\n"
      "parts (.acoustic.dqd) the TAES datagrams: read those with 'runfile'."};
  app.footer(
      "Exit codes: 0 ok; 1 damage or a problem found (records or the store as a whole, a torn or undecodable "
      "object in a run file), a damaged record refused, run not found; 2 cannot open the store or file (or make "
      "the backup/upgrade, or write the plot files); 3 usage; 4 the store has another schema version (run upgrade); "
      "5 plot: gnuplot missing, failed or timed out.");
  std::string store, target, runfile_path, export_what, out_path;
  bool as_json = false, deep = false, skip_damaged = false;
  std::uint32_t run = 0, from = 0, to = UINT32_MAX;
  std::string format = "online";
  app.add_option("--store,-s", store, "store directory (the LMDB environment); every command but runfile needs it");
  app.require_subcommand(1);
  auto* runs = app.add_subcommand("runs", "list the runs");
  runs->add_flag("--json", as_json, "JSON output");
  auto* events = app.add_subcommand("events", "list the events of a run");
  events->add_option("--run", run, "run number")->required();
  events->add_option("--from", from, "first frame index");
  events->add_option("--to", to, "last frame index");
  events->add_flag("--json", as_json, "one JSON object per event and line, with hits");
  auto* summary = app.add_subcommand("summary", "summary of one run");
  summary->add_option("--run", run, "run number")->required();
  summary->add_flag("--json", as_json, "JSON output");
  auto* alerts = app.add_subcommand("alerts", "the supernova alerts of a run (SNEWS-format messages), oldest first");
  alerts->add_option("--run", run, "run number")->required();
  alerts->add_flag("--json", as_json, "a JSON array of the messages");
  PlotOptions plot_options;
  auto* plot = app.add_subcommand(
      "plot",
      "figures of one run drawn by gnuplot, with their data files and the gnuplot script (plot.gp) beside them: "
      "rate_map (mean rate per DOM, DU x floor), du_rates (summed DOM rate per DU vs time), trigger_rates (events per "
      "trigger bit per time bin), event_sizes (hits per event); one summary line per figure on stdout");
  plot->add_option("--run", plot_options.run, "run number")->required();
  plot->add_option("--out", plot_options.out_dir, "folder for the figures and data files (made if absent)")->required();
  plot->add_option("--format", plot_options.format, "figure format")->check(CLI::IsMember({"svg"}));
  plot->add_option("--detx", plot_options.detx,
                   "detector file for the DU and floor of each DOM (default: the one the run record names; without a "
                   "readable one the DOMs are placed in stored order, 18 per column)");
  plot->add_option("--trigger-bin-s", plot_options.trigger_bin_s, "time bin of the trigger rates (s)")
      ->check(CLI::Range(0.001, 1e6));
  plot->add_option("--gnuplot", plot_options.gnuplot_program, "the gnuplot program");
  plot->add_option("--gnuplot-timeout-s", plot_options.gnuplot_timeout_s, "gnuplot is killed after this long")
      ->check(CLI::Range(0.1, 3600.0));
  auto* verify = app.add_subcommand("verify", "check every record's checksum, keys, buffers and counts; exit 1 on a problem");
  verify->add_flag("--deep", deep,
                   "also cross-check: event numbers per slice, frame ranges and slice counts of the run records, "
                   "detector ids, meta values");
  verify->add_flag("--json", as_json, "a JSON report on stdout (also when the store cannot be opened)");
  auto* exp = app.add_subcommand("export", "write a run as online-format objects to stdout");
  exp->add_option("--run", run, "run number")->required();
  exp->add_option("--format", format, "output format")->check(CLI::IsMember({"online"}));
  exp->add_flag("--skip-damaged", skip_damaged,
                "export the intact records of a run holding damaged ones (named on stderr, exit 1); "
                "without it such a run is refused and nothing is written");
  auto* backup = app.add_subcommand("backup", "consistent copy of the store while it is written, verified (deep)");
  backup->add_option("--to", target, "new directory for the copy (absent or empty)")->required();
  backup->add_flag("--json", as_json, "JSON report");
  auto* upgrade = app.add_subcommand("upgrade", "rewrite a store of an older schema (no checksums) into a new directory");
  upgrade->add_option("--to", target, "new directory for the upgraded store (absent or empty)")->required();
  auto* runfile = app.add_subcommand(
      "runfile",
      "what a spool file holds, every object decoded: a run file (.daq: summary slices, events, timeslices per "
      "stream, TMCH packets, frame and UTC range) or a record file (.dqd, e.g. KM3NeT_..._0000.acoustic.dqd: "
      "datagrams per type and DOM); no store needed");
  runfile->add_option("file", runfile_path, "the run file or record file")->required();
  runfile->add_flag("--json", as_json, "JSON output");
  runfile->add_option("--export", export_what,
                      "write the objects of one kind, unchanged: for a run file events, summaries, timeslices, error, "
                      "l0, l1, l2, sn (online objects) or monitoring (the TMCH packets as .dqd records, so they "
                      "replay); for a record file optical, acoustic or monitoring (.dqd records)");
  runfile->add_option("--out", out_path, "file for --export (default: stdout, the summary then goes to stderr)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  const std::string cmd = app.get_subcommands().front()->get_name();
  if (cmd == "runfile") return cmd_runfile(runfile_path, export_what, out_path, as_json);
  if (store.empty()) {
    std::cerr << "--store is required (every command but runfile reads a store)\nRun with --help for more information.\n";
    return kExitUsage;
  }
  const auto command = [&]() -> int {
    if (cmd == "upgrade") return cmd_upgrade(store, target);  // opens the old store itself
    try {
      const auto reader = st::EventStoreReader::open(store);
      if (cmd == "runs") return cmd_runs(reader, as_json);
      if (cmd == "events") return cmd_events(reader, run, from, to, as_json);
      if (cmd == "summary") return cmd_summary(reader, run, as_json);
      if (cmd == "alerts") return cmd_alerts(reader, run, as_json);
      if (cmd == "plot") return cmd_plot(reader, plot_options);
      if (cmd == "verify") return cmd_verify(reader, store, deep, as_json);
      if (cmd == "export") return cmd_export(reader, run, skip_damaged);
      if (cmd == "backup") return cmd_backup(reader, target, as_json);
    } catch (const st::DamagedRecordError& e) {
      std::cerr << "shore-events: " << e.what() << "\n";
      return kExitProblem;
    } catch (const st::StoreDamagedError& e) {  // damaged, not "cannot open"
      std::cerr << "shore-events: " << e.what() << "\n";
      if (cmd == "verify") print_verify_failure(store, e.what(), kExitProblem, as_json);
      return kExitProblem;
    } catch (const st::StoreSchemaError& e) {
      std::cerr << "shore-events: " << e.what() << "\n";
      if (cmd == "verify" && as_json) print_verify_failure(store, e.what(), kExitSchema, true);
      return kExitSchema;
    } catch (const st::StoreError& e) {
      std::cerr << "shore-events: " << e.what() << "\n";
      if (cmd == "verify" && as_json) print_verify_failure(store, e.what(), kExitCannotOpen, true);
      return kExitCannotOpen;
    }
    return kExitUsage;
  };
  const bool buffer_output = as_json && (cmd == "verify" || cmd == "backup");
  return run_isolated(command, buffer_output, [&](const std::string& why) {
    std::cerr << "shore-events: " << why << "\n";
    if (cmd == "verify") print_verify_failure(store, why, kExitProblem, as_json);
  });
}
