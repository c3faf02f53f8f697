// The compact kernel's per-image loops, part 3 of 5: the epilogue (bias,
// residual, activation, half rounding, skipped outputs formed from their
// neighbours). A Highway per-target header (knob_gather-inl.h).
#if defined(CALIPROX_KERNELS_KNOB_EPILOGUE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef CALIPROX_KERNELS_KNOB_EPILOGUE_INL_H_
#undef CALIPROX_KERNELS_KNOB_EPILOGUE_INL_H_
#else
#define CALIPROX_KERNELS_KNOB_EPILOGUE_INL_H_
#endif

#include "kernels/knob_direct-inl.h"

HWY_BEFORE_NAMESPACE();
namespace caliprox::kernels::compact::HWY_NAMESPACE {

// ---- epilogue ------------------------------------------------------------------

// y = act(y + bias + residual), then half rounding: the last steps of every
// output value, over a run of n values of one channel (NCHW) or of the
// channels [c0, c0 + n) of one position (NHWC: bias is then a pointer).
template <ActivationKind K>
CP_KNOB_INLINE void finish_run(const Plan& p, float* y, const float* bias, bool bias_per_value, float bias_value,
                               const float* res, int64_t n) {
  if (bias_per_value) {
    for (int64_t i = 0; i < n; ++i) y[i] += bias[i];
  } else if (bias_value != 0.f) {
    for (int64_t i = 0; i < n; ++i) y[i] += bias_value;
  }
  if (res != nullptr) {
    if (p.half) {
      add_half_rounded(y, res, n);
    } else {
      for (int64_t i = 0; i < n; ++i) y[i] += res[i];
    }
  }
  if constexpr (K != ActivationKind::none) {
    const float a = p.act.alpha, b = p.act.beta;
    for (int64_t i = 0; i < n; ++i) y[i] = simd::activate<K>(y[i], a, b);
  }
  if (p.half) round_half(y, y, n);
}

// A skipped output along the perforated axis: the mean of its computed
// neighbours (conv + bias), or a copy of the one that exists at an edge
// (rate >= 2: direct neighbours are computed). a / b: the neighbours' conv
// values (b null at an edge); bias per value (NHWC, non-null) or one value.
CP_KNOB_INLINE void interpolated(float* d, const float* a, const float* b, const float* bias, float bias_value,
                                 int64_t n) {
  if (b == nullptr) {
    if (bias != nullptr) {
      for (int64_t i = 0; i < n; ++i) d[i] = a[i] + bias[i];
    } else {
      for (int64_t i = 0; i < n; ++i) d[i] = a[i] + bias_value;
    }
  } else if (bias != nullptr) {
    for (int64_t i = 0; i < n; ++i) d[i] = ((a[i] + bias[i]) + (b[i] + bias[i])) / 2;
  } else {
    for (int64_t i = 0; i < n; ++i) d[i] = ((a[i] + bias_value) + (b[i] + bias_value)) / 2;
  }
}

// One run of n output values formed and finished: a computed one (b null:
// a's conv values plus bias) or a skipped one (the mean of its neighbours a
// and b, or a copy of a at an edge), then residual and activation, as
// interpolated + finish_run do, but in one pass over d without half
// rounding (d is written once while a, b and the residual stream through).
// Under a half knob, the two passes. Not inlined: inlined into the
// epilogue's many paths, GCC kept the loop's pointers on the stack and
// reloaded them every iteration (the pointwise path's epilogue for 8
// images of 128 channels on 7x7: 8.4 us inlined, 7.3 us out of line).
template <ActivationKind K>
[[gnu::noinline]] void formed_run(const Plan& p, float* __restrict d, const float* __restrict a,
                                  const float* __restrict b, const float* __restrict bias,
                                  const float* __restrict res, int64_t n) {
  if (p.half) {
    interpolated(d, a, b, bias, 0.f, n);
    finish_run<K>(p, d, nullptr, false, 0.f, res, n);
    return;
  }
  const float al = p.act.alpha, be = p.act.beta;
  if (b == nullptr && res == nullptr) {
    for (int64_t i = 0; i < n; ++i) d[i] = simd::activate<K>(a[i] + bias[i], al, be);
  } else if (b == nullptr) {
    for (int64_t i = 0; i < n; ++i) d[i] = simd::activate<K>((a[i] + bias[i]) + res[i], al, be);
  } else if (res == nullptr) {
    for (int64_t i = 0; i < n; ++i) d[i] = simd::activate<K>(((a[i] + bias[i]) + (b[i] + bias[i])) / 2, al, be);
  } else {
    for (int64_t i = 0; i < n; ++i)
      d[i] = simd::activate<K>(((a[i] + bias[i]) + (b[i] + bias[i])) / 2 + res[i], al, be);
  }
}

// One pass per output channel plane: every row is formed once (computed
// rows / columns from comp plus bias, skipped ones interpolated from comp)
// and finished (residual, activation, half) while it is in L1.
template <ActivationKind K>
CP_KNOB_INLINE void epilogue_nchw(const Plan& p, const float* comp, int64_t comp_ld, const float* bias,
                                  const float* res, float* y, int64_t c0, int64_t c1) {
  const int64_t plane = p.oh * p.ow;
  for (int64_t o = c0; o < c1; ++o) {
    float* yp = y + o * plane;
    const float* rp = res != nullptr ? res + o * plane : nullptr;
    if (comp == y) {
      finish_run<K>(p, yp, nullptr, false, bias[o], rp, plane);
      continue;
    }
    const float* src = comp + o * comp_ld;
    const float b = bias[o];
    for (int64_t r = 0; r < p.oh; ++r) {
      float* d = yp + r * p.ow;
      if (!p.perforated || p.perf_rows) {
        const int64_t slot = p.row_slot[static_cast<size_t>(r)];
        if (slot >= 0) {
          const float* s = src + slot * p.ow;
          for (int64_t q = 0; q < p.ow; ++q) d[q] = s[q] + b;
        } else {
          int64_t first, second;
          neighbours(p.row_slot, r, first, second);
          interpolated(d, src + first * p.ow, second >= 0 ? src + second * p.ow : nullptr, nullptr, b, p.ow);
        }
      } else {
        const float* s = src + r * p.nq;
        for (int64_t q = 0; q < p.ow; ++q) {
          const int64_t slot = p.col_slot[static_cast<size_t>(q)];
          if (slot >= 0) {
            d[q] = s[slot] + b;
          } else {
            int64_t first, second;
            neighbours(p.col_slot, q, first, second);
            interpolated(d + q, s + first, second >= 0 ? s + second : nullptr, nullptr, b, 1);
          }
        }
      }
      finish_run<K>(p, d, nullptr, false, 0.f, rp != nullptr ? rp + r * p.ow : nullptr, p.ow);
    }
  }
}

// One pass over the image: the channels [c0, c1) of each position formed
// once and finished.
template <ActivationKind K>
CP_KNOB_INLINE void epilogue_nhwc(const Plan& p, const float* comp, const float* bias, const float* res, float* y,
                                  int64_t c0, int64_t c1) {
  // Without perforation comp is y itself (the GEMM wrote the output).
  const int64_t len = c1 - c0;
  const float* bias0 = bias + c0;
  const auto at = [&p, comp, c0](int64_t rslot, int64_t qslot) { return comp + (rslot * p.nq + qslot) * p.oc + c0; };
  if (p.tiled && !p.winograd) {
    // The tiled kernel finished every computed position, and under
    // tile_skips the skipped ones too; otherwise the skipped ones remain.
    if (!p.perforated || p.tile_skips) return;
    // One skipped run: from comp's conv + bias when the tiles added the
    // bias (Plan::tile_bias), else from conv values and `bs`.
    const auto form = [&p](float* d, const float* a, const float* b, const float* bs, const float* r, int64_t n) {
#if CP_KNOB_VECTOR
      if constexpr (kVectorActivation<K>) {
        if (p.tile_bias) return formed_skipped<K>(p, d, a, b, r, n);
      }
#endif
      formed_run<K>(p, d, a, b, bs, r, n);
    };
    const int64_t row = p.ow * p.oc;
    if (p.perf_rows) {
      for (const Skipped& k : p.skipped) {
        const float* a = comp + k.first * row;
        const float* b = k.second >= 0 ? comp + k.second * row : nullptr;
        float* d = y + k.at * row;
        const float* rr = res != nullptr ? res + k.at * row : nullptr;
        if (c0 == 0 && c1 == p.oc) {
          // The whole row (OW * OC floats; `bias` repeated along it).
          form(d, a, b, bias, rr, row);
          continue;
        }
        for (int64_t q = 0; q < p.ow; ++q) {
          const int64_t o = q * p.oc + c0;
          form(d + o, a + o, b != nullptr ? b + o : nullptr, bias0, rr != nullptr ? rr + o : nullptr, len);
        }
      }
      return;
    }
    for (int64_t r = 0; r < p.oh; ++r) {
      const float* cr = comp + r * p.nq * p.oc + c0;
      float* d = y + r * row + c0;
      const float* rr = res != nullptr ? res + r * row + c0 : nullptr;
      for (const Skipped& k : p.skipped) {
        const int64_t o = k.at * p.oc;
        form(d + o, cr + k.first * p.oc, k.second >= 0 ? cr + k.second * p.oc : nullptr, bias0,
             rr != nullptr ? rr + o : nullptr, len);
      }
    }
    return;
  }
  if (c0 == 0 && c1 == p.oc) {
    // Whole output rows (OW * OC contiguous floats) at a time; `bias` then
    // holds the bias repeated for every position of a row.
    const int64_t row = p.ow * p.oc;
    for (int64_t r = 0; r < p.oh; ++r) {
      float* d = y + r * row;
      const float* rr = res != nullptr ? res + r * row : nullptr;
      if (!p.perforated) {
        finish_run<K>(p, d, bias, true, 0.f, rr, row);
        continue;
      }
      if (p.perf_rows) {
        const int64_t slot = p.row_slot[static_cast<size_t>(r)];
        int64_t first = slot, second = -1;
        if (slot < 0) neighbours(p.row_slot, r, first, second);
        formed_run<K>(p, d, comp + first * row, second >= 0 ? comp + second * row : nullptr, bias, rr, row);
        continue;
      }
      for (int64_t q = 0; q < p.ow; ++q) {
        const int64_t slot = p.col_slot[static_cast<size_t>(q)];
        int64_t first = slot, second = -1;
        if (slot < 0) neighbours(p.col_slot, q, first, second);
        formed_run<K>(p, d + q * p.oc, at(r, first), second >= 0 ? at(r, second) : nullptr, bias,
                      rr != nullptr ? rr + q * p.oc : nullptr, p.oc);
      }
    }
    return;
  }
  for (int64_t r = 0; r < p.oh; ++r) {
    const int64_t rslot = p.perf_rows ? p.row_slot[static_cast<size_t>(r)] : r;
    for (int64_t q = 0; q < p.ow; ++q) {
      const int64_t m = r * p.ow + q;
      float* d = y + m * p.oc + c0;
      const float* rm = res != nullptr ? res + m * p.oc + c0 : nullptr;
      if (!p.perforated) {
        finish_run<K>(p, d, bias0, true, 0.f, rm, len);
        continue;
      }
      const int64_t qslot = p.perf_rows ? q : p.col_slot[static_cast<size_t>(q)];
      if (rslot >= 0 && qslot >= 0) {
        formed_run<K>(p, d, at(rslot, qslot), nullptr, bias0, rm, len);
      } else if (p.perf_rows) {
        int64_t first, second;
        neighbours(p.row_slot, r, first, second);
        formed_run<K>(p, d, at(first, q), second >= 0 ? at(second, q) : nullptr, bias0, rm, len);
      } else {
        int64_t first, second;
        neighbours(p.col_slot, q, first, second);
        formed_run<K>(p, d, at(r, first), second >= 0 ? at(r, second) : nullptr, bias0, rm, len);
      }
    }
  }
}

}  // namespace caliprox::kernels::compact::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // CALIPROX_KERNELS_KNOB_EPILOGUE_INL_H_
