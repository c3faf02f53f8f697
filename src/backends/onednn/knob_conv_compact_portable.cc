// The compact kernel's loops compiled for baseline x86-64 (or any other
// target): KernelIsa::portable, the copy every CPU runs.
#define CP_KNOB_ISA portable
#define CP_KNOB_ISA_AVX512 0
#include "backends/onednn/knob_conv_compact_loops.h"

namespace caliprox::onednn::compact {

const Ops& portable_ops() { return portable::isa_ops(); }

}  // namespace caliprox::onednn::compact
