// HIL: ZeroMQ CURVE end to end (issue 5, section 6). `shorectl keygen` writes key files with strict
// modes and never overwrites; the daemon with a tcp:// control endpoint answers only shorectl
// clients whose key is allow-listed; a CURVE ingest takes data from an allow-listed DU key and
// refuses (and counts in /metrics) an unknown one, while the plain ipc:// control socket on the
// same zmq context keeps working.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <regex>
#include <zmq.hpp>

#include "hil_support.hpp"
#include "shoredaq/firmware/security.hpp"

using namespace hil;
namespace sf = shoredaq::firmware;

namespace {

unsigned mode_of(const fs::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777u;
}

// A loopback TCP endpoint free right now (libzmq picks the port, then lets it go).
std::string free_tcp_endpoint() {
  zmq::context_t ctx(1);
  zmq::socket_t probe(ctx, zmq::socket_type::pull);
  probe.set(zmq::sockopt::linger, 0);
  probe.bind("tcp://127.0.0.1:*");
  return probe.get(zmq::sockopt::last_endpoint);
}

// The first match of `pattern`'s group 1 in the daemon's log, waited for ("" at the deadline).
// The value of one exactly named series in Prometheus text (-1 when absent).
double series_value(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

Result keygen(const TempDir& tmp, const std::vector<std::string>& args) {
  std::vector<std::string> argv{program("shorectl"), "keygen"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, tmp.path(), 20s);
}

}  // namespace

TEST(HilCurve, KeygenWritesStrictFilesAndNeverOverwrites) {
  if (!sf::curve_available()) GTEST_SKIP() << "libzmq without CURVE";
  TempDir tmp("curve-keygen");
  const fs::path base = tmp / "node";
  const Result r = keygen(tmp, {base.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  const fs::path secret = tmp / "node.secret", pub = tmp / "node.pub";
  EXPECT_EQ(mode_of(secret), 0600u);
  EXPECT_EQ(mode_of(pub), 0644u);
  const sf::CurveKeyPair keys = sf::read_secret_key_file(secret);
  EXPECT_TRUE(sf::is_curve_key(keys.secret_key));
  EXPECT_EQ(sf::read_public_key_file(pub), keys.public_key);
  EXPECT_NE(r.out.find(keys.public_key), std::string::npos) << r.out;

  // A second keygen on the same name must not replace the key pair.
  const std::string secret_before = read_file(secret), pub_before = read_file(pub);
  const Result again = keygen(tmp, {base.string()});
  EXPECT_EQ(again.code, 1);
  EXPECT_NE(again.err.find("node.secret"), std::string::npos) << again.err;
  EXPECT_EQ(read_file(secret), secret_before);
  EXPECT_EQ(read_file(pub), pub_before);

  // Explicit file names; a pair differing from the first one.
  const Result named = keygen(tmp, {"--secret", (tmp / "a.key").string(), "--public", (tmp / "a.pubkey").string()});
  ASSERT_EQ(named.code, 0) << named.err;
  EXPECT_EQ(mode_of(tmp / "a.key"), 0600u);
  EXPECT_NE(sf::read_secret_key_file(tmp / "a.key").public_key, keys.public_key);
  EXPECT_EQ(keygen(tmp, {}).code, 3);  // neither a name nor files: usage
}

TEST(HilCurve, TcpControlEndpointAnswersOnlyAllowListedClients) {
  if (!sf::curve_available()) GTEST_SKIP() << "libzmq without CURVE";
  TempDir tmp("curve-control");
  for (const char* name : {"node", "operator", "stranger"}) ASSERT_EQ(keygen(tmp, {(tmp / name).string()}).code, 0);
  fs::create_directories(tmp / "clients.d");
  fs::copy_file(tmp / "operator.pub", tmp / "clients.d" / "operator.pub");
  NodeSetup node;
  node.dir = tmp.path();
  node.control = "tcp://127.0.0.1:*";
  fs::create_directories(tmp / "run");
  write_file(node.config(), "[node]\nstate_dir = \"" + node.state_dir().string() + "\"\nruntime_dir = \"" +
                                (tmp / "run").string() + "\"\nworkers = 1\n"
                                "[ingest]\nendpoints = [\"ipc://" + (tmp / "run/ingest.sock").string() + "\"]\n"
                                "[control]\nendpoint = \"" + node.control + "\"\ncurve_allowed_keys = \"" +
                                (tmp / "clients.d").string() + "\"\n"
                                "[metrics]\nenabled = true\nport = 0\n"
                                "[security]\nserver_secret_key_file = \"" + (tmp / "node.secret").string() + "\"\n");
  Child daemon({program("shoredaq"), "--config", node.config().string()}, tmp / "shoredaq.out", tmp / "shoredaq.err");
  node.control = from_log(daemon, R"(control socket on (tcp://127\.0\.0\.1:[0-9]+))");
  ASSERT_FALSE(node.control.empty()) << daemon.err();
  const int metrics_port = std::stoi("0" + from_log(daemon, R"(metrics on http://127\.0\.0\.1:([0-9]+))"));
  ASSERT_GT(metrics_port, 0) << daemon.err();

  const auto with_keys = [&](const std::string& client, std::vector<std::string> args) {
    std::vector<std::string> a{"--curve-secret", (tmp / (client + ".secret")).string(), "--server-key",
                               (tmp / "node.pub").string()};
    a.insert(a.end(), args.begin(), args.end());
    return a;
  };
  // The allowed operator drives the node.
  CtlResult ok = shorectl(node, with_keys("operator", {"status"}), 5s);
  ASSERT_EQ(ok.code, 0) << ok.out << ok.err;
  EXPECT_EQ(ok.reply["state"], "Idle");
  ok = shorectl(node, with_keys("operator", {"init"}), 10s);
  EXPECT_EQ(ok.code, 0) << ok.out << ok.err;

  // A stranger's key gets no answer (and no state change), and is counted.
  const CtlResult refused = shorectl(node, with_keys("stranger", {"reset"}), 500ms);
  EXPECT_EQ(refused.code, 2) << refused.out << refused.err;
  EXPECT_TRUE(refused.reply.is_null());
  double refused_count = -1;
  EXPECT_TRUE(wait_until([&] {
    refused_count = series_value(http_get(metrics_port, "/metrics"), R"(shoredaq_auth_refused_total{domain="control"})");
    return refused_count >= 1;
  }, 10s)) << refused_count;
  EXPECT_GE(series_value(http_get(metrics_port, "/metrics"), R"(shoredaq_auth_accepted_total{domain="control"})"), 2);

  // Without keys shorectl says what is missing instead of timing out.
  const CtlResult plain = shorectl(node, {"status"}, 500ms);
  EXPECT_EQ(plain.code, 3);
  EXPECT_NE(plain.err.find("--curve-secret"), std::string::npos) << plain.err;
  // A client trusting the wrong server key is refused too.
  const CtlResult wrong_server = shorectl(node, {"--curve-secret", (tmp / "operator.secret").string(), "--server-key",
                                                 (tmp / "stranger.pub").string(), "status"}, 500ms);
  EXPECT_EQ(wrong_server.code, 2);

  EXPECT_EQ(shorectl(node, with_keys("operator", {"status"}), 5s).reply["state"], "Standby");  // reset never ran
  EXPECT_EQ(shorectl(node, with_keys("operator", {"quit"}), 30s).code, 0);
  EXPECT_EQ(daemon.wait(30s), 0) << daemon.err();
}

TEST(HilCurve, CurveIngestAndAlertsAdmitOnlyAllowListedPeers) {
  if (!sf::curve_available()) GTEST_SKIP() << "libzmq without CURVE";
  TempDir tmp("curve-ingest");
  for (const char* name : {"node", "du", "stranger", "bridge"}) ASSERT_EQ(keygen(tmp, {(tmp / name).string()}).code, 0);
  fs::create_directories(tmp / "bridges.d");
  fs::copy_file(tmp / "bridge.pub", tmp / "bridges.d" / "bridge.pub");
  // Allow-list as one file: comments and a key per line.
  write_file(tmp / "dus.keys", "# DUs of this node\n" + sf::read_public_key_file(tmp / "du.pub") + "  # du 1\n");
  ::chmod((tmp / "dus.keys").c_str(), 0644);
  const fs::path detx = tmp / "detector.detx";
  ASSERT_EQ(run({program("shoredaq"), "detx", "--detx", kDetx133, "--dus", "first:2", "--out", detx.string()}, tmp.path()).code, 0);
  const fs::path feed = tmp / "feed.dqd";
  const Result sim = run({program("du-sim"), "--detx", detx.string(), "--slices", "1", "--run", "5", "--seed", "9",
                          "--out", feed.string()}, tmp.path());
  ASSERT_EQ(sim.code, 0) << sim.err;
  const std::string records = read_file(feed);  // what the stranger tries to send
  ASSERT_FALSE(records.empty());

  NodeSetup node;
  node.dir = tmp.path();
  node.control = "ipc://" + (tmp / "run/control.sock").string();  // plain ipc control beside CURVE ingest
  node.ingest = free_tcp_endpoint();
  node.alerts = "ipc://" + (tmp / "run/alerts.sock").string();
  fs::create_directories(tmp / "run");
  write_file(node.config(), "[node]\nstate_dir = \"" + node.state_dir().string() + "\"\nruntime_dir = \"" +
                                (tmp / "run").string() + "\"\nworkers = 1\n"
                                "[ingest]\nendpoints = [\"" + node.ingest + "\"]\ncurve = true\ncurve_allowed_keys = \"" +
                                (tmp / "dus.keys").string() + "\"\n"
                                "[control]\nendpoint = \"" + node.control + "\"\n"
                                "[alerts]\nendpoint = \"" + node.alerts + "\"\ncurve = true\ncurve_allowed_keys = \"" +
                                (tmp / "bridges.d").string() + "\"\n"
                                "[store]\ndurability = \"nosync\"\ndisk_reserve_mb = 0\n"
                                "[metrics]\nenabled = true\nport = 0\n"
                                "[security]\nserver_secret_key_file = \"" + (tmp / "node.secret").string() + "\"\n");
  Child daemon = start_node(node);
  const int metrics_port = std::stoi("0" + from_log(daemon, R"(metrics on http://127\.0\.0\.1:([0-9]+))"));
  ASSERT_GT(metrics_port, 0) << daemon.err();
  ASSERT_EQ(shorectl(node, {"init"}).code, 0);
  ASSERT_EQ(shorectl(node, {"configure", "--detx", detx.string()}).code, 0);
  const CtlResult started = shorectl(node, {"start", "--run", "5"});
  ASSERT_EQ(started.code, 0) << started.out << started.err << daemon.err();

  const auto ingest = [&](const std::string& key) {
    const CtlResult s = shorectl(node, {"status"}, 5s);
    return s.code == 0 ? s.reply["counters"].value(key, std::uint64_t{0}) : std::uint64_t{0};
  };
  const auto metric = [&](const std::string& series) { return series_value(http_get(metrics_port, "/metrics"), series); };
  zmq::context_t ctx(1);
  const std::string node_public = sf::read_public_key_file(tmp / "node.pub");

  // Alert subscribers: the allow-listed bridge joins (its handshake is accepted before any data
  // is sent), a stranger is refused.
  const auto subscriber = [&](const std::string& name) {
    zmq::socket_t sub(ctx, zmq::socket_type::sub);
    sub.set(zmq::sockopt::linger, 0);
    sub.set(zmq::sockopt::subscribe, "summary.");
    sf::make_curve_client(sub, sf::read_secret_key_file(tmp / (name + ".secret")), node_public);
    sub.connect(node.alerts);
    return sub;
  };
  zmq::socket_t bridge = subscriber("bridge");
  zmq::socket_t stranger_sub = subscriber("stranger");
  EXPECT_TRUE(wait_until([&] { return metric(R"(shoredaq_auth_accepted_total{domain="alerts"})") >= 1; }, 10s));
  EXPECT_TRUE(wait_until([&] { return metric(R"(shoredaq_auth_refused_total{domain="alerts"})") >= 1; }, 10s));

  // An unknown DU: the handshake is refused, nothing it sends arrives, the refusal is counted.
  {
    zmq::socket_t stranger(ctx, zmq::socket_type::push);
    stranger.set(zmq::sockopt::linger, 0);
    sf::make_curve_client(stranger, sf::read_secret_key_file(tmp / "stranger.secret"), node_public);
    stranger.connect(node.ingest);
    (void)stranger.send(zmq::buffer(records), zmq::send_flags::dontwait);  // queued; never delivered
    EXPECT_TRUE(wait_until([&] { return metric(R"(shoredaq_auth_refused_total{domain="ingest"})") >= 1; }, 10s));
  }
  EXPECT_EQ(ingest("ingest.messages"), 0u);

  // The allow-listed DU (du-sim with its key pair) gets every datagram in.
  const Result fed = run({program("du-sim"), "--detx", detx.string(), "--slices", "3", "--run", "5", "--seed", "7",
                          "--endpoint", node.ingest, "--curve-secret", (tmp / "du.secret").string(), "--server-key",
                          (tmp / "node.pub").string(), "--linger-ms", "5000", "--json"}, tmp.path());
  ASSERT_EQ(fed.code, 0) << fed.err;
  const auto sent = nlohmann::json::parse(fed.out, nullptr, false);
  ASSERT_TRUE(sent.is_object()) << fed.out;
  const std::uint64_t datagrams = sent.value("datagrams_out", std::uint64_t{0});
  ASSERT_GT(datagrams, 0u);
  EXPECT_TRUE(wait_until([&] { return ingest("ingest.datagrams") == datagrams; }, 20s)) << shorectl(node, {"status"}).out;
  EXPECT_GE(metric(R"(shoredaq_auth_accepted_total{domain="ingest"})"), 1);
  // du-sim without keys is refused like the stranger: its data never arrives. Once the refused
  // handshake has removed its only peer, its PUSH waits to send (as at a full HWM) until it is
  // stopped; 3 s is ample on loopback for anything it could get in to arrive.
  (void)run({program("du-sim"), "--detx", detx.string(), "--slices", "1", "--run", "5", "--seed", "8", "--endpoint",
             node.ingest, "--linger-ms", "500"},
            tmp.path(), 3s);
  EXPECT_EQ(ingest("ingest.datagrams"), datagrams);
  // libzmq refuses a plain client before ZAP is asked; the node counts it all the same.
  EXPECT_TRUE(wait_until([&] { return metric(R"(shoredaq_auth_handshake_failed_total{domain="ingest"})") >= 1; }, 10s));

  // The bridge gets summary slices of the run; the stranger gets nothing.
  zmq::pollitem_t bridge_in{bridge.handle(), 0, ZMQ_POLLIN, 0};
  ASSERT_EQ(zmq::poll(&bridge_in, 1, std::chrono::milliseconds(20000)), 1) << shorectl(node, {"status"}).out;
  zmq::message_t topic;
  ASSERT_TRUE(bridge.recv(topic, zmq::recv_flags::dontwait));
  EXPECT_EQ(topic.to_string().rfind("summary.", 0), 0u) << topic.to_string();
  zmq::message_t nothing;
  EXPECT_FALSE(stranger_sub.recv(nothing, zmq::recv_flags::dontwait));

  EXPECT_EQ(shorectl(node, {"stop"}, 60s).code, 0);
  EXPECT_EQ(shorectl(node, {"quit"}, 60s).code, 0);
  EXPECT_EQ(daemon.wait(30s), 0) << daemon.err();
}

TEST(HilCurve, DaemonRefusesToStartWithUnsafeKeysOrUnprotectedTcpControl) {
  if (!sf::curve_available()) GTEST_SKIP() << "libzmq without CURVE";
  TempDir tmp("curve-refuse");
  ASSERT_EQ(keygen(tmp, {(tmp / "node").string()}).code, 0);
  ASSERT_EQ(keygen(tmp, {(tmp / "operator").string()}).code, 0);
  fs::create_directories(tmp / "run");
  const std::string head = "[node]\nstate_dir = \"" + (tmp / "state").string() + "\"\nruntime_dir = \"" +
                           (tmp / "run").string() + "\"\n[metrics]\nenabled = false\n";
  const auto start = [&](const std::string& toml) {
    write_file(tmp / "shoredaq.toml", head + toml);
    return run({program("shoredaq"), "--config", (tmp / "shoredaq.toml").string()}, tmp.path(), 20s);
  };
  // TCP control without CURVE: refused by the configuration check, naming the key.
  Result r = start("[control]\nendpoint = \"tcp://127.0.0.1:*\"\n");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("control.endpoint"), std::string::npos) << r.err;
  // A secret key others may read: refused before anything binds, naming the file.
  ::chmod((tmp / "node.secret").c_str(), 0644);
  r = start("[control]\nendpoint = \"tcp://127.0.0.1:*\"\ncurve_allowed_keys = \"" + (tmp / "operator.pub").string() +
            "\"\n[security]\nserver_secret_key_file = \"" + (tmp / "node.secret").string() + "\"\n");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE((r.err + r.out).find((tmp / "node.secret").string()), std::string::npos) << r.err << r.out;
  EXPECT_EQ((r.err + r.out).find("control socket on"), std::string::npos) << r.err << r.out;
}
