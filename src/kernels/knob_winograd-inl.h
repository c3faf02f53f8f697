// The compact kernel's per-image loops, part 5 of 5: Winograd rows and
// tiles on the tiled kernel (vector variants). A Highway per-target header
// (knob_gather-inl.h).
#if defined(CALIPROX_KERNELS_KNOB_WINOGRAD_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef CALIPROX_KERNELS_KNOB_WINOGRAD_INL_H_
#undef CALIPROX_KERNELS_KNOB_WINOGRAD_INL_H_
#else
#define CALIPROX_KERNELS_KNOB_WINOGRAD_INL_H_
#endif

#include "kernels/knob_tiled-inl.h"

HWY_BEFORE_NAMESPACE();
namespace caliprox::kernels::compact::HWY_NAMESPACE {

#if CP_KNOB_VECTOR
// The Winograd transforms, on kL channels, with the fractions of the
// points 0, 1, -1 (, 2) and infinity moved into G:
//   F(4,3) input  B^T d (rows as in winograd_impl), output A^T m;
//   F(2,3) input  [d0 - d2, d1 + d2, d2 - d1, d3 - d1], output [m0 + m1 + m2, m1 - m2 + m3];
//   F(3,3) input  [2d0 - d1 - 2d2 + d3, 2d1 + d2 - d3, 3d2 - 2d1 - d3, d3 - d1, 2d1 - d2 - 2d3 + d4],
//          output [m0 + m1 + m2 + m3, m1 - m2 + 2m3, m1 + m2 + 4m3 + m4].
CP_KNOB_INLINE void wino_in4(const VF (&d)[6], VF (&o)[6]) {
  const VF four = hn::Set(DF(), 4.f), five = hn::Set(DF(), 5.f), two = hn::Set(DF(), 2.f);
  const VF d4_d2 = hn::Sub(d[4], d[2]);
  o[0] = hn::Add(hn::NegMulAdd(five, d[2], hn::Mul(four, d[0])), d[4]);
  o[1] = hn::NegMulAdd(four, hn::Add(d[1], d[2]), hn::Add(d[3], d[4]));
  o[2] = hn::MulAdd(four, hn::Sub(d[1], d[2]), hn::Sub(d[4], d[3]));
  o[3] = hn::MulAdd(two, hn::Sub(d[3], d[1]), d4_d2);
  o[4] = hn::MulAdd(two, hn::Sub(d[1], d[3]), d4_d2);
  o[5] = hn::Add(hn::NegMulAdd(five, d[3], hn::Mul(four, d[1])), d[5]);
}
CP_KNOB_INLINE void wino_out4(const VF (&m)[6], VF (&y)[4]) {
  const VF s12 = hn::Add(m[1], m[2]), d12 = hn::Sub(m[1], m[2]);
  const VF s34 = hn::Add(m[3], m[4]), d34 = hn::Sub(m[3], m[4]);
  y[0] = hn::Add(hn::Add(m[0], s12), s34);
  y[1] = hn::MulAdd(hn::Set(DF(), 2.f), d34, d12);
  y[2] = hn::MulAdd(hn::Set(DF(), 4.f), s34, s12);
  y[3] = hn::Add(hn::MulAdd(hn::Set(DF(), 8.f), d34, d12), m[5]);
}
template <int WR> CP_KNOB_INLINE void wino_in_across(const VF (&d)[WR + 2], VF (&o)[WR + 2]) {
  if constexpr (WR == 2) {
    o[0] = hn::Sub(d[0], d[2]);
    o[1] = hn::Add(d[1], d[2]);
    o[2] = hn::Sub(d[2], d[1]);
    o[3] = hn::Sub(d[3], d[1]);
  } else {
    const VF two = hn::Set(DF(), 2.f);
    o[0] = hn::Add(hn::MulSub(two, hn::Sub(d[0], d[2]), d[1]), d[3]);
    o[1] = hn::Sub(hn::MulAdd(two, d[1], d[2]), d[3]);
    o[2] = hn::Sub(hn::MulSub(hn::Set(DF(), 3.f), d[2], hn::Mul(two, d[1])), d[3]);
    o[3] = hn::Sub(d[3], d[1]);
    o[4] = hn::Add(hn::MulSub(two, hn::Sub(d[1], d[3]), d[2]), d[4]);
  }
}
template <int WR> CP_KNOB_INLINE void wino_out_across(const VF (&m)[WR + 2], VF (&y)[WR]) {
  if constexpr (WR == 2) {
    y[0] = hn::Add(hn::Add(m[0], m[1]), m[2]);
    y[1] = hn::Add(hn::Sub(m[1], m[2]), m[3]);
  } else {
    y[0] = hn::Add(hn::Add(m[0], m[1]), hn::Add(m[2], m[3]));
    y[1] = hn::MulAdd(hn::Set(DF(), 2.f), m[3], hn::Sub(m[1], m[2]));
    y[2] = hn::Add(hn::MulAdd(hn::Set(DF(), 4.f), m[3], hn::Add(m[1], m[2])), m[4]);
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
        tile_runs<ActivationKind::none>({p, vx, w, mx, nullptr, nullptr, nullptr, nullptr, ob, cb, kb, kb == last,
                                         false},
                                        0, p.wpos);
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
      for (int64_t c = 0; c < c_in; c += kL) {
        const MF mk = first_lanes(c_in - c);
        VF x[6], o[6];
        for (int k = 0; k < 6; ++k) x[k] = load(mk, d + k * step + c);
        wino_in4(x, o);
        for (int k = 0; k < 6; ++k) store(o[k], mk, out + k * plane + c);
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
      for (int64_t o = 0; o < p.oc; o += kL) {
        const MF mk = first_lanes(p.oc - o);
        VF x[6], y[4];
        for (int k = 0; k < 6; ++k) x[k] = load(mk, mt + k * stride + o);
        wino_out4(x, y);
        for (int64_t j = 0; j < outs; ++j) store(y[j], mk, d + j * next + o);
      }
    }
}

// Winograd tiles (Plan::wr > 0), kL channels at a time.
template <int WR> void winograd_tiles_impl(const Plan& p, const float* staged, float* v, float* m, float* comp) {
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
      for (int64_t c = 0; c < c_in; c += kL) {
        const MF mk = first_lanes(c_in - c);
        VF along[6][kA];
        for (int i = 0; i < kA; ++i) {
          VF d[6], o[6];
          for (int k = 0; k < 6; ++k) d[k] = load(mk, d0 + i * step_i + k * step_k + c);
          wino_in4(d, o);
          for (int b = 0; b < 6; ++b) along[b][i] = o[b];
        }
        for (int b = 0; b < 6; ++b) {
          VF o[kA];
          wino_in_across<WR>(along[b], o);
          for (int a = 0; a < kA; ++a) store(o[a], mk, out + (a * 6 + b) * vplane + c);
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
      for (int64_t o = 0; o < p.oc; o += kL) {
        const MF mk = first_lanes(p.oc - o);
        VF along[4][kA];
        for (int a = 0; a < kA; ++a) {
          VF mm[6], y[4];
          for (int b = 0; b < 6; ++b) mm[b] = load(mk, mt + (a * 6 + b) * mplane + o);
          wino_out4(mm, y);
          for (int k = 0; k < 4; ++k) along[k][a] = y[k];
        }
        for (int64_t k = 0; k < outs; ++k) {
          VF y[WR];
          wino_out_across<WR>(along[k], y);
          const int64_t q = 4 * t + k;  // the position along
          for (int64_t i = 0; i < len; ++i) {
            const int64_t at = p.perf_rows ? (slot + i) * p.ow + q : q * p.nq + slot + i;
            store(y[i], mk, comp + at * p.oc + o);
          }
        }
      }
    }
  }
}
#endif  // CP_KNOB_VECTOR

}  // namespace caliprox::kernels::compact::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // CALIPROX_KERNELS_KNOB_WINOGRAD_INL_H_
