// Fuzz target: DataFilter on arbitrary frames, as the builder may hand them on from a hostile or
// broken DU (any channel byte, any hit time, any order, any status word). Input: 2 bytes of trigger
// settings, then frames as [dom byte][status byte][hit count byte][hits, 6 bytes each].
// Invariants: no crash; every input hit is accounted for (defective, vetoed or L0); the split filter
// gives the same result, byte for byte, as the one-pass filter.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <vector>

#include "shoredaq/filters/data_filter.hpp"
#include "shoredaq/firmware/filtered_slice_fb.hpp"
#include "shoredaq/formats/clb_datagram.hpp"
#include "shoredaq/formats/detector.hpp"

namespace sd = shoredaq::dataflow;
namespace sf = shoredaq::filters;

namespace {

// Two DUs of 6 DOMs, 9 m apart on a DU and 30 m between DUs; PMT t0 from -2 us to +1 us, not in
// whole ns, so calibrated times cross zero and the slice end.
const sd::Detector& detector() {
  static const sd::Detector det = [] {
    std::vector<sd::Module> modules;
    for (int du = 1; du <= 2; ++du) {
      for (int floor = 1; floor <= 6; ++floor) {
        sd::Module m;
        m.id = static_cast<std::uint32_t>(10 * du + floor);
        m.du = du;
        m.floor = floor;
        m.position_m = {30.0 * du, 0.0, 9.0 * floor};
        for (unsigned ch = 0; ch < sd::kPmtsPerDom; ++ch) {
          sd::Pmt p;
          p.id = m.id * 100 + ch;
          p.direction = {ch % 2 ? 1.0 : -1.0, 0.0, ch % 3 ? 0.5 : -0.5};
          p.position_m = m.position_m;
          p.t0_ns = -2000.0 + 97.3 * ch + 11.1 * floor;
          m.pmts.push_back(p);
        }
        modules.push_back(std::move(m));
      }
    }
    return sd::Detector(7, std::move(modules));
  }();
  return det;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  sf::TriggerParameters p;
  p.mxshower.number_of_hits = 2 + data[0] % 6;
  p.mxshower.number_of_modules = 1 + (data[0] >> 3) % 3;
  p.muon3d.number_of_hits = 2 + data[1] % 5;
  p.muon3d.number_of_modules = 1 + (data[1] >> 3) % 3;
  p.shower3d.number_of_hits = 2 + data[1] % 4;
  p.high_rate_veto_hz = (data[0] & 0x80) ? 50.0 : 1.0e6;
  p.max_hits_per_frame = (data[1] & 0x80) ? 40 : 1'000'000;
  p.supernova.enabled = true;
  p.supernova.min_multiplicity = 2;
  p.prescale_l0 = p.prescale_l1 = p.prescale_l2 = p.prescale_sn = 1;
  p.sn_min_multiplicity = 2;
  sd::Timeslice slice;
  slice.header.frame_index = 1;
  std::size_t at = 2, hits_in = 0;
  while (at + 3 <= size) {
    sd::DomFrame f;
    f.dom_id = 11 + data[at] % 20;  // some ids are not in the detector
    const std::uint8_t s = data[at + 1];
    const std::uint32_t datagrams = 1 + s % 3;
    f.status.daq = sd::FrameStatus::make_daq((s & 0x40) ? datagrams - 1 : datagrams, datagrams - 1);
    f.status.fifo = (s & 0x80) ? 0u : sd::kStatus2Trailer;
    f.status.status = (s & 0x20) ? 0x5u : 0u;  // HRV bits on channels 0 and 2
    const std::size_t n = data[at + 2];
    at += 3;
    const std::size_t bytes = std::min(n * sd::kHitBytes, size - at);
    f.hits.assign(data + at, data + at + bytes);  // may end with a torn hit
    at += bytes;
    hits_in += f.hit_count();
    slice.frames.push_back(std::move(f));
  }
  const sf::DataFilter filter(detector(), p);
  const auto r = filter.process(slice);
  const auto& c = r.counters;
  if (c.hits_in != hits_in || c.frames != slice.frames.size()) std::abort();
  if (c.hits_defective + c.hits_vetoed + c.l0_hits != c.hits_in) std::abort();
  const sf::TaskRunner serial = [](std::size_t n, const std::function<void(std::size_t)>& task) {
    for (std::size_t i = n; i-- > 0;) task(i);  // another order than one pass
  };
  // The whole result (events, summary, error frames, prescaled slices, SN figure, counters), as bytes.
  shoredaq::firmware::FilteredSlice one{{}, r, 0, {}};
  shoredaq::firmware::FilteredSlice split{{}, filter.process(slice, serial, 3), 0, {}};
  if (shoredaq::firmware::encode_filtered_slice_fb(one) != shoredaq::firmware::encode_filtered_slice_fb(split))
    std::abort();
  return 0;
}
