// Fuzz target: the record stream reader (`[u32 LE length][datagram]`...). Invariants: datagrams lie
// inside the message, in order; returned + rejected bytes account for the whole message; writing
// the returned datagrams back reproduces the accepted prefix.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "shoredaq/formats/clb_datagram.hpp"
#include "shoredaq/formats/record_stream.hpp"

namespace sd = shoredaq::dataflow;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> message(data, size);
  sd::RecordReader reader(message);
  sd::RecordWriter writer;
  std::span<const std::uint8_t> datagram;
  const std::uint8_t* expected_next = data;
  while (reader.next(datagram)) {
    if (datagram.data() != expected_next + sd::kRecordLengthBytes) std::abort();
    if (datagram.data() + datagram.size() > data + size) std::abort();
    expected_next = datagram.data() + datagram.size();
    writer.append(datagram);
    // What the ingest path does with each record.
    (void)sd::parse_clb_datagram(datagram, {.layout = sd::detect_header_layout(datagram)});
  }
  if (reader.offset() != static_cast<std::size_t>(expected_next - data)) std::abort();
  if (reader.offset() + reader.bytes_rejected() != size) std::abort();
  if ((reader.error() == sd::RecordError::None) != (reader.bytes_rejected() == 0)) std::abort();
  if (writer.size() != reader.offset() || !std::equal(writer.bytes().begin(), writer.bytes().end(), data)) {
    std::abort();
  }
  (void)sd::to_string(reader.error());
  return 0;
}
