#pragma once
// shore-events' subcommands; main.cpp parses the command line and maps failures to exit codes.

#include <cstdint>
#include <functional>
#include <string>

#include "shoredaq/storage/event_store.hpp"

namespace shore_events {

// The program's exit codes (documented in --help and main.cpp).
enum ExitCode : int {
  kExitOk = 0,
  kExitProblem = 1,     // damage or an inconsistency found (records, or the store as a whole); run not found
  kExitCannotOpen = 2,  // no store, not a store, LMDB failure; a backup or upgrade that could not be made
  kExitUsage = 3,
  kExitSchema = 4,  // the store has another schema version: `upgrade` it
  kExitGnuplot = 5,  // plot: gnuplot missing, failed or timed out (the data files are written)
};

// Reading (read_commands.cpp).
int cmd_runs(const shoredaq::storage::EventStoreReader& reader, bool as_json);
int cmd_events(const shoredaq::storage::EventStoreReader& reader, std::uint32_t run, std::uint32_t from,
               std::uint32_t to, bool as_json);
int cmd_summary(const shoredaq::storage::EventStoreReader& reader, std::uint32_t run, bool as_json);
// The supernova alerts kept in a run's record (alerts_command.cpp).
int cmd_alerts(const shoredaq::storage::EventStoreReader& reader, std::uint32_t run, bool as_json);
// Refuses a run holding a damaged record (nothing written) unless skip_damaged.
int cmd_export(const shoredaq::storage::EventStoreReader& reader, std::uint32_t run, bool skip_damaged);

// Figures of one run drawn by gnuplot, with their data files and script, in out_dir
// (plot_command.cpp, plot_data.cpp).
struct PlotOptions {
  std::uint32_t run = 0;
  std::string out_dir;
  std::string format = "svg";  // gnuplot's svg terminal
  std::string detx;            // the DU/floor of each DOM; default: the run record's detector file
  std::string gnuplot_program = "gnuplot";
  double trigger_bin_s = 10;
  double gnuplot_timeout_s = 60;
};
int cmd_plot(const shoredaq::storage::EventStoreReader& reader, const PlotOptions& options);

// A spool file without a store (runfile_command.cpp): a run file (.daq: every online object
// decoded, counted per type) or a record file (.dqd, e.g. an acoustic part: datagrams per type
// and DOM); `export_what` non-empty writes the objects of that kind to `out_path` (stdout if empty).
int cmd_runfile(const std::string& path, const std::string& export_what, const std::string& out_path, bool as_json);

// The store as a whole (store_commands.cpp).
int cmd_verify(const shoredaq::storage::EventStoreReader& reader, const std::string& store, bool deep, bool as_json);
// What verify prints when it cannot report on records: the store cannot be opened, is damaged as
// a whole, or reading it crashed (a JSON object with the error and exit code, or PROBLEM lines).
void print_verify_failure(const std::string& store, const std::string& error, int exit_code, bool as_json);
int cmd_backup(const shoredaq::storage::EventStoreReader& reader, const std::string& to, bool as_json);
int cmd_upgrade(const std::string& store, const std::string& to);

// Runs `command` in a child process and returns its exit code; a crash of the child (LMDB meeting
// damaged pages of its own) calls on_crash and returns kExitProblem. stdout passes through, or is
// held back until the child has exited normally (buffer_output: no half JSON document on a crash).
// isolated.cpp.
int run_isolated(const std::function<int()>& command, bool buffer_output,
                 const std::function<void(const std::string& why)>& on_crash);

// The name of a trigger mask bit ("3DMuon"), nullptr for a bit without a name (read_commands.cpp).
const char* trigger_name(unsigned bit);

// Adds `part`'s counts and listed damaged records to `total` (read_commands.cpp).
void merge_read_results(shoredaq::storage::ReadResult& total, const shoredaq::storage::ReadResult& part);

// "event 3/2/1: checksum mismatch (damaged record refused)" lines on stderr.
void print_damaged(const shoredaq::storage::ReadResult& result);

}  // namespace shore_events
