// The compact kernel's per-image loops, part 4 of 5: the register-tiled
// kernel (vector variants). A Highway per-target header (knob_gather-inl.h).
#if defined(CALIPROX_KERNELS_KNOB_TILED_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef CALIPROX_KERNELS_KNOB_TILED_INL_H_
#undef CALIPROX_KERNELS_KNOB_TILED_INL_H_
#else
#define CALIPROX_KERNELS_KNOB_TILED_INL_H_
#endif

#include "kernels/knob_epilogue-inl.h"

HWY_BEFORE_NAMESPACE();
namespace caliprox::kernels::compact::HWY_NAMESPACE {

// ---- tiled kernel (vector variants) ------------------------------------------------

#if CP_KNOB_VECTOR
// The bf16 tiles' instructions (avx512 variant on CPUs with AVX512-BF16,
// Plan::bf16), written as inline assembly: Highway's AVX3 target does not
// enable AVX512-BF16, and a function with a wider target could not be
// inlined into the tiles. bf16 plans run only where the probe reports it.
#if HWY_TARGET == HWY_AVX3
// acc += the pairwise products of x and w (16 pairs of bfloat16 each).
CP_KNOB_INLINE void dot_bf16(VF& acc, VF x, VF w) {
  asm("vdpbf16ps %2, %1, %0" : "+v"(acc.raw) : "v"(x.raw), "v"(w.raw));
}
// 16 floats rounded to bfloat16 codes, to nearest even.
CP_KNOB_INLINE __m256i to_bf16_codes(VF v) {
  __m256i codes;
  asm("vcvtneps2bf16 %1, %0" : "=v"(codes) : "v"(v.raw));
  return codes;
}
#endif

// The most positions a tile of NV vectors takes (the plan sizes tiles by
// the same rule).
template <int NV>
inline constexpr int kMaxMr = simd::max_tile_rows(NV, kRegs);

// One tap: its weights (NV vectors at wk, the last masked by `tail`) times
// the MR positions' input at offset o, into acc. kBf16 (Plan::bf16): a tap
// is a pair of channels, each 32-bit element two bfloat16 values (input
// and weights alike), multiplied and summed into fp32 by vdpbf16ps (only
// the avx512 variant instantiates it).
template <int MR, int NV, bool kBf16 = false>
CP_KNOB_INLINE void tap_step(VF (&acc)[MR][NV], const float* const (&a)[MR], const float* wk, int64_t o, MF tail) {
  VF b[NV];
  CP_KNOB_UNROLL
  for (int v = 0; v + 1 < NV; ++v) b[v] = hn::LoadU(DF(), wk + kL * v);
  b[NV - 1] = load(tail, wk + kL * (NV - 1));
  CP_KNOB_UNROLL
  for (int i = 0; i < MR; ++i) {
    if constexpr (kBf16) {
#if HWY_TARGET == HWY_AVX3
      // (Loaded as 32 bits of any type: the pair was written as bfloat16.)
      uint32_t pair;
      std::memcpy(&pair, a[i] + o, sizeof pair);
      const hn::RebindToUnsigned<DF> du;
      const VF x = hn::BitCast(DF(), hn::Set(du, pair));
      CP_KNOB_UNROLL
      for (int v = 0; v < NV; ++v) dot_bf16(acc[i][v], x, b[v]);
#endif
    } else {
      const VF x = hn::Set(DF(), a[i][o]);
      CP_KNOB_UNROLL
      for (int v = 0; v < NV; ++v) acc[i][v] = hn::MulAdd(x, b[v], acc[i][v]);
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

// MR computed positions (window origins image + pos[i]) by NV vectors of kL
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
                         std::conditional_t<kCodesOut, uint16_t, float>* out, MF tail, size_t kb, bool first_block,
                         bool last_block, const TileEnds& ends) {
  static_assert(kPlain || !kCodesOut, "only plain tiles write bfloat16 codes");
  // Locals for what is read after a store: the store intrinsics write
  // through may_alias types, so GCC reloaded p.oc before each of them.
  const int64_t oc = p.oc, tn = p.tile_n;
  const TileEnds e = kPlain ? TileEnds{ends.bias} : ends;
  const bool first = kPlain || first_block, last = kPlain || last_block;
  // out as floats (null where it holds codes: those tiles are plain, and
  // plain tiles never load from it nor store floats to it).
  float* const fout = [out] {
    if constexpr (kCodesOut) return static_cast<float*>(nullptr);
    else return out;
  }();
  MF mask[NV];
  block_masks(tail, mask);
  VF acc[MR][NV];
  if (!first) {
    CP_KNOB_UNROLL
    for (int i = 0; i < MR; ++i)
      CP_KNOB_UNROLL
    for (int v = 0; v < NV; ++v) acc[i][v] = load(mask[v], fout + i * oc + kL * v);
  } else if (!kPlain && e.bias == nullptr) {
    CP_KNOB_UNROLL
    for (int i = 0; i < MR; ++i)
      CP_KNOB_UNROLL
    for (int v = 0; v < NV; ++v) acc[i][v] = hn::Zero(DF());
  } else {
    VF b[NV];
    CP_KNOB_UNROLL
    for (int v = 0; v < NV; ++v) b[v] = load(mask[v], e.bias + kL * v);
    CP_KNOB_UNROLL
    for (int i = 0; i < MR; ++i)
      CP_KNOB_UNROLL
      for (int v = 0; v < NV; ++v)
        acc[i][v] = e.res == nullptr ? b[v] : hn::Add(b[v], load(mask[v], e.res + i * oc + kL * v));
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
#if HWY_TARGET == HWY_AVX3
    CP_KNOB_UNROLL
    for (int i = 0; i < MR; ++i)
      CP_KNOB_UNROLL
    for (int v = 0; v < NV; ++v) _mm256_mask_storeu_epi16(out + i * oc + kL * v, mask[v].raw, to_bf16_codes(acc[i][v]));
#endif
    return;
  }
  CP_KNOB_UNROLL
  for (int i = 0; i < MR; ++i) {
    // (A constant start: the loop must unroll for acc to stay in registers.)
    if (skips && i + 1 < MR) continue;
    CP_KNOB_UNROLL
    for (int v = 0; v + 1 < NV; ++v) hn::StoreU(acc[i][v], DF(), fout + i * oc + kL * v);
    store(acc[i][NV - 1], tail, fout + i * oc + kL * (NV - 1));
  }
  if (kPlain || !last || e.y == nullptr) return;
  // Vector v of one output position at offset o of the item: x + residual,
  // activated.
  const auto finish = [&](int64_t o, int v, VF x) {
    if (e.y_res != nullptr) x = hn::Add(x, load(mask[v], e.y_res + o + kL * v));
    store(activate_vector<K>(x, al, be), mask[v], e.y + o + kL * v);
  };
  const VF half = hn::Set(DF(), 0.5f);
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
        const VF prev = i > 0 ? acc[i > 0 ? i - 1 : 0][v] : load(mask[v], fout - oc + kL * v);
        finish(k.left, v, hn::Mul(hn::Add(prev, acc[i][v]), half));
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
                                   int64_t m, int64_t mr, int64_t ob, MF tail) {
  MF mask[NV];
  block_masks(tail, mask);
  VF b[NV];
  for (int v = 0; v < NV; ++v) b[v] = load(mask[v], bias + ob + kL * v);
  for (int64_t i = m; i < m + mr; ++i) {
    const int64_t o = p.out_offset[static_cast<size_t>(i)] + ob;
    const float* s = comp + i * p.oc + ob;
    float* d = y + o;
    const float* r = res != nullptr ? res + o : nullptr;
    for (int v = 0; v < NV; ++v) {
      VF x = hn::Add(load(mask[v], s + kL * v), b[v]);
      if (r != nullptr) {
        VF rv = load(mask[v], r + kL * v);
        if (p.half) rv = round_half_vector(rv);
        x = hn::Add(x, rv);
      }
      x = activate_vector<K>(x, p.act.alpha, p.act.beta);
      if (p.half) x = round_half_vector(x);
      store(x, mask[v], d + kL * v);
    }
  }
}

// finish_tile_nv for a tile of NV vectors (the tile's own), or scalar for the
// activations without a vector form.
template <ActivationKind K, int NV>
CP_KNOB_INLINE void finish_tile(const Plan& p, const float* comp, const float* bias, const float* res, float* y,
                                int64_t m, int64_t mr, int64_t ob, int64_t width, MF tail) {
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
        for (int64_t f = 0; f < p.prefetch_floats; f += 16)  // (a 64-byte line)
          hwy::Prefetch(b.image + p.pos_offset[static_cast<size_t>(j)] + f);
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
  // bias vectors together need more than the vector registers (with 32,
  // NV 4 by MR 6): plain, the 1x1 layers on 7x7 ran 1.1-1.18x slower, as if GCC
  // kept the bias vectors in registers across the tiles. (bf16 tiles walk
  // the tap offsets even where the taps form runs. Tiles writing codes are
  // plain whatever their shape: make_lowp_conv times 64 x 6 ones against
  // 32 x 12 ones where the layer has more than 32 channels.)
  if constexpr (kCodesOut || (kVectorActivation<K> && MR * NV + 2 * NV + 1 <= kRegs)) {
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

// Dispatches the tiles of mr (<= kMaxMr<NV>) positions.
template <ActivationKind K, int NV, bool kBf16, bool kCodesOut>
CP_KNOB_INLINE void tile_run_of(int64_t mr, const TileBlock& b, int64_t m0, int64_t m1) {
#define CP_KNOB_TILE(M)                                                             \
  case M:                                                                           \
    if constexpr (M <= kMaxMr<NV>) tile_run<K, M, NV, kBf16, kCodesOut>(b, m0, m1); \
    return;
  switch (mr) {
    CP_KNOB_TILE(1)
    CP_KNOB_TILE(2) CP_KNOB_TILE(3) CP_KNOB_TILE(4) CP_KNOB_TILE(5) CP_KNOB_TILE(6) CP_KNOB_TILE(7) CP_KNOB_TILE(8)
        CP_KNOB_TILE(9) CP_KNOB_TILE(10) CP_KNOB_TILE(11) CP_KNOB_TILE(12) default : break;
  }
#undef CP_KNOB_TILE
}

// The block's tiles of positions [m0, m1): whole tiles of tile_m, then the
// short one at the end.
template <ActivationKind K, bool kBf16 = false, bool kCodesOut = false>
CP_KNOB_INLINE void tile_runs(const TileBlock& b, int64_t m0, int64_t m1) {
  const int64_t whole = m0 + (m1 - m0) / b.p.tile_m * b.p.tile_m;
  // (With 16 registers the plan's tiles are at most 2 vectors wide:
  // simd::max_tile_vectors.)
  const auto run = [&](int64_t mr, int64_t from, int64_t to) {
    switch (b.cb.nv) {
      case 1: tile_run_of<K, 1, kBf16, kCodesOut>(mr, b, from, to); break;
      case 2: tile_run_of<K, 2, kBf16, kCodesOut>(mr, b, from, to); break;
      case 3:
        if constexpr (simd::max_tile_vectors(kRegs) >= 3) tile_run_of<K, 3, kBf16, kCodesOut>(mr, b, from, to);
        break;
      default:
        if constexpr (simd::max_tile_vectors(kRegs) >= 4) tile_run_of<K, 4, kBf16, kCodesOut>(mr, b, from, to);
        break;
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

#endif  // CP_KNOB_VECTOR

}  // namespace caliprox::kernels::compact::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // CALIPROX_KERNELS_KNOB_TILED_INL_H_
