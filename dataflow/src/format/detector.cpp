// .detx parsing and writing (DOMAIN.md section 4) and the detector look-ups.
#include "shoredaq/formats/detector.hpp"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <system_error>

namespace shoredaq::dataflow {

DetxError::DetxError(std::size_t line, const std::string& what) : std::runtime_error(what), line_(line) {}

namespace {

// Sanity bounds so a corrupt count cannot make the parser reserve gigabytes.
constexpr std::size_t kMaxPmtsPerModule = 1024;
constexpr std::size_t kReserveModulesCap = 1 << 16;

[[noreturn]] void fail(std::size_t line, const std::string& message) {
  throw DetxError(line, "detx line " + std::to_string(line) + ": " + message);
}

// Walks the significant lines of a .detx text: comments (from '#' to the end of the line) and
// blank lines are skipped wherever they appear; each line is split into whitespace tokens.
class LineReader {
 public:
  explicit LineReader(std::string_view text) : text_(text) {}

  // Advances to the next significant line; false at the end of the text.
  bool next() {
    while (pos_ < text_.size()) {
      const std::size_t end = std::min(text_.find('\n', pos_), text_.size());
      std::string_view line = text_.substr(pos_, end - pos_);
      pos_ = end + 1;
      ++line_number_;
      if (const auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
      tokens_.clear();
      std::size_t i = 0;
      while (i < line.size()) {
        while (i < line.size() && is_space(line[i])) ++i;
        const std::size_t start = i;
        while (i < line.size() && !is_space(line[i])) ++i;
        if (i > start) tokens_.push_back(line.substr(start, i - start));
      }
      if (!tokens_.empty()) return true;
    }
    tokens_.clear();
    ++line_number_;  // errors at the end point just past the last line
    pos_ = std::string_view::npos;
    return false;
  }

  // Advances and requires a line with exactly `count` tokens.
  void expect(std::size_t count, const char* what) {
    if (!next()) fail(line_number_, std::string("unexpected end of file, expected ") + what);
    if (tokens_.size() != count) {
      fail(line_number_, std::string("expected ") + std::to_string(count) + " fields for " + what +
                             ", found " + std::to_string(tokens_.size()));
    }
  }

  const std::vector<std::string_view>& tokens() const noexcept { return tokens_; }
  std::size_t line() const noexcept { return line_number_; }

  template <typename T>
  T integer(std::size_t index, const char* what) const {
    const std::string_view tok = tokens_[index];
    std::string_view digits = tok;
    if (!digits.empty() && digits.front() == '+') digits.remove_prefix(1);
    T value{};
    const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (ec != std::errc{} || ptr != digits.data() + digits.size() || digits.empty()) {
      fail(line_number_, std::string("bad ") + what + " '" + std::string(tok) + "'");
    }
    return value;
  }

  double real(std::size_t index, const char* what) const {
    const std::string_view tok = tokens_[index];
    std::string_view digits = tok;
    if (!digits.empty() && digits.front() == '+') digits.remove_prefix(1);
    double value = 0;
    const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (ec != std::errc{} || ptr != digits.data() + digits.size() || digits.empty() || !std::isfinite(value)) {
      fail(line_number_, std::string("bad ") + what + " '" + std::string(tok) + "'");
    }
    return value;
  }

 private:
  static bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

  std::string_view text_;
  std::size_t pos_ = 0;
  std::size_t line_number_ = 0;
  std::vector<std::string_view> tokens_;
};

std::string format_real(double v) {
  char buf[64];
  // Shortest representation that reads back to the same double, so parse(to_detx()) is exact.
  const auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec;
  return std::string(buf, ptr);
}

}  // namespace

Detector::Detector(std::int32_t id, std::vector<Module> modules, int format_version)
    : id_(id), format_version_(format_version), modules_(std::move(modules)) {
  index();
}

void Detector::index() {
  by_id_.clear();
  by_id_.reserve(modules_.size());
  for (std::size_t i = 0; i < modules_.size(); ++i) {
    if (!by_id_.emplace(modules_[i].id, i).second) {
      throw std::invalid_argument("duplicate module id " + std::to_string(modules_[i].id));
    }
  }
}

Detector Detector::parse(std::string_view detx_text) {
  LineReader in(detx_text);
  if (!in.next()) fail(in.line(), "empty detector file");
  if (in.tokens().size() != 2) fail(in.line(), "expected '<det_id> <n_modules>' or '<det_id> v<N>'");

  const auto id = in.integer<std::int32_t>(0, "detector id");
  int version = 1;
  std::size_t module_count = 0;
  DetxMetadata metadata;
  const std::string_view second = in.tokens()[1];
  if (second.front() == 'v' || second.front() == 'V') {
    const std::string_view number = second.substr(1);
    const auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), version);
    // v1 files carry no tag (their second field is the module count), so a tag is v2..v5.
    if (ec != std::errc{} || ptr != number.data() + number.size() || version < 2 || version > 5) {
      fail(in.line(), "unsupported format version '" + std::string(second) + "' (v2-v5 tags are known)");
    }
  } else {
    module_count = in.integer<std::size_t>(1, "module count");
  }
  if (version >= 2) {
    in.expect(2, "the validity range");
    metadata.valid_from_s = in.real(0, "validity start");
    metadata.valid_to_s = in.real(1, "validity end");
    if (!in.next()) fail(in.line(), "unexpected end of file, expected the UTM line");
    if (in.tokens().size() != 6 || in.tokens()[0] != "UTM") {
      fail(in.line(), "expected 'UTM <datum> <zone> <easting> <northing> <z>'");
    }
    for (std::size_t i = 3; i < 6; ++i) (void)in.real(i, "UTM coordinate");
    metadata.utm_reference.clear();
    for (std::size_t i = 1; i < 6; ++i) {
      if (i > 1) metadata.utm_reference += ' ';
      metadata.utm_reference += in.tokens()[i];
    }
    in.expect(1, "the module count");
    module_count = in.integer<std::size_t>(0, "module count");
  }

  const std::size_t module_fields = version <= 3 ? 4 : version == 4 ? 12 : 13;
  const std::size_t pmt_fields = version <= 2 ? 8 : 9;
  std::vector<Module> modules;
  modules.reserve(std::min(module_count, kReserveModulesCap));
  std::set<std::uint32_t> seen;
  for (std::size_t m = 0; m < module_count; ++m) {
    if (!in.next()) {
      fail(in.line(), "unexpected end of file after " + std::to_string(m) + " of " +
                          std::to_string(module_count) + " modules");
    }
    if (in.tokens().size() != module_fields) {
      fail(in.line(), "expected " + std::to_string(module_fields) + " fields for a v" + std::to_string(version) +
                          " module line, found " + std::to_string(in.tokens().size()));
    }
    Module module;
    module.id = in.integer<std::uint32_t>(0, "module id");
    module.du = in.integer<int>(1, "DU");
    module.floor = in.integer<int>(2, "floor");
    if (version >= 4) {
      module.position_m = {in.real(3, "x"), in.real(4, "y"), in.real(5, "z")};
      for (std::size_t q = 0; q < 4; ++q) module.quaternion[q] = in.real(6 + q, "quaternion component");
      module.t0_ns = in.real(10, "module t0");
      if (version == 5) module.status = in.integer<std::uint32_t>(11, "module status");
    }
    const auto pmt_count = in.integer<std::size_t>(module_fields - 1, "PMT count");
    if (pmt_count > kMaxPmtsPerModule) fail(in.line(), "implausible PMT count " + std::to_string(pmt_count));
    if (!seen.insert(module.id).second) fail(in.line(), "duplicate module id " + std::to_string(module.id));

    module.pmts.reserve(pmt_count);
    Vec3 sum;
    for (std::size_t p = 0; p < pmt_count; ++p) {
      if (!in.next()) {
        fail(in.line(), "unexpected end of file in module " + std::to_string(module.id) + " after " +
                            std::to_string(p) + " of " + std::to_string(pmt_count) + " PMTs");
      }
      if (in.tokens().size() != pmt_fields) {
        fail(in.line(), "expected " + std::to_string(pmt_fields) + " fields for a v" + std::to_string(version) +
                            " PMT line, found " + std::to_string(in.tokens().size()));
      }
      Pmt pmt;
      pmt.id = in.integer<std::uint32_t>(0, "PMT id");
      pmt.position_m = {in.real(1, "x"), in.real(2, "y"), in.real(3, "z")};
      pmt.direction = {in.real(4, "dx"), in.real(5, "dy"), in.real(6, "dz")};
      pmt.t0_ns = in.real(7, "PMT t0");
      if (version >= 3) pmt.status = in.integer<std::uint32_t>(8, "PMT status");
      sum = sum + pmt.position_m;
      module.pmts.push_back(pmt);
    }
    if (version <= 3 && pmt_count > 0) module.position_m = (1.0 / static_cast<double>(pmt_count)) * sum;
    modules.push_back(std::move(module));
  }
  if (in.next()) {
    fail(in.line(), "unexpected content after the " + std::to_string(module_count) + " declared modules");
  }
  Detector detector(id, std::move(modules), version);
  detector.metadata_ = std::move(metadata);
  return detector;
}

Detector Detector::load(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw DetxError(0, "cannot open detector file '" + path.string() + "'");
  std::ostringstream buffer;
  buffer << file.rdbuf();
  if (file.bad()) throw DetxError(0, "cannot read detector file '" + path.string() + "'");
  try {
    return parse(buffer.str());
  } catch (const DetxError& e) {
    throw DetxError(e.line(), path.string() + ": " + e.what());
  }
}

const Module* Detector::find(std::uint32_t dom_id) const noexcept {
  const auto it = by_id_.find(dom_id);
  return it == by_id_.end() ? nullptr : &modules_[it->second];
}

std::optional<std::size_t> Detector::index_of(std::uint32_t dom_id) const noexcept {
  const auto it = by_id_.find(dom_id);
  if (it == by_id_.end()) return std::nullopt;
  return it->second;
}

const Pmt* Detector::pmt(std::uint32_t dom_id, unsigned channel) const noexcept {
  const Module* module = find(dom_id);
  if (module == nullptr || channel >= module->pmts.size()) return nullptr;
  return &module->pmts[channel];
}

std::vector<int> Detector::du_ids() const {
  std::vector<int> ids;
  ids.reserve(modules_.size());
  for (const auto& m : modules_) ids.push_back(m.du);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

std::vector<const Module*> Detector::modules_of_du(int du) const {
  std::vector<const Module*> result;
  for (const auto& m : modules_) {
    if (m.du == du) result.push_back(&m);
  }
  std::stable_sort(result.begin(), result.end(), [](const Module* a, const Module* b) { return a->floor < b->floor; });
  return result;
}

std::size_t Detector::optical_module_count() const noexcept {
  return static_cast<std::size_t>(
      std::count_if(modules_.begin(), modules_.end(), [](const Module& m) { return !m.pmts.empty(); }));
}

std::size_t Detector::pmt_count() const noexcept {
  std::size_t n = 0;
  for (const auto& m : modules_) n += m.pmts.size();
  return n;
}

std::string Detector::to_detx() const {
  std::string out;
  out.reserve(64 + modules_.size() * 120 + pmt_count() * 110);
  out += "# written by shoredaq\n";
  out += std::to_string(id_) + " v5\n";
  out += format_real(metadata_.valid_from_s) + " " + format_real(metadata_.valid_to_s) + "\n";
  out += "UTM " + metadata_.utm_reference + "\n";
  out += std::to_string(modules_.size()) + "\n";
  for (const auto& m : modules_) {
    out += std::to_string(m.id) + ' ' + std::to_string(m.du) + ' ' + std::to_string(m.floor);
    for (const double v : {m.position_m.x, m.position_m.y, m.position_m.z}) out += ' ' + format_real(v);
    for (const double q : m.quaternion) out += ' ' + format_real(q);
    out += ' ' + format_real(m.t0_ns) + ' ' + std::to_string(m.status) + ' ' + std::to_string(m.pmts.size()) + '\n';
    for (const auto& p : m.pmts) {
      out += ' ' + std::to_string(p.id);
      for (const double v : {p.position_m.x, p.position_m.y, p.position_m.z, p.direction.x, p.direction.y,
                             p.direction.z, p.t0_ns}) {
        out += ' ' + format_real(v);
      }
      out += ' ' + std::to_string(p.status) + '\n';
    }
  }
  return out;
}

std::vector<int> parse_du_selection(std::string_view text, const Detector& detector) {
  const std::vector<int> available = detector.du_ids();
  auto trim = [](std::string_view v) {
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
    return v;
  };
  auto to_int = [&](std::string_view v) {
    v = trim(v);
    int value = 0;
    if (v.empty()) throw std::invalid_argument("empty DU number in selection '" + std::string(text) + "'");
    for (char c : v) {
      if (c < '0' || c > '9' || value > 1'000'000)
        throw std::invalid_argument("bad DU number '" + std::string(v) + "' in selection '" + std::string(text) + "'");
      value = value * 10 + (c - '0');
    }
    return value;
  };
  const std::string_view all = trim(text);
  if (all == "all") {
    if (available.empty()) throw std::invalid_argument("the detector has no DUs");
    return available;
  }
  std::vector<int> selected;
  if (all.starts_with("first:")) {
    const int n = to_int(all.substr(6));
    if (n <= 0 || static_cast<std::size_t>(n) > available.size())
      throw std::invalid_argument("selection '" + std::string(text) + "': the detector has " +
                                  std::to_string(available.size()) + " DUs");
    return std::vector<int>(available.begin(), available.begin() + n);
  }
  std::string_view rest = all;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    const auto dash = item.find('-');
    if (dash == std::string_view::npos) {
      const int du = to_int(item);
      if (!std::binary_search(available.begin(), available.end(), du))
        throw std::invalid_argument("DU " + std::to_string(du) + " is not in the detector");
      selected.push_back(du);
    } else {
      const int lo = to_int(item.substr(0, dash)), hi = to_int(item.substr(dash + 1));
      if (hi < lo) throw std::invalid_argument("bad DU range '" + std::string(item) + "'");
      bool any = false;
      for (int du : available)
        if (du >= lo && du <= hi) selected.push_back(du), any = true;
      if (!any) throw std::invalid_argument("no DU of the detector in range '" + std::string(item) + "'");
    }
  }
  std::sort(selected.begin(), selected.end());
  selected.erase(std::unique(selected.begin(), selected.end()), selected.end());
  if (selected.empty()) throw std::invalid_argument("empty DU selection");
  return selected;
}

}  // namespace shoredaq::dataflow
