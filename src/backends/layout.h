#pragma once
// Channels-last support for the executor: which values need no conversion,
// which ops compute the same in either layout, and the conversion kernel.
#include <memory>

#include "backends/backend.h"

namespace caliprox {

// True for rank-4 shapes whose NCHW and NHWC memory orders coincide
// (C == 1 or H*W == 1): such values never need converting.
bool layout_neutral(const Shape& shape);

// True when the node's result does not depend on the memory layout of its
// operands: element-wise ops whose non-constant inputs all have the output's
// shape and whose constant inputs are scalars (no broadcasting that would
// pair elements by NCHW position).
bool layout_transparent(const NodeContext& ctx);

// True for ops whose backends, when they claim channels-last
// (Backend::supports_nhwc), compute in either layout: the executor then
// keeps the layout the first activation input arrives in rather than
// converting the inputs to NHWC (Concat of NCHW reference outputs stays
// NCHW; Concat between NHWC convolutions stays NHWC). Concat and Resize.
bool layout_following(const NodeContext& ctx);

// A kernel converting one rank-4 tensor between NCHW and NHWC.
std::unique_ptr<Kernel> make_layout_kernel(Layout from, Layout to);

std::string_view layout_name(Layout l);

}  // namespace caliprox
