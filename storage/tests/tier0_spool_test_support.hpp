#pragma once
// Helpers of the Tier-0 spool tests: read files back, and check sealed parts the way a transfer
// agent would (size and checksums recomputed from the file against the manifest) and the way the
// collaboration's readers would (every object whole and decodable).

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "shoredaq/formats/clb_datagram.hpp"
#include "shoredaq/formats/online_format.hpp"
#include "shoredaq/storage/checksums.hpp"
#include "shoredaq/storage/monitoring_record.hpp"
#include "shoredaq/storage/tier0_manifest.hpp"

namespace shoredaq::storage::testing {

inline std::vector<std::uint8_t> read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

inline std::vector<std::string> files_in(const std::filesystem::path& dir, const std::string& suffix) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const auto name = e.path().filename().string();
    if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      out.push_back(name);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// What a set of parts holds, in file order (parts in name order).
struct SpoolContents {
  std::size_t parts = 0;
  std::vector<std::uint32_t> summary_frames;
  std::vector<std::uint32_t> event_frames;
  std::array<std::vector<std::uint32_t>, kTimesliceKinds> timeslice_frames;  // by TimesliceKind
  std::vector<std::uint32_t> monitoring_frames;
  std::vector<std::uint32_t> all_frames;  // of every object, in file order
  std::uint64_t bytes = 0;
};

// Walks one part's bytes: every object must be a whole, decodable online object of a kind the
// spool writes (event, summary slice, timeslice, TMCH packet).
inline void read_objects(const std::vector<std::uint8_t>& bytes, const std::string& name, SpoolContents& out) {
  dataflow::OnlineObjectReader reader(bytes);
  dataflow::OnlineObject object;
  while (reader.next(object)) {
    if (const auto kind = object.timeslice_kind()) {
      const auto t = dataflow::decode_online_timeslice(object.bytes);
      EXPECT_TRUE(t) << name;
      if (t) {
        EXPECT_EQ(t.value.kind, *kind) << name;
        out.timeslice_frames[static_cast<std::size_t>(*kind)].push_back(t.value.slice.header.frame_index);
        out.all_frames.push_back(t.value.slice.header.frame_index);
      }
    } else if (object.type == kOnlineMonitoringType) {
      const auto m = decode_online_monitoring(object.bytes);
      EXPECT_TRUE(m) << name;
      if (m) {
        EXPECT_TRUE(dataflow::parse_monitoring_packet(m.value.datagram)) << name;
        out.monitoring_frames.push_back(m.value.header.frame_index);
        out.all_frames.push_back(m.value.header.frame_index);
      }
    } else if (object.type == dataflow::online_type::kEvent) {
      const auto e = dataflow::decode_online_event(object.bytes);
      EXPECT_TRUE(e) << name;
      if (e) {
        out.event_frames.push_back(e.value.header.frame_index);
        out.all_frames.push_back(e.value.header.frame_index);
      }
    } else if (object.type == dataflow::online_type::kSummarySlice) {
      const auto s = dataflow::decode_online_summary_slice(object.bytes);
      EXPECT_TRUE(s) << name;
      if (s) {
        out.summary_frames.push_back(s.value.header.frame_index);
        out.all_frames.push_back(s.value.header.frame_index);
      }
    } else {
      ADD_FAILURE() << name << ": unexpected object type " << object.type;
    }
  }
  EXPECT_EQ(reader.error(), dataflow::OnlineError::None) << name << ": torn or bad object";
}

// Checks every sealed part in `ready` whose name starts with `prefix` against its manifest: size,
// adler32, md5, counts and frame range recomputed from the file. Failures are test failures.
inline SpoolContents check_sealed_parts(const std::filesystem::path& ready, const std::string& prefix = "KM3NeT_") {
  SpoolContents all;
  for (const auto& name : files_in(ready, ".daq")) {
    if (name.rfind(prefix, 0) != 0) continue;
    const auto bytes = read_bytes(ready / name);
    const std::filesystem::path manifest_path = ready / (name + ".json");
    EXPECT_TRUE(std::filesystem::exists(manifest_path)) << name;
    if (!std::filesystem::exists(manifest_path)) continue;
    const auto manifest = read_json(manifest_path);
    Adler32 adler;
    adler.update(bytes);
    Md5 md5;
    md5.update(bytes);
    EXPECT_EQ(manifest["size_bytes"].get<std::uint64_t>(), bytes.size()) << name;
    EXPECT_EQ(manifest["adler32"].get<std::string>(), adler.hex()) << name;
    EXPECT_EQ(manifest["md5"].get<std::string>(), md5.hex()) << name;
    SpoolContents part;
    read_objects(bytes, name, part);
    EXPECT_EQ(manifest["events"].get<std::uint64_t>(), part.event_frames.size()) << name;
    EXPECT_EQ(manifest["summary_slices"].get<std::uint64_t>(), part.summary_frames.size()) << name;
    if (manifest.contains("timeslices")) {
      for (std::size_t k = 0; k < kTimesliceKinds; ++k) {
        EXPECT_EQ(manifest["timeslices"][kTimesliceKindKeys[k]].get<std::uint64_t>(), part.timeslice_frames[k].size())
            << name << " " << kTimesliceKindKeys[k];
      }
      EXPECT_EQ(manifest["monitoring_packets"].get<std::uint64_t>(), part.monitoring_frames.size()) << name;
    }
    const std::vector<std::uint32_t>& frames = part.all_frames;
    if (!frames.empty()) {
      EXPECT_EQ(manifest["first_frame"].get<std::uint32_t>(), *std::min_element(frames.begin(), frames.end())) << name;
      EXPECT_EQ(manifest["last_frame"].get<std::uint32_t>(), *std::max_element(frames.begin(), frames.end())) << name;
    }
    ++all.parts;
    all.bytes += bytes.size();
    all.summary_frames.insert(all.summary_frames.end(), part.summary_frames.begin(), part.summary_frames.end());
    all.event_frames.insert(all.event_frames.end(), part.event_frames.begin(), part.event_frames.end());
    for (std::size_t k = 0; k < kTimesliceKinds; ++k) {
      all.timeslice_frames[k].insert(all.timeslice_frames[k].end(), part.timeslice_frames[k].begin(),
                                     part.timeslice_frames[k].end());
    }
    all.monitoring_frames.insert(all.monitoring_frames.end(), part.monitoring_frames.begin(), part.monitoring_frames.end());
    all.all_frames.insert(all.all_frames.end(), part.all_frames.begin(), part.all_frames.end());
  }
  return all;
}

}  // namespace shoredaq::storage::testing
