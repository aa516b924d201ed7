#include "shoredaq/firmware/security.hpp"

#include "shoredaq/firmware/metrics.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace shoredaq::firmware;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           ("shoredaq-security-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

template <typename Predicate>
bool wait_for(Predicate predicate, std::chrono::milliseconds deadline = 5000ms) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < until) {
    if (predicate()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return predicate();
}

bool readable_within(zmq::socket_t& socket, std::chrono::milliseconds timeout) {
  std::vector<zmq::pollitem_t> items{{socket.handle(), 0, ZMQ_POLLIN, 0}};
  zmq::poll(items, timeout);
  return (items[0].revents & ZMQ_POLLIN) != 0;
}

void write_text(const fs::path& path, const std::string& text, fs::perms perms) {
  std::ofstream(path) << text;
  fs::permissions(path, perms);
}

std::string what_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no exception)";
}

}  // namespace

TEST(Curve, KeyPairsAreValidAndPublicKeyDerivable) {
  ASSERT_TRUE(curve_available()) << "libzmq without CURVE support";
  const auto a = generate_curve_key_pair();
  const auto b = generate_curve_key_pair();
  EXPECT_TRUE(is_curve_key(a.public_key));
  EXPECT_TRUE(is_curve_key(a.secret_key));
  EXPECT_NE(a.public_key, b.public_key);
  EXPECT_EQ(curve_public_key_of(a.secret_key), a.public_key);
  EXPECT_FALSE(is_curve_key("short"));
  EXPECT_FALSE(is_curve_key(std::string(40, ' ')));  // space is not Z85
  EXPECT_THROW(curve_public_key_of("nope"), std::invalid_argument);
}

TEST(KeyFiles, RoundTripWithStrictPermissions) {
  TempDir dir;
  const auto keys = generate_curve_key_pair();
  const auto secret = dir.path / "node.secret";
  const auto pub = dir.path / "node.pub";
  write_curve_key_files(secret, pub, keys);
  EXPECT_EQ(fs::status(secret).permissions() & fs::perms::mask, fs::perms::owner_read | fs::perms::owner_write);

  const auto read = read_secret_key_file(secret);
  EXPECT_EQ(read.secret_key, keys.secret_key);
  EXPECT_EQ(read.public_key, keys.public_key);
  EXPECT_EQ(read_public_key_file(pub), keys.public_key);

  fs::permissions(secret, fs::perms::owner_read);  // 0400 is fine too
  EXPECT_EQ(read_secret_key_file(secret).secret_key, keys.secret_key);

  // Never overwrite an existing key.
  const std::string overwrite = what_of([&] { write_curve_key_files(secret, dir.path / "other.pub", keys); });
  EXPECT_NE(overwrite.find("refusing to overwrite"), std::string::npos) << overwrite;
  EXPECT_FALSE(fs::exists(dir.path / "other.pub"));
}

TEST(KeyFiles, RefusesSecretKeyReadableByOthers) {
  TempDir dir;
  const auto keys = generate_curve_key_pair();
  const auto secret = dir.path / "node.secret";
  write_curve_key_files(secret, dir.path / "node.pub", keys);
  fs::permissions(secret, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                              fs::perms::others_read);  // 0644
  const std::string error = what_of([&] { read_secret_key_file(secret); });
  EXPECT_NE(error.find(secret.string()), std::string::npos) << error;
  EXPECT_NE(error.find("mode 0644"), std::string::npos) << error;
  EXPECT_NE(error.find("0600 or 0400"), std::string::npos) << error;
  EXPECT_THROW(read_secret_key_file(secret), KeyFileError);

  fs::permissions(secret, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);  // 0640
  EXPECT_THROW(read_secret_key_file(secret), KeyFileError);
}

TEST(KeyFiles, RefusesSymlinksForeignOwnersAndGarbage) {
  TempDir dir;
  const auto keys = generate_curve_key_pair();
  const auto secret = dir.path / "node.secret";
  write_curve_key_files(secret, dir.path / "node.pub", keys);

  fs::create_symlink(secret, dir.path / "link.secret");
  const std::string link_error = what_of([&] { read_secret_key_file(dir.path / "link.secret"); });
  EXPECT_NE(link_error.find("symbolic link"), std::string::npos) << link_error;

  const std::string missing = what_of([&] { read_secret_key_file(dir.path / "missing.secret"); });
  EXPECT_NE(missing.find("No such file or directory"), std::string::npos) << missing;

  write_text(dir.path / "two.secret", keys.secret_key + "\n" + keys.secret_key + "\n",
             fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_THROW(read_secret_key_file(dir.path / "two.secret"), KeyFileError);
  write_text(dir.path / "bad.secret", "# comment\nnot-a-key\n", fs::perms::owner_read | fs::perms::owner_write);
  const std::string bad = what_of([&] { read_secret_key_file(dir.path / "bad.secret"); });
  EXPECT_NE(bad.find("line 2"), std::string::npos) << bad;

  if (::geteuid() == 0) {  // only root can give a file away
    const auto foreign = dir.path / "foreign.secret";
    write_text(foreign, keys.secret_key + "\n", fs::perms::owner_read | fs::perms::owner_write);
    ASSERT_EQ(::chown(foreign.c_str(), 65534, 65534), 0);
    const std::string owner = what_of([&] { read_secret_key_file(foreign); });
    EXPECT_NE(owner.find("owned by uid 65534"), std::string::npos) << owner;
  }
}

TEST(KeyFiles, AllowListFromFileOrDirectory) {
  TempDir dir;
  const auto a = generate_curve_key_pair();
  const auto b = generate_curve_key_pair();
  const auto list = dir.path / "clients.allow";
  write_text(list, "# control clients\n" + a.public_key + "   # shifter laptop\n\n" + b.public_key + "\n",
             fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read);
  EXPECT_EQ(read_allowed_keys(list), (std::vector<std::string>{a.public_key, b.public_key}));

  fs::permissions(list, fs::perms::others_write, fs::perm_options::add);
  EXPECT_THROW(read_allowed_keys(list), KeyFileError);  // anyone could add themselves

  const auto clients = dir.path / "clients.d";
  fs::create_directories(clients);
  fs::permissions(clients, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                               fs::perms::others_read | fs::perms::others_exec);
  write_curve_key_files(dir.path / "a.secret", clients / "a.pub", a);
  write_curve_key_files(dir.path / "b.secret", clients / "b.pub", b);
  write_text(clients / "README", "not a key\n", fs::perms::owner_read);
  EXPECT_EQ(read_allowed_keys(clients), (std::vector<std::string>{a.public_key, b.public_key}));

  write_text(dir.path / "broken.allow", a.public_key + "\nxyz\n", fs::perms::owner_read | fs::perms::owner_write);
  const std::string error = what_of([&] { read_allowed_keys(dir.path / "broken.allow"); });
  EXPECT_NE(error.find("line 2"), std::string::npos) << error;
}

namespace {

struct CurveRig {
  zmq::context_t context;
  MetricsRegistry metrics;
  std::unique_ptr<ZapHandler> zap;
  CurveKeyPair server_keys = generate_curve_key_pair();
  zmq::socket_t server;
  std::string endpoint;

  explicit CurveRig(std::string_view domain) {
    zap = std::make_unique<ZapHandler>(context, &metrics);
    server = zmq::socket_t(context, zmq::socket_type::rep);
    server.set(zmq::sockopt::linger, 0);
    make_curve_server(server, server_keys, *zap, domain);
    server.bind("tcp://127.0.0.1:*");
    endpoint = server.get(zmq::sockopt::last_endpoint);
  }
  ~CurveRig() {
    server.close();
    zap.reset();
  }

  zmq::socket_t client(const CurveKeyPair& keys) {
    zmq::socket_t req(context, zmq::socket_type::req);
    req.set(zmq::sockopt::linger, 0);
    make_curve_client(req, keys, server_keys.public_key);
    req.connect(endpoint);
    return req;
  }
};

}  // namespace

TEST(ZapHandler, RefusesUnknownClientKeyAndCountsIt) {
  CurveRig rig("control");
  const auto allowed = generate_curve_key_pair();
  const auto stranger = generate_curve_key_pair();
  rig.zap->allow("control", {allowed.public_key});

  auto req = rig.client(stranger);
  req.send(zmq::str_buffer("status"), zmq::send_flags::dontwait);
  ASSERT_TRUE(wait_for([&] { return rig.zap->refused() >= 1; })) << "ZAP handler never asked about the stranger";
  EXPECT_EQ(rig.zap->accepted(), 0u);
  EXPECT_GE(rig.zap->refused("control"), 1u);
  // The request never reaches the server and no reply comes back.
  EXPECT_FALSE(readable_within(rig.server, 200ms));
  EXPECT_FALSE(readable_within(req, 0ms));
  EXPECT_GE(rig.metrics.counter("shoredaq_auth_refused_total", "", {{"domain", "control"}}).value(), 1u);
}

TEST(ZapHandler, AcceptsAllowListedClient) {
  CurveRig rig("control");
  const auto allowed = generate_curve_key_pair();
  rig.zap->allow("control", {allowed.public_key});

  auto req = rig.client(allowed);
  req.send(zmq::str_buffer("status"), zmq::send_flags::none);
  ASSERT_TRUE(readable_within(rig.server, 5000ms));
  zmq::message_t request;
  ASSERT_TRUE(rig.server.recv(request));
  EXPECT_EQ(request.to_string(), "status");
  // The ZAP user id is the client's public key: the daemon can log who sent a command.
  EXPECT_EQ(std::string(request.gets("User-Id")), allowed.public_key);
  rig.server.send(zmq::str_buffer("Running"), zmq::send_flags::none);
  ASSERT_TRUE(readable_within(req, 5000ms));
  zmq::message_t reply;
  ASSERT_TRUE(req.recv(reply));
  EXPECT_EQ(reply.to_string(), "Running");
  EXPECT_EQ(rig.zap->accepted(), 1u);
  EXPECT_EQ(rig.zap->refused(), 0u);
}

TEST(ZapHandler, KeyAllowedForOneDomainIsRefusedOnAnother) {
  CurveRig rig("ingest");
  const auto control_client = generate_curve_key_pair();
  rig.zap->allow("control", {control_client.public_key});
  rig.zap->allow("ingest", {});
  auto req = rig.client(control_client);
  req.send(zmq::str_buffer("x"), zmq::send_flags::dontwait);
  ASSERT_TRUE(wait_for([&] { return rig.zap->refused("ingest") >= 1; }));
  EXPECT_EQ(rig.zap->refused("control"), 0u);
  EXPECT_FALSE(readable_within(rig.server, 100ms));
}

TEST(ZapHandler, AllowListCanBeReplacedAtRuntime) {
  CurveRig rig("control");
  const auto client = generate_curve_key_pair();
  rig.zap->allow("control", {});
  auto refused = rig.client(client);
  refused.send(zmq::str_buffer("a"), zmq::send_flags::dontwait);
  ASSERT_TRUE(wait_for([&] { return rig.zap->refused() >= 1; }));

  rig.zap->allow("control", {client.public_key});
  auto req = rig.client(client);  // a new connection is authenticated against the new list
  req.send(zmq::str_buffer("b"), zmq::send_flags::none);
  ASSERT_TRUE(readable_within(rig.server, 5000ms));
  EXPECT_GE(rig.zap->accepted(), 1u);
  EXPECT_THROW(rig.zap->allow("control", {"not-a-key"}), std::invalid_argument);
}

TEST(ZapHandler, OneHandlerPerContextAndRequiredForCurveServer) {
  zmq::context_t context;
  ZapHandler first(context);
  const std::string error = what_of([&] { ZapHandler second(context); });
  EXPECT_NE(error.find("inproc://zeromq.zap.01"), std::string::npos) << error;
  first.stop();
  EXPECT_FALSE(first.running());
  zmq::socket_t rep(context, zmq::socket_type::rep);
  rep.set(zmq::sockopt::linger, 0);
  EXPECT_THROW(make_curve_server(rep, generate_curve_key_pair(), first, "control"), std::logic_error);
}
