#pragma once
// Helpers of the Tier-0 transfer tests: an in-memory computing centre (FakeRemote) that can be
// down, break an upload off, or corrupt what it stores; a clock that never sleeps; sealed parts
// written by the real Tier0Spool.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "shoredaq/storage/checksums.hpp"
#include "shoredaq/storage/tier0_spool.hpp"
#include "shoredaq/storage/tier0_transfer.hpp"
#include "storage_test_support.hpp"

namespace shoredaq::storage::testing {

class FakeRemote final : public Tier0Remote {
 public:
  std::map<std::string, std::vector<std::uint8_t>> files;  // by remote path
  bool down = false;                        // every call: unreachable
  std::uint64_t break_upload_after_bytes = 0;  // > 0: a write past this many bytes fails (server died)
  bool corrupt_on_close = false;            // flip a byte of each upload when it is closed (once)
  std::uint64_t uploads_started = 0, uploads_closed = 0;

  std::string url(const std::string& path) const override { return "root://fake/" + path; }
  std::optional<std::uint64_t> size_of(const std::string& path) override {
    check_up();
    const auto it = files.find(path);
    if (it == files.end()) return std::nullopt;
    return it->second.size();
  }
  std::string adler32_of(const std::string& path) override {
    check_up();
    const auto it = files.find(path);
    if (it == files.end()) throw RemoteFailure("no such file " + path, false);
    Adler32 a;
    a.update(it->second);
    return a.hex();
  }
  void make_directories(const std::string&) override { check_up(); }
  void remove(const std::string& path) override {
    check_up();
    files.erase(path);
  }
  void rename(const std::string& from, const std::string& to) override {
    check_up();
    const auto it = files.find(from);
    if (it == files.end()) throw RemoteFailure("no such file " + from, false);
    files[to] = std::move(it->second);
    files.erase(from);
  }
  std::unique_ptr<Tier0RemoteWriter> create(const std::string& path) override;

  void check_up() const {
    if (down) throw RemoteFailure("[FATAL] Connection error", true);
  }
};

class FakeWriter final : public Tier0RemoteWriter {
 public:
  FakeWriter(FakeRemote& remote, std::string path) : remote_(remote), path_(std::move(path)) {
    remote_.files[path_].clear();
    ++remote_.uploads_started;
  }
  void write(std::uint64_t offset, std::span<const std::uint8_t> bytes) override {
    remote_.check_up();
    auto& file = remote_.files[path_];
    if (remote_.break_upload_after_bytes > 0 && offset + bytes.size() > remote_.break_upload_after_bytes) {
      // What a killed server leaves: the bytes it got before, and a broken connection.
      const auto keep = remote_.break_upload_after_bytes - offset;
      file.insert(file.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(keep));
      remote_.down = true;
      throw RemoteFailure("write: [ERROR] Socket error", true);
    }
    if (file.size() != offset) throw RemoteFailure("write at a gap", false);
    file.insert(file.end(), bytes.begin(), bytes.end());
  }
  void close() override {
    remote_.check_up();
    ++remote_.uploads_closed;
    if (remote_.corrupt_on_close) {
      auto& file = remote_.files[path_];
      if (!file.empty()) file[file.size() / 2] ^= 0xff;
      remote_.corrupt_on_close = false;
    }
  }

 private:
  FakeRemote& remote_;
  std::string path_;
};

inline std::unique_ptr<Tier0RemoteWriter> FakeRemote::create(const std::string& path) {
  check_up();
  return std::make_unique<FakeWriter>(*this, path);
}

// Time that moves only when told to, or when the agent waits (the wait is taken at once and
// remembered, so pacing is checked without sleeping).
class FakeClock final : public TransferClock {
 public:
  std::chrono::steady_clock::time_point steady{std::chrono::hours{1000}};
  std::chrono::system_clock::time_point utc{std::chrono::seconds{1'700'000'000}};
  std::chrono::nanoseconds waited{0};

  std::chrono::steady_clock::time_point now() override { return steady; }
  std::chrono::system_clock::time_point utc_now() override { return utc; }
  bool sleep_until(std::chrono::steady_clock::time_point when) override {
    if (when > steady) advance(when - steady);
    return true;
  }
  void advance(std::chrono::nanoseconds d) {
    steady += d;
    utc += std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
    waited += d;
  }
};

// Seals `parts` parts of run `run` (detector 133) into <dir>/ready/ with the real spool; each
// part holds `frames` slices of a summary and 3 events. Returns their names.
inline std::vector<std::string> seal_parts(const std::filesystem::path& dir, std::uint32_t run, unsigned parts,
                                           unsigned frames = 5, RunProvenance provenance = {}) {
  Tier0SpoolConfig config;
  config.directory = dir;
  config.fsync = false;
  config.write_buffer_bytes = 4096;
  Tier0Spool spool(config);
  spool.begin_run(run, 133, provenance);
  std::uint32_t frame = 0;
  for (unsigned p = 0; p < parts; ++p) {
    for (unsigned f = 0; f < frames; ++f, ++frame) {
      const auto events = make_slice_events(133, run, frame, 3);
      const auto summary = make_summary(133, run, frame);
      spool.write_slice(events, &summary);
    }
    spool.roll_if_due(std::chrono::steady_clock::now() + std::chrono::hours{24});  // seal this part
  }
  spool.end_run();
  std::vector<std::string> names;
  for (const auto& part : spool.sealed_parts()) names.push_back(part.file);
  return names;
}

}  // namespace shoredaq::storage::testing
