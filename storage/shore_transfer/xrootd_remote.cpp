#include "xrootd_remote.hpp"

#include <XrdCl/XrdClBuffer.hh>
#include <XrdCl/XrdClDefaultEnv.hh>
#include <XrdCl/XrdClFile.hh>
#include <XrdCl/XrdClFileSystem.hh>
#include <XrdCl/XrdClURL.hh>

#include <algorithm>
#include <optional>
#include <span>
#include <sstream>

namespace shoredaq::transfer {

using storage::RemoteFailure;

namespace {

// Errors that mean "no server there" rather than "the server said no".
bool is_unreachable(const XrdCl::XRootDStatus& st) {
  switch (st.code) {
    case XrdCl::errInvalidAddr:
    case XrdCl::errSocketError:
    case XrdCl::errSocketTimeout:
    case XrdCl::errSocketDisconnected:
    case XrdCl::errPollerError:
    case XrdCl::errStreamDisconnect:
    case XrdCl::errConnectionError:
    case XrdCl::errOperationExpired:
      return true;
    default:
      return false;
  }
}

bool is_not_found(const XrdCl::XRootDStatus& st) {
  return st.code == XrdCl::errErrorResponse && st.errNo == kXR_NotFound;
}

[[noreturn]] void fail(const std::string& what, const std::string& url, const XrdCl::XRootDStatus& st) {
  throw RemoteFailure(what + " " + url + ": " + st.ToStr(), is_unreachable(st));
}

std::uint16_t seconds16(std::chrono::seconds s) {
  return static_cast<std::uint16_t>(std::clamp<std::int64_t>(s.count(), 1, 65535));
}

class XrootdWriter final : public storage::Tier0RemoteWriter {
 public:
  XrootdWriter(const std::string& url, std::uint16_t timeout_s) : url_(url), timeout_s_(timeout_s) {
    const auto st = file_.Open(url, XrdCl::OpenFlags::Delete | XrdCl::OpenFlags::Update | XrdCl::OpenFlags::MakePath,
                               XrdCl::Access::UR | XrdCl::Access::UW | XrdCl::Access::GR | XrdCl::Access::OR, timeout_s_);
    if (!st.IsOK()) fail("open for writing", url_, st);
  }
  ~XrootdWriter() override {
    if (file_.IsOpen()) {
      // An abandoned upload (failure, stop): closed without a verdict; the .part is never used.
      const auto ignored = file_.Close(timeout_s_);
      (void)ignored;
    }
  }
  void write(std::uint64_t offset, std::span<const std::uint8_t> bytes) override {
    const auto st = file_.Write(offset, static_cast<std::uint32_t>(bytes.size()), bytes.data(), timeout_s_);
    if (!st.IsOK()) fail("write at byte " + std::to_string(offset) + " of", url_, st);
  }
  void close() override {
    const auto st = file_.Close(timeout_s_);
    if (!st.IsOK()) fail("close", url_, st);
  }

 private:
  XrdCl::File file_;
  std::string url_;
  std::uint16_t timeout_s_;
};

class XrootdRemote final : public storage::Tier0Remote {
 public:
  XrootdRemote(const std::string& endpoint, const XrootdTimeouts& timeouts)
      : endpoint_(endpoint.ends_with('/') ? endpoint.substr(0, endpoint.size() - 1) : endpoint),
        fs_(XrdCl::URL(endpoint_)),
        timeout_s_(seconds16(timeouts.request)) {}

  std::string url(const std::string& path) const override { return endpoint_ + "/" + path; }

  std::optional<std::uint64_t> size_of(const std::string& path) override {
    XrdCl::StatInfo* raw = nullptr;
    const auto st = fs_.Stat(path, raw, timeout_s_);
    const std::unique_ptr<XrdCl::StatInfo> info(raw);
    if (is_not_found(st)) return std::nullopt;
    if (!st.IsOK() || !info) fail("stat", url(path), st);
    return info->GetSize();
  }

  std::string adler32_of(const std::string& path) override {
    XrdCl::Buffer argument;
    argument.FromString(path);
    XrdCl::Buffer* raw = nullptr;
    const auto st = fs_.Query(XrdCl::QueryCode::Checksum, argument, raw, timeout_s_);
    const std::unique_ptr<XrdCl::Buffer> response(raw);
    if (!st.IsOK() || !response) fail("checksum query of", url(path), st);
    // "adler32 01df55d3" (possibly NUL-terminated)
    std::istringstream words(response->ToString().c_str());
    std::string algorithm, value;
    words >> algorithm >> value;
    if (algorithm != "adler32" || value.empty()) {
      throw RemoteFailure("checksum query of " + url(path) + " answered '" + response->ToString().c_str() +
                              "' (the server must be configured with xrootd.chksum adler32)",
                          false);
    }
    return value;
  }

  void make_directories(const std::string& dir) override {
    const auto mode = XrdCl::Access::UR | XrdCl::Access::UW | XrdCl::Access::UX | XrdCl::Access::GR |
                      XrdCl::Access::GX | XrdCl::Access::OR | XrdCl::Access::OX;
    const auto st = fs_.MkDir(dir, XrdCl::MkDirFlags::MakePath, mode, timeout_s_);
    if (!st.IsOK()) fail("mkdir -p", url(dir), st);
  }

  void remove(const std::string& path) override {
    const auto st = fs_.Rm(path, timeout_s_);
    if (!st.IsOK() && !is_not_found(st)) fail("remove", url(path), st);
  }

  void rename(const std::string& from, const std::string& to) override {
    auto st = fs_.Mv(from, to, timeout_s_);
    if (!st.IsOK() && !is_unreachable(st) && size_of(to)) {
      // A server that will not rename over a file: the target is the wrong copy the agent
      // decided to replace (it checked it first), so it goes and the rename is tried again.
      remove(to);
      st = fs_.Mv(from, to, timeout_s_);
    }
    if (!st.IsOK()) fail("rename to " + to + ":", url(from), st);
  }

  std::unique_ptr<storage::Tier0RemoteWriter> create(const std::string& path) override {
    return std::make_unique<XrootdWriter>(url(path), timeout_s_);
  }

 private:
  std::string endpoint_;
  XrdCl::FileSystem fs_;
  std::uint16_t timeout_s_;
};

}  // namespace

void configure_xrootd_client(const XrootdTimeouts& timeouts) {
  XrdCl::Env* env = XrdCl::DefaultEnv::GetEnv();
  // The agent retries with its own backoff: one connection try per request, bounded in time.
  env->PutInt("ConnectionWindow", static_cast<int>(timeouts.connect.count()));
  env->PutInt("ConnectionRetry", 1);
  env->PutInt("RequestTimeout", static_cast<int>(timeouts.request.count()));
  env->PutInt("StreamErrorWindow", 0);
  // A write that broke off is never resumed behind the agent's back: it re-sends the file whole.
  env->PutString("WriteRecovery", "false");
  env->PutString("OpenRecovery", "false");
}

bool is_xrootd_endpoint(const std::string& endpoint) {
  std::string rest;
  if (endpoint.starts_with("root://")) {
    rest = endpoint.substr(7);
  } else if (endpoint.starts_with("roots://")) {
    rest = endpoint.substr(8);
  } else {
    return false;
  }
  if (rest.ends_with('/')) rest.pop_back();
  if (rest.empty() || rest.find('/') != std::string::npos) return false;
  return XrdCl::URL(endpoint).IsValid();
}

std::unique_ptr<storage::Tier0Remote> make_xrootd_remote(const std::string& endpoint, const XrootdTimeouts& timeouts) {
  return std::make_unique<XrootdRemote>(endpoint, timeouts);
}

}  // namespace shoredaq::transfer
