#pragma once
// The detector model from a .detx file (DOMAIN.md section 4): DOMs by id with DU, floor and
// position; PMTs by (DOM, DAQ channel) with position, direction and t0. Units: m, ns.

#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace shoredaq::dataflow {

struct Vec3 {
  double x = 0, y = 0, z = 0;
  friend Vec3 operator+(Vec3 a, Vec3 b) { return {a.x + b.x, a.y + b.y, a.z + b.z}; }
  friend Vec3 operator-(Vec3 a, Vec3 b) { return {a.x - b.x, a.y - b.y, a.z - b.z}; }
  friend Vec3 operator*(double s, Vec3 a) { return {s * a.x, s * a.y, s * a.z}; }
  friend bool operator==(const Vec3&, const Vec3&) = default;
  double dot(Vec3 o) const { return x * o.x + y * o.y + z * o.z; }
  double norm() const { return std::sqrt(dot(*this)); }
};

struct Pmt {
  std::uint32_t id = 0;   // serial number, not the channel
  Vec3 position_m;
  Vec3 direction;         // unit vector
  double t0_ns = 0;       // calibrated time = raw time + t0
  std::uint32_t status = 0;
  friend bool operator==(const Pmt&, const Pmt&) = default;
};

struct Module {
  std::uint32_t id = 0;   // DOM id, as in the CLB datagrams
  int du = 0;
  int floor = 0;          // 0 = base module (no PMTs)
  Vec3 position_m;        // v4/v5: from the file; v1-v3: mean of the PMT positions
  std::array<double, 4> quaternion{1, 0, 0, 0};
  double t0_ns = 0;
  std::uint32_t status = 0;
  std::vector<Pmt> pmts;  // index = DAQ channel (0..30)

  bool is_base() const noexcept { return floor == 0 || pmts.empty(); }
  friend bool operator==(const Module&, const Module&) = default;
};

// The v2+ header lines of a .detx file (validity range, UTM reference), kept so that to_detx()
// writes them back. Defaults are used for v1 files and for detectors built in code.
struct DetxMetadata {
  double valid_from_s = 0.0;
  double valid_to_s = 9999999999.0;
  std::string utm_reference = "WGS84 32N 0 0 0";  // the UTM line without its leading "UTM"
  friend bool operator==(const DetxMetadata&, const DetxMetadata&) = default;
};

class DetxError : public std::runtime_error {
 public:
  DetxError(std::size_t line, const std::string& what);
  std::size_t line() const noexcept { return line_; }

 private:
  std::size_t line_;
};

class Detector {
 public:
  Detector() = default;
  Detector(std::int32_t id, std::vector<Module> modules, int format_version = 0);

  // Throws DetxError (with the 1-based line number) on a malformed file.
  static Detector parse(std::string_view detx_text);
  static Detector load(const std::filesystem::path& path);

  std::int32_t id() const noexcept { return id_; }
  int format_version() const noexcept { return format_version_; }
  std::span<const Module> modules() const noexcept { return modules_; }
  const Module* find(std::uint32_t dom_id) const noexcept;
  std::optional<std::size_t> index_of(std::uint32_t dom_id) const noexcept;
  const Pmt* pmt(std::uint32_t dom_id, unsigned channel) const noexcept;
  std::vector<int> du_ids() const;  // sorted, unique
  std::vector<const Module*> modules_of_du(int du) const;  // sorted by floor
  std::size_t optical_module_count() const noexcept;  // modules with PMTs
  std::size_t pmt_count() const noexcept;

  // Writes the model as a v5 .detx (module positions, t0 and status kept); parse(to_detx()) == *this.
  std::string to_detx() const;

  const DetxMetadata& metadata() const noexcept { return metadata_; }
  void set_metadata(DetxMetadata metadata) { metadata_ = std::move(metadata); }

  // Same id, metadata and modules (format_version is where the model came from, not part of it).
  friend bool operator==(const Detector& a, const Detector& b) {
    return a.id_ == b.id_ && a.metadata_ == b.metadata_ && a.modules_ == b.modules_;
  }

 private:
  void index();
  std::int32_t id_ = 0;
  int format_version_ = 0;
  std::vector<Module> modules_;
  std::unordered_map<std::uint32_t, std::size_t> by_id_;
  DetxMetadata metadata_;
};

// "all", "3", "1-4", "1,3,5", "1-3,7" -> sorted DU numbers, each checked against the detector.
// Throws std::invalid_argument with a readable message.
std::vector<int> parse_du_selection(std::string_view text, const Detector& detector);

}  // namespace shoredaq::dataflow
