// AVX-512 int32 -> float output transform (output_transform.h), 16 channels per step: vcvtdq2ps,
// vmulps, vaddps (compiled with -ffp-contract=off: never an FMA, see acc2float_avx2.cpp). The last
// channels (< 16) go through a masked load and store; masked-off lanes are not read.
#include <immintrin.h>

#include "onebit/kernels.h"

namespace onebit {
namespace {

constexpr int kLanes = 16;

inline void step(const Acc2FloatArgs& p, const std::int32_t* a, float* y, std::int64_t c, __mmask16 k) {
  const __m512 v = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(k, a + c));
  __m512 out = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, p.multiplier + c));
  if (p.bias) out = _mm512_add_ps(out, _mm512_maskz_loadu_ps(k, p.bias + c));
  _mm512_mask_storeu_ps(y + c, k, out);
}

}  // namespace

void acc2float__avx512(const Acc2FloatArgs& p) {
  const std::int64_t full = p.channels / kLanes * kLanes;
  const __mmask16 tail = static_cast<__mmask16>((1u << (p.channels - full)) - 1u);
  for (std::int64_t r = 0; r < p.rows; ++r) {
    const std::int32_t* a = p.acc + r * p.ld_acc;
    float* y = p.out + r * p.channels;
    for (std::int64_t c = 0; c < full; c += kLanes) step(p, a, y, c, static_cast<__mmask16>(0xFFFF));
    if (tail) step(p, a, y, full, tail);
  }
}

}  // namespace onebit
