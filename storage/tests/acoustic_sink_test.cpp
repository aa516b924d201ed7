// The acoustic stream as a run's sink: the builder hands it parsed TAES datagrams, the run's parts
// hold them byte for byte as received, the publisher sends the same bytes, the counters say so.

#include "shoredaq/storage/acoustic_sink.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <zmq.hpp>

#include "shoredaq/formats/record_stream.hpp"
#include "storage_test_support.hpp"
#include "tier0_spool_test_support.hpp"

using namespace shoredaq;
using namespace shoredaq::storage;
namespace st = shoredaq::storage::testing;
namespace fs = std::filesystem;

namespace {

std::vector<std::uint8_t> taes(std::uint32_t dom, std::uint8_t fill) {
  dataflow::ClbHeader h;
  h.data_type = dataflow::DataType::Acoustic;
  h.run_number = 7;
  h.utc_seconds = 1'700'000'000u;
  h.dom_id = dom;
  std::vector<std::uint8_t> d;
  dataflow::encode_clb_header(h, dataflow::HeaderLayout::Standard40, d);
  d.insert(d.end(), 96, fill);
  return d;
}

dataflow::ClbDatagram parsed(const std::vector<std::uint8_t>& bytes) {
  const auto r = dataflow::parse_clb_datagram(bytes);
  EXPECT_EQ(r.error, dataflow::DatagramError::None);
  return r.datagram;
}

}  // namespace

TEST(AcousticSink, TheRunsPartsHoldEveryDatagramAsReceivedAndThePublisherSendsThem) {
  st::TempDir dir("acoustic-sink");
  AcousticSpoolConfig sc;
  sc.directory = dir.path();
  sc.fsync = false;
  AcousticSpool spool(sc);
  zmq::context_t context(1);
  AcousticPublisherConfig pc;
  pc.endpoints = {"inproc://acoustic-sink-test"};
  pc.detector_id = 42;
  auto publisher = std::make_unique<AcousticPublisher>(context, pc);
  zmq::socket_t sub(context, zmq::socket_type::sub);
  sub.set(zmq::sockopt::linger, 0);
  sub.set(zmq::sockopt::subscribe, "");
  sub.set(zmq::sockopt::rcvtimeo, 5000);
  sub.connect("inproc://acoustic-sink-test");

  AcousticSink sink(&spool, std::move(publisher));
  const auto before_run = taes(900, 0);
  sink.on_datagram(parsed(before_run));  // no run yet: counted, not kept

  dataflow::RunRecord run;
  run.run = 12;
  run.detector_id = 42;
  sink.begin_run(run);
  std::vector<std::vector<std::uint8_t>> sent;
  for (std::uint8_t i = 1; i <= 20; ++i) {
    sent.push_back(taes(900 + i % 3, i));
    sink.on_datagram(parsed(sent.back()));
  }
  sink.idle();
  dataflow::RunRecord ended = run;
  sink.end_run(ended);

  std::vector<std::vector<std::uint8_t>> kept;
  for (const auto& name : st::files_in(spool.ready_dir(), ".acoustic.dqd")) {
    for (auto& r : dataflow::read_dqd_file(spool.ready_dir() / name)) kept.push_back(std::move(r));
  }
  EXPECT_EQ(kept, sent);

  // The publisher got the one before the run as well: the positioning system wants them all.
  zmq::message_t topic, body;
  ASSERT_TRUE(sub.recv(topic));
  ASSERT_TRUE(sub.recv(body));
  EXPECT_EQ(std::vector<std::uint8_t>(body.data<std::uint8_t>(), body.data<std::uint8_t>() + body.size()), before_run);

  dataflow::CounterSet counters;
  sink.counters(counters);
  EXPECT_EQ(counters.value("acoustic.datagrams_written"), 20u);
  EXPECT_EQ(counters.value("acoustic.datagrams_outside_run", true), 1u);
  EXPECT_EQ(counters.value("acoustic.datagrams_lost", true), 0u);
  EXPECT_EQ(counters.value("acoustic.datagrams_published"), 21u);
}

TEST(AcousticSink, WithoutASpoolOrPublisherItCountsNothingAndKeepsNothing) {
  AcousticSink sink(nullptr, nullptr);
  sink.on_datagram(parsed(taes(900, 1)));
  dataflow::RunRecord run;
  run.run = 1;
  sink.begin_run(run);
  sink.idle();
  sink.end_run(run);
  dataflow::CounterSet counters, empty;
  sink.counters(counters);
  AcousticSink::describe_empty(empty);
  EXPECT_EQ(counters.flat(), empty.flat());
}
