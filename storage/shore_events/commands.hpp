#pragma once
// shore-events' subcommands; main.cpp parses the command line and maps failures to exit codes.

#include <cstdint>
#include <string>

#include "shoredaq/storage/event_store.hpp"

namespace shore_events {

// The program's exit codes (documented in --help and main.cpp).
enum ExitCode : int {
  kExitOk = 0,
  kExitProblem = 1,     // verify found damage or an inconsistency; a damaged record refused; run not found
  kExitCannotOpen = 2,  // no store, not a store, LMDB failure; a backup or upgrade that could not be made
  kExitUsage = 3,
  kExitSchema = 4,  // the store has another schema version: `upgrade` it
};

// Reading (read_commands.cpp).
int cmd_runs(const shoredaq::storage::EventStoreReader& reader, bool as_json);
int cmd_events(const shoredaq::storage::EventStoreReader& reader, std::uint32_t run, std::uint32_t from,
               std::uint32_t to, bool as_json);
int cmd_summary(const shoredaq::storage::EventStoreReader& reader, std::uint32_t run, bool as_json);
// Refuses a run holding a damaged record (nothing written) unless skip_damaged.
int cmd_export(const shoredaq::storage::EventStoreReader& reader, std::uint32_t run, bool skip_damaged);

// The store as a whole (store_commands.cpp).
int cmd_verify(const shoredaq::storage::EventStoreReader& reader, const std::string& store, bool deep, bool as_json);
// With --json, what verify prints for a store that cannot be opened.
void print_verify_open_failure(const std::string& store, const std::string& error, int exit_code);
int cmd_backup(const shoredaq::storage::EventStoreReader& reader, const std::string& to, bool as_json);
int cmd_upgrade(const std::string& store, const std::string& to);

// "event 3/2/1: checksum mismatch (damaged record refused)" lines on stderr.
void print_damaged(const shoredaq::storage::ReadResult& result);

}  // namespace shore_events
