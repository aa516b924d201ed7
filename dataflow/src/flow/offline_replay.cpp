#include "shoredaq/dataflow/offline_replay.hpp"

namespace shoredaq::dataflow {

DqdChunker::DqdChunker(const std::filesystem::path& path, std::size_t chunk_bytes)
    : reader_(path), chunk_bytes_(chunk_bytes == 0 ? 1 : chunk_bytes) {}

bool DqdChunker::next(std::vector<std::uint8_t>& chunk) {
  chunk.clear();
  std::span<const std::uint8_t> datagram;
  while (chunk.size() < chunk_bytes_ && reader_.next(datagram)) append_record(chunk, datagram);
  return !chunk.empty();
}

}  // namespace shoredaq::dataflow
