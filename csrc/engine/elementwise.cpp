// Per-channel elementwise float ops of the engine (op.h: EwKind): ew_apply runs one, ew_chain runs a
// chain of them in one pass (a producer's fused epilogue: BN, residual add, RPReLU, ...).
//
// Element (pixel, channel ch) of op k: y = f_k(x[, z]) with parameters a[ch], b[ch], s[ch] (a chain:
// x of op k + 1 = y of op k). Two implementations with the same float operations in the same order:
//  * plain (SSE2): one compiler-vectorized loop per op (ew_loop), a chain op after op;
//  * AVX2 + FMA (a target attribute, taken when the active ISA is AVX2+): per row, 64 channels (8
//    vectors) at a time are loaded once, go through every op of the chain in registers and are stored
//    once. A chain of n ops over a block of rows did n loads and stores of it (and n loop overheads):
//    ReActNet-A's epilogue (BN, add, RPReLU) took 1.85 ms of its 16 ms that way. A single op is a
//    chain of one, so fused (chained) and unfused (op by op) results are the same by construction.
// An FMA instruction and std::fma round once, the same way; this unit is compiled with
// -ffp-contract=off, so x * a + b stays two roundings (affine without fma, as PyTorch computes it).
#include <algorithm>
#include <cmath>

#include "onebit/isa.h"
#include "onebit/kernels.h"  // acc2float

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "op.h"

namespace onebit::engine {
namespace {

// ---- plain ----------------------------------------------------------------------------------------
// `#pragma GCC ivdep`: each element depends on its own inputs only, so in-place calls vectorize too.
#define ONEBIT_EW_LOOP(expr)                                                             \
  for (std::int64_t r = 0; r < rows; ++r) {                                              \
    const float* xr = x + r * ld;                                                        \
    const float* zr = z ? z + r * ld : nullptr;                                          \
    float* yr = y + r * ld;                                                              \
    _Pragma("GCC ivdep") for (std::int64_t ch = 0; ch < n; ++ch) yr[ch] = (expr);        \
    (void)zr;                                                                            \
  }

template <EwKind K>
void ew_loop(const EwParams& p, const float* x, const float* z, float* y, std::int64_t rows, std::int64_t ld,
             std::int64_t n) {
  const float *a = p.a, *b = p.b, *s = p.s;
  const float lo = p.lo, hi = p.hi;
  (void)a, (void)b, (void)s, (void)lo, (void)hi;
  if constexpr (K == kAdd) {
    ONEBIT_EW_LOOP(xr[ch] + zr[ch])
  } else if constexpr (K == kAffine) {
    ONEBIT_EW_LOOP(xr[ch] * a[ch] + b[ch])
  } else if constexpr (K == kAffineFma) {
    ONEBIT_EW_LOOP(std::fma(xr[ch], a[ch], b[ch]))
  } else if constexpr (K == kRelu) {  // NaN -> 0 differs from torch; NaN never reaches a model here
    ONEBIT_EW_LOOP(xr[ch] > 0.0f ? xr[ch] : 0.0f)
  } else if constexpr (K == kHardtanh) {
    ONEBIT_EW_LOOP(std::min(std::max(xr[ch], lo), hi))
  } else if constexpr (K == kPrelu) {
    // Both sides computed, then a select: no load under a branch, so the loop vectorizes. Same values.
    ONEBIT_EW_LOOP(({ const float v = xr[ch], m = a[ch] * v; v > 0.0f ? v : m; }))
  } else {  // rprelu: prelu(x - shift_in) + shift_out
    ONEBIT_EW_LOOP(({ const float t = xr[ch] - b[ch], m = a[ch] * t; (t > 0.0f ? t : m) + s[ch]; }))
  }
}
#undef ONEBIT_EW_LOOP

void ew_plain(const EwParams& p, const float* x, const float* z, float* y, std::int64_t rows, std::int64_t ld,
              std::int64_t n) {
  switch (p.kind) {
    case kAdd: return ew_loop<kAdd>(p, x, z, y, rows, ld, n);
    case kAffine: return ew_loop<kAffine>(p, x, z, y, rows, ld, n);
    case kAffineFma: return ew_loop<kAffineFma>(p, x, z, y, rows, ld, n);
    case kRelu: return ew_loop<kRelu>(p, x, z, y, rows, ld, n);
    case kHardtanh: return ew_loop<kHardtanh>(p, x, z, y, rows, ld, n);
    case kPrelu: return ew_loop<kPrelu>(p, x, z, y, rows, ld, n);
    default: return ew_loop<kRprelu>(p, x, z, y, rows, ld, n);
  }
}

#if defined(__x86_64__) || defined(__i386__)
// ---- AVX2 -----------------------------------------------------------------------------------------
// One element through one op: the expressions of ew_loop (the chain's tail past the last full vector).
[[gnu::target("avx2,fma")]] float scalar_op(const EwParams& p, float x, const float* z, std::int64_t ch) {
  switch (p.kind) {
    case kAdd: return x + *z;
    case kAffine: return x * p.a[ch] + p.b[ch];
    case kAffineFma: return std::fma(x, p.a[ch], p.b[ch]);
    case kRelu: return x > 0.0f ? x : 0.0f;
    case kHardtanh: return std::min(std::max(x, p.lo), p.hi);
    case kPrelu: return x > 0.0f ? x : p.a[ch] * x;
    default: {
      const float t = x - p.b[ch], m = p.a[ch] * t;
      return (t > 0.0f ? t : m) + p.s[ch];
    }
  }
}

// NV vectors (8 channels each, from channel ch; element offset off in the tile) through one op, lane by
// lane the expressions of ew_loop:
//  * relu: x > 0 ? x : 0 is x AND the ordered compare's mask (NaN and -0 give +0, as the expression);
//  * hardtanh: std::max(x, lo) = (x < lo ? lo : x) = max_ps(lo, x) and std::min(v, hi) = (hi < v ? hi :
//    v) = min_ps(hi, v) (max_ps / min_ps return their second operand on NaN and on equal operands);
//  * prelu / rprelu: both sides, then a blend on the ordered compare t > 0 (NaN takes slope * t).
template <int NV>
[[gnu::target("avx2,fma"), gnu::always_inline]] inline void vec_op(const EwParams& p, const float* z, std::int64_t off,
                                                                   std::int64_t ch, __m256* v) {
  const __m256 zero = _mm256_setzero_ps();
  switch (p.kind) {
    case kAdd:
#pragma GCC unroll 8
      for (int i = 0; i < NV; ++i) v[i] = _mm256_add_ps(v[i], _mm256_loadu_ps(z + off + 8 * i));
      return;
    case kAffine:
#pragma GCC unroll 8
      for (int i = 0; i < NV; ++i)
        v[i] = _mm256_add_ps(_mm256_mul_ps(v[i], _mm256_loadu_ps(p.a + ch + 8 * i)), _mm256_loadu_ps(p.b + ch + 8 * i));
      return;
    case kAffineFma:
#pragma GCC unroll 8
      for (int i = 0; i < NV; ++i)
        v[i] = _mm256_fmadd_ps(v[i], _mm256_loadu_ps(p.a + ch + 8 * i), _mm256_loadu_ps(p.b + ch + 8 * i));
      return;
    case kRelu:
#pragma GCC unroll 8
      for (int i = 0; i < NV; ++i) v[i] = _mm256_and_ps(v[i], _mm256_cmp_ps(v[i], zero, _CMP_GT_OQ));
      return;
    case kHardtanh: {
      const __m256 lo = _mm256_set1_ps(p.lo), hi = _mm256_set1_ps(p.hi);
#pragma GCC unroll 8
      for (int i = 0; i < NV; ++i) v[i] = _mm256_min_ps(hi, _mm256_max_ps(lo, v[i]));
      return;
    }
    case kPrelu:
#pragma GCC unroll 8
      for (int i = 0; i < NV; ++i) {
        const __m256 m = _mm256_mul_ps(_mm256_loadu_ps(p.a + ch + 8 * i), v[i]);
        v[i] = _mm256_blendv_ps(m, v[i], _mm256_cmp_ps(v[i], zero, _CMP_GT_OQ));
      }
      return;
    default:
#pragma GCC unroll 8
      for (int i = 0; i < NV; ++i) {
        const __m256 t = _mm256_sub_ps(v[i], _mm256_loadu_ps(p.b + ch + 8 * i));
        const __m256 m = _mm256_mul_ps(_mm256_loadu_ps(p.a + ch + 8 * i), t);
        const __m256 r = _mm256_blendv_ps(m, t, _mm256_cmp_ps(t, zero, _CMP_GT_OQ));
        v[i] = _mm256_add_ps(r, _mm256_loadu_ps(p.s + ch + 8 * i));
      }
      return;
  }
}

// Channels [ch, ch + 8 NV) of one row: loaded once (floats at x, or int32 at acc through
// float(acc) * m + b, the acc2float transform), every op, stored once at y + off (z of an op at z + off).
template <int NV, bool kAcc>
[[gnu::target("avx2,fma"), gnu::always_inline]] inline void chunk(const EwStage* st, int count, const EwSource& src,
                                                                  const float* x, const std::int32_t* acc, float* y,
                                                                  std::int64_t off, std::int64_t ch) {
  __m256 v[NV];
#pragma GCC unroll 8
  for (int i = 0; i < NV; ++i) {
    if constexpr (kAcc) {
      const __m256 a = _mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + 8 * i)));
      v[i] = _mm256_add_ps(_mm256_mul_ps(a, _mm256_loadu_ps(src.m + ch + 8 * i)), _mm256_loadu_ps(src.b + ch + 8 * i));
    } else {
      v[i] = _mm256_loadu_ps(x + 8 * i);
    }
  }
  for (int k = 0; k < count; ++k) vec_op<NV>(st[k].p, st[k].z, off, ch, v);
#pragma GCC unroll 8
  for (int i = 0; i < NV; ++i) _mm256_storeu_ps(y + off + 8 * i, v[i]);
}

template <class T>
T* at(T* p, std::int64_t i) {  // p + i, or nullptr (the source the chain does not read)
  return p ? p + i : p;
}

template <bool kAcc>
[[gnu::target("avx2,fma")]] void chain_avx2(const EwStage* st, int count, const EwSource& src, float* y,
                                            std::int64_t rows, std::int64_t ld, std::int64_t n) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t row = r * ld;
    const float* x = kAcc ? nullptr : src.x + row;
    const std::int32_t* acc = kAcc ? src.acc + r * src.ld_acc : nullptr;
    std::int64_t ch = 0;
    for (; ch + 64 <= n; ch += 64) chunk<8, kAcc>(st, count, src, at(x, ch), at(acc, ch), y, row + ch, ch);
    for (; ch + 8 <= n; ch += 8) chunk<1, kAcc>(st, count, src, at(x, ch), at(acc, ch), y, row + ch, ch);
    for (; ch < n; ++ch) {
      float v = kAcc ? static_cast<float>(acc[ch]) * src.m[ch] + src.b[ch] : x[ch];
      for (int k = 0; k < count; ++k) v = scalar_op(st[k].p, v, st[k].z ? st[k].z + row + ch : nullptr, ch);
      y[row + ch] = v;
    }
  }
}
#endif

}  // namespace

void ew_chain(const EwStage* stages, int count, const EwSource& src, float* y, std::int64_t rows, std::int64_t ld,
              std::int64_t n) {
#if defined(__x86_64__) || defined(__i386__)
  if (active_isa() >= Isa::kAvx2) {
    if (src.acc) return chain_avx2<true>(stages, count, src, y, rows, ld, n);
    return chain_avx2<false>(stages, count, src, y, rows, ld, n);
  }
#endif
  // acc2float's kernel row by row (its output rows are contiguous; y's are ld apart), then op after op.
  for (std::int64_t r = 0; src.acc && r < rows; ++r) {
    acc2float(src.acc + r * src.ld_acc, 1, n, n, src.m, src.b, y + r * ld);
  }
  for (int k = 0; k < count; ++k) ew_plain(stages[k].p, k == 0 && !src.acc ? src.x : y, stages[k].z, y, rows, ld, n);
}

void ew_apply(const EwParams& p, const float* x, const float* z, float* y, std::int64_t rows, std::int64_t ld,
              std::int64_t n) {
  const EwStage one{p, z};
  ew_chain(&one, 1, EwSource{x, nullptr, 0, nullptr, nullptr}, y, rows, ld, n);
}

}  // namespace onebit::engine
