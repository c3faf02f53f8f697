// OpenCL C (1.2) kernels of the OpenCL backend. Each mirrors a reference
// kernel's arithmetic (backends/reference/), so the differences that remain
// are summation order (CLBlast's GEMM), FMA contraction and the device's
// exp/tanh/sqrt (a few ulp): the tolerances in tests/test_opencl.cc.
// Tensors are NCHW float32 with fewer than 2^31 elements (checked at prepare).
#include "backends/opencl/kernels_cl.h"

namespace caliprox::opencl {

namespace {

constexpr const char* kSource = R"CLC(
// IEEE half rounding, to nearest even, without cl_khr_fp16 (the bits).
float round_half(float f) {
  if (isnan(f) || isinf(f)) return f;
  float a = fabs(f);
  if (a < 6.103515625e-05f) return rint(f * 16777216.0f) / 16777216.0f;  // half subnormals: steps of 2^-24
  uint u = as_uint(f);
  u += 0x0FFFu + ((u >> 13) & 1u);
  u &= ~0x1FFFu;
  float r = as_float(u);
  return fabs(r) > 65504.0f ? copysign(INFINITY, f) : r;
}

// act::ActivationKind: none, relu, leaky_relu, clip, sigmoid, hard_sigmoid, hard_swish, tanh.
float activate(float v, int kind, float a, float b) {
  switch (kind) {
    case 1: return v > 0.0f ? v : 0.0f;
    case 2: return v >= 0.0f ? v : a * v;
    case 3: return v < a ? a : (v > b ? b : v);
    case 4: {
      if (v >= 0.0f) return 1.0f / (1.0f + exp(-v));
      float e = exp(v);
      return e / (1.0f + e);
    }
    case 5: return fmax(0.0f, fmin(1.0f, a * v + b));
    case 6: return v * fmax(0.0f, fmin(1.0f, (1.0f / 6.0f) * v + 0.5f));
    case 7: return tanh(v);
    default: return v;
  }
}

// Convolution geometry shared by im2col and conv_direct.
#define CONV_GEOMETRY int c_in, int in_h, int in_w, int stride_h, int stride_w, int pad_h, int pad_w, \
                      int dil_h, int dil_w
// Kept filter taps (channel within the group, row, column) and computed
// output rows / columns (perforation keeps some; the others all).
#define CONV_TAPS __global const int* tap_c, __global const int* tap_kh, __global const int* tap_kw, \
                  __global const int* rows, __global const int* cols, int n_rows, int n_cols

// cols[t][m], m = (sample - n0, computed row, computed column): the input
// element tap t reads at that output position, 0 in the padding.
__kernel void im2col(__global const float* x, __global float* out, CONV_GEOMETRY, CONV_TAPS, int n0,
                     int m_total, int half_round) {
  int t = get_global_id(0), m = get_global_id(1);
  int per = n_rows * n_cols;
  int n = n0 + m / per, r = (m % per) / n_cols, c = m % n_cols;
  int ih = rows[r] * stride_h - pad_h + tap_kh[t] * dil_h;
  int iw = cols[c] * stride_w - pad_w + tap_kw[t] * dil_w;
  float v = 0.0f;
  if (ih >= 0 && ih < in_h && iw >= 0 && iw < in_w) {
    v = x[((n * c_in + tap_c[t]) * in_h + ih) * in_w + iw];
    if (half_round) v = round_half(v);
  }
  out[(size_t)t * m_total + m] = v;
}

// g[oc][m] = sum over kept taps of w[oc][t] * x (grouped convolutions),
// summed in tap order as the reference does.
__kernel void conv_direct(__global const float* x, __global const float* w, __global float* g, CONV_GEOMETRY,
                          CONV_TAPS, int n0, int m_total, int ntaps, int cout_per_group, int cin_per_group,
                          int half_round) {
  int oc = get_global_id(0), m = get_global_id(1);
  int per = n_rows * n_cols;
  int n = n0 + m / per, r = (m % per) / n_cols, c = m % n_cols;
  int ic0 = (oc / cout_per_group) * cin_per_group;
  int oh = rows[r], ow = cols[c];
  __global const float* wr = w + (size_t)oc * ntaps;
  float acc = 0.0f;
  for (int t = 0; t < ntaps; ++t) {
    int ih = oh * stride_h - pad_h + tap_kh[t] * dil_h;
    int iw = ow * stride_w - pad_w + tap_kw[t] * dil_w;
    if (ih < 0 || ih >= in_h || iw < 0 || iw >= in_w) continue;
    float v = x[((n * c_in + ic0 + tap_c[t]) * in_h + ih) * in_w + iw];
    if (half_round) v = round_half(v);
    acc += wr[t] * v;
  }
  g[(size_t)oc * m_total + m] = acc;
}

// y = act(conv + bias [interpolated where perforation skipped] + residual),
// rounded to half under a half knob. index[oh] / index[ow]: position in the
// computed rows / columns, -1 where skipped. perf: 0 none, 1 rows, 2 columns.
__kernel void conv_finish(__global const float* g, __global const float* bias, __global const float* residual,
                          __global float* y, int c_out, int out_h, int out_w, int n0, int m_total,
                          __global const int* row_index, __global const int* col_index, int n_rows, int n_cols,
                          int perf, int has_residual, int act_kind, float act_a, float act_b, int half_round) {
  int i = get_global_id(0);
  int ow = i % out_w, oh = (i / out_w) % out_h, oc = (i / (out_w * out_h)) % c_out, nl = i / (out_w * out_h * c_out);
  __global const float* gp = g + (size_t)oc * m_total + nl * n_rows * n_cols;
  float b = bias[oc];
  int ri = row_index[oh], ci = col_index[ow];
  float v;
  if (ri >= 0 && ci >= 0) {
    v = gp[ri * n_cols + ci] + b;
  } else if (perf == 1) {
    int before = oh > 0 ? row_index[oh - 1] : -1, after = oh + 1 < out_h ? row_index[oh + 1] : -1;
    if (before >= 0 && after >= 0) v = ((gp[before * n_cols + ci] + b) + (gp[after * n_cols + ci] + b)) / 2.0f;
    else v = gp[(before >= 0 ? before : after) * n_cols + ci] + b;
  } else {
    int before = ow > 0 ? col_index[ow - 1] : -1, after = ow + 1 < out_w ? col_index[ow + 1] : -1;
    if (before >= 0 && after >= 0) v = ((gp[ri * n_cols + before] + b) + (gp[ri * n_cols + after] + b)) / 2.0f;
    else v = gp[ri * n_cols + (before >= 0 ? before : after)] + b;
  }
  int yi = (n0 * c_out) * out_h * out_w + i;
  if (has_residual) {
    float r = residual[yi];
    v += half_round ? round_half(r) : r;
  }
  v = activate(v, act_kind, act_a, act_b);
  y[yi] = half_round ? round_half(v) : v;
}

__kernel void unary(__global const float* x, __global float* y, int kind, float a, float b) {
  int i = get_global_id(0);
  y[i] = activate(x[i], kind, a, b);
}

// Broadcasting binary op: meta = out dims, a strides, b strides (0 where broadcast).
__kernel void binary(__global const float* a, __global const float* b, __global float* y, __global const int* meta,
                     int rank, int op) {
  int i = get_global_id(0);
  int rem = i, ai = 0, bi = 0;
  for (int d = rank - 1; d >= 0; --d) {
    int idx = rem % meta[d];
    rem /= meta[d];
    ai += idx * meta[rank + d];
    bi += idx * meta[2 * rank + d];
  }
  float u = a[ai], v = b[bi];
  float r;
  switch (op) {
    case 0: r = u + v; break;
    case 1: r = u - v; break;
    case 2: r = u * v; break;
    case 3: r = u / v; break;
    case 4: r = isnan(u) || isnan(v) ? NAN : fmax(u, v); break;
    default: r = isnan(u) || isnan(v) ? NAN : fmin(u, v); break;
  }
  y[i] = r;
}

// 2-D max / average pooling over one output element (reference nn_pool.cc).
__kernel void pool2d(__global const float* x, __global float* y, int in_h, int in_w, int out_h, int out_w, int k_h,
                     int k_w, int s_h, int s_w, int p_h, int p_w, int d_h, int d_w, int pe_h, int pe_w, int is_max,
                     int include_pad) {
  int i = get_global_id(0);
  int ow = i % out_w, oh = (i / out_w) % out_h, p = i / (out_w * out_h);
  __global const float* xp = x + (size_t)p * in_h * in_w;
  int h0 = oh * s_h - p_h, w0 = ow * s_w - p_w;
  float acc = is_max ? -INFINITY : 0.0f;
  int count = 0, count_h = 0, count_w = 0;
  for (int kh = 0; kh < k_h; ++kh) {
    int ih = h0 + kh * d_h;
    if (ih >= -p_h && ih < in_h + pe_h) ++count_h;
    if (ih < 0 || ih >= in_h) continue;
    for (int kw = 0; kw < k_w; ++kw) {
      int iw = w0 + kw * d_w;
      if (iw < 0 || iw >= in_w) continue;
      float v = xp[ih * in_w + iw];
      acc = is_max ? (v > acc || isnan(v) ? v : acc) : acc + v;
      ++count;
    }
  }
  for (int kw = 0; kw < k_w; ++kw) {
    int iw = w0 + kw * d_w;
    if (iw >= -p_w && iw < in_w + pe_w) ++count_w;
  }
  if (!is_max) {
    int n = include_pad ? count_h * count_w : count;
    acc = n > 0 ? acc / (float)n : 0.0f;
  }
  y[i] = acc;
}

// One work item per (sample, channel) plane.
__kernel void global_pool(__global const float* x, __global float* y, int plane, int is_max) {
  int p = get_global_id(0);
  __global const float* xp = x + (size_t)p * plane;
  float acc = is_max ? -INFINITY : 0.0f;
  for (int j = 0; j < plane; ++j) acc = is_max ? fmax(acc, xp[j]) : acc + xp[j];
  y[p] = is_max ? acc : acc / (float)plane;
}

// Inference BatchNormalization: y = (x - mean) * factor + shift per channel.
__kernel void batchnorm(__global const float* x, __global float* y, __global const float* mean,
                        __global const float* factor, __global const float* shift, int channels, int plane) {
  int i = get_global_id(0);
  int c = (i / plane) % channels;
  y[i] = (x[i] - mean[c]) * factor[c] + shift[c];
}

// Softmax along an axis: one work item per (outer, inner) line.
__kernel void softmax(__global const float* x, __global float* y, int axis_len, int inner) {
  int line = get_global_id(0);
  int o = line / inner, j = line % inner;
  size_t base = (size_t)o * axis_len * inner + j;
  float m = -INFINITY;
  for (int k = 0; k < axis_len; ++k) m = fmax(m, x[base + (size_t)k * inner]);
  float sum = 0.0f;
  for (int k = 0; k < axis_len; ++k) sum += exp(x[base + (size_t)k * inner] - m);
  for (int k = 0; k < axis_len; ++k) y[base + (size_t)k * inner] = exp(x[base + (size_t)k * inner] - m) / sum;
}

// Resize of the last two axes of [planes][in_h][in_w]: per output row and
// column up to 4 taps (index, weight; weight 0 pads), as the reference reads
// them (tensor_ops::resize_axis_taps), summed row tap by column tap.
__kernel void resize2d(__global const float* x, __global float* y, int in_h, int in_w, int out_h, int out_w,
                       __global const int* row_idx, __global const float* row_w, __global const int* col_idx,
                       __global const float* col_w) {
  int i = get_global_id(0);
  int ow = i % out_w, oh = (i / out_w) % out_h, p = i / (out_w * out_h);
  __global const float* xp = x + (size_t)p * in_h * in_w;
  float acc = 0.0f;
  for (int a = 0; a < 4; ++a) {
    float wa = row_w[oh * 4 + a];
    if (wa == 0.0f) continue;
    float row = 0.0f;
    for (int b = 0; b < 4; ++b) {
      float wb = col_w[ow * 4 + b];
      if (wb != 0.0f) row += wb * xp[row_idx[oh * 4 + a] * in_w + col_idx[ow * 4 + b]];
    }
    acc += wa * row;
  }
  y[i] = acc;
}

// Concat: src [outer][inner_src] into dst [outer][inner_dst] at offset.
__kernel void concat_part(__global const float* src, __global float* dst, int inner_src, int inner_dst, int offset) {
  int i = get_global_id(0);
  int o = i / inner_src, j = i % inner_src;
  dst[(size_t)o * inner_dst + offset + j] = src[i];
}
)CLC";

}  // namespace

std::string kernel_source() { return kSource; }

}  // namespace caliprox::opencl
