// The control socket under hostile or clumsy clients: duplicate keys, oversized requests, a refused
// command racing a valid one, a slow configure, the socket file's mode and who may use it.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>
#include <zmq.hpp>

#include "shoredaq/firmware/control_socket.hpp"

using namespace shoredaq::firmware;
using nlohmann::json;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

namespace {

json ask(const ControlDispatcher& d, const std::string& text) { return json::parse(d.handle(std::string_view(text))); }

fs::path scratch(const char* tag) {
  const auto dir = fs::temp_directory_path() /
                   (std::string("shoredaq-") + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}()));
  fs::create_directories(dir);
  return dir;
}

// A latch the test releases; waits are bounded so a bug fails the test instead of hanging it.
struct Gate {
  std::mutex m;
  std::condition_variable cv;
  bool entered = false, released = false;
  void enter_and_wait() {
    std::unique_lock lock(m);
    entered = true;
    cv.notify_all();
    cv.wait_for(lock, std::chrono::seconds(20), [&] { return released; });
  }
  bool wait_entered() {
    std::unique_lock lock(m);
    return cv.wait_for(lock, std::chrono::seconds(10), [&] { return entered; });
  }
  void release() {
    std::lock_guard lock(m);
    released = true;
    cv.notify_all();
  }
};

ControlServerOptions node_like_options(const ControlDispatcher& d) {
  ControlServerOptions o;
  o.classify = classify_control_request;
  o.busy_reply = [&d] { return d.busy_reply(); };
  o.refuse_now = [&d](std::string_view r) { return d.refusal_for_state(r); };
  return o;
}

}  // namespace

// nlohmann keeps the last of two equal keys: {"cmd":"status","cmd":"quit"} used to quit the node.
TEST(ControlHardening, DuplicateKeysAreRefused) {
  RunControl rc;
  ControlDispatcher d(rc);
  auto r = ask(d, R"({"cmd":"status","cmd":"quit"})");
  EXPECT_FALSE(r["ok"].get<bool>());
  EXPECT_THAT(r["error"].get<std::string>(), HasSubstr("\"cmd\" more than once"));
  EXPECT_EQ(rc.state(), RunState::Idle);
  ASSERT_TRUE(rc.init().ok);
  r = ask(d, R"({"cmd":"configure","detx":"/a.detx","detx":"/b.detx"})");
  EXPECT_FALSE(r["ok"].get<bool>());
  EXPECT_EQ(rc.state(), RunState::Standby);
  EXPECT_EQ(classify_control_request(R"({"cmd":"status","cmd":"quit"})"), ControlRequestKind::Immediate);
  // Equal keys in different objects are fine.
  EXPECT_TRUE(ask(d, R"({"cmd":"configure","x":{"cmd":1}})")["ok"].get<bool>());
}

// Over 64 KiB a request used to cut the connection (ZMQ_MAXMSGSIZE): now it gets an answer.
TEST(ControlHardening, OversizedRequestIsAnsweredWithAnError) {
  RunControl rc;
  ControlDispatcher d(rc);
  zmq::context_t context(1);
  const auto dir = scratch("ctl-big");
  ControlServer server(context, "ipc://" + (dir / "control.sock").string(), [&d](std::string_view r) { return d.handle(r); },
                       node_like_options(d));
  const json big{{"cmd", "configure"}, {"detx", std::string(200 * 1024, 'x')}};
  const json r = control_request(server.endpoint(), big, std::chrono::seconds(5));
  EXPECT_FALSE(r["ok"].get<bool>());
  EXPECT_THAT(r["error"].get<std::string>(), HasSubstr("larger than 64 KiB"));
  // ... and the socket still serves.
  EXPECT_EQ(control_request(server.endpoint(), json{{"cmd", "status"}}, std::chrono::seconds(5))["state"], "Idle");
  server.stop();
  fs::remove_all(dir);
}

// A stop the state does not allow used to take the background slot before its state check, so a
// valid command sent alongside got "busy". The server's handler blocks on "stop" here: if the stop
// reached it, the start would be refused as busy.
TEST(ControlHardening, RefusedCommandDoesNotTakeTheBackgroundSlot) {
  RunControl rc;
  ControlDispatcher d(rc);
  ASSERT_TRUE(rc.init().ok && rc.configure({}).ok);
  Gate gate;
  zmq::context_t context(1);
  const auto dir = scratch("ctl-race");
  ControlServer server(
      context, "ipc://" + (dir / "control.sock").string(),
      [&](std::string_view r) {
        if (r.find("\"stop\"") != std::string_view::npos) gate.enter_and_wait();
        return d.handle(r);
      },
      node_like_options(d));
  const json stop = control_request(server.endpoint(), json{{"cmd", "stop"}}, std::chrono::seconds(5));
  EXPECT_FALSE(stop["ok"].get<bool>());
  EXPECT_EQ(stop["state"], "Ready");
  EXPECT_THAT(stop["error"].get<std::string>(), HasSubstr("not allowed in state Ready"));
  const json start = control_request(server.endpoint(), json{{"cmd", "start"}, {"run", 5}}, std::chrono::seconds(5));
  EXPECT_TRUE(start["ok"].get<bool>()) << start.dump();
  EXPECT_EQ(rc.state(), RunState::Running);
  EXPECT_EQ(server.requests_refused_busy(), 0u);
  gate.release();
  server.stop();
  fs::remove_all(dir);
}

// configure reads operator-named files: it runs off the server thread, so status stays answered.
TEST(ControlHardening, StatusIsAnsweredWhileConfigureRuns) {
  Gate gate;
  RunControlHooks hooks;
  hooks.configure = [&](const ConfigureRequest&) { gate.enter_and_wait(); };
  RunControl rc(hooks);
  ControlDispatcher d(rc);
  ASSERT_TRUE(rc.init().ok);
  zmq::context_t context(1);
  const auto dir = scratch("ctl-configure");
  ControlServer server(context, "ipc://" + (dir / "control.sock").string(), [&d](std::string_view r) { return d.handle(r); },
                       node_like_options(d));
  json configure_reply;
  std::thread configurer([&] {
    configure_reply = control_request(server.endpoint(), json{{"cmd", "configure"}}, std::chrono::seconds(30));
  });
  ASSERT_TRUE(gate.wait_entered());
  const json status = control_request(server.endpoint(), json{{"cmd", "status"}}, std::chrono::seconds(2));
  EXPECT_EQ(status["state"], "Standby");
  const json busy = control_request(server.endpoint(), json{{"cmd", "configure"}}, std::chrono::seconds(2));
  EXPECT_FALSE(busy["ok"].get<bool>());
  EXPECT_EQ(busy["busy_with"], "configure");
  EXPECT_FALSE(busy.contains("draining"));
  gate.release();
  configurer.join();
  EXPECT_TRUE(configure_reply["ok"].get<bool>());
  EXPECT_EQ(configure_reply["state"], "Ready");
  server.stop();
  fs::remove_all(dir);
}

// The unit's UMask=0027 made the socket srwxr-x---: operators in the group could not connect.
TEST(ControlHardening, IpcSocketModeIsSetExplicitly) {
  RunControl rc;
  ControlDispatcher d(rc);
  zmq::context_t context(1);
  const auto dir = scratch("ctl-mode");
  const mode_t old_umask = ::umask(0027);
  ControlServerOptions options = node_like_options(d);
  options.ipc_mode = 0660;
  ControlServer server(context, "ipc://" + (dir / "control.sock").string(), [&d](std::string_view r) { return d.handle(r); },
                       std::move(options));
  ::umask(old_umask);
  struct stat st {};
  ASSERT_EQ(::stat((dir / "control.sock").c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  server.stop();
  fs::remove_all(dir);
}

// shorectl tells "no daemon" and "permission denied" apart before it sends anything.
TEST(ControlHardening, UnreachableIpcSocketIsExplained) {
  const auto dir = scratch("ctl-access");
  const std::string endpoint = "ipc://" + (dir / "control.sock").string();
  auto missing = ipc_endpoint_problem(endpoint);
  ASSERT_TRUE(missing.has_value());
  EXPECT_THAT(*missing, HasSubstr("no control socket at"));
  // A missing socket may be a daemon still starting: waited for, then named in the timeout.
  try {
    control_request(endpoint, json{{"cmd", "status"}}, std::chrono::milliseconds(200));
    ADD_FAILURE() << "no timeout";
  } catch (const ControlUnreachable&) {
    ADD_FAILURE() << "a missing socket is not a permission problem";
  } catch (const ControlTimeout& e) {
    EXPECT_THAT(e.what(), HasSubstr("no control socket at"));
  }
  EXPECT_FALSE(ipc_endpoint_problem("tcp://127.0.0.1:1").has_value());

  RunControl rc;
  ControlDispatcher d(rc);
  zmq::context_t context(1);
  ControlServerOptions options = node_like_options(d);
  options.ipc_mode = 0600;  // owner only
  ControlServer server(context, endpoint, [&d](std::string_view r) { return d.handle(r); }, std::move(options));
  EXPECT_FALSE(ipc_endpoint_problem(endpoint).has_value());  // the owner may
  // Another user may not: checked in a child that gives up root (root passes every access check).
  fs::permissions(dir, fs::perms::owner_all | fs::perms::others_exec, fs::perm_options::replace);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(fds[0]);
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(3);
    const auto problem = ipc_endpoint_problem(endpoint);
    const std::string text = problem.value_or("");
    if (::write(fds[1], text.data(), text.size()) < 0) ::_exit(4);
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string text;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_THAT(text, HasSubstr("permission denied on the control socket"));
  EXPECT_THAT(text, HasSubstr("mode 0600"));

  server.stop();
  fs::remove_all(dir);
}
