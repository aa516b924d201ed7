#include "shoredaq/firmware/ring_service.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <fstream>

#include <spdlog/spdlog.h>

#include "shoredaq/dataflow/zmq_ingest.hpp"
#include "shoredaq/storage/tier0_manifest.hpp"

namespace shoredaq::firmware {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr std::uint64_t kSecondNs = 1'000'000'000ull;
// A dump waiting for its window's end gives up waiting when no slice came for this long.
constexpr std::uint64_t kQuietFeedNs = 3 * kSecondNs;
constexpr std::array<const char*, 5> kSkipNames{"queue_full", "too_old", "too_large", "write_failed", "stopped"};

std::uint64_t steady_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

std::string utc_or_empty(std::uint64_t ns) { return ns == 0 ? std::string() : storage::format_utc_ns(ns); }

// Small files that must be whole or absent: written aside, synced, renamed into place.
void write_atomically(const fs::path& path, const std::string& text, bool sync) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.flush()) throw std::runtime_error("cannot write " + tmp.string());
  }
  if (sync) {
    const int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
  }
  fs::rename(tmp, path);
}

std::string dump_id(std::uint64_t unix_ns, std::uint64_t n) {
  const std::time_t seconds = static_cast<std::time_t>(unix_ns / kSecondNs);
  std::tm tm{};
  ::gmtime_r(&seconds, &tm);
  char text[48];
  std::strftime(text, sizeof text, "%Y%m%dT%H%M%S", &tm);
  return std::string(text) + "." + std::to_string(unix_ns % kSecondNs / 1'000'000) + "Z-" + std::to_string(n);
}

}  // namespace

std::optional<std::uint64_t> parse_dump_time(std::string_view text) {
  const auto digits = [](std::string_view t) {
    return !t.empty() && std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  // Fraction digits -> ns (at most 9 digits).
  const auto fraction_ns = [&](std::string_view f) -> std::optional<std::uint64_t> {
    if (f.empty()) return 0;
    if (f.size() > 9 || !digits(f)) return std::nullopt;
    std::uint64_t ns = std::stoull(std::string(f));
    for (std::size_t i = f.size(); i < 9; ++i) ns *= 10;
    return ns;
  };
  if (text.empty() || text.size() > 40) return std::nullopt;
  if (text.back() != 'Z') {
    const auto dot = text.find('.');
    const std::string_view whole = text.substr(0, dot);
    if (!digits(whole) || whole.size() > 11) return std::nullopt;
    const auto frac = fraction_ns(dot == std::string_view::npos ? std::string_view() : text.substr(dot + 1));
    if (!frac || (dot != std::string_view::npos && dot + 1 == text.size())) return std::nullopt;
    return std::stoull(std::string(whole)) * kSecondNs + *frac;
  }
  // YYYY-MM-DDTHH:MM:SS[.f]Z
  const std::string_view t = text.substr(0, text.size() - 1);
  if (t.size() < 19 || t[4] != '-' || t[7] != '-' || t[10] != 'T' || t[13] != ':' || t[16] != ':') return std::nullopt;
  for (const std::size_t at : {0u, 5u, 8u, 11u, 14u, 17u}) {
    if (!digits(t.substr(at, at == 0 ? 4 : 2))) return std::nullopt;
  }
  std::optional<std::uint64_t> frac = 0;
  if (t.size() > 19) {
    if (t[19] != '.' || t.size() == 20) return std::nullopt;
    frac = fraction_ns(t.substr(20));
    if (!frac) return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = std::stoi(std::string(t.substr(0, 4))) - 1900;
  tm.tm_mon = std::stoi(std::string(t.substr(5, 2))) - 1;
  tm.tm_mday = std::stoi(std::string(t.substr(8, 2)));
  tm.tm_hour = std::stoi(std::string(t.substr(11, 2)));
  tm.tm_min = std::stoi(std::string(t.substr(14, 2)));
  tm.tm_sec = std::stoi(std::string(t.substr(17, 2)));
  if (tm.tm_year < 70 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
      tm.tm_sec > 60)
    return std::nullopt;
  const std::time_t seconds = ::timegm(&tm);
  if (seconds < 0) return std::nullopt;
  return static_cast<std::uint64_t>(seconds) * kSecondNs + *frac;
}

const char* to_string(DumpState state) noexcept {
  switch (state) {
    case DumpState::Started: return "STARTED";
    case DumpState::Done: return "DONE";
    case DumpState::Failed: return "FAILED";
  }
  return "?";
}

// Unknown states read as FAILED (the first pair), as a journal entry nobody understands should.
NLOHMANN_JSON_SERIALIZE_ENUM(DumpState, {{DumpState::Failed, "FAILED"}, {DumpState::Started, "STARTED"}, {DumpState::Done, "DONE"}})
// Missing keys keep DumpRecord's defaults: journals written by older versions still read.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DumpRecord, id, state, reason, source, requested_unix_ns,
                                                requested_from_ns, requested_to_ns, from_ns, to_ns, error, file, slices,
                                                missing_slices, datagrams, bytes, seconds)

json DumpRecord::to_json() const {
  json j = *this;
  // For the reader: the requested window in UTC (not read back; the _ns fields are).
  j["requested_from"] = utc_or_empty(requested_from_ns);
  j["requested_to"] = utc_or_empty(requested_to_ns);
  return j;
}

DumpRecord DumpRecord::from_json(const json& j) {
  DumpRecord d = j.get<DumpRecord>();
  if (!j.contains("state")) d.state = DumpState::Failed;  // a state never written: not DONE
  return d;
}

RingService::RingService(RingServiceOptions options)
    : options_(std::move(options)), queue_(options_.settings.queue_slices) {
  storage::RawSliceRingConfig rc;
  rc.directory = options_.ring_dir;
  rc.max_bytes = options_.settings.max_mb << 20;
  rc.max_seconds = options_.settings.seconds;
  ring_ = std::make_unique<storage::RawSliceRing>(rc);
  fs::create_directories(options_.ring_dir / "dumps");
  settle_interrupted_dumps();
  const auto fill = ring_->fill();
  spdlog::info("raw slice ring {}: {} s or {} MiB, {} slices recovered", options_.ring_dir.string(),
               options_.settings.seconds, options_.settings.max_mb, fill.slices);
  ring_thread_ = std::thread([this] { run_ring(); });
  dump_thread_ = std::thread([this] { run_dumps(); });
}

RingService::~RingService() { stop(); }

void RingService::stop() {
  if (stopping_.exchange(true)) return;
  queue_.close();
  wake_.notify_all();
  if (ring_thread_.joinable()) ring_thread_.join();
  if (dump_thread_.joinable()) dump_thread_.join();
}

void RingService::offer(const dataflow::Timeslice& slice) {
  if (stopping_.load(std::memory_order_relaxed)) {
    ++skipped_[Stopped];
    return;
  }
  ++offered_;
  // Full: skip before doing the copying work.
  if (queue_.size() >= queue_.capacity()) {
    ++skipped_[QueueFull];
    return;
  }
  Item item;
  item.records.reserve(slice.hit_count() * dataflow::kHitBytes + slice.frames.size() * 48 + 4096);
  item.meta.records = storage::encode_slice_records(slice, item.records);
  item.meta.slice_start_ns = slice.header.slice_start_ns();
  item.meta.detector_id = slice.header.detector_id;
  item.meta.run = slice.header.run;
  item.meta.frame_index = slice.header.frame_index;
  if (queue_.push(item, std::chrono::milliseconds(0)) != dataflow::QueueStatus::Ok) ++skipped_[QueueFull];
}

void RingService::run_ring() {
  for (;;) {
    Item item;
    const auto s = queue_.pop(item, std::chrono::milliseconds(200));
    if (s == dataflow::QueueStatus::Closed) return;
    if (s != dataflow::QueueStatus::Ok) continue;
    switch (ring_->append(item.meta, item.records)) {
      case storage::RingAppendStatus::Stored:
        ++stored_;
        last_store_steady_ns_.store(steady_ns());
        wake_.notify_all();
        break;
      case storage::RingAppendStatus::TooOld: ++skipped_[TooOld]; break;
      case storage::RingAppendStatus::TooLarge: ++skipped_[TooLarge]; break;
      case storage::RingAppendStatus::WriteFailed: ++skipped_[WriteFailed]; break;
    }
  }
}

void RingService::set_taking_data(bool taking) {
  taking_data_.store(taking);
  wake_.notify_all();
}

void RingService::set_provenance(storage::RunProvenance provenance) {
  std::lock_guard lock(mutex_);
  provenance_ = std::move(provenance);
}

DumpRecord RingService::request_dump(std::uint64_t from_ns, std::uint64_t to_ns, std::string reason, std::string source,
                                     bool journal_now) {
  DumpRecord d;
  d.requested_unix_ns = dataflow::unix_now_ns();
  d.reason = std::move(reason);
  d.source = std::move(source);
  d.requested_from_ns = from_ns;
  d.requested_to_ns = to_ns;
  {
    std::lock_guard lock(mutex_);
    d.id = dump_id(d.requested_unix_ns, next_id_++);
  }
  const auto fill = ring_->fill();
  const auto& s = options_.settings;
  if (to_ns <= from_ns) {
    d.state = DumpState::Failed;
    d.error = "the window is empty (--to must be after --from)";
  } else if (fill.slices > 0 && to_ns <= fill.oldest_ns) {
    d.state = DumpState::Failed;
    d.error = storage::clip_dump_window(from_ns, to_ns, fill, s.seconds, s.max_dump_seconds).refusal;
  } else if (stopping_.load()) {
    d.state = DumpState::Failed;
    d.error = "the node is stopping";
  }
  if (d.state == DumpState::Failed) {
    spdlog::warn("ring dump {} ({}) refused: {}", d.id, d.reason, d.error);
  } else {
    spdlog::info("ring dump {} started ({}): {} .. {} ({})", d.id, d.source, storage::format_utc_ns(from_ns),
                 storage::format_utc_ns(to_ns), d.reason);
  }
  if (journal_now) write_journal(d);  // before the dump thread can see it: states go forward only
  {
    std::lock_guard lock(mutex_);
    note(d);
    if (!journal_now) unjournalled_.push_back(d);
    if (d.state == DumpState::Started) pending_.push_back(d);
  }
  wake_.notify_all();
  return d;
}

bool RingService::window_end_held(std::uint64_t to_ns) {
  if (ring_->fill().end_ns() >= to_ns) return true;
  if (queue_.size() != 0) return false;  // slices on their way to the ring
  if (!taking_data_.load()) return true;  // no run: nothing more will come
  const std::uint64_t last = last_store_steady_ns_.load();
  return last != 0 && steady_ns() - last > kQuietFeedNs;  // the feed went quiet
}

void RingService::run_dumps() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait_for(lock, std::chrono::milliseconds(200),
                   [this] { return stopping_.load() || !pending_.empty() || !unjournalled_.empty(); });
    flush_journal(lock);
    if (pending_.empty()) {
      if (stopping_.load()) return;
      continue;
    }
    DumpRecord d = pending_.front();
    const auto& s = options_.settings;
    const std::uint64_t cap_ns = std::uint64_t{s.max_dump_seconds} * kSecondNs;
    const std::uint64_t to_ns = std::min(d.requested_to_ns, d.requested_from_ns + cap_ns);
    // The window's end must be in the ring first (a supernova dump reaches 60 s past the alert).
    while (!stopping_.load()) {
      lock.unlock();
      const bool held = window_end_held(to_ns);
      lock.lock();
      flush_journal(lock);
      if (held) break;
      wake_.wait_for(lock, std::chrono::milliseconds(200));
    }
    const storage::DumpOutput output{options_.spool_dir, provenance_, options_.fsync};
    lock.unlock();
    const auto window = storage::clip_dump_window(d.requested_from_ns, d.requested_to_ns, ring_->fill(), s.seconds,
                                                  s.max_dump_seconds);
    const storage::DumpRequest request{d.id, d.requested_from_ns, d.requested_to_ns, d.reason};
    const storage::DumpResult r = storage::write_ring_dump(*ring_, request, window, output);
    d.from_ns = window.from_ns;
    d.to_ns = window.to_ns;
    d.state = r.ok ? DumpState::Done : DumpState::Failed;
    d.error = r.error;
    d.file = r.ok ? r.file : std::string();
    d.slices = r.slices;
    d.missing_slices = r.missing_slices;
    d.datagrams = r.datagrams;
    d.bytes = r.bytes;
    d.seconds = r.seconds;
    if (r.ok) {
      spdlog::info("ring dump {} done: {} ({} slices, {} missing, {} bytes in {:.3f} s)", d.id, d.file, d.slices,
                   d.missing_slices, d.bytes, d.seconds);
    } else {
      spdlog::warn("ring dump {} failed: {}", d.id, d.error);
    }
    record(d);
    lock.lock();
    pending_.pop_front();
  }
}

void RingService::write_journal(const DumpRecord& dump) {
  try {
    write_atomically(options_.ring_dir / "dumps" / (dump.id + ".json"), dump.to_json().dump(2) + "\n", options_.fsync);
  } catch (const std::exception& e) {
    spdlog::warn("ring dump {}: cannot journal its state: {}", dump.id, e.what());
  }
}

void RingService::flush_journal(std::unique_lock<std::mutex>& lock) {
  while (!unjournalled_.empty()) {
    const DumpRecord d = unjournalled_.front();
    unjournalled_.pop_front();
    lock.unlock();
    write_journal(d);
    lock.lock();
  }
}

void RingService::record(const DumpRecord& dump) {
  write_journal(dump);
  std::lock_guard lock(mutex_);
  note(dump);
}

void RingService::note(const DumpRecord& dump) {
  // A later state replaces an earlier one not yet written (the journal never goes back).
  unjournalled_.erase(std::remove_if(unjournalled_.begin(), unjournalled_.end(),
                                     [&](const DumpRecord& d) { return d.id == dump.id && d.state != dump.state; }),
                      unjournalled_.end());
  ++dumps_by_state_[static_cast<std::size_t>(dump.state)];
  const auto it = std::find_if(dumps_.begin(), dumps_.end(), [&](const DumpRecord& d) { return d.id == dump.id; });
  if (it != dumps_.end()) {
    *it = dump;
  } else {
    dumps_.push_back(dump);
    if (dumps_.size() > kDumpsKept) dumps_.pop_front();
  }
}

void RingService::settle_interrupted_dumps() {
  set_aside_ = storage::set_aside_interrupted_dumps(options_.spool_dir);
  // Dumps that reached the spool: their manifests name them (a crash may come after the seal but
  // before the journal says DONE).
  std::map<std::string, std::pair<std::string, json>> sealed;
  for (const char* dir : {"ready", "done"}) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(options_.spool_dir / dir, ec)) {
      const std::string name = entry.path().filename().string();
      if (!name.ends_with(".json") || !storage::is_dump_file_name(name.substr(0, name.size() - 5))) continue;
      std::ifstream in(entry.path());
      const json m = json::parse(in, nullptr, false);
      if (m.is_object() && m.contains("dump") && m["dump"].is_object())
        sealed[m["dump"].value("id", "")] = {name.substr(0, name.size() - 5), m["dump"]};
    }
  }
  std::vector<DumpRecord> journal;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(options_.ring_dir / "dumps", ec)) {
    if (entry.path().extension() != ".json") continue;
    std::ifstream in(entry.path());
    const json j = json::parse(in, nullptr, false);
    if (j.is_object()) journal.push_back(DumpRecord::from_json(j));
  }
  std::sort(journal.begin(), journal.end(),
            [](const DumpRecord& a, const DumpRecord& b) { return a.requested_unix_ns < b.requested_unix_ns; });
  for (DumpRecord& d : journal) {
    if (d.state != DumpState::Started) continue;
    if (const auto it = sealed.find(d.id); it != sealed.end()) {
      d.state = DumpState::Done;
      d.file = it->second.first;
      d.slices = it->second.second.value("slices", std::uint64_t{0});
      d.missing_slices = it->second.second.value("missing_slices", std::uint64_t{0});
      spdlog::warn("ring dump {}: sealed as {} before the node stopped: DONE", d.id, d.file);
    } else {
      d.state = DumpState::Failed;
      d.error = "interrupted: the node stopped during the dump (its partial file, if any, is in spool/damaged/)";
      spdlog::warn("ring dump {} ({}): {}", d.id, d.reason, d.error);
    }
    try {
      write_atomically(options_.ring_dir / "dumps" / (d.id + ".json"), d.to_json().dump(2) + "\n", options_.fsync);
    } catch (const std::exception& e) {
      spdlog::warn("ring dump {}: cannot journal its state: {}", d.id, e.what());
    }
  }
  // The journal keeps the last 100 dumps; /status the last few.
  for (std::size_t i = 0; i + 100 < journal.size(); ++i) fs::remove(options_.ring_dir / "dumps" / (journal[i].id + ".json"), ec);
  const std::size_t first = journal.size() > kDumpsKept ? journal.size() - kDumpsKept : 0;
  dumps_.assign(journal.begin() + static_cast<std::ptrdiff_t>(first), journal.end());
}

std::vector<DumpRecord> RingService::dumps() const {
  std::lock_guard lock(mutex_);
  return {dumps_.begin(), dumps_.end()};
}

json RingService::status() const {
  const auto fill = ring_->fill();
  const auto c = ring_->counters();
  json skipped = json::object();
  for (std::size_t i = 0; i < kSkips; ++i) skipped[kSkipNames[i]] = skipped_[i].load();
  json s{{"dir", options_.ring_dir.string()},
         {"seconds", options_.settings.seconds},
         {"max_bytes", options_.settings.max_mb << 20},
         {"slices", fill.slices},
         {"bytes", fill.bytes},
         {"oldest_slice_utc", utc_or_empty(fill.oldest_ns)},
         {"newest_slice_utc", utc_or_empty(fill.newest_ns)},
         {"oldest_slice_ns", fill.oldest_ns},
         {"end_ns", fill.end_ns()},
         {"span_s", fill.slices == 0 ? 0.0 : static_cast<double>(fill.end_ns() - fill.oldest_ns) / 1e9},
         // How far the newest slice's end lags the node's clock (large for replayed data).
         {"age_s", fill.slices == 0 ? 0.0 : (static_cast<double>(dataflow::unix_now_ns()) - static_cast<double>(fill.end_ns())) / 1e9},
         {"queue_depth", queue_.size()},
         {"queue_slices", queue_.capacity()},
         {"offered", offered_.load()},
         {"stored", stored_.load()},
         {"skipped", skipped},
         {"evicted", {{"time", c.evicted_by_time}, {"space", c.evicted_by_space}, {"slots", c.evicted_by_slots}}},
         {"recovered_slices", c.recovered_slices},
         {"recovery_dropped_slices", c.recovery_dropped_slices}};
  std::lock_guard lock(mutex_);
  json list = json::array();
  for (const auto& d : dumps_) list.push_back(d.to_json());
  s["dumps"] = std::move(list);
  s["dumps_by_state"] = {{"STARTED", dumps_by_state_[0]}, {"DONE", dumps_by_state_[1]}, {"FAILED", dumps_by_state_[2]}};
  s["dumps_pending"] = pending_.size();
  s["interrupted_dumps_set_aside"] = set_aside_;
  return s;
}

void RingService::register_metrics(MetricsRegistry& registry) {
  registry.counter_callback("shoredaq_ring_slices_stored_total", "Slices written into the raw-data ring", {},
                            [this] { return stored_.load(); });
  registry.counter_callback("shoredaq_ring_bytes_stored_total", "Bytes written into the raw-data ring", {},
                            [this] { return ring_->counters().bytes_stored; });
  for (std::size_t i = 0; i < kSkips; ++i) {
    registry.counter_callback("shoredaq_ring_slices_skipped_total", "Slices the raw-data ring did not keep, by reason",
                              {{"reason", kSkipNames[i]}}, [this, i] { return skipped_[i].load(); });
  }
  registry.gauge_callback("shoredaq_ring_slices", "Slices held by the raw-data ring", {},
                          [this] { return static_cast<double>(ring_->fill().slices); });
  registry.gauge_callback("shoredaq_ring_bytes", "Bytes held by the raw-data ring", {},
                          [this] { return static_cast<double>(ring_->fill().bytes); });
  registry.gauge_callback("shoredaq_ring_span_seconds", "Detector time from the ring's oldest slice to its newest's end", {},
                          [this] {
                            const auto f = ring_->fill();
                            return f.slices == 0 ? 0.0 : static_cast<double>(f.end_ns() - f.oldest_ns) / 1e9;
                          });
  const std::array<const char*, 3> states{"started", "done", "failed"};
  for (std::size_t i = 0; i < states.size(); ++i) {
    registry.counter_callback("shoredaq_ring_dumps_total", "Raw-data dumps that reached a state (since start)",
                              {{"state", states[i]}}, [this, i] {
                                std::lock_guard lock(mutex_);
                                return dumps_by_state_[i];
                              });
  }
}

}  // namespace shoredaq::firmware
