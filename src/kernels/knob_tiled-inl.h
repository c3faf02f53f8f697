#pragma once
// The compact kernel's per-image loops, part 4 of 4: the tiled kernel and
// the Winograd rows and tiles (AVX-512 copy only).
#include "backends/onednn/knob_conv_compact_epilogue.h"

#if !defined(CP_KNOB_ISA) || !defined(CP_KNOB_ISA_AVX512)
#error "define CP_KNOB_ISA (avx512 or portable) and CP_KNOB_ISA_AVX512 before including this file"
#endif

namespace caliprox::onednn::compact::CP_KNOB_ISA {

using simd::ActivationKind;

// ---- tiled kernel (AVX-512 only) ---------------------------------------------------

#if CP_KNOB_ISA_AVX512
// One tap: its weights (NV vectors at wk, the last masked by `tail`) times
// the MR positions' input at offset o, into acc. kBf16 (Plan::bf16): a tap
// is a pair of channels, each 32-bit element two bfloat16 values (input
// and weights alike), multiplied and summed into fp32 by vdpbf16ps; only
// the copy compiled for AVX512-BF16 (knob_conv_compact_bf16.cc)
// instantiates it.
template <int MR, int NV, bool kBf16 = false>
CP_KNOB_INLINE void tap_step(__m512 (&acc)[MR][NV], const float* const (&a)[MR], const float* wk, int64_t o,
                             __mmask16 tail) {
  __m512 b[NV];
  CP_KNOB_UNROLL
  for (int v = 0; v + 1 < NV; ++v) b[v] = _mm512_loadu_ps(wk + 16 * v);
  b[NV - 1] = _mm512_maskz_loadu_ps(tail, wk + 16 * (NV - 1));
  CP_KNOB_UNROLL
  for (int i = 0; i < MR; ++i) {
    if constexpr (kBf16) {
      // (Loaded as 32 bits of any type: the pair was written as bfloat16.)
      const __m512bh x = reinterpret_cast<__m512bh>(_mm512_broadcastd_epi32(_mm_loadu_si32(a[i] + o)));
      CP_KNOB_UNROLL
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], x, reinterpret_cast<__m512bh>(b[v]));
    } else {
      const __m512 x = _mm512_set1_ps(a[i][o]);
      CP_KNOB_UNROLL
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(x, b[v], acc[i][v]);
    }
  }
}

// How a tile's values start and end. Raw (bias null): the conv values
// alone, for a finishing pass. Fused (bias set; Plan::tile_bias): the first
// tap block starts from the bias, and the last ends the values itself.
// Every position computed (y null): the residual (rows oc floats apart from
// res) joins the bias at the start, the activation ends, and the tile's
// output is the finished one. Under perforation (y set): the tile's output
// (comp) keeps conv + bias, which the skipped positions are interpolated
// from, and the finished values (residual at y_res, activation) go to
// y + out_offset[i]; with `skip` (Plan::tile_skips) the tile forms the
// skipped columns itself and comp keeps only its last position, for the
// next tile's first. On 1x1 layers of 16-32 kept channels a separate
// finishing pass cost as much as a third of the multiplications.
struct TileEnds {
  const float* bias = nullptr;          // the block's first channel
  const float* res = nullptr;           // the tile's first position, the block's first channel
  float* y = nullptr;                   // the block's first channel in the item's output
  const int64_t* out_offset = nullptr;  // the tile's first position's
  const float* y_res = nullptr;         // the block's first channel in the item's residual
  const TileSkip* skip = nullptr;       // Plan::tile_skips: the tile's first position's
};

// MR computed positions (window origins image + pos[i]) by NV vectors of 16
// output channels, accumulated in registers over the kept taps of tap block
// kb (weights w[t * tile_n], the block's panel; offsets tap_offset[t], or
// the block's runs); added to what `out` holds unless `first`, which starts
// from zero or (fused) the bias and residual. The last vector is masked by
// `tail`. kPlain: the layer's one tap block, tap by tap, from the bias
// (ends.bias, the only end set) to the activation, stored where computed
// (fused, every position computed, no residual); `first` and `last` are
// then unused, and what the general tile decides at run time is known
// when compiling. kBf16: pairs of bfloat16 channels (tap_step); kCodesOut
// (plain tiles only): out holds the output as bfloat16 codes, each value
// rounded to nearest even (Plan::codes_out).
template <ActivationKind K, int MR, int NV, bool kPlain = false, bool kBf16 = false, bool kCodesOut = false>
CP_KNOB_INLINE void tile(const Plan& p, const float* image, const int64_t* pos, const float* w,
                         std::conditional_t<kCodesOut, uint16_t, float>* out, __mmask16 tail, size_t kb,
                         bool first_block, bool last_block, const TileEnds& ends) {
  static_assert(kPlain || !kCodesOut, "only plain tiles write bfloat16 codes");
  // Locals for what is read after a store: the store intrinsics write
  // through may_alias types, so GCC reloaded p.oc before each of them.
  const int64_t oc = p.oc, tn = p.tile_n;
  const TileEnds e = kPlain ? TileEnds{ends.bias} : ends;
  const bool first = kPlain || first_block, last = kPlain || last_block;
  __mmask16 mask[NV];
  block_masks(tail, mask);
  __m512 acc[MR][NV];
  if (!first) {
    CP_KNOB_UNROLL
    for (int i = 0; i < MR; ++i)
      CP_KNOB_UNROLL
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_maskz_loadu_ps(mask[v], out + i * oc + 16 * v);
  } else if (!kPlain && e.bias == nullptr) {
    CP_KNOB_UNROLL
    for (int i = 0; i < MR; ++i)
      CP_KNOB_UNROLL
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  } else {
    __m512 b[NV];
    CP_KNOB_UNROLL
    for (int v = 0; v < NV; ++v) b[v] = _mm512_maskz_loadu_ps(mask[v], e.bias + 16 * v);
    CP_KNOB_UNROLL
    for (int i = 0; i < MR; ++i)
      CP_KNOB_UNROLL
      for (int v = 0; v < NV; ++v)
        acc[i][v] = e.res == nullptr
                        ? b[v]
                        : _mm512_add_ps(b[v], _mm512_maskz_loadu_ps(mask[v], e.res + i * oc + 16 * v));
  }
  const float* a[MR];
  CP_KNOB_UNROLL
  for (int i = 0; i < MR; ++i) a[i] = image + pos[i];
  const float* const (&ac)[MR] = a;
  const int64_t t0 = p.tap_block_begin[kb], t1 = p.tap_block_begin[kb + 1];
  const float* wk = w + t0 * tn;
  if (!kPlain && p.by_runs) {
    for (int64_t r = p.run_block_begin[kb]; r < p.run_block_begin[kb + 1]; ++r) {
      const int64_t o = p.run_offset[static_cast<size_t>(r)], len = p.run_length[static_cast<size_t>(r)];
      for (int64_t j = 0; j < len; ++j, wk += tn) tap_step<MR, NV, kBf16>(acc, ac, wk, o + j, tail);
    }
  } else {
    const int64_t* off = p.tap_offset.data();
    for (int64_t t = t0; t < t1; ++t, wk += tn) tap_step<MR, NV, kBf16>(acc, ac, wk, off[t], tail);
  }
  const float al = p.act.alpha, be = p.act.beta;
  if (kPlain || (last && e.bias != nullptr && e.y == nullptr)) {
    CP_KNOB_UNROLL
    for (int i = 0; i < MR; ++i)
      CP_KNOB_UNROLL
      for (int v = 0; v < NV; ++v) acc[i][v] = activate_vector<K>(acc[i][v], al, be);
  }
  // With the skipped columns formed here, comp needs only the last
  // position, which the next tile's first may pair with.
  const bool skips = !kPlain && last && e.skip != nullptr;
  if constexpr (kCodesOut) {
    CP_KNOB_UNROLL
    for (int i = 0; i < MR; ++i)
      CP_KNOB_UNROLL
      for (int v = 0; v < NV; ++v)
        _mm256_mask_storeu_epi16(out + i * oc + 16 * v, mask[v],
                                 reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(acc[i][v])));
    return;
  }
  CP_KNOB_UNROLL
  for (int i = 0; i < MR; ++i) {
    // (A constant start: the loop must unroll for acc to stay in registers.)
    if (skips && i + 1 < MR) continue;
    CP_KNOB_UNROLL
    for (int v = 0; v + 1 < NV; ++v) _mm512_storeu_ps(out + i * oc + 16 * v, acc[i][v]);
    _mm512_mask_storeu_ps(out + i * oc + 16 * (NV - 1), tail, acc[i][NV - 1]);
  }
  if (kPlain || !last || e.y == nullptr) return;
  // Vector v of one output position at offset o of the item: x + residual,
  // activated.
  const auto finish = [&](int64_t o, int v, __m512 x) {
    if (e.y_res != nullptr) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mask[v], e.y_res + o + 16 * v));
    _mm512_mask_storeu_ps(e.y + o + 16 * v, mask[v], activate_vector<K>(x, al, be));
  };
  const __m512 half = _mm512_set1_ps(0.5f);
  CP_KNOB_UNROLL
  for (int i = 0; i < MR; ++i) {
    const int64_t o = e.out_offset[i];
    CP_KNOB_UNROLL
    for (int v = 0; v < NV; ++v) finish(o, v, acc[i][v]);
    if (!skips) continue;
    const TileSkip& k = e.skip[i];
    if (k.left >= 0 && k.pair) {
      // The mean of the previous position (the previous tile's last, from
      // comp, when this is the tile's first) and this one, as
      // formed_skipped computes it.
      CP_KNOB_UNROLL
      for (int v = 0; v < NV; ++v) {
        const __m512 prev = i > 0 ? acc[i > 0 ? i - 1 : 0][v] : _mm512_maskz_loadu_ps(mask[v], out - oc + 16 * v);
        finish(k.left, v, _mm512_mul_ps(_mm512_add_ps(prev, acc[i][v]), half));
      }
    } else if (k.left >= 0) {
      CP_KNOB_UNROLL
      for (int v = 0; v < NV; ++v) finish(k.left, v, acc[i][v]);
    }
    if (k.right >= 0) {
      CP_KNOB_UNROLL
      for (int v = 0; v < NV; ++v) finish(k.right, v, acc[i][v]);
    }
  }
}

// The block of a tile's output channels [ob, ob + width).
CP_KNOB_INLINE ChannelBlock channel_block(const Plan& p, int64_t ob) {
  return channel_block(std::min<int64_t>(p.tile_n, p.oc - ob));
}

// The last steps of a finished tile's values (positions [m, m + mr), NV
// vectors of channels from ob, `tail` masking the last) while they are in
// L1, where the tile cannot take them (half rounding, sigmoid, tanh): bias,
// residual, activation and half rounding, as finish_run, into y. Under
// perforation the conv values stay in comp, where the epilogue
// interpolates the skipped positions from. The bias vectors are loaded once
// per tile and the vector loop is unrolled.
template <ActivationKind K, int NV>
CP_KNOB_INLINE void finish_tile_nv(const Plan& p, const float* comp, const float* bias, const float* res, float* y,
                                   int64_t m, int64_t mr, int64_t ob, __mmask16 tail) {
  constexpr int kRne = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  __mmask16 mask[NV];
  block_masks(tail, mask);
  __m512 b[NV];
  for (int v = 0; v < NV; ++v) b[v] = _mm512_maskz_loadu_ps(mask[v], bias + ob + 16 * v);
  for (int64_t i = m; i < m + mr; ++i) {
    const int64_t o = p.out_offset[static_cast<size_t>(i)] + ob;
    const float* s = comp + i * p.oc + ob;
    float* d = y + o;
    const float* r = res != nullptr ? res + o : nullptr;
    for (int v = 0; v < NV; ++v) {
      __m512 x = _mm512_add_ps(_mm512_maskz_loadu_ps(mask[v], s + 16 * v), b[v]);
      if (r != nullptr) {
        __m512 rv = _mm512_maskz_loadu_ps(mask[v], r + 16 * v);
        if (p.half) rv = _mm512_cvtph_ps(_mm512_cvtps_ph(rv, kRne));
        x = _mm512_add_ps(x, rv);
      }
      x = activate_vector<K>(x, p.act.alpha, p.act.beta);
      if (p.half) x = _mm512_cvtph_ps(_mm512_cvtps_ph(x, kRne));
      _mm512_mask_storeu_ps(d + 16 * v, mask[v], x);
    }
  }
}

// finish_tile_nv for a tile of NV vectors (the tile's own), or scalar for the
// activations without a vector form.
template <ActivationKind K, int NV>
CP_KNOB_INLINE void finish_tile(const Plan& p, const float* comp, const float* bias, const float* res, float* y,
                                int64_t m, int64_t mr, int64_t ob, int64_t width, __mmask16 tail) {
  if constexpr (!kVectorActivation<K>) {
    for (int64_t i = m; i < m + mr; ++i) {
      const int64_t o = p.out_offset[static_cast<size_t>(i)] + ob;
      const float* s = comp + i * p.oc + ob;
      float* d = y + o;
      for (int64_t c = 0; c < width; ++c) d[c] = s[c] + bias[ob + c];
      finish_run<K>(p, d, nullptr, false, 0.f, res != nullptr ? res + o : nullptr, width);
    }
  } else {
    finish_tile_nv<K, NV>(p, comp, bias, res, y, m, mr, ob, tail);
  }
}

// What the tiles of one output channel block and tap block share.
struct TileBlock {
  const Plan& p;
  const float* image;
  const float* w;  // the block's [k][tile_n] weight panel
  float* comp;
  const float* bias;
  const float* res;
  float* y;         // null: raw tiles, nothing finishes them
  uint16_t* codes;  // Plan::codes_out: the item's output codes (comp and y unused)
  int64_t ob;       // the block's first output channel
  ChannelBlock cb;  // and its channels (channel_block)
  size_t kb;
  bool last;   // the last tap block
  bool fused;  // the tiles finish their values (Plan::tile_bias)
};

// tile_run's general tiles (those not plain), on block b (tile_run's
// copy).
template <ActivationKind K, int MR, int NV, bool kBf16>
CP_KNOB_INLINE void general_tiles(const TileBlock& b, int64_t m0, int64_t m1) {
  const Plan& p = b.p;
  for (int64_t m = m0; m < m1; m += MR) {
    const int64_t* pos = p.pos_offset.data() + m;
    float* out = b.comp + m * p.oc + b.ob;
    if (p.prefetch_floats > 0 && b.ob == 0 && b.kb == 0) {
      // The next tile's inputs (Plan::prefetch_floats).
      for (int64_t j = m + MR; j < std::min(m1, m + 2 * MR); ++j)
        for (int64_t f = 0; f < p.prefetch_floats; f += 16)
          _mm_prefetch(reinterpret_cast<const char*>(b.image + p.pos_offset[static_cast<size_t>(j)] + f),
                       _MM_HINT_T0);
    }
    TileEnds ends;
    if (b.fused && b.comp == b.y) {
      ends = {b.bias + b.ob, b.res != nullptr ? b.res + m * p.oc + b.ob : nullptr};
    } else if (b.fused) {
      ends = {b.bias + b.ob, nullptr, b.y + b.ob, p.out_offset.data() + m, b.res != nullptr ? b.res + b.ob : nullptr,
              p.tile_skips ? p.tile_skip.data() + m : nullptr};
    }
    // (Raw tiles for the activations without a vector form.)
    tile<kVectorActivation<K> ? K : ActivationKind::none, MR, NV, false, kBf16>(p, b.image, pos, b.w, out, b.cb.tail,
                                                                               b.kb, b.kb == 0, b.last, ends);
    if (b.last && !b.fused && b.y != nullptr)
      finish_tile<K, NV>(p, b.comp, b.bias, b.res, b.y, m, MR, b.ob, b.cb.width, b.cb.tail);
  }
}

// The tiles of MR positions by NV vectors at [m0, m1) (a multiple of MR
// positions) of one block, in order. Not inlined: one function per tile
// shape, dispatched once per block rather than per tile, keeps GCC's
// register allocation to the tile itself (inlined into one function with
// every other shape, MobileNet-style's stem and first pointwise layer ran
// 1.16x and 1.08x slower). The last whole tile of a run prefetches no
// further than the run: the short tile after it goes without. kBf16 and
// kCodesOut as for tile (kCodesOut: the plan guarantees plain tiles).
template <ActivationKind K, int MR, int NV, bool kBf16 = false, bool kCodesOut = false>
[[gnu::noinline]] void tile_run(const TileBlock& block, int64_t m0, int64_t m1) {
  const TileBlock b = block;  // (locals: the tile's stores may alias anything)
  const Plan& p = b.p;
  // Plain tiles (tile's kPlain): with every branch of the general tile
  // decided when compiling, the 1 -> 32 3x3 stem at samp-2-0 (4 taps) ran
  // 1.25x faster. Not for tiles whose accumulators, weights, input and
  // bias vectors together need more than the 32 vector registers (NV 4 by
  // MR 6): plain, the 1x1 layers on 7x7 ran 1.1-1.18x slower, as if GCC
  // kept the bias vectors in registers across the tiles. (bf16 tiles walk
  // the tap offsets even where the taps form runs. Tiles writing codes are
  // plain whatever their shape: make_lowp_conv times 64 x 6 ones against
  // 32 x 12 ones where the layer has more than 32 channels.)
  if constexpr (kCodesOut || (kVectorActivation<K> && MR * NV + 2 * NV + 1 <= 32)) {
    const bool plain = kCodesOut || (b.fused && b.comp == b.y && b.res == nullptr && b.kb == 0 && b.last &&
                                     (kBf16 || !p.by_runs) && p.prefetch_floats == 0);
    if (plain) {
      const TileEnds ends{b.bias + b.ob};
      for (int64_t m = m0; m < m1; m += MR) {
        if constexpr (kCodesOut)
          tile<K, MR, NV, true, kBf16, true>(p, b.image, p.pos_offset.data() + m, b.w, b.codes + m * p.oc + b.ob,
                                             b.cb.tail, 0, true, true, ends);
        else
          tile<K, MR, NV, true, kBf16>(p, b.image, p.pos_offset.data() + m, b.w, b.comp + m * p.oc + b.ob,
                                       b.cb.tail, 0, true, true, ends);
      }
      return;
    }
  }
  if constexpr (!kCodesOut) general_tiles<K, MR, NV, kBf16>(b, m0, m1);
}

// Dispatches the tiles of mr (<= 12 / 12 / 8 / 6 for NV = 1..4) positions.
template <ActivationKind K, int NV, bool kBf16, bool kCodesOut>
CP_KNOB_INLINE void tile_run_of(int64_t mr, const TileBlock& b, int64_t m0, int64_t m1) {
#define CP_KNOB_TILE(M) \
  case M: tile_run<K, M, NV, kBf16, kCodesOut>(b, m0, m1); return;
  switch (mr) {
    CP_KNOB_TILE(1) CP_KNOB_TILE(2) CP_KNOB_TILE(3) CP_KNOB_TILE(4) CP_KNOB_TILE(5) CP_KNOB_TILE(6)
    default: break;
  }
  if constexpr (NV <= 3) {
    switch (mr) {
      CP_KNOB_TILE(7) CP_KNOB_TILE(8)
      default: break;
    }
  }
  if constexpr (NV <= 2) {
    switch (mr) {
      CP_KNOB_TILE(9) CP_KNOB_TILE(10) CP_KNOB_TILE(11) CP_KNOB_TILE(12)
      default: break;
    }
  }
#undef CP_KNOB_TILE
}

// The block's tiles of positions [m0, m1): whole tiles of tile_m, then the
// short one at the end.
template <ActivationKind K, bool kBf16 = false, bool kCodesOut = false>
CP_KNOB_INLINE void tile_runs(const TileBlock& b, int64_t m0, int64_t m1) {
  const int64_t whole = m0 + (m1 - m0) / b.p.tile_m * b.p.tile_m;
  const auto run = [&](int64_t mr, int64_t from, int64_t to) {
    switch (b.cb.nv) {
      case 1: tile_run_of<K, 1, kBf16, kCodesOut>(mr, b, from, to); break;
      case 2: tile_run_of<K, 2, kBf16, kCodesOut>(mr, b, from, to); break;
      case 3: tile_run_of<K, 3, kBf16, kCodesOut>(mr, b, from, to); break;
      default: tile_run_of<K, 4, kBf16, kCodesOut>(mr, b, from, to); break;
    }
  };
  if (m0 < whole) run(b.p.tile_m, m0, whole);
  if (whole < m1) run(m1 - whole, whole, m1);
}

// Output channel blocks of tile_n outer, then blocks of taps whose weights
// fit in L1 (tap_block_begin), then the tiles of positions [m0, m1): each
// weight block is read from L1 by every tile, and each tile is finished
// after its last block. kBf16, kCodesOut (codes: the item's output codes)
// as for tile.
template <ActivationKind K, bool kBf16 = false, bool kCodesOut = false>
CP_KNOB_INLINE void tiled_impl(const Plan& p, const float* image, float* comp, const float* bias, const float* res,
                               float* y, uint16_t* codes, int64_t m0, int64_t m1) {
  const size_t last = p.tap_block_begin.size() - 2;
  // The tiles finish their values themselves (TileEnds, Plan::tile_bias).
  const bool fused = kVectorActivation<K> && p.tile_bias;
  for (int64_t ob = 0; ob < p.oc; ob += p.tile_n) {
    const ChannelBlock cb = channel_block(p, ob);
    for (size_t kb = 0; kb <= last; ++kb) {
      const float* w = p.weights.data() + ob * p.k;  // the block's [k][tile_n] panel
      tile_runs<K, kBf16, kCodesOut>({p, image, w, comp, bias, res, y, codes, ob, cb, kb, kb == last, fused}, m0, m1);
    }
  }
}

// The Winograd transforms, on 16 channels, with the fractions of the
// points 0, 1, -1 (, 2) and infinity moved into G:
//   F(4,3) input  B^T d (rows as in winograd_impl), output A^T m;
//   F(2,3) input  [d0 - d2, d1 + d2, d2 - d1, d3 - d1], output [m0 + m1 + m2, m1 - m2 + m3];
//   F(3,3) input  [2d0 - d1 - 2d2 + d3, 2d1 + d2 - d3, 3d2 - 2d1 - d3, d3 - d1, 2d1 - d2 - 2d3 + d4],
//          output [m0 + m1 + m2 + m3, m1 - m2 + 2m3, m1 + m2 + 4m3 + m4].
CP_KNOB_INLINE void wino_in4(const __m512 (&d)[6], __m512 (&o)[6]) {
  const __m512 four = _mm512_set1_ps(4.f), five = _mm512_set1_ps(5.f), two = _mm512_set1_ps(2.f);
  const __m512 d4_d2 = _mm512_sub_ps(d[4], d[2]);
  o[0] = _mm512_add_ps(_mm512_fnmadd_ps(five, d[2], _mm512_mul_ps(four, d[0])), d[4]);
  o[1] = _mm512_fnmadd_ps(four, _mm512_add_ps(d[1], d[2]), _mm512_add_ps(d[3], d[4]));
  o[2] = _mm512_fmadd_ps(four, _mm512_sub_ps(d[1], d[2]), _mm512_sub_ps(d[4], d[3]));
  o[3] = _mm512_fmadd_ps(two, _mm512_sub_ps(d[3], d[1]), d4_d2);
  o[4] = _mm512_fmadd_ps(two, _mm512_sub_ps(d[1], d[3]), d4_d2);
  o[5] = _mm512_add_ps(_mm512_fnmadd_ps(five, d[3], _mm512_mul_ps(four, d[1])), d[5]);
}
CP_KNOB_INLINE void wino_out4(const __m512 (&m)[6], __m512 (&y)[4]) {
  const __m512 s12 = _mm512_add_ps(m[1], m[2]), d12 = _mm512_sub_ps(m[1], m[2]);
  const __m512 s34 = _mm512_add_ps(m[3], m[4]), d34 = _mm512_sub_ps(m[3], m[4]);
  y[0] = _mm512_add_ps(_mm512_add_ps(m[0], s12), s34);
  y[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.f), d34, d12);
  y[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.f), s34, s12);
  y[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.f), d34, d12), m[5]);
}
template <int WR>
CP_KNOB_INLINE void wino_in_across(const __m512 (&d)[WR + 2], __m512 (&o)[WR + 2]) {
  if constexpr (WR == 2) {
    o[0] = _mm512_sub_ps(d[0], d[2]);
    o[1] = _mm512_add_ps(d[1], d[2]);
    o[2] = _mm512_sub_ps(d[2], d[1]);
    o[3] = _mm512_sub_ps(d[3], d[1]);
  } else {
    const __m512 two = _mm512_set1_ps(2.f);
    o[0] = _mm512_add_ps(_mm512_fmsub_ps(two, _mm512_sub_ps(d[0], d[2]), d[1]), d[3]);
    o[1] = _mm512_sub_ps(_mm512_fmadd_ps(two, d[1], d[2]), d[3]);
    o[2] = _mm512_sub_ps(_mm512_fmsub_ps(_mm512_set1_ps(3.f), d[2], _mm512_mul_ps(two, d[1])), d[3]);
    o[3] = _mm512_sub_ps(d[3], d[1]);
    o[4] = _mm512_add_ps(_mm512_fmsub_ps(two, _mm512_sub_ps(d[1], d[3]), d[2]), d[4]);
  }
}
template <int WR>
CP_KNOB_INLINE void wino_out_across(const __m512 (&m)[WR + 2], __m512 (&y)[WR]) {
  if constexpr (WR == 2) {
    y[0] = _mm512_add_ps(_mm512_add_ps(m[0], m[1]), m[2]);
    y[1] = _mm512_add_ps(_mm512_sub_ps(m[1], m[2]), m[3]);
  } else {
    y[0] = _mm512_add_ps(_mm512_add_ps(m[0], m[1]), _mm512_add_ps(m[2], m[3]));
    y[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.f), m[3], _mm512_sub_ps(m[1], m[2]));
    y[2] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(4.f), m[3], _mm512_add_ps(m[1], m[2])), m[4]);
  }
}

// The Winograd products: per map xi of `maps`, M[xi] ([wpos][OC]) = the
// "convolution" of V[xi] (plane floats apart; positions pos_offset, taps
// tap_offset) by the transformed weights U[xi] ([OC / tile_n][taps][tile_n]).
CP_KNOB_INLINE void winograd_products(const Plan& p, const float* v, int64_t plane, int64_t maps, int64_t taps,
                                      float* m) {
  const int64_t per_xi = p.panel_floats(taps);
  const size_t last = p.tap_block_begin.size() - 2;
  for (int64_t xi = 0; xi < maps; ++xi) {
    const float* vx = v + xi * plane;
    float* mx = m + xi * p.wpos * p.oc;
    const float* wx = p.wino_weights.data() + xi * per_xi;
    for (int64_t ob = 0; ob < p.oc; ob += p.tile_n) {
      const ChannelBlock cb = channel_block(p, ob);
      const float* w = wx + ob * taps;  // the block's [taps][tile_n] panel
      for (size_t kb = 0; kb <= last; ++kb)
        tile_runs<ActivationKind::none>(
            {p, vx, w, mx, nullptr, nullptr, nullptr, nullptr, ob, cb, kb, kb == last, false}, 0, p.wpos);
    }
  }
}

// Winograd rows (Plan::winograd): F(4,3) along each computed row (column),
// i.e. per tile of 4 outputs the 6 inputs d are transformed by B^T, each
// kernel row's (column's) 3 taps g by G (at prepare time), their products
// summed over kernel rows (columns) and channels per xi (the tiles below),
// and A^T forms the 4 outputs.
CP_KNOB_INLINE void winograd_impl(const Plan& p, const float* staged, float* v, float* m, float* comp) {
  // Rows: maps [hp][wt][C] from 6 consecutive pixels of a staged row;
  // columns: maps [wt][wp][C] from 6 consecutive rows of a staged column.
  const int64_t c_in = p.c, tiles = p.wt;
  const int64_t outer = p.perf_rows ? p.hp : tiles, inner = p.perf_rows ? tiles : p.wp;
  const int64_t plane = outer * inner * c_in, step = p.perf_rows ? c_in : p.wp * c_in;
  for (int64_t a = 0; a < outer; ++a)
    for (int64_t b = 0; b < inner; ++b) {
      const float* d = staged + (p.perf_rows ? a * p.wp + 4 * b : 4 * a * p.wp + b) * c_in;
      float* out = v + (a * inner + b) * c_in;
      for (int64_t c = 0; c < c_in; c += 16) {
        const __mmask16 mk = first_lanes(c_in - c);
        __m512 x[6], o[6];
        for (int k = 0; k < 6; ++k) x[k] = _mm512_maskz_loadu_ps(mk, d + k * step + c);
        wino_in4(x, o);
        for (int k = 0; k < 6; ++k) _mm512_mask_storeu_ps(out + k * plane + c, mk, o[k]);
      }
    }
  winograd_products(p, v, plane, 6, 3 * c_in, m);
  // Outputs: rows, comp [computed row][OW][OC], position (row i, tile t);
  // columns, comp [OH][computed column][OC], position (tile t, column i).
  const int64_t lines = static_cast<int64_t>(p.perf_rows ? p.rows.size() : p.cols.size());
  const int64_t stride = p.wpos * p.oc, extent = p.perf_rows ? p.ow : p.oh;
  const int64_t next = (p.perf_rows ? 1 : p.nq) * p.oc;  // floats from one output of a tile to the next
  for (int64_t i = 0; i < lines; ++i)
    for (int64_t t = 0; t < tiles; ++t) {
      const float* mt = m + (p.perf_rows ? i * tiles + t : t * lines + i) * p.oc;
      float* d = comp + (p.perf_rows ? i * p.ow + 4 * t : 4 * t * p.nq + i) * p.oc;
      const int64_t outs = std::min<int64_t>(4, extent - 4 * t);
      for (int64_t o = 0; o < p.oc; o += 16) {
        const __mmask16 mk = first_lanes(p.oc - o);
        __m512 x[6], y[4];
        for (int k = 0; k < 6; ++k) x[k] = _mm512_maskz_loadu_ps(mk, mt + k * stride + o);
        wino_out4(x, y);
        for (int64_t j = 0; j < outs; ++j) _mm512_mask_storeu_ps(d + j * next + o, mk, y[j]);
      }
    }
}

// Winograd tiles (Plan::wr > 0), 16 channels at a time.
template <int WR>
void winograd_tiles_impl(const Plan& p, const float* staged, float* v, float* m, float* comp) {
  constexpr int kA = WR + 2;  // maps across; 6 along
  const int64_t c_in = p.c, tiles = p.wt, runs = static_cast<int64_t>(p.wino_first.size());
  const int64_t vplane = p.wpos * c_in, mplane = p.wpos * p.oc;
  // Staged element (i across, k along) of a tile: rows perforated, row i
  // and column k of the patch; columns, the transpose.
  const int64_t step_i = p.perf_rows ? p.wp * c_in : c_in, step_k = p.perf_rows ? c_in : p.wp * c_in;
  for (int64_t j = 0; j < runs; ++j)
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t first = p.wino_first[static_cast<size_t>(j)];
      const float* d0 = staged + (p.perf_rows ? first * p.wp + 4 * t : 4 * t * p.wp + first) * c_in;
      float* out = v + (j * tiles + t) * c_in;
      for (int64_t c = 0; c < c_in; c += 16) {
        const __mmask16 mk = first_lanes(c_in - c);
        __m512 along[6][kA];
        for (int i = 0; i < kA; ++i) {
          __m512 d[6], o[6];
          for (int k = 0; k < 6; ++k) d[k] = _mm512_maskz_loadu_ps(mk, d0 + i * step_i + k * step_k + c);
          wino_in4(d, o);
          for (int b = 0; b < 6; ++b) along[b][i] = o[b];
        }
        for (int b = 0; b < 6; ++b) {
          __m512 o[kA];
          wino_in_across<WR>(along[b], o);
          for (int a = 0; a < kA; ++a) _mm512_mask_storeu_ps(out + (a * 6 + b) * vplane + c, mk, o[a]);
        }
      }
    }
  winograd_products(p, v, vplane, kA * 6, c_in, m);
  // Outputs: each run tile's computed rows (columns) into comp, at their
  // slots (consecutive within a run).
  const int64_t extent = p.perf_rows ? p.ow : p.oh;
  for (int64_t j = 0; j < runs; ++j) {
    const int64_t first = p.wino_first[static_cast<size_t>(j)], len = p.wino_len[static_cast<size_t>(j)];
    const int64_t slot = (p.perf_rows ? p.row_slot : p.col_slot)[static_cast<size_t>(first)];
    for (int64_t t = 0; t < tiles; ++t) {
      const float* mt = m + (j * tiles + t) * p.oc;
      const int64_t outs = std::min<int64_t>(4, extent - 4 * t);
      for (int64_t o = 0; o < p.oc; o += 16) {
        const __mmask16 mk = first_lanes(p.oc - o);
        __m512 along[4][kA];
        for (int a = 0; a < kA; ++a) {
          __m512 mm[6], y[4];
          for (int b = 0; b < 6; ++b) mm[b] = _mm512_maskz_loadu_ps(mk, mt + (a * 6 + b) * mplane + o);
          wino_out4(mm, y);
          for (int k = 0; k < 4; ++k) along[k][a] = y[k];
        }
        for (int64_t k = 0; k < outs; ++k) {
          __m512 y[WR];
          wino_out_across<WR>(along[k], y);
          const int64_t q = 4 * t + k;  // the position along
          for (int64_t i = 0; i < len; ++i) {
            const int64_t at = p.perf_rows ? (slot + i) * p.ow + q : q * p.nq + slot + i;
            _mm512_mask_storeu_ps(comp + at * p.oc + o, mk, y[i]);
          }
        }
      }
    }
  }
}
#endif

}  // namespace caliprox::onednn::compact::CP_KNOB_ISA
