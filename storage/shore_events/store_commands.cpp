// shore-events: verify [--deep] [--json], backup --to DIR, upgrade --to DIR.

#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "shoredaq/storage/store_backup.hpp"
#include "shoredaq/storage/store_upgrade.hpp"

namespace st = shoredaq::storage;
using nlohmann::json;

namespace shore_events {

namespace {

json verify_to_json(const st::VerifyReport& report) {
  json damaged = json::array();
  for (const auto& d : report.damaged) {
    damaged.push_back({{"database", std::string(st::to_string(d.database))}, {"key", d.key}, {"reason", d.reason}});
  }
  return json{{"deep", report.deep},
              {"ok", report.ok()},
              {"checked",
               {{"events", report.events_checked},
                {"summaries", report.summaries_checked},
                {"runs", report.runs_checked},
                {"meta", report.meta_checked},
                {"bytes", report.bytes_checked}}},
              {"damaged_count", report.damaged_count},
              {"damaged", damaged},
              {"problem_count", report.problem_count},
              {"problems", report.problems}};
}

void print_verify_text(const st::VerifyReport& report) {
  // The first and last lines are what scripts and the demo read; keep them.
  std::cout << "checked " << report.events_checked << " events, " << report.summaries_checked << " summaries, "
            << report.runs_checked << " runs\n";
  for (const auto& p : report.problems) std::cout << "PROBLEM: " << p << "\n";
  if (report.problem_count > report.problems.size()) {
    std::cout << "... and " << report.problem_count - report.problems.size() << " more problems\n";
  }
  if (report.damaged_count != 0) std::cout << "damaged records: " << report.damaged_count << "\n";
  std::cout << (report.ok() ? "store OK\n" : "store has problems\n");
}

}  // namespace

int cmd_verify(const st::EventStoreReader& reader, const std::string& store, bool deep, bool as_json) {
  const auto report = reader.verify(st::VerifyOptions{.deep = deep});
  const int code = report.ok() ? kExitOk : kExitProblem;
  if (as_json) {
    json out = verify_to_json(report);
    out["store"] = store;
    out["exit_code"] = code;
    std::cout << out.dump(2) << "\n";
  } else {
    print_verify_text(report);
  }
  return code;
}

void print_verify_failure(const std::string& store, const std::string& error, int exit_code, bool as_json) {
  if (as_json) {
    std::cout << json{{"store", store}, {"ok", false}, {"exit_code", exit_code}, {"error", error}}.dump(2) << "\n";
    return;
  }
  std::cout << "PROBLEM: " << error << "\nstore has problems\n";
}

int cmd_backup(const st::EventStoreReader& reader, const std::string& to, bool as_json) {
  st::BackupReport report;
  try {
    report = st::backup_store(reader, to);
  } catch (const st::StoreDamagedError& e) {
    std::cerr << "shore-events: backup failed: " << e.what() << "\n";
    return kExitProblem;
  } catch (const st::StoreError& e) {
    std::cerr << "shore-events: backup failed: " << e.what() << "\n";
    return kExitCannotOpen;
  }
  const int code = report.ok() ? kExitOk : kExitProblem;
  if (as_json) {
    std::cout << json{{"backup", report.directory.string()},
                      {"bytes", report.bytes},
                      {"ok", report.ok()},
                      {"exit_code", code},
                      {"verify", verify_to_json(report.verify)}}
                     .dump(2)
              << "\n";
    return code;
  }
  std::cout << "backup " << report.directory.string() << ": " << report.bytes << " bytes\n";
  print_verify_text(report.verify);
  if (!report.ok()) std::cout << "the backup does not verify: it copies a damaged store, or the copy is damaged\n";
  return code;
}

int cmd_upgrade(const std::string& store, const std::string& to) {
  st::UpgradeReport report;
  try {
    report = st::upgrade_store(store, to);
  } catch (const st::StoreDamagedError& e) {
    std::cerr << "shore-events: upgrade failed: " << e.what() << "\n";
    return kExitProblem;
  } catch (const st::StoreError& e) {
    std::cerr << "shore-events: upgrade failed: " << e.what() << "\n";
    return kExitCannotOpen;
  }
  std::cout << "upgrade from schema " << report.from_version << " to " << st::kStoreSchemaVersion << ": "
            << report.events << " events, " << report.summaries << " summaries, " << report.runs << " runs, "
            << report.meta << " meta values\n";
  for (const auto& p : report.problems) std::cout << "PROBLEM (old store): " << p << "\n";
  if (report.problem_count != 0) {
    std::cout << report.problem_count << " record(s) of the old store fail their checks: nothing written\n";
    return kExitProblem;
  }
  print_verify_text(report.verify);
  if (!report.ok()) {
    std::cout << "the new store does not verify: nothing kept\n";
    return kExitProblem;
  }
  std::cout << "upgraded store written to " << to << "; stop the daemon, keep " << store
            << " aside and put the new store in its place\n";
  return kExitOk;
}

}  // namespace shore_events
