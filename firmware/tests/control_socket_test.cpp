#include "shoredaq/firmware/control_socket.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>
#include <zmq.hpp>

using namespace shoredaq::firmware;
using nlohmann::json;

namespace {
json ask(const ControlDispatcher& d, const std::string& text) { return json::parse(d.handle(std::string_view(text))); }
}  // namespace

TEST(ControlDispatcher, DrivesRunControl) {
  RunControl rc;
  ControlDispatcher d(rc, [] { return json{{"counters", {{"slices", 5}}}, {"state", "overridden?"}}; });
  EXPECT_EQ(ask(d, R"({"cmd":"init"})"), (json{{"ok", true}, {"state", "Standby"}}));
  EXPECT_EQ(ask(d, R"({"cmd":"configure","detx":"/a.detx"})")["state"], "Ready");
  auto r = ask(d, R"({"cmd":"start","run":42})");
  EXPECT_EQ(r, (json{{"ok", true}, {"state", "Running"}, {"run", 42}}));
  auto s = ask(d, R"({"cmd":"status"})");
  EXPECT_EQ(s["state"], "Running");  // the status callback cannot override the state
  EXPECT_EQ(s["run"], 42);
  EXPECT_EQ(s["counters"]["slices"], 5);
  EXPECT_EQ(ask(d, R"({"cmd":"stop"})")["state"], "Standby");
}

TEST(ControlDispatcher, RefusalsCarryTheState) {
  RunControl rc;
  ControlDispatcher d(rc);
  auto r = ask(d, R"({"cmd":"start","run":1})");
  EXPECT_FALSE(r["ok"].get<bool>());
  EXPECT_EQ(r["state"], "Idle");
  EXPECT_NE(r["error"].get<std::string>().find("Idle"), std::string::npos);
  ASSERT_TRUE(ask(d, R"({"cmd":"init"})")["ok"].get<bool>());
  ASSERT_TRUE(ask(d, R"({"cmd":"configure"})")["ok"].get<bool>());
  for (const char* bad : {R"({"cmd":"start"})", R"({"cmd":"start","run":0})", R"({"cmd":"start","run":-3})",
                          R"({"cmd":"start","run":"7"})", R"({"cmd":"start","run":4294967296})",
                          R"({"cmd":"start","run":1.5})"}) {
    auto b = ask(d, bad);
    EXPECT_FALSE(b["ok"].get<bool>()) << bad;
    EXPECT_EQ(b["state"], "Ready") << bad;
  }
  EXPECT_EQ(rc.state(), RunState::Ready);
}

TEST(ControlDispatcher, MalformedRequests) {
  RunControl rc;
  ControlDispatcher d(rc);
  for (const char* bad : {"", "{", "[]", "42", R"({"cmd":7})", R"({"command":"init"})", R"({"cmd":"fly"})",
                          R"({"cmd":"configure","detx":5})", "\xff\xfe"}) {
    auto r = ask(d, bad);
    EXPECT_FALSE(r["ok"].get<bool>()) << bad;
    EXPECT_EQ(r["state"], "Idle") << bad;
    EXPECT_TRUE(r["error"].is_string());
  }
  EXPECT_FALSE(ask(d, std::string(kMaxControlRequestBytes + 1, ' '))["ok"].get<bool>());
}

TEST(ControlServer, RequestReplyOverIpcAndTimeout) {
  const auto dir = std::filesystem::temp_directory_path() / ("shoredaq-ctl-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string endpoint = "ipc://" + (dir / "run" / "control.sock").string();
  zmq::context_t ctx(1);
  RunControl rc;
  ControlDispatcher d(rc);
  {
    ControlServer server(ctx, endpoint, [&](std::string_view t) { return d.handle(t); });
    EXPECT_EQ(server.endpoint(), endpoint);
    auto r = control_request(endpoint, {{"cmd", "init"}}, std::chrono::milliseconds(2000));
    EXPECT_EQ(r["state"], "Standby");
    r = control_request(endpoint, {{"cmd", "pause"}}, std::chrono::milliseconds(2000));
    EXPECT_FALSE(r["ok"].get<bool>());
    EXPECT_EQ(r["state"], "Standby");
    EXPECT_EQ(server.requests_served(), 2u);
  }
  // Nobody serves the endpoint any more: a clear timeout, not a hang.
  EXPECT_THROW(control_request(endpoint, {{"cmd", "status"}}, std::chrono::milliseconds(200)), ControlTimeout);
  std::filesystem::remove_all(dir);
}

TEST(ControlServer, TcpEphemeralPort) {
  zmq::context_t ctx(1);
  ControlServer server(ctx, "tcp://127.0.0.1:*", [](std::string_view) { return std::string(R"({"ok":true})"); });
  EXPECT_NE(server.endpoint().find("tcp://127.0.0.1:"), std::string::npos);
  EXPECT_TRUE(control_request(server.endpoint(), {{"cmd", "status"}}, std::chrono::milliseconds(2000))["ok"].get<bool>());
}

// stop drains on a background thread: status is answered meanwhile (draining), another command
// is refused with the state, and the stop's own client gets its reply when the drain is done.
TEST(ControlServer, StatusIsAnsweredWhileStopDrains) {
  std::mutex m;
  std::condition_variable cv;
  bool release = false, draining = false;
  RunControlHooks hooks;
  hooks.stop = [&] {
    std::unique_lock lock(m);
    draining = true;
    cv.notify_all();
    cv.wait_for(lock, std::chrono::seconds(20), [&] { return release; });
  };
  RunControl rc(hooks);
  ControlDispatcher d(rc);
  ASSERT_TRUE(rc.init().ok && rc.configure({}).ok && rc.start(3).ok);
  zmq::context_t context(1);
  const auto dir = std::filesystem::temp_directory_path() / ("shoredaq-ctl-drain-" + std::to_string(::getpid()));
  ControlServerOptions options;
  options.classify = classify_control_request;
  options.busy_reply = [&d] { return d.busy_reply(); };
  ControlServer server(context, "ipc://" + (dir / "control.sock").string(),
                       [&d](std::string_view r) { return d.handle(r); }, std::move(options));

  json stop_reply;
  std::thread stopper([&] {
    try {
      stop_reply = control_request(server.endpoint(), json{{"cmd", "stop"}}, std::chrono::seconds(30));
    } catch (const std::exception& e) {
      stop_reply = json{{"exception", e.what()}};
    }
  });
  {
    std::unique_lock lock(m);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return draining; }));
  }
  const json status = control_request(server.endpoint(), json{{"cmd", "status"}}, std::chrono::seconds(2));
  EXPECT_EQ(status["state"], "Running");
  EXPECT_EQ(status["draining"], true);
  const json refused = control_request(server.endpoint(), json{{"cmd", "reset"}}, std::chrono::seconds(2));
  EXPECT_EQ(refused["ok"], false);
  EXPECT_EQ(refused["state"], "Running");
  EXPECT_EQ(refused["busy_with"], "stop");
  EXPECT_EQ(server.requests_refused_busy(), 1u);
  {
    std::lock_guard lock(m);
    release = true;
  }
  cv.notify_all();
  stopper.join();
  EXPECT_EQ(stop_reply["ok"], true);
  EXPECT_EQ(stop_reply["state"], "Standby");
  const json after = control_request(server.endpoint(), json{{"cmd", "status"}}, std::chrono::seconds(2));
  EXPECT_FALSE(after.contains("draining"));
  server.stop();
  std::filesystem::remove_all(dir);
}
