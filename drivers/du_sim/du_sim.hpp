#pragma once
// What du-sim's source files share: the options, the stop flag, and the sinks built from the
// options. Not a public header: the program is main.cpp (simulation), replay.cpp (--replay) and
// sinks.cpp (ZeroMQ / UDP sinks).

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "shoredaq/drivers/feed_sink.hpp"
#include "shoredaq/drivers/udp_sender.hpp"

namespace du_sim {

extern std::atomic<bool> g_stop;  // set by SIGINT / SIGTERM

using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Options {
  std::string detx;
  std::string dus = "all";
  double seconds = 0;
  std::uint32_t slices = 0;
  double start_utc_s = -1;
  std::string out;
  std::string endpoint;
  std::string socket = "push";
  bool bind = false;
  int hwm = 1000;
  int linger_ms = 1000;
  std::size_t batch_bytes = 256 * 1024;
  bool realtime = false;
  std::string truth;
  bool progress = false;
  bool json = false;
  std::string replay;
  unsigned loops = 1;
  unsigned skip_slices = 0;  // --replay: the file's first slices left out (a DU that starts later)
  std::string curve_secret;  // this DU's CURVE secret key file
  std::string server_key;    // the node's CURVE public key file
  std::string udp;             // HOST:PORT for TTDC datagrams ("" = no UDP)
  std::string udp_monitoring;  // HOST:PORT for TMCH datagrams
  std::string udp_acoustic;    // HOST:PORT for TAES datagrams
  double udp_rate_limit = 0;   // datagrams/s; 0 = auto (see kAutoUdpRateLimit)
  double udp_byte_rate_limit = 0;  // bytes/s; 0 = none
  double udp_spread_ms = 90;   // real time: each slice's datagrams spread over this
};

// --udp-rate-limit 0 without --realtime: about 3 DU-equivalents (one DU-equivalent is ~16 500
// datagrams/s at MTU 1472), so a receiver on the same machine keeps up. With --realtime there is
// no limit by default: the per-slice spread paces the datagrams.
inline constexpr double kAutoUdpRateLimit = 50'000;

// The ZeroMQ sender of --endpoint (null without it).
std::unique_ptr<shoredaq::drivers::ZmqFeedSender> make_zmq_sender(const Options& o);
// The UDP sender of --udp / --udp-monitoring / --udp-acoustic (null without them).
std::unique_ptr<shoredaq::drivers::UdpFeedSender> make_udp_sender(const Options& o);
nlohmann::json udp_json(const shoredaq::drivers::UdpSendCounters& c);

// --replay: see replay.cpp. `header_bytes` of the file's datagrams (for the hit count).
int run_replay(const Options& o, std::size_t header_bytes);

}  // namespace du_sim
