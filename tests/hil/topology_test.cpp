// HIL: one building block spread over processes (issue 13). Two ingest processes (one DU each),
// two filter processes and one writer, every one a shoredaq daemon with its [topology] roles,
// driven together by `shorectl --farm`, fed by du-sim replaying one recorded feed to each ingest
// process. The writer's store holds exactly the events and summary slices that a single-process
// node writes from the same feed; killing a filter process mid-run loses only the slices it held
// (counted by the writer), the run goes on, and stop drains every process; a DU that starts sending
// later leaves only the windows before it incomplete (counted), numbered as the run's; a filter
// process restarted mid-run goes back into the farm's run (by itself, or by shorectl --farm rejoin
// when it lost its state) and takes its windows again.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>

#include "hil_support.hpp"
#include "store_reading.hpp"
#include "shoredaq/formats/detector.hpp"
#include "shoredaq/formats/fb_codec.hpp"
#include "shoredaq/storage/event_store.hpp"

using namespace hil;
using shoredaq::dataflow::Event;

namespace {

constexpr std::uint32_t kRun = 77;
// Slices expire by data time only: the wall-clock expiry would cut a slice short on a slow machine
// (sanitizers), and not at the same place in two processes.
const std::string kDataTimeOnly = "wall_clock_expiry_ms = 3600000\n";


// Frame index -> the stored summary slice's bytes.
std::map<std::uint32_t, std::vector<std::uint8_t>> stored_summaries(const fs::path& store, std::uint32_t run) {
  auto reader = shoredaq::storage::EventStoreReader::open(store);
  std::map<std::uint32_t, std::vector<std::uint8_t>> out;
  reader.for_each_summary(run, 0, 0xffffffffu, [&](std::uint32_t, std::uint32_t frame, std::span<const std::uint8_t> b) {
    out[frame].assign(b.begin(), b.end());
    return true;
  });
  return out;
}

struct FarmProcess {
  std::string name;
  std::unique_ptr<TempDir> dir;
  NodeSetup node;
  Child daemon;
};

struct FarmTiming {
  bool data_time_builder = false;  // the ingest builders expire slices by data time only
  unsigned merge_timeout_ms = 1000;  // filters: a window waits this long for its partials
  unsigned gap_timeout_ms = 1500;    // writer: a missing window is waited for this long
};
// Every slice waits for all its data (builder expiry by data time only, long merge and gap
// timeouts), so a slow machine (sanitizers) changes nothing that is written. The writer's gap
// timeout above the filters' merge timeout, as `shorectl --farm check` wants.
constexpr FarmTiming kDeterministic{true, 8000, 10000};

// The five daemons of the farm, their farm file, and the endpoints between them.
class Farm {
 public:
  Farm(const std::string& tag, const fs::path& detx, const std::vector<int>& dus, FarmTiming timing = {})
      : tmp_(tag), detx_(detx) {
    const std::string builder = timing.data_time_builder ? kDataTimeOnly : "";
    const std::string merge_ms = std::to_string(timing.merge_timeout_ms);
    const std::string gap_ms = std::to_string(timing.gap_timeout_ms);
    const std::string results = "ipc://" + (tmp_ / "results.sock").string();
    const std::string slices1 = "ipc://" + (tmp_ / "slices-1.sock").string();
    const std::string slices2 = "ipc://" + (tmp_ / "slices-2.sock").string();
    add("writer", "[topology]\nroles = [\"writer\"]\nresults_endpoint = \"" + results + "\"\ngap_timeout_ms = " + gap_ms + "\n");
    for (const auto& [name, in] : {std::pair{"filter-1", slices1}, std::pair{"filter-2", slices2}}) {
      add(name, "[builder]\nbackpressure = true\nqueue_slices = 4\n[topology]\nsend_hwm = 2\n\nroles = [\"filter\"]\nslices_endpoint = \"" + in +
                    "\"\ningest_processes = 2\nmerge_timeout_ms = " + merge_ms + "\nsend_timeout_ms = 10000\nresults_endpoint = \"" +
                    results + "\"\n");
    }
    for (std::size_t i = 0; i < dus.size(); ++i) {
      add("ingest-" + std::to_string(i + 1), "[builder]\nbackpressure = true\n" + builder + "[topology]\nroles = [\"ingest\"]\nsend_hwm = 2\ndus = [" +
                                                 std::to_string(dus[i]) + "]\nfilter_endpoints = [\"" + slices1 + "\", \"" +
                                                 slices2 + "\"]\nsend_timeout_ms = 10000\n");
    }
    std::ostringstream f;
    for (const auto& p : processes_) {
      const std::string role = p.name.substr(0, p.name.find('-'));
      f << "[[process]]\nname = \"" << p.name << "\"\nroles = [\"" << role << "\"]\nendpoint = \"" << p.node.control << "\"\n";
    }
    farm_file_ = tmp_ / "farm.toml";
    write_file(farm_file_, f.str());
  }

  CtlResult ctl(std::vector<std::string> args, std::chrono::milliseconds timeout = 60s) const {
    std::vector<std::string> argv{program("shorectl"), "--farm", farm_file_.string(), "--json", "--timeout",
                                  std::to_string(timeout.count())};
    argv.insert(argv.end(), args.begin(), args.end());
    const Result r = run(argv, tmp_.path(), timeout * 6 + 10s);
    CtlResult c{r.code, nullptr, r.out, r.err};
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    if (!j.is_discarded()) c.reply = j;
    return c;
  }
  void start_run() {
    Rig::must(ctl({"init"}));
    Rig::must(ctl({"configure", "--detx", detx_.string()}));
    Rig::must(ctl({"start", "--run", std::to_string(kRun)}));
  }
  FarmProcess& process(const std::string& name) {
    for (auto& p : processes_) {
      if (p.name == name) return p;
    }
    throw std::runtime_error("no process " + name);
  }
  // A process killed mid-run started again on its own configuration (as systemd's Restart= does):
  // with its state directory it resumes its last order by itself; without, it comes up Idle.
  void restart(const std::string& name) {
    FarmProcess& p = process(name);
    p.daemon = start_node(p.node, name + "-restarted");
  }
  const fs::path& detx() const { return detx_; }
  nlohmann::json status(const std::string& name) { return Rig::must(shorectl(process(name).node, {"status"})); }
  std::uint64_t written() {
    auto r = shorectl(process("writer").node, {"status"}, 5s);
    return r.code == 0 ? r.reply["counters"].value("slices_written", std::uint64_t{0}) : 0;
  }
  const TempDir& tmp() const { return tmp_; }

 private:
  void add(const std::string& name, const std::string& toml) {
    FarmProcess p;
    p.name = name;
    p.dir = std::make_unique<TempDir>("topo-" + name);
    p.node = make_node_setup(*p.dir, toml);
    p.daemon = start_node(p.node, name);
    processes_.push_back(std::move(p));
  }

  TempDir tmp_;
  fs::path detx_;
  std::vector<FarmProcess> processes_;
  fs::path farm_file_;
};

// A 2-DU detector file and a recorded feed of `slices` slices with bright muons.
struct Feed {
  TempDir tmp{"topo-feed"};
  fs::path detx = tmp / "detector.detx";
  fs::path dqd = tmp / "feed.dqd";
  std::vector<int> dus;
  explicit Feed(unsigned slices) {
    auto r = run({program("shoredaq"), "detx", "--detx", kDetx133, "--dus", "first:2", "--out", detx.string()}, tmp.path());
    if (r.code != 0) throw std::runtime_error("shoredaq detx failed: " + r.err);
    dus = shoredaq::dataflow::Detector::load(detx).du_ids();
    r = run({program("du-sim"), "--detx", detx.string(), "--slices", std::to_string(slices), "--run", std::to_string(kRun),
             "--seed", "1313", "--muon-rate-hz", "20", "--muon-yield", "400", "--monitoring", "--out", dqd.string()},
            tmp.path(), 120s);
    if (r.code != 0) throw std::runtime_error("du-sim failed: " + r.err);
  }
  std::vector<std::string> replay_to(const std::string& endpoint, bool realtime = false, unsigned skip_slices = 0) const {
    std::vector<std::string> a{program("du-sim"), "--replay", dqd.string(), "--endpoint", endpoint, "--json", "--linger-ms", "5000",
                               "--skip-slices", std::to_string(skip_slices)};
    if (realtime) a.push_back("--realtime");
    return a;
  }
};

// What the whole node in one process stores from the same feed.
struct Reference {
  std::vector<Event> events;
  std::map<std::uint32_t, std::vector<std::uint8_t>> summaries;
};
Reference single_node_reference(const Feed& feed, unsigned slices) {
  Rig single("topo-single", "first:2", "[builder]\nbackpressure = true\n" + kDataTimeOnly);
  single.start_run(kRun);
  single.feed(feed.replay_to(single.node().ingest));
  EXPECT_TRUE(single.wait_slices(slices)) << single.status().dump();
  single.stop_run();
  const auto status = single.status();
  EXPECT_EQ(status["counters"]["slices_written"], slices) << status.dump(1);
  Reference r{stored_events(single.node().store(), kRun), stored_summaries(single.node().store(), kRun)};
  single.quit();
  return r;
}

// The events of frames `first_frame` on, grouped by frame; the run's trigger counter left out
// (it counts the events of every frame before).
std::map<std::uint32_t, std::vector<Event>> events_from_frame(std::vector<Event> events, std::uint32_t first_frame) {
  std::map<std::uint32_t, std::vector<Event>> out;
  for (auto& e : events) {
    if (e.header.frame_index < first_frame) continue;
    e.trigger_counter = 0;
    out[e.header.frame_index].push_back(std::move(e));
  }
  return out;
}

}  // namespace

TEST(HilTopology, TwoIngestTwoFilterOneWriterWriteWhatOneProcessWrites) {
  constexpr unsigned kSlices = 30;
  const Feed feed(kSlices);
  ASSERT_EQ(feed.dus.size(), 2u);

  const Reference single = single_node_reference(feed, kSlices);
  ASSERT_FALSE(testing::Test::HasFailure());

  Farm farm("topo-farm", feed.detx, feed.dus, kDeterministic);
  farm.start_run();
  // The processes agree on the farm: each DU built once, the same filters, timeouts that fit.
  const auto check = farm.ctl({"check"});
  EXPECT_EQ(check.code, 0) << check.out << check.err;
  EXPECT_EQ(check.reply["problems"], nlohmann::json::array()) << check.out;
  // Every ingest process gets the whole feed and builds its own DU.
  Child feed1(feed.replay_to(farm.process("ingest-1").node.ingest), farm.tmp() / "feed1.out", farm.tmp() / "feed1.err");
  Child feed2(feed.replay_to(farm.process("ingest-2").node.ingest), farm.tmp() / "feed2.out", farm.tmp() / "feed2.err");
  EXPECT_EQ(feed1.wait(120s), 0) << feed1.err();
  EXPECT_EQ(feed2.wait(120s), 0) << feed2.err();
  ASSERT_TRUE(wait_until([&] { return farm.written() >= kSlices; }, 60s, 100ms)) << farm.status("writer").dump(1);

  const auto stopped = farm.ctl({"stop"});
  ASSERT_EQ(stopped.code, 0) << stopped.out << stopped.err;
  // Ingest first, then the filters, then the writer; every one drained.
  const auto& steps = stopped.reply["processes"];
  ASSERT_EQ(steps.size(), 5u);
  EXPECT_EQ(steps[0]["process"].get<std::string>().rfind("ingest", 0), 0u);
  EXPECT_EQ(steps[4]["process"], "writer");
  for (const auto& s : steps) EXPECT_EQ(s["state"], "Standby") << s.dump();

  const auto w = farm.status("writer");
  EXPECT_EQ(w["counters"]["slices_written"], kSlices) << w.dump(1);
  EXPECT_EQ(w["drops"].value("farm_order.gap_slice", 0u), 0u) << w.dump(1);
  for (const char* name : {"filter-1", "filter-2"}) {
    const auto f = farm.status(name);
    EXPECT_EQ(f["counters"]["farm_merge.slices_merged"].get<std::uint64_t>(), f["counters"]["farm_results.slices_sent"].get<std::uint64_t>())
        << f.dump(1);
    EXPECT_EQ(f["counters"].value("farm_merge.slices_incomplete", 0u), 0u) << f.dump(1);
    EXPECT_GT(f["counters"]["farm_merge.slices_merged"].get<std::uint64_t>(), 0u) << "both filters take a share";
  }
  for (const char* name : {"ingest-1", "ingest-2"}) {
    const auto i = farm.status(name);
    EXPECT_EQ(i["counters"]["farm_route.slices_sent"], kSlices) << i.dump(1);
    // The other DU's datagrams are passed over as another process's, not dropped as unknown DOMs.
    EXPECT_EQ(drops_with_prefix(i, "builder.") - i["drops"].value("builder.monitoring_unattached", 0u), 0u) << i.dump(1);
    EXPECT_GT(i["counters"]["builder.datagrams_other_ingest"].get<std::uint64_t>(), 0u) << i.dump(1);
  }

  const auto farm_events = stored_events(farm.process("writer").node.store(), kRun);
  ASSERT_GT(single.events.size(), 5u);
  EXPECT_EQ(farm_events.size(), single.events.size());
  EXPECT_TRUE(farm_events == single.events) << "the farm's events differ from the single process's";
  const auto farm_summaries = stored_summaries(farm.process("writer").node.store(), kRun);
  EXPECT_EQ(single.summaries.size(), kSlices);
  EXPECT_TRUE(farm_summaries == single.summaries) << "the farm's summary slices differ from the single process's";

  EXPECT_EQ(farm.ctl({"quit"}).code, 0);
}

TEST(HilTopology, ADuThatStartsLaterLeavesOnlyTheWindowsBeforeItIncomplete) {
  // DU 2 sends nothing for the run's first kLate windows (powered on late, or its ingest process
  // started late in data time): ingest-2's first partial slice is window kLate + 1.
  constexpr unsigned kSlices = 30, kLate = 5;
  const Feed feed(kSlices);
  const Reference single = single_node_reference(feed, kSlices);
  ASSERT_FALSE(testing::Test::HasFailure());
  const auto detector = shoredaq::dataflow::Detector::load(feed.detx);
  std::uint64_t late_du_doms = 0;
  for (const auto& m : detector.modules()) late_du_doms += m.du == feed.dus[1] && !m.is_base();
  ASSERT_GT(late_du_doms, 0u);

  // The windows DU 2 never sends wait merge_timeout at the filters, then go on without it; the
  // writer waits far longer for a window (the run's first one too), so they are written.
  Farm farm("topo-late", feed.detx, feed.dus, FarmTiming{true, 5000, 12000});
  farm.start_run();
  Child feed1(feed.replay_to(farm.process("ingest-1").node.ingest), farm.tmp() / "feed1.out", farm.tmp() / "feed1.err");
  Child feed2(feed.replay_to(farm.process("ingest-2").node.ingest, false, kLate), farm.tmp() / "feed2.out",
              farm.tmp() / "feed2.err");
  EXPECT_EQ(feed1.wait(120s), 0) << feed1.err();
  EXPECT_EQ(feed2.wait(120s), 0) << feed2.err();
  ASSERT_TRUE(wait_until([&] { return farm.written() >= kSlices; }, 90s, 100ms)) << farm.status("writer").dump(1);
  ASSERT_EQ(farm.ctl({"stop"}).code, 0);

  const auto w = farm.status("writer");
  EXPECT_EQ(w["counters"]["slices_written"], kSlices) << w.dump(1);
  EXPECT_EQ(w["drops"].value("farm_order.gap_slice", 0u), 0u) << w.dump(1);
  EXPECT_EQ(w["drops"].value("farm_order.late_slice", 0u), 0u) << w.dump(1);
  std::uint64_t incomplete = 0, missing = 0, added_empty = 0;
  for (const char* name : {"filter-1", "filter-2"}) {
    const auto f = farm.status(name);
    incomplete += f["counters"].value("farm_merge.slices_incomplete", std::uint64_t{0});
    added_empty += f["counters"].value("farm_merge.frames_added_empty", std::uint64_t{0});
    missing += f["drops"].value("farm_merge.partial_missing", std::uint64_t{0});
    EXPECT_EQ(f["drops"].value("farm_merge.partial_late", 0u), 0u) << f.dump(1);
  }
  // Exactly the windows before DU 2's first, each without its partial: its DOMs as empty frames.
  EXPECT_EQ(incomplete, kLate);
  EXPECT_EQ(missing, kLate);
  EXPECT_EQ(added_empty, kLate * late_du_doms);
  EXPECT_EQ(farm.status("ingest-2")["counters"]["farm_route.slices_sent"], kSlices - kLate);

  // Numbered as the run's frames (from window 1, whatever ingest-2 counted from); the windows
  // before DU 2 started differ from one process's (its DOMs sent nothing), every later one is the same.
  const auto farm_summaries = stored_summaries(farm.process("writer").node.store(), kRun);
  ASSERT_EQ(farm_summaries.size(), kSlices);
  for (const auto& [frame, bytes] : single.summaries) {
    ASSERT_TRUE(farm_summaries.contains(frame)) << frame;
    if (frame <= kLate) EXPECT_NE(farm_summaries.at(frame), bytes) << "frame " << frame;
    else EXPECT_EQ(farm_summaries.at(frame), bytes) << "frame " << frame;
  }
  const auto farm_events = events_from_frame(stored_events(farm.process("writer").node.store(), kRun), kLate + 1);
  const auto single_events = events_from_frame(single.events, kLate + 1);
  ASSERT_GT(single_events.size(), 3u) << "frames with events after DU 2 started";
  EXPECT_TRUE(farm_events == single_events) << "the farm's events after DU 2 started differ from the single process's";

  EXPECT_EQ(farm.ctl({"quit"}).code, 0);
}

TEST(HilTopology, KillingAFilterProcessLosesOnlyTheSlicesItHeldAndTheRunGoesOn) {
  constexpr unsigned kSlices = 60;
  const Feed feed(kSlices);
  Farm farm("topo-kill", feed.detx, feed.dus);
  farm.start_run();
  // Real time (10 slices per second), so the kill lands mid-run.
  Child feed1(feed.replay_to(farm.process("ingest-1").node.ingest, true), farm.tmp() / "feed1.out", farm.tmp() / "feed1.err");
  Child feed2(feed.replay_to(farm.process("ingest-2").node.ingest, true), farm.tmp() / "feed2.out", farm.tmp() / "feed2.err");
  ASSERT_TRUE(wait_until([&] { return farm.written() >= 10; }, 60s, 50ms)) << farm.status("writer").dump(1);
  // Frozen first, so it holds slices (its queues fill, the ingest processes wait on it), then killed.
  farm.process("filter-2").daemon.signal(SIGSTOP);
  ASSERT_TRUE(wait_until([&] {
    return farm.status("ingest-1")["counters"].value("farm_route.sends_blocked", std::uint64_t{0}) > 0;
  }, 30s, 50ms));
  farm.process("filter-2").daemon.signal(SIGKILL);
  ASSERT_TRUE(farm.process("filter-2").daemon.wait(10s).has_value());
  EXPECT_EQ(feed1.wait(120s), 0) << feed1.err();
  EXPECT_EQ(feed2.wait(120s), 0) << feed2.err();

  // The writer notices the gaps within its timeout and goes on with what filter-1 sends.
  std::uint64_t written = 0, lost = 0;
  ASSERT_TRUE(wait_until([&] {
    const auto w = farm.status("writer");
    written = w["counters"].value("slices_written", std::uint64_t{0});
    lost = w["drops"].value("farm_order.gap_slice", std::uint64_t{0});
    return written + lost >= kSlices;
  }, 60s, 200ms)) << farm.status("writer").dump(1);
  EXPECT_GT(lost, 0u);
  std::cout << "filter-2 held " << lost << " slices when it was killed; " << written << " written\n";
  // What filter-2 held: its queues (send_hwm 2 per ingest process and 8 received, 4 in the
  // pipeline, what it was filtering), not the half of the run it would have had.
  EXPECT_LE(lost, 20u);
  EXPECT_EQ(written + lost, kSlices);
  const auto i1 = farm.status("ingest-1");
  EXPECT_GT(i1["counters"]["farm_route.slices_taken_over"].get<std::uint64_t>(), 0u) << i1.dump(1);

  // Stop still drains every process that is left; the dead one is reported, not waited for.
  const auto stopped = farm.ctl({"stop"});
  EXPECT_EQ(stopped.code, 2) << stopped.out << stopped.err;
  EXPECT_FALSE(stopped.reply.value("refused", true)) << stopped.out;
  for (const char* name : {"ingest-1", "ingest-2", "filter-1", "writer"}) {
    EXPECT_EQ(farm.status(name)["state"], "Standby") << name;
  }
  const auto check = farm.ctl({"check"}, 2s);
  EXPECT_EQ(check.code, 2) << check.out;
  EXPECT_THAT(check.out, testing::HasSubstr("filter-2: no answer")) << check.out;
  // A start now is refused as a whole: filter-2 does not answer.
  const auto refused = farm.ctl({"start", "--run", std::to_string(kRun + 1)});
  EXPECT_EQ(refused.code, 2);
  EXPECT_TRUE(refused.reply.value("refused", false)) << refused.out;
  const auto w = farm.status("writer");
  EXPECT_EQ(w["counters"]["slices_written"].get<std::uint64_t>() + w["drops"].value("farm_order.gap_slice", 0u), kSlices)
      << w.dump(1);
}

TEST(HilTopology, ProcessesRestartedMidRunGoBackIntoTheFarmsRun) {
  // Three parts of 30 windows each, filter-2 killed and restarted between them (the feed waits for
  // the restarts). The parts after a restart go in real time (3 s): the ingest processes see
  // filter-2 again once ZeroMQ reconnects (100 ms), and the first window or two may go to filter-1.
  //  1 -> 2: restarted on its state directory, it resumes by itself, in the farm's run (77), and
  //          so does ingest-2, killed at the same time;
  //  2 -> 3: restarted with its state directory lost (a replaced server), it comes up Idle, the farm
  //          check names it, and `shorectl --farm rejoin` brings it into the run.
  constexpr unsigned kPart = 30;
  const Feed feed(kPart);
  Farm farm("topo-rejoin", feed.detx, feed.dus);
  farm.start_run();
  const auto replay = [&](unsigned part) {  // part 0, 1, 2: the file's pass `part + 1`
    std::vector<Child> feeds;
    for (const char* name : {"ingest-1", "ingest-2"}) {
      auto args = feed.replay_to(farm.process(name).node.ingest, part > 0, part * kPart);
      args.insert(args.end(), {"--loop", std::to_string(part + 1)});
      const std::string tag = std::string(name) + "-" + std::to_string(part);
      feeds.emplace_back(args, farm.tmp() / (tag + ".out"), farm.tmp() / (tag + ".err"));
    }
    for (auto& f : feeds) EXPECT_EQ(f.wait(120s), 0) << f.err();
  };
  const auto totals = [&] {
    const auto w = farm.status("writer");
    return std::pair{w["counters"].value("slices_written", std::uint64_t{0}), w["drops"].value("farm_order.gap_slice", std::uint64_t{0})};
  };
  // The part's windows written or counted lost (its last waits in the builders for later data).
  const auto wait_for_part = [&](unsigned part) {
    return wait_until([&] {
      const auto [written, lost] = totals();
      return written + lost >= (part + 1) * kPart - 1;
    }, 90s, 100ms);
  };
  const auto kill = [&](const char* name) {
    farm.process(name).daemon.signal(SIGKILL);
    return farm.process(name).daemon.wait(10s).has_value();
  };
  const auto kill_filter_2 = [&] { return kill("filter-2"); };
  const auto filter_2_merged = [&] {
    return farm.status("filter-2")["counters"].value("farm_merge.slices_merged", std::uint64_t{0});
  };

  replay(0);
  ASSERT_TRUE(wait_for_part(0)) << farm.status("writer").dump(1);
  // ingest-2 too: the window its builder held is merged without its DOMs, the rest are whole.
  ASSERT_TRUE(kill_filter_2());
  ASSERT_TRUE(kill("ingest-2"));
  farm.restart("filter-2");
  farm.restart("ingest-2");
  for (const char* name : {"filter-2", "ingest-2"}) {
    ASSERT_TRUE(wait_until([&] {
      const auto s = farm.status(name);
      return s["state"] == "Running" && !s.value("resuming", false);
    }, 30s, 100ms)) << name;
    EXPECT_EQ(farm.status(name)["run"], kRun) << name << ": the farm's run, not a new number of its own";
  }
  const auto check_resumed = farm.ctl({"check"}, 5s);
  EXPECT_EQ(check_resumed.code, 0) << check_resumed.out;
  replay(1);
  ASSERT_TRUE(wait_for_part(1)) << farm.status("writer").dump(1);
  // Its share of the part (every other window), filtered after it came back.
  EXPECT_GE(filter_2_merged(), kPart / 2 - 4) << farm.status("filter-2").dump(1);

  ASSERT_TRUE(kill_filter_2());
  fs::remove_all(farm.process("filter-2").node.state_dir());
  farm.restart("filter-2");
  EXPECT_EQ(farm.status("filter-2")["state"], "Idle");
  const auto check_idle = farm.ctl({"check"}, 5s);
  EXPECT_EQ(check_idle.code, 1) << check_idle.out;
  EXPECT_THAT(check_idle.out, testing::HasSubstr("not in one state")) << check_idle.out;
  const auto rejoined = farm.ctl({"rejoin", "filter-2", "--detx", farm.detx().string()});
  ASSERT_EQ(rejoined.code, 0) << rejoined.out << rejoined.err;
  EXPECT_EQ(farm.status("filter-2")["state"], "Running");
  EXPECT_EQ(farm.status("filter-2")["run"], kRun);
  const auto check_rejoined = farm.ctl({"check"}, 5s);
  EXPECT_EQ(check_rejoined.code, 0) << check_rejoined.out;
  replay(2);
  ASSERT_TRUE(wait_for_part(2)) << farm.status("writer").dump(1);
  EXPECT_GE(filter_2_merged(), kPart / 2 - 4) << farm.status("filter-2").dump(1);

  const auto stopped = farm.ctl({"stop"});
  EXPECT_EQ(stopped.code, 0) << stopped.out << stopped.err;
  const auto [written, lost] = totals();
  std::cout << "written " << written << ", lost " << lost << " around the restarts\n";
  EXPECT_EQ(written + lost, 3 * kPart);
  EXPECT_LE(lost, 6u) << "only windows on their way to filter-2 when it was killed";
  std::uint64_t incomplete = 0;
  for (const char* name : {"filter-1", "filter-2"})
    incomplete += farm.status(name)["counters"].value("farm_merge.slices_incomplete", std::uint64_t{0});
  EXPECT_LE(incomplete, 4u) << "the windows around ingest-2's restart, not the parts after it";
  for (const char* name : {"ingest-1", "ingest-2", "filter-1", "filter-2", "writer"}) EXPECT_EQ(farm.status(name)["state"], "Standby") << name;
  EXPECT_EQ(farm.ctl({"quit"}).code, 0);
}
