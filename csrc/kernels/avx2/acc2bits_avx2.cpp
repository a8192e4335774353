// AVX2 int32 -> bits output transform. Compiled with the AVX2 flags; dispatched only when the CPU
// has them.
//
// 8 channels per compare: vpcmpgtd(thr', acc') sets all-ones lanes where acc' < thr', and
// vmovmskps gathers the 8 lane sign bits, lane j -> bit j, so group q of a word lands at bits
// 8q..8q+7. The flip flag is folded in: bit = (acc ^ m) < (thr ^ m) (output_transform.h).
// Channels past the last full group of 8 go one at a time (bits past n stay 0: the padding).
#include <immintrin.h>

#include <algorithm>

#include "onebit/kernels.h"

namespace onebit {
namespace {

constexpr int kLanes = 8;  // int32 per ymm

inline __m256i load8(const std::int32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// Up to 64 channels into one word; kN = 64 fixes n at compile time (a full word), 0 leaves it to n.
template <int kN>
inline word_t pack_word(const std::int32_t* acc, const std::int32_t* mask, const std::int32_t* thr, int n_runtime) {
  const int n = kN ? kN : n_runtime;
  word_t w = 0;
  int j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    const __m256i v = _mm256_xor_si256(load8(acc + j), load8(mask + j));
    const __m256i lt = _mm256_cmpgt_epi32(load8(thr + j), v);
    const unsigned bits = static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(lt)));
    w |= static_cast<word_t>(bits) << j;
  }
  for (; j < n; ++j) w |= static_cast<word_t>((acc[j] ^ mask[j]) < thr[j]) << j;
  return w;
}

}  // namespace

void acc2bits__avx2(const Acc2BitsArgs& a) {
  const Acc2BitsTerms t = acc2bits_terms(a);
  const std::int64_t cg = a.channels / a.groups, wg = words_for(cg);
  for (std::int64_t r = 0; r < a.rows; ++r) {
    const std::int32_t* acc = a.acc + r * a.ld_acc;
    word_t* out = a.out + r * a.groups * wg;
    for (std::int64_t g = 0; g < a.groups; ++g) {
      for (std::int64_t w = 0; w < wg; ++w) {
        const std::int64_t c = g * cg + w * kWordBits;
        const int n = static_cast<int>(std::min<std::int64_t>(kWordBits, cg - w * kWordBits));
        // Full words take the constant-bound instantiation, which the compiler unrolls.
        out[g * wg + w] = n == kWordBits ? pack_word<kWordBits>(acc + c, t.mask + c, t.threshold + c, n)
                                         : pack_word<0>(acc + c, t.mask + c, t.threshold + c, n);
      }
    }
  }
}

}  // namespace onebit
