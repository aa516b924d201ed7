// What `start` or `configure` would refuse is refused when the configuration is read (so
// `shoredaq --check-config` gives the same verdict), naming the key; and reading an operator's
// file never hangs or exhausts memory whatever the path names.
#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config_error.hpp"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "shoredaq/firmware/config.hpp"
#include "shoredaq/firmware/input_file.hpp"

using namespace shoredaq::firmware;
using shoredaq::firmware::test_support::config_error_of;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

namespace {

class ScratchDir {
 public:
  ScratchDir() {
    path_ = fs::temp_directory_path() / ("shoredaq-config-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}()));
    fs::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

}  // namespace

TEST(ConfigValidation, TriggerValuesAreCheckedWithEveryBadKeyNamed) {
  const std::string e = config_error_of("[trigger.muon]\nnumberOfHits = 5\n[trigger.muon3d]\nroad_width_m = -3\n");
  EXPECT_THAT(e, HasSubstr("trigger.muon3d.road_width_m"));
  EXPECT_THAT(e, HasSubstr("trigger.muon: unknown key"));
  EXPECT_THAT(config_error_of("[trigger.muon3d]\nnumber_of_hits = -1\n"), HasSubstr("trigger.muon3d.number_of_hits = -1"));
  EXPECT_THAT(config_error_of("[trigger.shower3d]\nnumber_of_hits = 3\nnumber_of_modules = 4\n"),
              HasSubstr("trigger.shower3d.number_of_modules"));
}

TEST(ConfigValidation, AddressesAreCheckedBeforeAnythingBinds) {
  EXPECT_THAT(config_error_of("[metrics]\nlisten_address = \"999.1.1.1\"\n"), HasSubstr("metrics.listen_address"));
  EXPECT_THAT(config_error_of("[metrics]\nlisten_address = \"localhost\"\n"), HasSubstr("not an IPv4 or IPv6 address"));
  EXPECT_EQ(config_error_of("[metrics]\nlisten_address = \"::1\"\n"), "");
  EXPECT_EQ(config_error_of("[metrics]\nlisten_address = \"0.0.0.0\"\n"), "");
  EXPECT_THAT(config_error_of("[ingest]\nendpoints = [\"tcp://999.1.1.1:5556\"]\n"), HasSubstr("ingest.endpoints"));
  EXPECT_THAT(config_error_of("[ingest]\nendpoints = [\"tcp://127.0.0.1:99999\"]\n"), HasSubstr("port \"99999\""));
  EXPECT_THAT(config_error_of("[ingest]\nendpoints = [\"tcp://127.0.0.1\"]\n"), HasSubstr("tcp://HOST:PORT"));
  EXPECT_THAT(config_error_of("[ingest]\nendpoints = [\"tcp://[::zz]:5556\"]\n"), HasSubstr("IPv6"));
  EXPECT_THAT(config_error_of("[ingest]\nendpoints = [\"ipc://" + std::string(200, 'x') + "\"]\n"), HasSubstr("at most 107"));
  EXPECT_THAT(config_error_of("[alerts]\nendpoint = \"tcp://1.2.3:5557\"\n"), HasSubstr("alerts.endpoint"));
  EXPECT_EQ(config_error_of("[ingest]\nendpoints = [\"tcp://*:5556\", \"tcp://[::1]:5557\", \"tcp://eth0:5558\", "
                     "\"tcp://du-bridge.local:5559\", \"ipc:///run/x.sock\", \"inproc://feed\"]\n"),
            "");
}

TEST(ConfigValidation, ControlSocketModeIsAnOctalString) {
  EXPECT_EQ(parse_config("").control.socket_mode, 0660u);
  EXPECT_EQ(parse_config("[control]\nsocket_mode = \"0600\"\n").control.socket_mode, 0600u);
  EXPECT_THAT(config_error_of("[control]\nsocket_mode = \"66x\"\n"), HasSubstr("control.socket_mode"));
  EXPECT_THAT(config_error_of("[control]\nsocket_mode = 660\n"), HasSubstr("control.socket_mode"));
  EXPECT_THAT(config_error_of("[control]\nsocket_mode = \"0460\"\n"), HasSubstr("owner"));
  EXPECT_THAT(config_error_of("[control]\nsocket_mode = \"4770\"\n"), HasSubstr("at most 0777"));
}

TEST(ConfigValidation, HealthThresholds) {
  const NodeConfig c = parse_config("[health]\nloss_alarm_fraction = 0.05\nloss_window_s = 30\n");
  EXPECT_EQ(c.health.loss_alarm_fraction, 0.05);
  EXPECT_EQ(c.health.loss_window_s, 30u);
  EXPECT_THAT(config_error_of("[health]\nloss_alarm_fraction = 2\n"), HasSubstr("health.loss_alarm_fraction"));
  EXPECT_THAT(config_error_of("[health]\nloss_alarm_fraction = nan\n"), HasSubstr("health.loss_alarm_fraction"));
}

TEST(InputFile, ReadsARegularFileWhole) {
  ScratchDir dir;
  std::ofstream(dir / "a.toml") << "[node]\nworkers = 2\n";
  EXPECT_EQ(read_input_file(dir / "a.toml", 1024, std::chrono::seconds(1)), "[node]\nworkers = 2\n");
}

TEST(InputFile, RefusesDevicesFifosDirectoriesAndBigFiles) {
  ScratchDir dir;
  EXPECT_THAT([] {
    try {
      read_input_file("/dev/zero", 1 << 20, std::chrono::seconds(1));
    } catch (const InputFileError& e) {
      return std::string(e.what());
    }
    return std::string();
  }(), HasSubstr("character device"));
  // A FIFO nobody writes to: opened without blocking, refused at once.
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
  EXPECT_THROW(read_input_file(dir / "fifo", 1024, std::chrono::seconds(1)), InputFileError);
  EXPECT_THROW(read_input_file(dir / ".", 1024, std::chrono::seconds(1)), InputFileError);
  EXPECT_THROW(read_input_file(dir / "missing", 1024, std::chrono::seconds(1)), InputFileError);
  {
    std::ofstream big(dir / "big.detx");
    big << std::string(4096, 'x');
  }
  try {
    read_input_file(dir / "big.detx", 1024, std::chrono::seconds(1), "node.max_input_file_mb");
    ADD_FAILURE() << "a file over the limit was read";
  } catch (const InputFileError& e) {
    EXPECT_THAT(e.what(), HasSubstr("4 KiB is more than the 1 KiB allowed (node.max_input_file_mb)"));
  }
}

// --check-config of a device or a FIFO: a ConfigError (exit 1), never std::bad_alloc or a hang.
TEST(InputFile, LoadConfigOfDevZeroOrAFifoIsAConfigError) {
  ScratchDir dir;
  EXPECT_THROW(load_config("/dev/zero"), ConfigError);
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
  EXPECT_THROW(load_config(dir / "fifo"), ConfigError);
  EXPECT_THROW(load_trigger_setup("/dev/zero", 1 << 20), ConfigError);
}
