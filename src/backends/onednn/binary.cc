// Add, Sub, Mul, Div on oneDNN's binary primitive. oneDNN broadcasts only
// its second source into the first (whose shape is the output's), so:
// the full-shape input goes first; Add and Mul commute; a Sub whose first
// input is the broadcast one runs as -(b - a) (negation is exact); other
// cases (Div with a broadcast dividend, both inputs broadcast) stay with the
// reference backend. oneDNN pairs elements by logical index, so channels-last
// operands (rank-4 activations of a node prepared in NHWC) only change their
// memory descriptors.
#include "backends/onednn/common.h"
#include "backends/layout.h"

namespace caliprox::onednn {
namespace {

using dnnl::algorithm;

struct BinarySetup {
  algorithm alg = algorithm::binary_add;
  bool swapped = false;  // inputs[1] is oneDNN's src0
  bool negate = false;   // Sub with swapped inputs
  memory::desc src0, src1, dst;
};

memory::dims aligned_dims(const Shape& s, size_t rank) {
  memory::dims d(rank, 1);
  for (size_t i = 0; i < s.size(); ++i) d[rank - s.size() + i] = s[i];
  return d;
}

Result<BinarySetup> binary_setup(const NodeContext& ctx) {
  const Node& node = ctx.node;
  if (!all_f32(ctx) || !has_input(ctx, 0) || !has_input(ctx, 1) || ctx.output_types.empty())
    return unsupported("{}: the oneDNN backend runs float32 arithmetic only", node.describe());
  BinarySetup s;
  const std::string& op = node.op_type;
  s.alg = op == "Add" ? algorithm::binary_add
        : op == "Sub" ? algorithm::binary_sub
        : op == "Mul" ? algorithm::binary_mul
                      : algorithm::binary_div;
  // Opset < 7 marked (unidirectional) broadcasting with attributes.
  if (node.has("broadcast") || node.has("axis"))
    return unsupported("{}: legacy broadcast attributes are not mapped", node.describe());
  const Shape shapes[2] = {ctx.input_types[0].shape, ctx.input_types[1].shape};
  const Shape& out = ctx.output_types[0].shape;
  if (shape_numel(out) < kMinElementwiseElements)
    return unsupported("{}: {} elements are faster on the reference backend", node.describe(), shape_numel(out));
  const size_t rank = std::max<size_t>(1, out.size());
  if (rank > 12) return unsupported("{}: oneDNN binary takes at most 12 dimensions", node.describe());
  memory::dims a = aligned_dims(shapes[0], rank), b = aligned_dims(shapes[1], rank), o = aligned_dims(out, rank);
  bool a_nhwc = input_is_nhwc(ctx, 0), b_nhwc = input_is_nhwc(ctx, 1);
  if ((a_nhwc || b_nhwc) && rank != 4)
    return unsupported("{}: channels-last operands of a rank-{} result", node.describe(), rank);
  if (a != o) {
    if (b != o) return unsupported("{}: both inputs are broadcast", node.describe());
    if (op == "Div") return unsupported("{}: Div with a broadcast dividend", node.describe());
    s.swapped = true;
    s.negate = op == "Sub";
    std::swap(a, b);
    std::swap(a_nhwc, b_nhwc);
  }
  s.src0 = host_desc(a, a_nhwc);
  s.src1 = host_desc(b, b_nhwc);
  s.dst = host_desc(o, output_is_nhwc(ctx, 0));
  return s;
}

dnnl::binary::primitive_desc binary_pd(const BinarySetup& s, const Runtime& rt) {
  dnnl::primitive_attr attr = base_attr();
  if (s.negate) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.f, algorithm::eltwise_linear, -1.f, 0.f);
    attr.set_post_ops(ops);
  }
  dnnl::binary::desc d(s.alg, s.src0, s.src1, s.dst);
  return dnnl::binary::primitive_desc(d, attr, rt.engine);
}

class BinaryKernel final : public OnednnKernel {
 public:
  BinaryKernel(std::shared_ptr<const Runtime> rt, int threads, const BinarySetup& s,
               const dnnl::binary::primitive_desc& pd)
      : OnednnKernel(std::move(rt), threads), first_(s.swapped ? 1 : 0) {
    const Runtime& r = this->rt();
    src0_ = user_memory(s.src0, r);
    src1_ = user_memory(s.src1, r);
    dst_ = user_memory(s.dst, r);
    binary_ = BoundPrimitive(dnnl::binary(pd), {{DNNL_ARG_SRC_0, src0_},
                                                {DNNL_ARG_SRC_1, src1_},
                                                {DNNL_ARG_DST, dst_},
                                                {DNNL_ARG_SCRATCHPAD, scratchpad_for(pd, r)}});
  }

 protected:
  Status execute(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) override {
    bind(src0_, inputs[first_]);
    bind(src1_, inputs[1 - first_]);
    bind(dst_, outputs[0]);
    return binary_.execute(stream());
  }

 private:
  size_t first_;
  memory src0_, src1_, dst_;
  BoundPrimitive binary_;
};

Status check_binary(const NodeContext& ctx, const Runtime& rt) {
  CP_ASSIGN_OR_RETURN(BinarySetup s, binary_setup(ctx));
  try {
    CP_TRY(require_optimized(ctx.node, binary_pd(s, rt), "binary"));
  } catch (const dnnl::error& e) {
    return dnnl_status(ctx.node, "create a binary", e);
  }
  return {};
}

Result<std::unique_ptr<Kernel>> make_binary(const NodeContext& ctx, std::shared_ptr<const Runtime> rt, int threads) {
  CP_ASSIGN_OR_RETURN(BinarySetup s, binary_setup(ctx));
  const int team = team_for_elements(threads, shape_numel(ctx.output_types[0].shape));
  use_threads(team);
  try {
    auto pd = binary_pd(s, *rt);
    CP_TRY(require_optimized(ctx.node, pd, "binary"));
    return std::unique_ptr<Kernel>(std::make_unique<BinaryKernel>(std::move(rt), team, s, pd));
  } catch (const dnnl::error& e) {
    return dnnl_status(ctx.node, "create a binary", e);
  }
}

// Claimed only where the executor would not already follow the inputs'
// layout (backends/layout.h: same-shape operands and scalar constants): there
// a claim would force NHWC, and a conversion, onto NCHW inputs. What is left
// is broadcasting, e.g. a per-channel [1, C, 1, 1] constant, which oneDNN
// runs on NHWC with its per-channel kernel.
bool binary_nhwc(const NodeContext& ctx, const Runtime& rt) {
  if (ctx.output_types.empty() || ctx.output_types[0].shape.size() != 4 || layout_transparent(ctx)) return false;
  return check_binary(nhwc_context(ctx), rt).ok();
}

}  // namespace

void register_binary_ops(std::vector<OpEntry>& table) {
  for (const char* op : {"Add", "Sub", "Mul", "Div"}) table.push_back({op, check_binary, make_binary, binary_nhwc});
}

}  // namespace caliprox::onednn
