#include "shoredaq/drivers/feed_sink.hpp"

#include <stdexcept>
#include <zmq.hpp>

namespace shoredaq::drivers {

namespace {
constexpr std::uint32_t kBadLengthOverrun = 65536;  // beyond any UDP datagram: clearly invalid
}

void append_record_with_length(std::vector<std::uint8_t>& out, std::span<const std::uint8_t> datagram,
                               std::uint32_t length_field) {
  out.push_back(static_cast<std::uint8_t>(length_field));
  out.push_back(static_cast<std::uint8_t>(length_field >> 8));
  out.push_back(static_cast<std::uint8_t>(length_field >> 16));
  out.push_back(static_cast<std::uint8_t>(length_field >> 24));
  out.insert(out.end(), datagram.begin(), datagram.end());
}

DqdFileSink::DqdFileSink(const std::filesystem::path& path) : writer_(path) {}

DqdFileSink::~DqdFileSink() {
  try {
    finish();
  } catch (...) {  // a destructor must not throw; finish() reports errors when called explicitly
  }
}

void DqdFileSink::write(std::span<const SimDatagram> datagrams) {
  if (finished_) throw std::logic_error("DqdFileSink: write after finish");
  for (const SimDatagram& dg : datagrams) {
    if (dg.fault == DatagramFault::BadLengthRecord) {
      bad_length_.push_back(dg.bytes);
      continue;
    }
    writer_.write(dg.bytes);
    ++counters_.records;
    counters_.bytes += dataflow::kRecordLengthBytes + dg.bytes.size();
  }
}

void DqdFileSink::finish() {
  if (finished_) return;
  finished_ = true;
  if (!bad_length_.empty()) {
    // The first bad length covers everything after it, + 1: that record overruns the end of the file.
    std::size_t trailing = 0;
    for (const auto& b : bad_length_) trailing += b.size() + dataflow::kRecordLengthBytes;
    std::vector<std::uint8_t> buffer;
    for (std::size_t i = 0; i < bad_length_.size(); ++i) {
      const auto length = i == 0 ? static_cast<std::uint32_t>(trailing - dataflow::kRecordLengthBytes + 1)
                                 : static_cast<std::uint32_t>(bad_length_[i].size() + kBadLengthOverrun);
      append_record_with_length(buffer, bad_length_[i], length);
      ++counters_.records;
      ++counters_.bad_length_records;
    }
    writer_.write_records(buffer, bad_length_.size());
    counters_.bytes += buffer.size();
  }
  writer_.close();
}

ZmqFeedSender::ZmqFeedSender(ZmqSenderConfig config, const std::atomic<bool>* stop)
    : config_(std::move(config)), stop_(stop), context_(std::make_unique<zmq::context_t>(1)) {
  const auto type = config_.kind == ZmqSenderConfig::Kind::Push ? zmq::socket_type::push : zmq::socket_type::pub;
  socket_ = std::make_unique<zmq::socket_t>(*context_, type);
  socket_->set(zmq::sockopt::linger, config_.linger_ms);
  socket_->set(zmq::sockopt::sndhwm, config_.send_hwm);
  if (config_.kind == ZmqSenderConfig::Kind::Pub)
    socket_->set(zmq::sockopt::xpub_nodrop, 1);  // EAGAIN at the HWM instead of a silent drop: countable
  else
    socket_->set(zmq::sockopt::sndtimeo, config_.blocked_retry_ms);
  if (config_.configure_socket) config_.configure_socket(*socket_);
  if (config_.bind)
    socket_->bind(config_.endpoint);
  else
    socket_->connect(config_.endpoint);
}

ZmqFeedSender::~ZmqFeedSender() {
  try {
    finish();
  } catch (...) {
  }
  socket_.reset();  // linger is bounded, so closing never hangs
  context_.reset();
}

void ZmqFeedSender::send_message(std::span<const std::uint8_t> bytes) {
  if (bytes.empty()) return;
  auto sent = socket_->send(zmq::const_buffer(bytes.data(), bytes.size()), zmq::send_flags::dontwait);
  if (!sent) {
    if (config_.kind == ZmqSenderConfig::Kind::Pub) {
      ++counters_.hwm_dropped;
      return;
    }
    ++counters_.hwm_blocked;
    while (!sent) {
      if (stop_ && stop_->load()) {
        ++counters_.dropped_on_stop;
        return;
      }
      sent = socket_->send(zmq::const_buffer(bytes.data(), bytes.size()), zmq::send_flags::none);  // sndtimeo-bounded
    }
  }
  ++counters_.messages;
  counters_.bytes += bytes.size();
}

void ZmqFeedSender::flush() {
  if (batch_.empty()) return;
  send_message(batch_.bytes());
  batch_.clear();  // keeps the capacity
}

void ZmqFeedSender::write(std::span<const SimDatagram> datagrams) {
  for (const SimDatagram& dg : datagrams) {
    if (dg.fault == DatagramFault::BadLengthRecord) {
      flush();
      std::vector<std::uint8_t> alone;
      append_record_with_length(alone, dg.bytes, static_cast<std::uint32_t>(dg.bytes.size() + kBadLengthOverrun));
      ++counters_.records;
      ++counters_.bad_length_records;
      send_message(alone);
      continue;
    }
    if (!batch_.empty() && batch_.size() + dg.bytes.size() + dataflow::kRecordLengthBytes > config_.batch_bytes) flush();
    batch_.append(dg.bytes);
    ++counters_.records;
  }
  flush();  // end of slice: the receiver should not wait for the next slice's data
}

void ZmqFeedSender::send_framed(std::span<const std::uint8_t> records, std::size_t record_count) {
  flush();
  counters_.records += record_count;
  send_message(records);
}

void ZmqFeedSender::finish() { flush(); }

}  // namespace shoredaq::drivers
