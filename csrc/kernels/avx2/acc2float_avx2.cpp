// AVX2 int32 -> float output transform (output_transform.h), 8 channels per step: vcvtdq2ps (round to
// nearest, as static_cast<float>), vmulps, vaddps. Compiled with the AVX2 flags and
// -ffp-contract=off, so GCC never fuses the multiply and the add into an FMA (one rounding instead
// of torch's two). The last channels (< 8) go through a masked load and store.
#include <immintrin.h>

#include "onebit/kernels.h"

namespace onebit {
namespace {

constexpr int kLanes = 8;

inline __m256 transform(__m256i acc, __m256 m, const float* bias, __m256 b) {
  const __m256 y = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), m);
  return bias ? _mm256_add_ps(y, b) : y;
}

}  // namespace

void acc2float__avx2(const Acc2FloatArgs& p) {
  const std::int64_t full = p.channels / kLanes * kLanes;
  const int tail = static_cast<int>(p.channels - full);
  const __m256i tail_mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(tail), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  for (std::int64_t r = 0; r < p.rows; ++r) {
    const std::int32_t* a = p.acc + r * p.ld_acc;
    float* y = p.out + r * p.channels;
    for (std::int64_t c = 0; c < full; c += kLanes) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + c));
      const __m256 b = p.bias ? _mm256_loadu_ps(p.bias + c) : _mm256_setzero_ps();
      _mm256_storeu_ps(y + c, transform(v, _mm256_loadu_ps(p.multiplier + c), p.bias, b));
    }
    if (tail) {
      const __m256i v = _mm256_maskload_epi32(a + full, tail_mask);
      const __m256 m = _mm256_maskload_ps(p.multiplier + full, tail_mask);
      const __m256 b = p.bias ? _mm256_maskload_ps(p.bias + full, tail_mask) : _mm256_setzero_ps();
      _mm256_maskstore_ps(y + full, tail_mask, transform(v, m, p.bias, b));
    }
  }
}

}  // namespace onebit
