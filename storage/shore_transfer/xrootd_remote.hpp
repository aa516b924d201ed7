#pragma once
// The computing centre over XRootD (root://): the Tier0Remote of shore-transfer, on the XRootD
// client library (XrdCl). Checksums come from the server (FileSystem::Query(Checksum)), so what
// is compared with the manifest is what the server holds, not what the client meant to send.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "shoredaq/storage/tier0_transfer.hpp"

namespace shoredaq::transfer {

struct XrootdTimeouts {
  std::chrono::seconds connect{15};   // a dead server is reported after this (one connection try)
  std::chrono::seconds request{120};  // one request (a chunk write, a checksum of a large file)
};

// Process-wide XRootD client settings; call once before the first XrootdRemote.
void configure_xrootd_client(const XrootdTimeouts& timeouts);

// True for "root://host[:port]" (or roots://) with nothing after the host but an optional "/".
bool is_xrootd_endpoint(const std::string& endpoint);

std::unique_ptr<storage::Tier0Remote> make_xrootd_remote(const std::string& endpoint, const XrootdTimeouts& timeouts);

}  // namespace shoredaq::transfer
