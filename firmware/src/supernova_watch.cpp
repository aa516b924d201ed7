#include "shoredaq/firmware/supernova_watch.hpp"

#include <spdlog/spdlog.h>

#include <ctime>

#include "shoredaq/dataflow/zmq_ingest.hpp"  // unix_now_ns

namespace shoredaq::firmware {
namespace {

nlohmann::json alert_json(const filters::SupernovaAlert& a) {
  return {{"run", a.run},
          {"frame_index", a.frame_index},
          {"step_time_ns", a.step_time_ns},
          {"neutrino_time_ns", a.neutrino_time_ns},
          {"window_count", a.window_count},
          {"baseline_count", a.baseline_count},
          {"p_value", a.p_value},
          {"significance_sigma", a.significance_sigma},
          {"false_alarm_rate_per_day", a.false_alarm_rate_per_day},
          {"effective_doms", a.effective_doms}};
}

}  // namespace

std::string iso_utc_ns(std::uint64_t unix_ns) {
  const auto seconds = static_cast<std::time_t>(unix_ns / 1'000'000'000ull);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[64];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%09llu", utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday,
                utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<unsigned long long>(unix_ns % 1'000'000'000ull));
  return text;
}

std::string snews_alert_message(const filters::SupernovaAlert& a, std::int32_t detector_id, bool is_test,
                                std::uint64_t machine_time_unix_ns) {
  nlohmann::json m = {{"detector_name", "KM3NeT"},
                      {"machine_time", iso_utc_ns(machine_time_unix_ns)},
                      {"neutrino_time", iso_utc_ns(a.neutrino_time_ns)},
                      {"p_val", a.p_value},
                      {"is_test", is_test},
                      {"meta", alert_json(a)}};
  m["meta"]["detector_id"] = detector_id;
  return m.dump();
}

std::string snews_heartbeat_message(bool on, bool is_test, std::uint64_t machine_time_unix_ns, nlohmann::json meta) {
  const nlohmann::json m = {{"detector_name", "KM3NeT"},
                            {"machine_time", iso_utc_ns(machine_time_unix_ns)},
                            {"detector_status", on ? "ON" : "OFF"},
                            {"is_test", is_test},
                            {"meta", std::move(meta)}};
  return m.dump();
}

std::string SupernovaWatch::heartbeat_message(bool on, std::uint32_t run) const {
  nlohmann::json meta = {{"run", run},
                         {"detector_id", detector_id_},
                         {"sequence", heartbeats_on_ + heartbeats_off_},
                         {"alerts", monitor_.counters().alerts},
                         {"frame_index", nullptr},
                         {"detector_time", nullptr},
                         {"effective_doms", nullptr},
                         {"significance_sigma", nullptr},
                         {"false_alarm_rate_per_day", nullptr}};
  if (last_) {
    meta["frame_index"] = last_->frame_index;
    meta["detector_time"] = iso_utc_ns(last_->slice_start_ns);
    meta["effective_doms"] = last_->effective_doms;
    // Only a step with a full baseline has a significance.
    if (last_->ready) {
      meta["significance_sigma"] = last_->significance_sigma;
      meta["false_alarm_rate_per_day"] = last_->false_alarm_rate_per_day;
    }
  }
  return snews_heartbeat_message(on, is_test_, dataflow::unix_now_ns(), std::move(meta));
}

std::optional<std::string> SupernovaWatch::heartbeat(std::uint32_t run) {
  std::lock_guard lock(mutex_);
  if (heartbeat_period_ns_ == 0 || !last_) return std::nullopt;
  const std::uint64_t now_ns = last_->slice_start_ns;
  if (next_heartbeat_ns_ && now_ns < *next_heartbeat_ns_) return std::nullopt;
  next_heartbeat_ns_ = now_ns + heartbeat_period_ns_;
  last_heartbeat_detector_ns_ = now_ns;
  std::string message = heartbeat_message(true, run);
  ++heartbeats_on_;
  return message;
}

std::optional<std::string> SupernovaWatch::final_heartbeat(std::uint32_t run) {
  std::lock_guard lock(mutex_);
  if (heartbeats_on_ == 0 || heartbeats_off_ != 0) return std::nullopt;
  std::string message = heartbeat_message(false, run);
  ++heartbeats_off_;
  return message;
}

std::optional<std::string> SupernovaWatch::observe(const filters::FilterResult& result) {
  if (!result.supernova) return std::nullopt;  // the run setup turned the search off
  std::lock_guard lock(mutex_);
  filters::SupernovaStep step = monitor_.observe(*result.supernova);
  if (step.out_of_order) return std::nullopt;
  std::optional<std::string> message;
  if (step.ready) max_significance_sigma_ = std::max(max_significance_sigma_, step.significance_sigma);
  if (step.alert) {
    const auto& a = *step.alert;
    spdlog::warn("supernova candidate in run {} at frame {}: {} coincidences in the window against {:.2f} expected "
                 "(p = {:.3g}, {:.1f} sigma, {} DOMs, false-alarm rate {:.3g} per day)",
                 a.run, a.frame_index, a.window_count, a.baseline_count, a.p_value, a.significance_sigma,
                 a.effective_doms, a.false_alarm_rate_per_day);
    alerts_.push_back(a);
    if (alerts_.size() > kAlertsKept) alerts_.pop_front();
    message = snews_alert_message(a, detector_id_, is_test_, dataflow::unix_now_ns());
  }
  last_ = std::move(step);
  return message;
}

nlohmann::json SupernovaWatch::to_json() const {
  std::lock_guard lock(mutex_);
  const auto& s = monitor_.settings();
  nlohmann::json j = {{"settings",
                       {{"min_multiplicity", s.min_multiplicity},
                        {"max_multiplicity", s.max_multiplicity},
                        {"correlated_veto_window_ns", s.correlated_veto_window_ns},
                        {"window_ms", s.window_ms},
                        {"baseline_s", s.baseline_s},
                        {"alert_threshold_sigma", s.alert_threshold_sigma}}},
                      {"max_significance_sigma", max_significance_sigma_},
                      {"step", nullptr}};
  if (last_) {
    const auto& t = *last_;
    j["step"] = {{"frame_index", t.frame_index},
                 {"ready", t.ready},
                 {"effective_doms", t.effective_doms},
                 {"doms_excluded",
                  {{"missing", t.doms_missing}, {"incomplete", t.doms_incomplete}, {"high_rate", t.doms_high_rate},
                   {"burst", t.doms_burst}}},
                 {"coincidences", t.slice_count},
                 {"coincidences_vetoed", {{"triggered", t.slice_vetoed_triggered}, {"correlated", t.slice_vetoed_correlated}}},
                 {"window_count", t.window_count},
                 {"baseline_count", t.baseline_count},
                 {"p_value", t.p_value},
                 {"significance_sigma", t.significance_sigma},
                 {"false_alarm_rate_per_day", t.false_alarm_rate_per_day},
                 {"dispersion", t.dispersion}};
  }
  j["heartbeats"] = {{"period_s", static_cast<double>(heartbeat_period_ns_) * 1e-9},
                     {"on_sent", heartbeats_on_},
                     {"off_sent", heartbeats_off_},
                     {"last_detector_time", heartbeats_on_ == 0 ? nlohmann::json(nullptr)
                                                                : nlohmann::json(iso_utc_ns(last_heartbeat_detector_ns_))}};
  j["alerts"] = nlohmann::json::array();
  for (const auto& a : alerts_) j["alerts"].push_back(alert_json(a));
  return j;
}

std::optional<filters::SupernovaStep> SupernovaWatch::latest() const {
  std::lock_guard lock(mutex_);
  return last_;
}

void SupernovaWatch::describe(dataflow::CounterSet& out) const {
  std::lock_guard lock(mutex_);
  const auto& c = monitor_.counters();
  out.total("supernova", "slices", c.slices);
  out.total("supernova", "steps_ready", c.steps_ready);
  out.total("supernova", "alerts", c.alerts);
  out.total("supernova", "alerts_suppressed", c.alerts_suppressed);
  out.total("supernova", "dom_slices_burst", c.dom_slices_burst);
  // In-band coincidences: kept, or left out as muon-like (a triggered hit, or correlated DOMs).
  out.total("supernova", "coincidences_kept", c.coincidences_kept);
  out.total("supernova", "coincidences_vetoed_triggered", c.coincidences_vetoed_triggered);
  out.total("supernova", "coincidences_vetoed_correlated", c.coincidences_vetoed_correlated);
  out.total("supernova", "slices_missing", c.slices_missing);
  // SNEWS heartbeats made ("ON" per period, "OFF" at stop); what each output did with them is its own count.
  out.total("supernova", "heartbeats", heartbeats_on_ + heartbeats_off_);
  // Not data loss: a slice the monitor had already passed is left out of the SN statistic only.
  out.drop("supernova", "slices_out_of_order", c.slices_out_of_order, dataflow::LossUnit::NotLoss);
}

void register_supernova_metrics(MetricsRegistry& registry,
                                std::function<std::optional<filters::SupernovaStep>()> latest_step) {
  using Read = double (*)(const filters::SupernovaStep&);
  const auto add = [&](const char* name, const char* help, Read read) {
    registry.gauge_callback(name, help, {}, [latest_step, read] {
      const auto step = latest_step();
      return step && step->ready ? read(*step) : 0.0;
    });
  };
  add("shoredaq_supernova_ready", "1 once the supernova baseline is long enough for a significance",
      [](const filters::SupernovaStep&) { return 1.0; });  // add() reads 0 for a step not ready
  add("shoredaq_supernova_significance_sigma", "Supernova search: Gaussian-equivalent significance of the latest step",
      [](const filters::SupernovaStep& s) { return s.significance_sigma; });
  add("shoredaq_supernova_window_count", "Supernova search: kept coincidences in the sliding window (N)",
      [](const filters::SupernovaStep& s) { return static_cast<double>(s.window_count); });
  add("shoredaq_supernova_baseline_count", "Supernova search: expected background in the window from the baseline (B)",
      [](const filters::SupernovaStep& s) { return s.baseline_count; });
  add("shoredaq_supernova_dispersion", "Supernova search: variance / mean of the baseline's window counts (1 = Poisson)",
      [](const filters::SupernovaStep& s) { return s.dispersion; });
  add("shoredaq_supernova_effective_doms", "Supernova search: DOMs included in the latest slice",
      [](const filters::SupernovaStep& s) { return static_cast<double>(s.effective_doms); });
  add("shoredaq_supernova_false_alarm_rate_per_day", "Supernova search: false alerts per day expected at the threshold",
      [](const filters::SupernovaStep& s) { return s.false_alarm_rate_per_day; });
}

}  // namespace shoredaq::firmware
