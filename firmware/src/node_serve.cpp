// The Node facade and the daemon's main loop: serve() binds the control socket, the dispatcher
// and the HTTP endpoints, answers signals and feeds the watchdog until quit; node.cpp holds the
// run-control hooks it serves.
#include "shoredaq/firmware/node.hpp"

#include <pthread.h>
#include <signal.h>

#include <spdlog/spdlog.h>

#include <thread>

#include "node_impl.hpp"
#include "shoredaq/firmware/control_socket.hpp"

namespace shoredaq::firmware {

// SIGTERM/SIGINT arrive here (blocked in every other thread): a graceful stop + quit.
void Node::Impl::signal_loop() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  const timespec poll{0, 100'000'000};
  while (!exit_requested.load()) {
    const int sig = sigtimedwait(&set, nullptr, &poll);
    if (sig == SIGTERM || sig == SIGINT) {
      spdlog::info("{}: stopping and quitting", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      const auto r = run_control.quit();
      if (!r.ok) {
        spdlog::error("quit on signal: {}", r.error);
        exit_code = 1;
        exit_requested.store(true);
      }
    }
  }
}

Node::Node(NodeConfig config, NodeOptions options) : impl_(std::make_unique<Impl>(std::move(config), std::move(options))) {}
Node::~Node() = default;

RunControl& Node::run_control() noexcept { return impl_->run_control; }

nlohmann::json Node::status() const { return impl_->status(); }

int Node::serve() {
  // Block the stop signals before any thread starts, so only the signal thread takes them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  Impl& im = *impl_;
  ControlDispatcher dispatcher(im.run_control, [this] { return status(); },
                              [&im](const nlohmann::json& request) { return im.request_dump(request); });
  // Key files and allow-lists are read before anything binds: a bad key stops the start here.
  try {
    im.start_security();
  } catch (const std::exception& e) {
    spdlog::critical("cannot set up CURVE: {}", e.what());
    return 1;
  }
  // Seal what a crash left in the spool's open/ now; a spool that cannot open yet (e.g. its folder
  // is not there before the first init) is retried at init.
  try {
    im.open_spool();
  } catch (const std::exception& e) {
    spdlog::error("Tier-0 spool {} not opened at start-up (retried at init): {}", im.config.spool_dir().string(), e.what());
  }
  try {
    im.start_dispatcher();
  } catch (const std::exception& e) {
    spdlog::critical("cannot start the ControlHost dispatcher on {}:{}: {}", im.config.dispatcher.address,
                     im.config.dispatcher.port, e.what());
    return 1;
  }
  std::unique_ptr<ControlServer> server;
  try {
    ControlServerOptions options;
    if (im.config.control_curve()) options.curve = ControlCurveServer{*im.curve_keys, im.zap.get(), "control"};
    options.classify = classify_control_request;  // configure/stop/quit on a background thread
    options.busy_reply = [&dispatcher] { return dispatcher.busy_reply(); };
    options.refuse_now = [&dispatcher](std::string_view request) { return dispatcher.refusal_for_state(request); };
    options.ipc_mode = im.config.control.socket_mode;
    server = std::make_unique<ControlServer>(im.context, im.config.control_endpoint(),
                                             [&dispatcher](std::string_view request) { return dispatcher.handle(request); },
                                             std::move(options));
  } catch (const std::exception& e) {
    spdlog::critical("cannot bind the control socket {}: {}", im.config.control_endpoint(), e.what());
    return 1;
  }
  spdlog::info("control socket on {}", server->endpoint());

  std::unique_ptr<HttpServer> http;
  if (im.config.metrics.enabled) {
    im.register_metrics();
    HttpServerOptions options;
    options.address = im.config.metrics.listen_address;
    options.port = static_cast<std::uint16_t>(im.config.metrics.port);
    options.max_connections = im.config.metrics.max_connections;
    options.request_timeout = std::chrono::milliseconds(im.config.metrics.request_timeout_ms);
    http = std::make_unique<HttpServer>(
        options, im.registry,
        [this] {
          auto s = status();
          s["state"] = std::string(to_string(impl_->run_control.state()));
          if (auto r = impl_->run_control.run()) s["run"] = *r;
          // For the live page: its trigger-rate chart and the Tier-0 transfer agent's state.
          s["trigger_rates"] = impl_->trigger_history.to_json();
          s["transfer"] = impl_->transfer_status();
          return s.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        },
        [this] { return impl_->health(); }, im.page_routes());
    try {
      http->start();
    } catch (const std::exception& e) {
      spdlog::critical("{}", e.what());
      return 1;
    }
    spdlog::info("metrics on {}/metrics", http->url());
    spdlog::info("live page on {}/", http->url());
  }

  std::thread signals([this] { impl_->signal_loop(); });
  // READY=1 only now: the control socket is bound (clients may connect as soon as they see it).
  im.notifier.ready("shoredaq: Idle");

  // Back to the operator's last order after a restart (e.g. Running: the next run starts).
  if (im.config.run.resume_after_restart) im.resume_if_desired();

  // The systemd watchdog is fed only while the node is alive and its pipeline makes progress.
  std::unique_ptr<Watchdog> watchdog;
  if (auto period = Watchdog::ping_period_for(im.notifier)) {
    watchdog = std::make_unique<Watchdog>(im.notifier, *period, [this] { return impl_->watchdog_healthy(); });
    watchdog->start();
  }
  // The main thread keeps the loss monitor sampled, so /healthz and `alarm` judge a fresh window.
  // It also samples the trigger rates the live page charts.
  auto next_loss_sample = std::chrono::steady_clock::now();
  auto next_trigger_sample = next_loss_sample;
  while (!im.exit_requested.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_loss_sample) {
      im.sample_loss();
      next_loss_sample += std::chrono::seconds(1);
    }
    if (http && now >= next_trigger_sample) {
      im.sample_trigger_rates();
      next_trigger_sample += Impl::trigger_sample_period;
    }
  }
  signals.join();
  im.notifier.stopping("shoredaq: quitting");
  // The quit reply was sent in the server thread's current iteration; stop() joins after it.
  server->stop();
  server.reset();
  if (watchdog) watchdog->stop();
  if (http) http->stop();
  im.shutdown();
  spdlog::info("quit");
  return im.exit_code.load();
}

}  // namespace shoredaq::firmware
