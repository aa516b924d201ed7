#include "shoredaq/dataflow/zmq_ingest.hpp"

#include <cstring>
#include <iterator>

#include <zmq_addon.hpp>

#include "shoredaq/formats/record_stream.hpp"

namespace shoredaq::dataflow {

namespace {

IngestRejectCause cause_of(DatagramError e) noexcept {
  switch (e) {
    case DatagramError::TruncatedHeader: return IngestRejectCause::TruncatedHeader;
    case DatagramError::UnknownDataType: return IngestRejectCause::UnknownDataType;
    case DatagramError::PayloadNotMultipleOfHitSize: return IngestRejectCause::BadPayloadSize;
    case DatagramError::ChannelOutOfRange: return IngestRejectCause::ChannelOutOfRange;
    case DatagramError::BadMonitoringSize: return IngestRejectCause::BadMonitoringSize;
    case DatagramError::None: break;
  }
  return IngestRejectCause::UnknownDataType;
}
}  // namespace

std::uint64_t unix_now_ns() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

std::optional<HeaderLayoutMode> parse_header_layout_mode(std::string_view text) noexcept {
  if (text == "40" || text == "standard") return HeaderLayoutMode::Standard40;
  if (text == "28" || text == "legacy") return HeaderLayoutMode::Legacy28;
  if (text == "auto") return HeaderLayoutMode::Auto;
  return std::nullopt;
}

std::string_view to_string(IngestRejectCause cause) noexcept {
  switch (cause) {
    case IngestRejectCause::BadRecordLength: return "bad_record_length";
    case IngestRejectCause::TruncatedLength: return "truncated_length";
    case IngestRejectCause::TruncatedHeader: return "truncated_header";
    case IngestRejectCause::UnknownDataType: return "unknown_data_type";
    case IngestRejectCause::BadPayloadSize: return "bad_payload_size";
    case IngestRejectCause::BadMonitoringSize: return "bad_monitoring_size";
    case IngestRejectCause::ChannelOutOfRange: return "channel_out_of_range";
    case IngestRejectCause::PeerDisconnected: return "peer_disconnected";
    case IngestRejectCause::OversizeMessage: return "oversize_message";
    case IngestRejectCause::Count_: break;
  }
  return "unknown";
}

IngestCounters& IngestCounters::operator+=(const IngestCounters& o) noexcept {
  messages += o.messages;
  bytes += o.bytes;
  datagrams += o.datagrams;
  datagram_bytes += o.datagram_bytes;
  for (std::size_t i = 0; i < kIngestRejectCauseCount; ++i) {
    rejected_bytes[i] += o.rejected_bytes[i];
    rejected_records[i] += o.rejected_records[i];
  }
  return *this;
}

IngestParser::IngestParser(HeaderLayoutMode mode, bool check_channels, RateLimitedLog* log, std::string stream_name)
    : mode_(mode), check_channels_(check_channels), log_(log), stream_name_(std::move(stream_name)) {
  if (mode == HeaderLayoutMode::Standard40) layout_ = HeaderLayout::Standard40;
  if (mode == HeaderLayoutMode::Legacy28) layout_ = HeaderLayout::Legacy28;
}

void IngestParser::reject(IngestRejectCause cause, std::size_t bytes, std::size_t offset) {
  const auto i = static_cast<std::size_t>(cause);
  counters_.rejected_bytes[i] += bytes;
  ++counters_.rejected_records[i];
  if (log_ != nullptr) {
    log_->log(spdlog::level::warn, to_string(cause), "ingest {}: rejected {} bytes at offset {} of a message: {}",
              stream_name_, bytes, offset, to_string(cause));
  }
}

void IngestParser::reject_oversize(std::span<const std::uint8_t> message) {
  ++counters_.messages;
  counters_.bytes += message.size();
  // Walk the length prefixes only: how many datagrams the message held, none of them parsed.
  std::uint64_t records = 0;
  RecordReader reader(message);
  std::span<const std::uint8_t> record;
  while (reader.next(record)) ++records;
  const auto cause = static_cast<std::size_t>(IngestRejectCause::OversizeMessage);
  counters_.rejected_records[cause] += std::max<std::uint64_t>(records, 1);
  counters_.rejected_bytes[cause] += message.size();
}

std::size_t IngestParser::parse(std::span<const std::uint8_t> message, std::vector<ParsedRecord>& out) {
  ++counters_.messages;
  counters_.bytes += message.size();
  std::size_t appended = 0;
  RecordReader reader(message);
  std::span<const std::uint8_t> record;
  while (reader.next(record)) {
    const std::size_t record_offset = static_cast<std::size_t>(record.data() - message.data()) - kRecordLengthBytes;
    const std::size_t framed_bytes = kRecordLengthBytes + record.size();
    if (!layout_) layout_ = detect_header_layout(record);  // Auto: the stream's first datagram decides
    const DatagramParseResult r = parse_clb_datagram(record, ParseOptions{*layout_, check_channels_});
    if (!r) {
      reject(cause_of(r.error), framed_bytes, record_offset);
      continue;
    }
    ParsedRecord p;
    p.header = r.datagram.header;
    p.layout = r.datagram.layout;
    p.payload_offset = static_cast<std::uint32_t>(r.datagram.payload.data() - message.data());
    p.payload_size = static_cast<std::uint32_t>(r.datagram.payload.size());
    out.push_back(p);
    ++appended;
    ++counters_.datagrams;
    counters_.datagram_bytes += framed_bytes;
  }
  switch (reader.error()) {
    case RecordError::None: break;
    case RecordError::TruncatedLength:
      reject(IngestRejectCause::TruncatedLength, reader.bytes_rejected(), reader.offset());
      break;
    default:  // the length cannot be trusted, so neither can anything after it in this message
      reject(IngestRejectCause::BadRecordLength, reader.bytes_rejected(), reader.offset());
      break;
  }
  return appended;
}

ClbDatagram ParsedMessage::datagram(std::size_t i) const noexcept {
  const ParsedRecord& r = records[i];
  ClbDatagram d;
  d.header = r.header;
  d.layout = r.layout;
  d.payload = bytes().subspan(r.payload_offset, r.payload_size);
  return d;
}

ZmqIngest::ZmqIngest(zmq::context_t& context, ZmqIngestConfig config, MessageSink sink, RateLimitedLog* log)
    : context_(context), config_(std::move(config)), sink_(std::move(sink)), log_(log) {}

ZmqIngest::~ZmqIngest() { stop(); }

void ZmqIngest::start() {
  if (running_.load()) return;
  static std::atomic<std::uint64_t> monitor_sequence{0};
  sockets_.clear();
  monitors_.clear();
  parsers_.clear();
  disconnects_.assign(config_.endpoints.size(), 0);
  for (const IngestEndpoint& ep : config_.endpoints) {
    zmq::socket_t s(context_, ep.kind == IngestSocketKind::Pull ? zmq::socket_type::pull : zmq::socket_type::sub);
    s.set(zmq::sockopt::linger, config_.linger_ms);
    s.set(zmq::sockopt::rcvhwm, config_.receive_hwm);
    s.set(zmq::sockopt::maxmsgsize, config_.hard_max_message_bytes > 0 ? config_.hard_max_message_bytes
                                                                       : 4 * config_.max_message_bytes);
    if (ep.kind == IngestSocketKind::Sub) s.set(zmq::sockopt::subscribe, ep.subscription);
    // Before the owner's hook, which may install a monitor of its own (see the top of the header).
    const std::string monitor_endpoint =
        "inproc://shoredaq.ingest-monitor." + std::to_string(monitor_sequence.fetch_add(1));
    if (zmq_socket_monitor(s.handle(), monitor_endpoint.c_str(), ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_MONITOR_STOPPED) != 0) {
      throw zmq::error_t();
    }
    zmq::socket_t monitor(context_, zmq::socket_type::pair);
    monitor.set(zmq::sockopt::linger, 0);
    monitor.connect(monitor_endpoint);
    monitors_.push_back(std::move(monitor));
    if (config_.configure_socket) config_.configure_socket(s);
    if (ep.bind) {
      s.bind(ep.address);
    } else {
      s.connect(ep.address);
    }
    sockets_.push_back(std::move(s));
    parsers_.emplace_back(ep.layout, config_.check_channels, log_, ep.address);
  }
  {
    std::lock_guard lock(counters_mutex_);
    published_.assign(config_.endpoints.size(), IngestCounters{});
  }
  stop_requested_ = false;
  running_ = true;
  thread_ = std::thread([this] { run(); });
}

void ZmqIngest::stop() {
  stop_requested_ = true;
  if (thread_.joinable()) thread_.join();
  sockets_.clear();  // closes with the bounded linger
  monitors_.clear();
  running_ = false;
}

void ZmqIngest::publish_counters(std::size_t endpoint) {
  std::lock_guard lock(counters_mutex_);
  published_[endpoint] = parsers_[endpoint].counters();
  published_[endpoint].rejected_records[static_cast<std::size_t>(IngestRejectCause::PeerDisconnected)] =
      disconnects_[endpoint];
}

void ZmqIngest::read_monitor(std::size_t endpoint) {
  // Monitor events: [u16 event, u32 value] then the socket's endpoint.
  for (;;) {
    std::vector<zmq::message_t> event;
    try {
      if (!zmq::recv_multipart(monitors_[endpoint], std::back_inserter(event), zmq::recv_flags::dontwait)) return;
    } catch (const zmq::error_t&) {
      return;
    }
    if (event.empty() || event[0].size() < sizeof(std::uint16_t)) continue;
    std::uint16_t id = 0;
    std::memcpy(&id, event[0].data(), sizeof id);
    const std::string& address = config_.endpoints[endpoint].address;
    if (id == ZMQ_EVENT_DISCONNECTED) {
      ++disconnects_[endpoint];
      publish_counters(endpoint);
      if (log_ != nullptr) {
        // Most often a sender that finished: information, not a warning.
        log_->log(spdlog::level::info, "peer_disconnected",
                  "ingest {}: a peer's connection closed: it left, or it sent a message over {} bytes (lost)", address,
                  config_.hard_max_message_bytes > 0 ? config_.hard_max_message_bytes : 4 * config_.max_message_bytes);
      }
    } else if (id == ZMQ_EVENT_MONITOR_STOPPED && !stop_requested_.load(std::memory_order_relaxed)) {
      if (log_ != nullptr) {
        // A CURVE ingest socket: the node's handshake monitor took the socket's one monitor slot.
        log_->log(spdlog::level::info, "monitor_replaced",
                  "ingest {}: peer disconnects are not counted on this socket: its hook (CURVE) monitors the handshakes",
                  address);
      }
    }
  }
}

IngestCounters ZmqIngest::counters() const {
  std::lock_guard lock(counters_mutex_);
  IngestCounters sum;
  for (const auto& c : published_) sum += c;
  return sum;
}

IngestCounters ZmqIngest::counters(std::size_t endpoint) const {
  std::lock_guard lock(counters_mutex_);
  return endpoint < published_.size() ? published_[endpoint] : IngestCounters{};
}

void ZmqIngest::run() {
  std::vector<zmq::pollitem_t> items;
  for (auto& s : sockets_) items.push_back(zmq::pollitem_t{s.handle(), 0, ZMQ_POLLIN, 0});
  for (auto& m : monitors_) items.push_back(zmq::pollitem_t{m.handle(), 0, ZMQ_POLLIN, 0});
  while (!stop_requested_.load(std::memory_order_relaxed)) {
    try {
      zmq::poll(items, config_.poll_interval);
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      if (log_ != nullptr) log_->log(spdlog::level::err, "poll", "ingest: poll failed: {}", e.what());
      break;
    }
    last_poll_ns_.store(unix_now_ns(), std::memory_order_relaxed);
    for (std::size_t i = 0; i < monitors_.size(); ++i) {
      if ((items[sockets_.size() + i].revents & ZMQ_POLLIN) != 0) read_monitor(i);
    }
    for (std::size_t i = 0; i < sockets_.size(); ++i) {
      if ((items[i].revents & ZMQ_POLLIN) == 0) continue;
      std::size_t n = 0;
      for (; n < config_.max_messages_per_wakeup; ++n) {
        ParsedMessage pm;
        zmq::recv_result_t got;
        try {
          got = sockets_[i].recv(pm.message, zmq::recv_flags::dontwait);
        } catch (const zmq::error_t& e) {
          if (log_ != nullptr) log_->log(spdlog::level::err, "recv", "ingest: receive failed: {}", e.what());
          break;
        }
        if (!got) break;
        pm.receive_unix_ns = unix_now_ns();
        pm.endpoint = i;
        if (static_cast<std::int64_t>(pm.message.size()) > config_.max_message_bytes) {
          parsers_[i].reject_oversize(pm.bytes());
          if (log_ != nullptr) {
            log_->log(spdlog::level::warn, "oversize_message", "ingest: rejected a message of {} bytes on {} (limit {})",
                      pm.message.size(), config_.endpoints[i].address, config_.max_message_bytes);
          }
          continue;
        }
        // Multipart messages: every part is a record stream of its own.
        parsers_[i].parse(pm.bytes(), pm.records);
        last_message_ns_.store(pm.receive_unix_ns, std::memory_order_relaxed);
        if (!pm.records.empty() && sink_) sink_(std::move(pm));
      }
      if (n > 0) publish_counters(i);
    }
  }
}

}  // namespace shoredaq::dataflow
