// AVX-512 int32 -> bits output transform. Compiled with the AVX-512 flags; dispatched only when
// the CPU has them.
//
// 16 channels per compare: vpcmpd with predicate "less than" returns a 16-bit mask, lane j -> bit
// j, so the 4 groups of a word land at bits 16q..16q+15: channel j -> bit j % 64. The flip flag is
// folded into the compare, bit = (acc ^ m) < (thr ^ m) (output_transform.h). A partial last word
// uses lane masks: masked-off lanes are not loaded and compare to 0, the padding convention.
#include <immintrin.h>

#include <algorithm>

#include "onebit/kernels.h"

namespace onebit {
namespace {

constexpr int kLanes = 16;  // int32 per zmm

inline __mmask16 low_lanes(int valid) {  // valid >= 1: the low min(valid, 16) lanes
  return valid >= kLanes ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << valid) - 1u);
}

// Up to 64 channels into one word; kN = 64 fixes n at compile time (a full word), 0 leaves it to n.
template <int kN>
inline word_t pack_word(const std::int32_t* acc, const std::int32_t* mask, const std::int32_t* thr, int n_runtime) {
  const int n = kN ? kN : n_runtime;
  word_t w = 0;
  for (int q = 0; q < kWordBits / kLanes && q * kLanes < n; ++q) {
    const __mmask16 k = low_lanes(n - q * kLanes);
    const __m512i v = _mm512_maskz_loadu_epi32(k, acc + q * kLanes);
    const __m512i m = _mm512_maskz_loadu_epi32(k, mask + q * kLanes);
    const __m512i t = _mm512_maskz_loadu_epi32(k, thr + q * kLanes);
    const __mmask16 bits = _mm512_mask_cmplt_epi32_mask(k, _mm512_xor_si512(v, m), t);
    w |= static_cast<word_t>(bits) << (q * kLanes);
  }
  return w;
}

}  // namespace

void acc2bits__avx512(const Acc2BitsArgs& a) {
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
