// Runs the node takes by itself: the next run of a cycle (no frame lost between them), the run a
// restarted node resumes, and what every run record says about where its data come from.
#include <spdlog/spdlog.h>

#include "node_impl.hpp"
#include "shoredaq/firmware/desired_state.hpp"
#include "shoredaq/version.hpp"

namespace shoredaq::firmware {

dataflow::RunRecord Node::Impl::new_run_record(std::uint32_t run, const std::string& run_type,
                                                std::string start_reason) const {
  dataflow::RunRecord r;
  r.run = run;
  r.detector_id = setup->detector->id();
  r.state = dataflow::RunOutcome::Running;
  r.start_unix_ns = dataflow::unix_now_ns();
  r.run_setup = setup->run_setup_text;
  r.run_setup_hash = setup->run_setup_hash;
  r.detector_file = setup->detector_file;
  r.detector_file_hash = setup->detector_hash;
  r.software_version = std::string(shoredaq::version());
  r.config_hash = config.source_hash;
  r.host = host;
  r.run_type = run_type.empty() ? config.run.type : run_type;
  r.start_reason = std::move(start_reason);
  return r;
}

std::uint32_t Node::Impl::next_free_run(std::uint32_t from) const {
  std::uint32_t run = from == 0 ? 1 : from;
  while (store) {
    try {
      if (!store->reader().run(run)) break;
    } catch (const storage::DamagedRecordError&) {
      // a damaged record still takes the number
    }
    ++run;
  }
  return run;
}

// On the writer thread, at a slice boundary: the ended run is recorded with its own counters (the
// pipeline's since the run began), the next number is taken and recorded, and the node moves on.
dataflow::RunRecord Node::Impl::cycle_run(const RunSession& s, dataflow::RunRecord& ended) {
  dataflow::CounterSet now;
  s.describe(now);
  dataflow::CounterSet base;
  {
    std::lock_guard lock(mutex);
    base = run_base;
  }
  ended.state = dataflow::RunOutcome::Stopped;
  ended.stop_unix_ns = dataflow::unix_now_ns();
  for (const auto& [k, v] : now.since(base).flat()) ended.counters[k] = v;
  ended.counters["stop.cycled"] = 1;
  if (store) {
    if (auto r = store->put_run_record(ended); !r)
      spdlog::error("ALARM: cannot write the end-of-run record of run {}: {}", ended.run, r.message);
  }
  dataflow::RunRecord next;
  {
    std::lock_guard lock(mutex);
    next = new_run_record(next_free_run(ended.run + 1), ended.run_type,
                          "cycle after run " + std::to_string(ended.run) + " (" + ended.stop_reason + ")");
  }
  if (store) {
    if (auto r = store->put_run_record(next); !r)
      spdlog::error("ALARM: cannot write the run record of run {}: {}", next.run, r.message);
  }
  {
    std::lock_guard lock(mutex);
    run_record = next;
    run_base = std::move(now);
  }
  run_control.set_run(next.run);
  remember_order(true, next.run);
  spdlog::info("run {} ended ({}, frames {}-{}); run {} begins with the next slice", ended.run, ended.stop_reason,
               ended.first_frame, ended.last_frame, next.run);
  notifier.status("shoredaq: Running run " + std::to_string(next.run));
  return next;
}

void Node::Impl::remember_order(bool running, std::uint32_t current_run) {
  DesiredState d;
  {
    std::lock_guard lock(mutex);
    d.running = running;
    d.current_run = running ? current_run : 0;
    d.next_run = running ? current_run + 1 : 0;
    if (running && setup) {
      d.detector_file = setup->detector_file;
      d.run_setup_text = setup->run_setup_text;
      d.run_type = run_record.run_type;
      d.clb_run = clb_run;
    }
  }
  if (running && d.run_type.empty()) d.run_type = config.run.type;
  try {
    std::filesystem::create_directories(config.node.state_dir);
    save_desired_state(config.node.state_dir, d);
  } catch (const std::exception& e) {
    spdlog::error("cannot remember the operator's order: {}", e.what());
  }
}

// After a restart: when the last order was "running", the node configures what it ran with and
// starts the next free run number, as an operator would; an ingest or filter process of a farm
// starts the run it was in (the farm's).
void Node::Impl::resume_if_desired() {
  std::string problem;
  const auto desired = load_desired_state(config.node.state_dir, &problem);
  if (!problem.empty()) spdlog::error("not resuming: {}", problem);
  if (!desired || !desired->running) return;
  resuming = true;
  struct Resumed {
    std::atomic<bool>& flag;
    ~Resumed() { flag = false; }
  } resumed{resuming};
  spdlog::warn("resuming: the last order was to run (next run {}, detector {})", desired->next_run, desired->detector_file);
  auto r = run_control.init();
  if (r.ok) r = run_control.configure(ConfigureRequest{desired->detector_file, {}, desired->run_setup_text});
  if (!r.ok) {
    spdlog::error("ALARM: cannot resume the run after the restart: {}", r.error);
    return;
  }
  std::uint32_t run = 0;
  {
    std::lock_guard lock(mutex);
    // Files from before current_run was kept: the run taken was the one before next_run.
    const std::uint32_t current = desired->current_run != 0 ? desired->current_run : (desired->next_run > 0 ? desired->next_run - 1 : 0);
    if (!config.topology.writer && current > 0) {
      // An ingest or filter process of a farm takes part in the farm's run, which the other
      // processes are still taking (and the writer numbers): it goes back into the same number.
      run = current;
      start_reason_next = "rejoined the farm's run after restart";
    } else {
      run = next_free_run(desired->next_run);
      start_reason_next = "resumed after restart";
    }
    clb_run_next = desired->clb_run;
  }
  r = run_control.start(run, desired->run_type);
  {
    std::lock_guard lock(mutex);
    start_reason_next.clear();
    clb_run_next = 0;
  }
  if (!r.ok) spdlog::error("ALARM: cannot resume the run after the restart: {}", r.error);
}

nlohmann::json Node::Impl::run_schedule() const {
  nlohmann::json s{{"run_type", config.run.type}, {"max_duration_s", config.run.max_duration_s},
                   {"max_bytes", config.run.max_bytes}, {"resume_after_restart", config.run.resume_after_restart}};
  std::string summary = config.run.max_duration_s == 0 && config.run.max_bytes == 0 ? "runs end when the operator stops them"
                                                                                     : "a new run every";
  if (config.run.max_duration_s > 0) summary += " " + std::to_string(config.run.max_duration_s) + " s of data";
  if (config.run.max_duration_s > 0 && config.run.max_bytes > 0) summary += " or";
  if (config.run.max_bytes > 0) summary += " " + std::to_string(config.run.max_bytes >> 20) + " MiB stored";
  if (session) {
    summary += "; run " + std::to_string(run_record.run) + " (" + run_record.run_type + ") started by " + run_record.start_reason;
    s["current_run_started_unix_ns"] = run_record.start_unix_ns;
    s["runs_cycled"] = session->writer().counters().runs_cycled;
  }
  s["summary"] = summary;
  return s;
}

}  // namespace shoredaq::firmware
