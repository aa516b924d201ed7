// The CURVE-protected TCP control endpoint (issue 5, Acceptance): an allow-listed client gets
// replies; an unknown key, a plain (NULL mechanism) client and a client that trusts the wrong
// server key get nothing, and the ZAP handler counts the refusals.

#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <zmq.hpp>

#include "shoredaq/firmware/control_socket.hpp"
#include "shoredaq/firmware/metrics.hpp"
#include "shoredaq/firmware/security.hpp"

using namespace shoredaq::firmware;
using nlohmann::json;

namespace {

// Polls a condition until it holds or the deadline passes (no fixed sleeps in the assertions).
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds deadline = std::chrono::seconds(5)) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

struct CurveControlFixture : ::testing::Test {
  void SetUp() override {
    if (!curve_available()) GTEST_SKIP() << "libzmq without CURVE";
    server_keys = generate_curve_key_pair();
    allowed_client = generate_curve_key_pair();
    unknown_client = generate_curve_key_pair();
    zap = std::make_unique<ZapHandler>(context, &metrics);
    zap->allow("control", {allowed_client.public_key});
    ControlServerOptions options;
    options.curve = ControlCurveServer{server_keys, zap.get(), "control"};
    server = std::make_unique<ControlServer>(
        context, "tcp://127.0.0.1:*",
        [](std::string_view request) { return json{{"ok", true}, {"echo", json::parse(request)}}.dump(); },
        std::move(options));
  }
  void TearDown() override {
    server.reset();  // CURVE sockets close before the ZAP handler, which goes before the context
    zap.reset();
  }

  json ask(const CurveKeyPair& client, const std::string& server_public_key,
           std::chrono::milliseconds timeout = std::chrono::milliseconds(3000)) {
    return control_request(server->endpoint(), json{{"cmd", "status"}}, timeout,
                           ControlCurveClient{client, server_public_key});
  }

  zmq::context_t context{1};
  MetricsRegistry metrics;
  CurveKeyPair server_keys, allowed_client, unknown_client;
  std::unique_ptr<ZapHandler> zap;
  std::unique_ptr<ControlServer> server;
};

}  // namespace

TEST_F(CurveControlFixture, AllowListedClientGetsReplies) {
  EXPECT_EQ(server->endpoint().rfind("tcp://127.0.0.1:", 0), 0u);
  const json reply = ask(allowed_client, server_keys.public_key);
  EXPECT_TRUE(reply["ok"].get<bool>());
  EXPECT_EQ(reply["echo"]["cmd"], "status");
  EXPECT_TRUE(ask(allowed_client, server_keys.public_key)["ok"].get<bool>());  // each request is a new connection
  EXPECT_EQ(server->requests_served(), 2u);
  EXPECT_EQ(zap->refused("control"), 0u);
  EXPECT_EQ(zap->accepted(), 2u);
  EXPECT_EQ(zap->handshake_failures("control"), 0u);
}

TEST_F(CurveControlFixture, UnknownKeyIsRefusedAndCounted) {
  EXPECT_THROW(ask(unknown_client, server_keys.public_key, std::chrono::milliseconds(300)), ControlTimeout);
  EXPECT_TRUE(eventually([&] { return zap->refused("control") >= 1; }));
  EXPECT_EQ(server->requests_served(), 0u);
  EXPECT_EQ(zap->accepted(), 0u);
  // The refusal is in /metrics under the control domain.
  const std::string text = metrics.render_prometheus();
  EXPECT_NE(text.find("shoredaq_auth_refused_total{domain=\"control\"}"), std::string::npos) << text;
  // The refused peer did not disturb the allowed one.
  EXPECT_TRUE(ask(allowed_client, server_keys.public_key)["ok"].get<bool>());
  EXPECT_EQ(server->requests_served(), 1u);
}

TEST_F(CurveControlFixture, PlainClientIsRefused) {
  // No CURVE at all: the NULL handshake never matches the CURVE server, nothing is served.
  EXPECT_THROW(control_request(server->endpoint(), json{{"cmd", "status"}}, std::chrono::milliseconds(300)),
               ControlTimeout);
  EXPECT_EQ(server->requests_served(), 0u);
  EXPECT_EQ(zap->accepted(), 0u);
  // libzmq refuses it before ZAP is asked; the handshake monitor counts it all the same.
  EXPECT_TRUE(eventually([&] { return zap->handshake_failures("control") >= 1; }));
  EXPECT_EQ(zap->refused("control"), 0u);
  const std::string text = metrics.render_prometheus();
  EXPECT_NE(text.find("shoredaq_auth_handshake_failed_total{domain=\"control\"}"), std::string::npos) << text;
}

TEST_F(CurveControlFixture, ClientTrustingAnotherServerKeyGetsNoReply) {
  // An allowed client key does not help if the client expects a different server (a man in the
  // middle would hold a different key pair).
  const CurveKeyPair impostor = generate_curve_key_pair();
  EXPECT_THROW(ask(allowed_client, impostor.public_key, std::chrono::milliseconds(300)), ControlTimeout);
  EXPECT_EQ(server->requests_served(), 0u);
  EXPECT_TRUE(eventually([&] { return zap->handshake_failures("control") >= 1; }));
}

TEST_F(CurveControlFixture, KeyAllowedForAnotherDomainIsRefused) {
  zap->allow("ingest", {unknown_client.public_key});
  EXPECT_THROW(ask(unknown_client, server_keys.public_key, std::chrono::milliseconds(300)), ControlTimeout);
  EXPECT_TRUE(eventually([&] { return zap->refused("control") >= 1; }));
  EXPECT_EQ(zap->refused("ingest"), 0u);
}

TEST(CurveControl, ServerWithoutZapHandlerIsRefused) {
  if (!curve_available()) GTEST_SKIP() << "libzmq without CURVE";
  zmq::context_t context(1);
  ControlServerOptions options;
  options.curve = ControlCurveServer{generate_curve_key_pair(), nullptr, "control"};
  EXPECT_THROW(ControlServer(context, "tcp://127.0.0.1:*", [](std::string_view) { return std::string("{}"); },
                             std::move(options)),
               std::invalid_argument);
}
