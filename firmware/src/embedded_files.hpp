#pragma once
// The files compiled into the daemon (cmake/ShoredaqEmbed.cmake): the live page and Chart.js,
// each under the URL path it is served at. Internal to the firmware library.

#include <span>
#include <string_view>

namespace shoredaq::firmware {

struct EmbeddedFile {
  std::string_view url_path;  // e.g. "/static/live.js"
  std::string_view bytes;
};

std::span<const EmbeddedFile> embedded_files() noexcept;

}  // namespace shoredaq::firmware
