#pragma once
// The compact perforation / sampling kernel's plan (everything fixed at
// prepare time) and its per-image loops (knob_loops-inl.h and the files it
// includes), which a backend's driver (the oneDNN backend's
// knob_conv_compact.cc) runs across its thread team. Only the computed
// output positions and the kept filter elements are multiplied, by one of
// these paths:
//
//   tiled    (vector variants, NHWC, one group) a register-tiled kernel multiplies
//            straight from the input (or from a zero-padded staged copy
//            when the layer pads); perforation of 3x3 stride-1 layers may
//            run as Winograd rows or tiles on it (Plan::winograd), and the
//            bf16 knob on bfloat16 channel pairs (Plan::bf16);
//   pointwise  (1x1 layers, NHWC, fp32) the computed pixels' kept channels
//            packed densely, then oneDNN's own 1x1 convolution;
//   gather + GEMM  (otherwise) the kept filter elements at the computed
//            positions are gathered into a column buffer (im2col restricted
//            to what the knob computes) and multiplied by oneDNN's sgemm,
//            single-threaded, per column chunk and group;
//   direct   (depthwise layers, and few-tap layers the tiled kernel cannot
//            take) a loop over the kept taps, vectorised along the row
//            (NCHW) or the channels (NHWC).
//
// All of them fill a compact buffer ("comp") in the output's layout over
// the computed positions (without perforation: the output tensor itself),
// and one epilogue pass forms the output: bias, interpolation of the
// skipped rows / columns, residual, activation, half rounding. (The tiled
// kernel finishes each tile's computed positions itself, in its registers
// (Plan::tile_bias) or else while they are in L1, so its epilogue forms the
// skipped positions only, and under column perforation the tiles form
// those too (Plan::tile_skips); without perforation oneDNN's 1x1
// convolution writes the finished output itself.)
//
// Layouts of the gather path: NCHW gathers col[tap][position] rows (runs
// along the input row) and the GEMM yields out[channel][position]; NHWC
// gathers col[position][tap] rows (runs along the channels) and the GEMM
// yields out[position][channel].
#include <cstdint>
#include <vector>

#include "ir/ops/activation.h"
#include "kernels/knob_simd.h"

namespace caliprox::kernels::compact {

inline constexpr int64_t kDirectTaps = 16;

struct Tap {
  int32_t c = 0;   // input channel within the group
  int32_t kh = 0;
  int32_t kw = 0;
};

// Slots (indices into rows / cols) of the computed neighbours of skipped
// position `pos` along the perforated axis (slot: row_slot / col_slot):
// `first` always exists, `second` is -1 at an edge.
inline void neighbours(const std::vector<int32_t>& slot, int64_t pos, int64_t& first, int64_t& second) {
  const int64_t before = pos > 0 ? slot[static_cast<size_t>(pos - 1)] : -1;
  const int64_t after = pos + 1 < static_cast<int64_t>(slot.size()) ? slot[static_cast<size_t>(pos + 1)] : -1;
  first = before >= 0 ? before : after;
  second = before >= 0 ? after : -1;
}

// Whether the loops have a vector form of the activation (activate_vector):
// all but sigmoid and tanh.
constexpr bool has_vector_form(act::ActivationKind k) {
  return k != act::ActivationKind::sigmoid && k != act::ActivationKind::tanh;
}

// A skipped row (column) `at` and its neighbours' slots, as neighbours()
// gives them.
struct Skipped {
  int64_t at = 0, first = 0, second = -1;
};

// Column perforation on the fused tiled kernel (Plan::tile_skips): the
// skipped columns a computed position m forms from its tile's registers,
// as offsets into the item's output (-1: none). `left`: the skipped column
// just before m's, the mean of m - 1 and m when `pair` (m - 1 is then the
// row's previous computed column), else a copy of m (m starts its row).
// `right`: the skipped column just after m's when m ends its row, a copy
// of m. (Consecutive skipped columns are rate >= 2 apart, so there is at
// most one between two computed ones.)
struct TileSkip {
  int64_t left = -1, right = -1;
  bool pair = false;
};

struct Plan {
  int64_t n = 0, c = 0, h = 0, w = 0;   // X
  int64_t oc = 0, oh = 0, ow = 0;       // Y
  int64_t group = 1, cg = 0, ocg = 0;   // channels per group (input, output)
  int64_t kh = 0, kw = 0, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
  bool nhwc = false;                                // X and Y channels-last (else NCHW)
  simd::KernelIsa isa = simd::KernelIsa::portable;  // the copy of the loops that runs the plan
  bool half = false;      // IEEE-half rounding of X, weights, bias, residual and Y
  // The bf16 knob (tiled path only, CPUs with AVX512-BF16): X and the
  // weights in bfloat16, accumulated in fp32 (Bf16Ops::tiled). The kernel
  // reads X as pairs of channels, 32 bits each, so c and cg count pairs
  // (of an even channel count), and every offset into X (pos_offset,
  // tap_offset, the staged copy's layout, prefetch_floats) counts 32-bit
  // pairs where it counts floats elsewhere; a weight panel element holds
  // the pair's two weights. codes_out: Y is written as bfloat16 codes
  // (the next layer's input), rounded to nearest even, by plain tiles.
  bool bf16 = false;
  bool codes_out = false;
  bool residual = false;
  act::Activation act;

  // Computed output positions: every (row in rows) x (column in cols).
  bool perforated = false;
  bool perf_rows = true;  // perforation skips rows (else columns)
  std::vector<int64_t> rows, cols;  // increasing
  // Per output row / column: its index in rows / cols, -1 when skipped.
  std::vector<int32_t> row_slot, col_slot;
  // The skipped rows (columns) and their computed neighbours' slots.
  std::vector<Skipped> skipped;
  int64_t npos = 0;  // rows.size() * cols.size(): positions per image
  int64_t nq = 0;    // cols.size()

  // Kept filter elements of one group's filter, in the order of the columns
  // the gather writes (NCHW: filter order c, kh, kw; NHWC: kh, kw, c).
  std::vector<Tap> taps;
  int64_t k = 0;  // taps.size(): the GEMM's reduction length
  bool sampled = false;
  // Direct loops instead of gather + GEMM: depthwise layers (one input and
  // one output channel per group), and ungrouped layers with so few kept
  // taps (k <= kDirectTaps) that a GEMM would be all overhead.
  bool direct = false;
  bool depthwise = false;

  // NCHW gather: input column of each computed output column, per kernel
  // column ([kw][nq]; -1 in the padding), unless contiguous_cols.
  std::vector<int32_t> iw_of;
  bool contiguous_cols = false;  // stride 1, no column perforation: plain runs
  // NHWC gather (not tiled) with sampling: a staging pass permutes the channels of
  // each group into residue classes (c mod rate), which is what sampling
  // drops per kernel position, so the kept channels of every kernel
  // position kpos = kh * KW + kw form a few contiguous runs:
  // run_start / run_len [run_begin[kpos] .. run_begin[kpos + 1]), in
  // permuted positions. channel_perm[j]: the channel at permuted position j
  // (empty: no permutation). kpos_begin: kept taps before kernel position
  // kpos (its count is the difference to the next).
  std::vector<int32_t> channel_perm;
  std::vector<int32_t> run_begin, run_start, run_len;
  std::vector<int32_t> kpos_begin;

  // Tiled path (vector variants, NHWC, one group): a register-tiled kernel
  // multiplies straight from the input, tile_m computed positions (in
  // row-major order, across row ends) by tile_n output channels at a time;
  // no column buffer, no GEMM call. The input is read in place when every
  // window lies inside it (no padding, no half rounding), else from a
  // staged copy [hp][wp][C] (zero-padded, half-rounded under half).
  // pos_offset[m]: floats from the image's origin to the window origin of
  // computed position m; tap_offset[t]: floats from a window origin to kept
  // tap t (taps in kh, kw, c order, so no channel permutation is needed).
  // tap_block_begin: taps split into blocks whose weights (tile_n output
  // channels wide) stay in L1 while every tile of the image uses them.
  bool tiled = false;
  bool staged_input = false;  // tiled: read the staged copy, not X
  int64_t hp = 0, wp = 0;
  std::vector<int64_t> pos_offset;
  std::vector<int64_t> out_offset;  // [npos]: floats from the output image's origin to position m
  // (pos_offset and out_offset go on over the images of an item: [images * npos],
  // from its first image's origin.)
  std::vector<int64_t> tap_offset;
  int64_t tile_m = 0;
  int64_t tile_n = 64;  // output channels per block (<= 4 vectors of the variant's lanes)
  std::vector<int64_t> tap_block_begin;
  // The same taps as runs of consecutive offsets (whole kernel positions
  // without sampling), split at the tap blocks: run_offset / run_length
  // [run_block_begin[kb], run_block_begin[kb + 1]). The kernel walks runs
  // when they are long (by_runs), else tap by tap.
  bool by_runs = false;
  std::vector<int64_t> run_offset;
  std::vector<int64_t> run_length;
  std::vector<int64_t> run_block_begin;
  // Perforation of 3x3 stride-1 layers (winograd, on the tiled path): each
  // computed row by 1-D Winograd F(4,3) along it. The staged rows are
  // transformed per tile of 4 output columns into six maps V[xi][hp][wt][C];
  // then per xi a "3x1 convolution" of V[xi] (taps kernel row x channel,
  // positions computed row x tile: tap_offset, runs and pos_offset describe
  // it, wpos positions) by the transformed weights U[xi] = G g
  // (wino_weights, [6][OC / tile_n][3C][tile_n]) gives M[xi]; the output
  // transform forms comp, which the epilogue finishes. Column perforation
  // is the same along each computed column: maps V[xi][wt][wp][C], a "1x3
  // convolution" over positions tile x computed column. Half the direct
  // kernel's multiplications (6 per 4 outputs and kernel row instead of
  // 12), against oneDNN's 2-D Winograd on the exact layer.
  //
  // Winograd tiles (wr > 0: perforation at rate 3 or 4, whose computed rows
  // come in runs of rate - 1): 2-D Winograd F(wr,3) across each run (wr =
  // rate - 1 rows, or columns) by F(4,3) along it, (wr + 2) * 6 maps
  // V[a * 6 + b][run tile][C] of the staged input, one GEMM per map
  // (positions: the run tiles, taps: the channels) by U = G_wr g G_4^T,
  // and the 2-D output transform writes each run's rows into comp. 2.5
  // (wr 3) or 3 (wr 2) multiplications per computed output, against 4.5
  // for the rows above and oneDNN's 2.25 per output of the exact layer.
  // wino_first / wino_len: per run tile, its first computed row (column)
  // and how many of its wr rows are computed (fewer at an edge).
  bool winograd = false;
  int64_t wr = 0;
  std::vector<int64_t> wino_first, wino_len;
  int64_t wt = 0;    // tiles of 4 outputs per computed row (column)
  int64_t wpos = 0;  // rows.size() (cols.size()) * wt; Winograd tiles: run tiles * wt
  std::vector<float> wino_weights;
  // Tiled path, not Winograd, no half rounding, an activation with a vector
  // form (has_vector_form): the tiles start from the bias and finish
  // their values in registers (TileEnds in the loops); under perforation
  // comp then holds conv + bias.
  bool tile_bias = false;
  // tile_bias under column perforation: the tiles also form the skipped
  // columns, from their neighbours in registers (tile_skip, [images * npos]
  // like out_offset); comp keeps only each tile's last position (conv +
  // bias), which the next tile's first may pair with, and the epilogue has
  // nothing left to do. A position's left neighbour is in its own row, so
  // a run of positions handed to one call must start at a row start.
  bool tile_skips = false;
  std::vector<TileSkip> tile_skip;
  // 1x1 layers reading X in place with gaps between the positions
  // (strides, perforation): floats of a window (its channels)
  // software-prefetched one tile ahead; 0: none.
  int64_t prefetch_floats = 0;

  // Pointwise path (1x1 layers without padding, one group, NHWC, fp32): the
  // kept channels of the input pixel under every computed position are
  // packed into a dense [N][rows][cols][k] tensor (gather_pixels), which
  // oneDNN's own 1x1 convolution multiplies: into comp [N][npos][OC] under
  // perforation (the epilogue then forms the output), else straight into
  // the output with the bias, residual and activation fused. keep_mask:
  // per 16-channel block, the kept channels' bits (sampling; the avx512
  // variant compresses with them).
  bool pointwise = false;
  std::vector<uint16_t> keep_mask;

  // Effective weights (sampling scale applied, half-rounded when half):
  //   NCHW: [G][OCg][k]            NHWC: [G][k][OCg]
  //   depthwise, NHWC: [k][C]      tiled: [OC / tile_n][k][tile_n] (zero-padded)
  std::vector<float> weights;
  // Work is split in items of `images` images (small layers batch several
  // into one GEMM or, tiled, into one run of tiles) and, within them,
  // chunks of `chunk` positions per gather + GEMM step (the column
  // buffer's size).
  int64_t images = 1;
  int64_t chunk = 0;

  int64_t in_image() const { return c * h * w; }
  int64_t out_image() const { return oc * oh * ow; }
  // Floats of the tiled kernel's weight panels for `taps` taps: one
  // [taps][tile_n] panel per block of tile_n output channels (the last one
  // zero-padded), so a tile's weights are contiguous.
  int64_t panel_floats(int64_t taps) const { return (oc + tile_n - 1) / tile_n * taps * tile_n; }
};

// The per-image loops (knob_loops-inl.h), compiled once per variant
// (simd::KernelIsa) by Highway's foreach_target in knob_loops.cc and
// knob_tiles.cc; ops_for() hands out the variant a kernel was planned for
// (Plan::isa).
struct Ops {
  // Half rounding of n floats.
  void (*round_half)(const float* in, float* out, int64_t n);
  // Staging of floats [begin, end) of a run of input images (NHWC with a
  // channel permutation: whole pixels): channels permuted, half-rounded
  // under a half knob. Tiled path: begin / end count input rows of one
  // image, written into the padded layout.
  void (*stage)(const Plan& p, const float* in, float* out, int64_t begin, int64_t end);
  // Columns of positions [m0, m1) of group g of image x into col:
  // NCHW col[tap * ld + m - m0], NHWC col[(m - m0) * k + tap].
  void (*gather)(const Plan& p, const float* x, int64_t g, int64_t m0, int64_t m1, float* col, int64_t ld);
  // Tiled path: computed positions [m0, m1) of one item (X itself, or one
  // image's staged copy) into comp ([npos][OC] per image: conv values, plus
  // the bias under tile_bias; under tile_skips only each tile's last
  // position), each tile then finished into the item's output y (bias as
  // for the epilogue, residual or null; under perforation comp is a
  // separate buffer, else y itself). The epilogue then forms only the
  // skipped positions (none under tile_skips). Null in the portable
  // variant (simd::has_tiles).
  void (*tiled)(const Plan& p, const float* image, float* comp, const float* bias, const float* residual, float* y,
                int64_t m0, int64_t m1);
  // Winograd rows or tiles (Plan::winograd): the staged image into comp
  // ([npos][OC], conv values), through v (rows: [6][hp][wt][C], tiles:
  // [(wr + 2) * 6][wpos][C]) and m ([maps][wpos][OC]). Null in the portable
  // variant.
  void (*winograd)(const Plan& p, const float* staged, float* v, float* m, float* comp);
  // Pointwise path: the kept channels of the pixel under each computed
  // position of image x, packed into out ([npos][k]).
  void (*gather_pixels)(const Plan& p, const float* x, float* out);
  // Direct loops: channels [c0, c1) of image x into comp (no bias), laid
  // out as the GEMM would (NCHW [OC][npos], NHWC [npos][OC]).
  void (*direct)(const Plan& p, const float* x, float* comp, int64_t c0, int64_t c1);
  // Output channels [c0, c1) of one image: y from comp plus bias (OC
  // values; NHWC: repeated for each of the OW positions of a row, OW * OC
  // values), residual (null without one). comp == y: the values are in
  // place already. NCHW comp rows (channels) are comp_ld apart.
  void (*epilogue)(const Plan& p, const float* comp, int64_t comp_ld, const float* bias, const float* residual,
                   float* y, int64_t c0, int64_t c1);
};
// Null when the variant is not compiled for this architecture.
const Ops* ops_for(simd::KernelIsa isa);

// The bf16 knob's loops (Plan::bf16): the avx512 variant's tiles with
// vdpbf16ps (knob_tiles.cc), for CPUs with AVX512-BF16.
struct Bf16Ops {
  // n floats rounded to bfloat16 codes, to nearest even (as vcvtneps2bf16
  // and oneDNN's reorders do: denormal inputs become zero).
  void (*to_bf16)(const float* in, uint16_t* out, int64_t n);
  // Ops::tiled on X in bfloat16 pairs (image: the item's codes, or the
  // staged copy of them, addressed in pairs); under Plan::codes_out the
  // output goes to codes (the item's) instead of comp and y.
  void (*tiled)(const Plan& p, const float* image, float* comp, const float* bias, const float* residual, float* y,
                uint16_t* codes, int64_t m0, int64_t m1);
};
// Null unless isa is avx512 and the CPU probe reports AVX512-BF16.
const Bf16Ops* bf16_ops(simd::KernelIsa isa);

}  // namespace caliprox::kernels::compact
