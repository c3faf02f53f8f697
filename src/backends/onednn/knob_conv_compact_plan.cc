// The compact kernel's plan (kernels/knob_plan.h), built at prepare time:
// the layer's geometry, which rows / columns / taps the knob keeps, the
// weights packed for the chosen path (im2col + GEMM, direct loops, the
// tiled kernel, Winograd rows or tiles, the pointwise path), and how the
// work is cut into items and column chunks.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "backends/onednn/knob_conv.h"
#include "backends/onednn/knob_conv_compact_plan.h"

namespace caliprox::onednn {

using compact::Plan;
using compact::Tap;

namespace {

// Floats of one thread's column buffer: long GEMM panels, yet in L2 (1 MB
// per core on the target) with the input rows and the packed weights.
constexpr int64_t kColumnBudget = 48 * 1024;
// Operations per GEMM call below which images are batched into one call
// (oneDNN's sgemm costs a few microseconds per call).
constexpr double kMinGemmFlops = 4e6;

std::vector<int64_t> all_of(int64_t extent) {
  std::vector<int64_t> v(static_cast<size_t>(extent));
  for (int64_t i = 0; i < extent; ++i) v[static_cast<size_t>(i)] = i;
  return v;
}

std::vector<int32_t> slots(const std::vector<int64_t>& kept, int64_t extent) {
  std::vector<int32_t> f(static_cast<size_t>(extent), -1);
  for (size_t i = 0; i < kept.size(); ++i) f[static_cast<size_t>(kept[i])] = static_cast<int32_t>(i);
  return f;
}


void set_geometry(Plan& p, const ConvGeometry& g) {
  p.n = g.n;
  p.c = g.c_in;
  p.h = g.in_spatial[0];
  p.w = g.in_spatial[1];
  p.oc = g.c_out;
  p.oh = g.out_spatial[0];
  p.ow = g.out_spatial[1];
  p.group = g.group;
  p.cg = g.c_in_per_group();
  p.ocg = g.c_out_per_group();
  p.kh = g.kernel[0];
  p.kw = g.kernel[1];
  p.sh = g.strides[0];
  p.sw = g.strides[1];
  p.ph = g.pads_begin[0];
  p.pw = g.pads_begin[1];
  p.dh = g.dilations[0];
  p.dw = g.dilations[1];
}

// The tiled kernel's addressing: the input it reads (X itself when every
// window lies inside it), the window origin of every computed position, the
// offset of every kept tap, the tile shape and the weight blocks.
void set_tiles(Plan& p) {
  int64_t need_h = (p.oh - 1) * p.sh + (p.kh - 1) * p.dh + 1;
  int64_t need_w = (p.ow - 1) * p.sw + (p.kw - 1) * p.dw + 1;
  if (p.winograd) {
    // Tiles of 4 outputs along the axis perforation leaves whole, read from
    // whole tiles of 6 staged inputs.
    p.wt = ((p.perf_rows ? p.ow : p.oh) + 3) / 4;
    (p.perf_rows ? need_w : need_h) = 4 * p.wt + 2;
    const std::vector<int64_t>& kept = p.perf_rows ? p.rows : p.cols;
    p.wpos = static_cast<int64_t>(kept.size()) * p.wt;
    if (p.wr > 0) {
      // Winograd tiles: runs of at most wr consecutive computed rows
      // (columns), each read from wr + 2 staged ones.
      for (int64_t h : kept) {
        if (!p.wino_first.empty() && p.wino_first.back() + p.wino_len.back() == h && p.wino_len.back() < p.wr) {
          ++p.wino_len.back();
        } else {
          p.wino_first.push_back(h);
          p.wino_len.push_back(1);
        }
      }
      p.wpos = static_cast<int64_t>(p.wino_first.size()) * p.wt;
      int64_t& across = p.perf_rows ? need_h : need_w;
      across = std::max(across, p.wino_first.back() + p.wr + 2);
    }
  }
  p.staged_input = p.winograd || p.half || p.ph > 0 || p.pw > 0 || need_h > p.h || need_w > p.w;
  p.hp = p.staged_input ? std::max(p.h + p.ph, need_h) : p.h;
  p.wp = p.staged_input ? std::max(p.w + p.pw, need_w) : p.w;
  if (p.winograd && p.wr > 0) {
    // Each map [run tile][C] by its weights: positions the run tiles, taps
    // the channels.
    for (int64_t q = 0; q < p.wpos; ++q) p.pos_offset.push_back(q * p.c);
    for (int64_t c = 0; c < p.c; ++c) p.tap_offset.push_back(c);
  } else if (p.winograd && p.perf_rows) {
    // The xi-maps [hp][wt][C]' "3x1 convolution": positions (computed row,
    // tile), taps (kernel row, channel).
    for (int64_t r : p.rows)
      for (int64_t t = 0; t < p.wt; ++t) p.pos_offset.push_back((r * p.wt + t) * p.c);
    for (int64_t kh = 0; kh < 3; ++kh)
      for (int64_t c = 0; c < p.c; ++c) p.tap_offset.push_back(kh * p.wt * p.c + c);
  } else if (p.winograd) {
    // Columns: the xi-maps [wt][wp][C]' "1x3 convolution": positions (tile,
    // computed column), taps (kernel column, channel).
    for (int64_t t = 0; t < p.wt; ++t)
      for (int64_t q : p.cols) p.pos_offset.push_back((t * p.wp + q) * p.c);
    for (int64_t kw = 0; kw < 3; ++kw)
      for (int64_t c = 0; c < p.c; ++c) p.tap_offset.push_back(kw * p.c + c);
  } else {
    for (int64_t r : p.rows)
      for (int64_t q : p.cols) {
        p.pos_offset.push_back((r * p.sh * p.wp + q * p.sw) * p.c);
        p.out_offset.push_back((r * p.ow + q) * p.oc);
      }
    for (const Tap& t : p.taps)
      p.tap_offset.push_back((t.kh * p.dh * p.wp + t.kw * p.dw) * p.c + t.c);
  }
  const int64_t taps = static_cast<int64_t>(p.tap_offset.size());
  // 1x1 layers read X in place, one pixel's channels per position. Where
  // strides or skipped rows leave gaps, the hardware prefetchers follow
  // poorly: with X in memory rather than cache, prefetching a tile ahead
  // ran them 1.1-1.3x faster. Pixels read one after the other they follow
  // well, and there the prefetches cost more than they saved (16 -> 32
  // channels on 14x14, 64 images, caches evicted: 56 against 62 us).
  // (Codes are written by plain tiles, which do not prefetch.)
  const bool gaps = p.sh > 1 || p.sw > 1 || p.perforated;
  if (p.kh == 1 && p.kw == 1 && !p.staged_input && gaps && !p.codes_out) p.prefetch_floats = p.c;
  // The tile: tile_n output channels (the requested width, at most the
  // layer's channels rounded up to a vector, and at most 4 vectors, or 2
  // with 16 registers) by as many positions as the registers hold with it
  // (the loops' kMaxMr: with 32 registers 64 x 6, 48 x 8, 32 x 12; with
  // AVX2's 16, 16 x 6). Tiles run on across row ends, so only an image's
  // last tile is short.
  const int64_t lanes = simd::kernel_lanes(p.isa);
  const int regs = simd::vector_registers(p.isa);
  const int64_t widest = simd::max_tile_vectors(regs) * lanes;
  p.tile_n = std::min({p.tile_n, widest, (p.oc + lanes - 1) / lanes * lanes});
  const int64_t nv = (p.tile_n + lanes - 1) / lanes;
  const int64_t most = simd::max_tile_rows(static_cast<int>(nv), regs);
  p.tile_m = p.tile_m > 0 ? std::min(p.tile_m, most) : most;
  // Weight blocks of at most ~32 KB (tile_n channels of the block's taps);
  // plain tiles, which write codes, take the layer's taps in one block.
  constexpr int64_t kL1Floats = 8 * 1024;
  const int64_t per_block = p.codes_out ? std::max<int64_t>(1, taps) : std::max<int64_t>(1, kL1Floats / p.tile_n);
  for (int64_t t = 0; t < taps; t += per_block) p.tap_block_begin.push_back(t);
  p.tap_block_begin.push_back(taps);
  for (size_t kb = 0; kb + 1 < p.tap_block_begin.size(); ++kb) {
    p.run_block_begin.push_back(static_cast<int64_t>(p.run_offset.size()));
    for (int64_t t = p.tap_block_begin[kb]; t < p.tap_block_begin[kb + 1]; ++t) {
      const int64_t o = p.tap_offset[static_cast<size_t>(t)];
      const bool extends = static_cast<int64_t>(p.run_offset.size()) > p.run_block_begin.back() &&
                           p.run_offset.back() + p.run_length.back() == o;
      if (extends) {
        ++p.run_length.back();
      } else {
        p.run_offset.push_back(o);
        p.run_length.push_back(1);
      }
    }
  }
  p.run_block_begin.push_back(static_cast<int64_t>(p.run_offset.size()));
  // Runs of 8+ taps on average: walking them saves the per-tap offset load.
  p.by_runs = static_cast<int64_t>(p.run_offset.size()) * 8 <= taps;
}

// Kept taps in the order the gather writes them, and the gather tables.
void set_taps(Plan& p, const std::vector<bool>& keep, int64_t rate) {
  const auto kept = [&](int64_t c, int64_t kh, int64_t kw) {
    return keep[static_cast<size_t>((c * p.kh + kh) * p.kw + kw)];
  };
  const auto tap = [](int64_t c, int64_t kh, int64_t kw) {
    return Tap{static_cast<int32_t>(c), static_cast<int32_t>(kh), static_cast<int32_t>(kw)};
  };
  const int64_t kept_count = std::count(keep.begin(), keep.end(), true);
  p.depthwise = p.cg == 1 && p.ocg == 1 && p.group > 1;
  // The tiled kernel (vector variants): NHWC, one group; it also beats the direct
  // loop on layers with few taps. The direct loop takes depthwise layers
  // and few-tap layers the tiled kernel cannot.
  p.tiled = !p.pointwise && simd::has_tiles(p.isa) && p.nhwc && p.group == 1;
  p.direct = !p.pointwise && (p.depthwise || (!p.tiled && p.group == 1 && kept_count <= compact::kDirectTaps));
  // NHWC gather with sampling: channels grouped by residue class (what
  // sampling drops per kernel position) so that the kept ones form
  // contiguous runs. (The tiled kernel addresses every tap on its own.)
  const bool permuted = p.nhwc && p.sampled && !p.direct && !p.tiled && !p.pointwise;
  if (permuted)
    for (int64_t r = 0; r < rate; ++r)
      for (int64_t c = r; c < p.cg; c += rate) p.channel_perm.push_back(static_cast<int32_t>(c));
  if (!p.nhwc || p.direct) {
    for (int64_t c = 0; c < p.cg; ++c)
      for (int64_t kh = 0; kh < p.kh; ++kh)
        for (int64_t kw = 0; kw < p.kw; ++kw)
          if (kept(c, kh, kw)) p.taps.push_back(tap(c, kh, kw));
  } else {
    for (int64_t kh = 0; kh < p.kh; ++kh)
      for (int64_t kw = 0; kw < p.kw; ++kw)
        for (int64_t j = 0; j < p.cg; ++j) {
          const int64_t c = permuted ? p.channel_perm[static_cast<size_t>(j)] : j;
          if (kept(c, kh, kw)) p.taps.push_back(tap(c, kh, kw));
        }
  }
  p.k = static_cast<int64_t>(p.taps.size());

  // NCHW gather: input column of every computed output column.
  p.contiguous_cols = p.sw == 1 && static_cast<int64_t>(p.cols.size()) == p.ow;
  for (int64_t kw = 0; kw < p.kw; ++kw)
    for (int64_t q : p.cols) {
      const int64_t iw = q * p.sw - p.pw + kw * p.dw;
      p.iw_of.push_back(iw >= 0 && iw < p.w ? static_cast<int32_t>(iw) : -1);
    }

  // NHWC gather: kept taps per kernel position, and (sampling) the runs of
  // kept channels in residue-class order.
  p.kpos_begin.push_back(0);
  int64_t count = 0;
  for (int64_t kh = 0; kh < p.kh; ++kh)
    for (int64_t kw = 0; kw < p.kw; ++kw) {
      for (int64_t c = 0; c < p.cg; ++c) count += kept(c, kh, kw) ? 1 : 0;
      p.kpos_begin.push_back(static_cast<int32_t>(count));
    }
  if (p.tiled) {
    set_tiles(p);
    return;
  }
  if (p.pointwise && p.sampled) {
    // 1x1: the kept taps are kept channels.
    p.keep_mask.assign(static_cast<size_t>((p.c + 15) / 16), 0);
    for (const Tap& t : p.taps) p.keep_mask[static_cast<size_t>(t.c / 16)] |= static_cast<uint16_t>(1u << (t.c % 16));
  }
  if (!permuted) return;
  p.run_begin.push_back(0);
  for (int64_t kh = 0; kh < p.kh; ++kh)
    for (int64_t kw = 0; kw < p.kw; ++kw) {
      for (int64_t j = 0; j < p.cg; ++j) {
        if (!kept(p.channel_perm[static_cast<size_t>(j)], kh, kw)) continue;
        const bool extends = !p.run_start.empty() && p.run_begin.back() < static_cast<int32_t>(p.run_start.size()) &&
                             p.run_start.back() + p.run_len.back() == j;
        if (extends) {
          ++p.run_len.back();
        } else {
          p.run_start.push_back(static_cast<int32_t>(j));
          p.run_len.push_back(1);
        }
      }
      p.run_begin.push_back(static_cast<int32_t>(p.run_start.size()));
    }
}

// The element of tap t and output channel oc in the tiled kernel's weight
// panels of `taps` taps (Plan::panel_floats).
int64_t panel_index(const Plan& p, int64_t taps, int64_t oc, int64_t t) {
  return ((oc / p.tile_n) * taps + t) * p.tile_n + oc % p.tile_n;
}

// Effective weights: sampling's rescale of the kept ones, then (half knobs)
// IEEE-half values, i.e. half(w * s/(s-1)) as the reference does.
void set_weights(Plan& p, const KnobConvSetup& s) {
  const float* w = s.weights->data<float>();
  const float scale = p.sampled ? sampling_scale(*s.knob) : 1.0f;
  // Tiled: panels of the k taps.
  p.weights.assign(static_cast<size_t>(p.tiled ? p.panel_floats(p.k) : p.oc * p.k), 0.f);
  for (int64_t gi = 0; gi < p.group; ++gi)
    for (int64_t o = 0; o < p.ocg; ++o)
      for (int64_t t = 0; t < p.k; ++t) {
        const Tap& tap = p.taps[static_cast<size_t>(t)];
        const int64_t oc = gi * p.ocg + o;
        float v = w[((oc * p.cg + tap.c) * p.kh + tap.kh) * p.kw + tap.kw];
        if (p.sampled) v *= scale;
        if (p.half) v = round_half_value(v);
        int64_t index = 0;
        if (!p.nhwc) index = oc * p.k + t;
        else if (p.tiled) index = panel_index(p, p.k, oc, t);
        else if (p.depthwise) index = t * p.oc + oc;
        else index = (gi * p.k + t) * p.ocg + o;
        p.weights[static_cast<size_t>(index)] = v;
      }
}

// bf16 (Plan::bf16): the panel element of tap t (channel pair c, kh, kw)
// and output channel oc holds the bfloat16 codes of W[oc][2c][kh][kw] (low
// 16 bits) and W[oc][2c + 1][kh][kw] (high 16 bits), rounded as the input
// is (Bf16Ops::to_bf16).
void set_bf16_weights(Plan& p, const KnobConvSetup& s) {
  const float* w = s.weights->data<float>();
  const int64_t channels = 2 * p.cg;
  std::vector<float> pairs(static_cast<size_t>(2 * p.panel_floats(p.k)), 0.f);
  for (int64_t oc = 0; oc < p.oc; ++oc)
    for (int64_t t = 0; t < p.k; ++t) {
      const Tap& tap = p.taps[static_cast<size_t>(t)];
      const int64_t index = panel_index(p, p.k, oc, t);
      for (int64_t j = 0; j < 2; ++j)
        pairs[static_cast<size_t>(2 * index + j)] =
            w[((oc * channels + 2 * tap.c + j) * p.kh + tap.kh) * p.kw + tap.kw];
    }
  std::vector<uint16_t> codes(pairs.size());
  compact::bf16_ops(p.isa)->to_bf16(pairs.data(), codes.data(), static_cast<int64_t>(pairs.size()));
  p.weights.assign(pairs.size() / 2, 0.f);
  std::memcpy(p.weights.data(), codes.data(), codes.size() * sizeof(uint16_t));
}

// F(4,3)'s weight transform G (the loops' B^T and A^T go with it).
constexpr float kG[6][3] = {{1.f / 4, 0, 0},
                            {-1.f / 6, -1.f / 6, -1.f / 6},
                            {-1.f / 6, 1.f / 6, -1.f / 6},
                            {1.f / 24, 1.f / 12, 1.f / 6},
                            {1.f / 24, -1.f / 12, 1.f / 6},
                            {0, 0, 1}};

// Winograd rows: U[xi][kh][c][oc] = sum_k G[xi][k] w[oc][c][kh][k];
// columns: U[xi][kw][c][oc] = sum_k G[xi][k] w[oc][c][k][kw] (the weights
// half-rounded first under a half knob), in tile_n-wide panels.
void set_winograd_weights(Plan& p, const KnobConvSetup& s) {
  const float* w = s.weights->data<float>();
  const int64_t taps = 3 * p.c, per_xi = p.panel_floats(taps);
  p.wino_weights.assign(static_cast<size_t>(6 * per_xi), 0.f);
  for (int64_t oc = 0; oc < p.oc; ++oc)
    for (int64_t c = 0; c < p.c; ++c)
      for (int64_t kr = 0; kr < 3; ++kr) {  // the kernel row (rows) or column (columns) of the tap
        float g[3];
        for (int64_t k = 0; k < 3; ++k) {
          const float v = w[((oc * p.c + c) * 3 + (p.perf_rows ? kr : k)) * 3 + (p.perf_rows ? k : kr)];
          g[k] = p.half ? round_half_value(v) : v;
        }
        const int64_t t = kr * p.c + c;
        for (int64_t xi = 0; xi < 6; ++xi)
          p.wino_weights[static_cast<size_t>(xi * per_xi + panel_index(p, taps, oc, t))] =
              kG[xi][0] * g[0] + kG[xi][1] * g[1] + kG[xi][2] * g[2];
      }
}


// Winograd tiles: U[a * 6 + b] = sum over i, k of G_wr[a][i] G_4[b][k] g[i][k],
// i across the perforated axis (the kernel row under row perforation), k
// along it, in tile_n-wide panels [maps][OC / tile_n][C][tile_n] (the
// weights half-rounded first under a half knob).
void set_winograd_tile_weights(Plan& p, const KnobConvSetup& s) {
  static constexpr float kG2[4][3] = {{1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}};
  static constexpr float kG3[5][3] = {
      {0.5f, 0, 0}, {0.5f, 0.5f, 0.5f}, {1.f / 6, -1.f / 6, 1.f / 6}, {1.f / 6, 1.f / 3, 2.f / 3}, {0, 0, 1}};
  const int64_t across = p.wr + 2, per_map = p.panel_floats(p.c);
  const float* w = s.weights->data<float>();
  p.wino_weights.assign(static_cast<size_t>(across * 6 * per_map), 0.f);
  for (int64_t oc = 0; oc < p.oc; ++oc)
    for (int64_t c = 0; c < p.c; ++c) {
      float g[3][3];  // [across][along]
      for (int64_t i = 0; i < 3; ++i)
        for (int64_t k = 0; k < 3; ++k) {
          const float v = w[((oc * p.c + c) * 3 + (p.perf_rows ? i : k)) * 3 + (p.perf_rows ? k : i)];
          g[i][k] = p.half ? round_half_value(v) : v;
        }
      for (int64_t a = 0; a < across; ++a) {
        const float* ga = p.wr == 2 ? kG2[a] : kG3[a];
        float t[3];  // G_wr g, row a
        for (int64_t k = 0; k < 3; ++k) t[k] = ga[0] * g[0][k] + ga[1] * g[1][k] + ga[2] * g[2][k];
        for (int64_t b = 0; b < 6; ++b)
          p.wino_weights[static_cast<size_t>((a * 6 + b) * per_map + panel_index(p, p.c, oc, c))] =
              kG[b][0] * t[0] + kG[b][1] * t[1] + kG[b][2] * t[2];
      }
    }
}

}  // namespace

// Whether the knob can run as the pointwise path: a 1x1 layer without
// padding, one group, NHWC, fp32 (the half knobs' rounding passes stay on
// the other paths), whose fused activation oneDNN can express when the
// output is written by the convolution (no perforation).
bool pointwise_applies(const KnobConvSetup& s) {
  const ConvGeometry& g = s.g;
  const Knob& k = *s.knob;
  const bool kind = k.kind == KnobKind::perforation || k.kind == KnobKind::sampling;
  return kind && !k.half && s.layout == Layout::nhwc && g.group == 1 && g.kernel[0] == 1 && g.kernel[1] == 1 &&
         g.pads_begin[0] == 0 && g.pads_begin[1] == 0 && g.pads_end[0] == 0 && g.pads_end[1] == 0 &&
         (k.kind == KnobKind::perforation || s.act_ops_ok);
}

// Whether perforation of this layer can run as Winograd rows (columns).
bool winograd_applies(const KnobConvSetup& s, int team) {
  const ConvGeometry& g = s.g;
  return s.knob->kind == KnobKind::perforation && simd::has_tiles(s.isa) && s.layout == Layout::nhwc && g.group == 1 &&
         g.kernel[0] == 3 && g.kernel[1] == 3 && g.strides[0] == 1 && g.strides[1] == 1 && g.dilations[0] == 1 &&
         g.dilations[1] == 1 && (g.n >= team || team == 1);
}

// The tiled kernel's tile: tile_n channels (64, 48 or 32) by tile_m
// positions (0: as many as the registers hold); path: Winograd rows (only
// where winograd_applies), Winograd tiles (there, at rates 3 and 4) or the
// pointwise path (where pointwise_applies) instead of the tiled kernel.
// bf16 (where check_compact_bf16 passes): the tiled kernel on bfloat16 pairs,
// codes_out writing codes.
Plan build_plan(const KnobConvSetup& s, int team, int64_t tile_n, int64_t tile_m, CompactPath path, bool codes_out) {
  const Knob& knob = *s.knob;
  Plan p;
  p.tile_n = tile_n;
  p.tile_m = tile_m;
  p.winograd = (path == CompactPath::winograd_rows || path == CompactPath::winograd_tiles) && winograd_applies(s, team);
  if (p.winograd && path == CompactPath::winograd_tiles && knob.rate >= 3) p.wr = knob.rate - 1;
  p.pointwise = path == CompactPath::pointwise && pointwise_applies(s);
  set_geometry(p, s.g);
  if (knob.kind == KnobKind::bf16) {
    p.bf16 = true;
    p.codes_out = codes_out;
    p.c /= 2;  // channel pairs
    p.cg /= 2;
  }
  p.nhwc = s.layout == Layout::nhwc;
  p.isa = s.isa;
  p.half = knob.half;
  p.residual = s.residual;
  p.act = s.act;

  p.perforated = knob.kind == KnobKind::perforation;
  p.perf_rows = knob.rows;
  p.rows = p.perforated && knob.rows ? perforation_kept(knob, p.oh) : all_of(p.oh);
  p.cols = p.perforated && !knob.rows ? perforation_kept(knob, p.ow) : all_of(p.ow);
  p.row_slot = slots(p.rows, p.oh);
  p.col_slot = slots(p.cols, p.ow);
  if (p.perforated) {
    const std::vector<int32_t>& slot = p.perf_rows ? p.row_slot : p.col_slot;
    for (int64_t i = 0; i < static_cast<int64_t>(slot.size()); ++i) {
      if (slot[static_cast<size_t>(i)] >= 0) continue;
      compact::Skipped k{i};
      compact::neighbours(slot, i, k.first, k.second);
      p.skipped.push_back(k);
    }
  }
  p.nq = static_cast<int64_t>(p.cols.size());
  p.npos = static_cast<int64_t>(p.rows.size()) * p.nq;

  p.sampled = knob.kind == KnobKind::sampling;
  set_taps(p,
           p.sampled ? sampling_mask(knob, p.cg, p.kh, p.kw)
                     : std::vector<bool>(static_cast<size_t>(p.cg * p.kh * p.kw), true),
           knob.rate);
  if (p.bf16) set_bf16_weights(p, s);
  else set_weights(p, s);
  if (p.winograd && p.wr > 0) set_winograd_tile_weights(p, s);
  else if (p.winograd) set_winograd_weights(p, s);

  p.tile_bias = p.tiled && !p.winograd && !p.half && compact::has_vector_form(p.act.kind);
  p.tile_skips = p.tile_bias && p.perforated && !p.perf_rows;
  if (p.tile_skips) {
    // Each skipped column goes to the computed position that holds both its
    // neighbours' values last: the later one of a pair, else its one
    // neighbour (compact::TileSkip).
    p.tile_skip.assign(static_cast<size_t>(p.npos), {});
    for (int64_t r = 0; r < p.oh; ++r)
      for (const compact::Skipped& k : p.skipped) {
        const int64_t at = (r * p.ow + k.at) * p.oc;
        compact::TileSkip& owner = p.tile_skip[static_cast<size_t>(r * p.nq + (k.second >= 0 ? k.second : k.first))];
        if (k.second >= 0) {
          owner.left = at;
          owner.pair = true;
        } else if (k.at < p.cols[static_cast<size_t>(k.first)]) {
          owner.left = at;
        } else {
          owner.right = at;
        }
      }
  }
  if (p.tiled && !p.winograd && !p.staged_input) {
    // Items of several images when an image has few computed positions, so
    // each weight panel serves more tiles before the next one is loaded:
    // about 96 positions (128 -> 256 channels on 7x7, perf-row-2-0, 64
    // images: 520 against 475-510 us). Only where X is read in place: the
    // staged copy holds one image.
    constexpr int64_t kTilePositions = 96;
    const int64_t wanted = (kTilePositions + p.npos - 1) / p.npos;
    p.images = std::clamp<int64_t>(wanted, 1, std::max<int64_t>(1, p.n / team));
    const int64_t npos = p.npos;
    for (int64_t i = 1; i < p.images; ++i)
      for (int64_t m = 0; m < npos; ++m) {
        p.pos_offset.push_back(p.pos_offset[static_cast<size_t>(m)] + i * p.in_image());
        p.out_offset.push_back(p.out_offset[static_cast<size_t>(m)] + i * p.out_image());
        if (!p.tile_skips) continue;
        compact::TileSkip k = p.tile_skip[static_cast<size_t>(m)];
        if (k.left >= 0) k.left += i * p.out_image();
        if (k.right >= 0) k.right += i * p.out_image();
        p.tile_skip.push_back(k);
      }
  }
  if (!p.direct && !p.tiled) {
    const double item_flops = 2.0 * static_cast<double>(p.npos * p.k * p.oc);
    const int64_t wanted = static_cast<int64_t>(std::ceil(kMinGemmFlops / std::max(item_flops, 1.0)));
    p.images = std::clamp<int64_t>(wanted, 1, std::max<int64_t>(1, p.n / team));
  }
  const int64_t positions = p.images * p.npos;
  int64_t chunk = std::max<int64_t>(kColumnBudget / std::max<int64_t>(p.k, 1), p.nq);
  if (p.n < team) chunk = std::min(chunk, (positions + team - 1) / team);
  p.chunk = std::clamp<int64_t>(chunk, 1, positions);
  return p;
}

}  // namespace caliprox::onednn
