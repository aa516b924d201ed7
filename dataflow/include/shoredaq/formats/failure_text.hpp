#pragma once
// One way to word a failure everywhere: "cannot <action>[ <object>]: <cause>", e.g.
//   describe_failure("open store", "/var/lib/shoredaq", std::error_code(ENOSPC, std::generic_category()))
//   -> "cannot open store /var/lib/shoredaq: No space left on device"

#include <string>
#include <string_view>
#include <system_error>

namespace shoredaq::dataflow {

std::string describe_failure(std::string_view action, std::string_view object, std::string_view cause);
std::string describe_failure(std::string_view action, std::string_view object, const std::error_code& cause);
// Same, with the cause taken from an errno value.
std::string describe_errno(std::string_view action, std::string_view object, int errno_value);

}  // namespace shoredaq::dataflow
