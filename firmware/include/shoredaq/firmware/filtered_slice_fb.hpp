#pragma once
// FlatBuffers wire format of one processed slice (dataflow/schema/filtered_slice.fbs), for a node
// whose stages run in separate processes: the filter process sends it, the writer process writes
// from it exactly what a single-process node writes. Events, the summary slice, the error frames
// and the prescaled slices travel as their own nested buffers (fb_codec.hpp), each verified by its
// own decoder. Here, not in filters/ or dataflow/: the buffer joins a pipeline type and a filter type.

#include <cstdint>
#include <span>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "shoredaq/dataflow/pipeline_types.hpp"
#include "shoredaq/filters/data_filter.hpp"
#include "shoredaq/formats/fb_codec.hpp"

namespace shoredaq::firmware {

using FilteredSlice = dataflow::ProcessedSlice<filters::FilterResult>;

// Clears and reuses `builder`; the buffer is builder.GetBufferPointer()/GetSize(). Events are
// encoded with committed stamp 0.
void encode_filtered_slice_fb(const FilteredSlice& slice, flatbuffers::FlatBufferBuilder& builder);
std::vector<std::uint8_t> encode_filtered_slice_fb(const FilteredSlice& slice);

// Verifies the whole buffer first (limits explicit), then decodes every nested buffer with its own
// verifier and the same limits. Any failure gives its FbError and an empty value, nothing partial:
// a nested buffer's own error (an absent one gives WrongIdentifier), BadEnum for a prescaled kind
// or supernova DOM state out of range, MissingHeader for an absent slice info or supernova header,
// and VerifyFailed for a supernova multiplicity spectrum of the wrong length.
dataflow::FbDecoded<FilteredSlice> decode_filtered_slice_fb(std::span<const std::uint8_t> bytes,
                                                            const dataflow::FbLimits& limits = {});

}  // namespace shoredaq::firmware
