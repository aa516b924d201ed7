#include "shoredaq/dataflow/slice_products.hpp"

namespace shoredaq::dataflow {

std::string_view to_string(TimesliceKind kind) noexcept {
  switch (kind) {
    case TimesliceKind::Error: return "error";
    case TimesliceKind::L0: return "l0";
    case TimesliceKind::L1: return "l1";
    case TimesliceKind::L2: return "l2";
    case TimesliceKind::SN: return "sn";
  }
  return "unknown";
}

std::int32_t online_type_of(TimesliceKind kind) noexcept { return 1001 + static_cast<std::int32_t>(kind); }

}  // namespace shoredaq::dataflow
