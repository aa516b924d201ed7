#include "shoredaq/formats/failure_text.hpp"

namespace shoredaq::dataflow {

std::string describe_failure(std::string_view action, std::string_view object, std::string_view cause) {
  std::string text = "cannot ";
  text += action;
  if (!object.empty()) {
    text += ' ';
    text += object;
  }
  text += ": ";
  text += cause.empty() ? std::string_view("unknown error") : cause;
  return text;
}

std::string describe_failure(std::string_view action, std::string_view object, const std::error_code& cause) {
  return describe_failure(action, object, cause.message());
}

std::string describe_errno(std::string_view action, std::string_view object, int errno_value) {
  return describe_failure(action, object, std::error_code(errno_value, std::generic_category()));
}

}  // namespace shoredaq::dataflow
