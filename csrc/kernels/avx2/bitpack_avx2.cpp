// AVX2 bit-packing. Compiled with -mavx2 -mfma -mbmi2 -mpopcnt; dispatched only when the CPU has them.
//
// One 64-bit word = 8 groups of 8 floats. For each group, _mm256_cmp_ps gives an all-ones lane
// where the bit is set and _mm256_movemask_ps gathers the 8 lane sign bits, lane j -> bit j, so
// group g lands at bits 8g..8g+7 of the word: exactly element c -> bit c % 64.
// The last, partial word is packed from a zero-filled copy: x = t = 0 compares false in both
// modes, so the padding bits come out 0 as the convention demands.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "onebit/kernels.h"

namespace onebit {
namespace {

template <int kPredicate>
word_t pack_full_word(const float* x, const float* t) {
  word_t w = 0;
  for (int g = 0; g < 8; ++g) {
    const __m256 v = _mm256_loadu_ps(x + 8 * g);
    const __m256 th = t ? _mm256_loadu_ps(t + 8 * g) : _mm256_setzero_ps();
    const int bits = _mm256_movemask_ps(_mm256_cmp_ps(v, th, kPredicate));
    w |= static_cast<word_t>(static_cast<unsigned>(bits)) << (8 * g);
  }
  return w;
}

// One segment of `channels` floats (a row, or one group of a row) into words_for(channels) words.
template <int kPredicate>
void pack_segment(const float* x, const float* t, std::int64_t channels, word_t* out) {
  const std::int64_t full = channels / kWordBits;
  const int tail = static_cast<int>(channels - full * kWordBits);
  for (std::int64_t w = 0; w < full; ++w) {
    out[w] = pack_full_word<kPredicate>(x + w * kWordBits, t ? t + w * kWordBits : nullptr);
  }
  if (tail) {
    // The last word: whole groups of 8 floats, then a masked load of the rest (masked-off lanes read
    // as 0 for both x and the threshold, so their bits are 0 for either predicate, as padding must be).
    const float* xt = x + full * kWordBits;
    const float* tt = t ? t + full * kWordBits : nullptr;
    word_t w = 0;
    int g = 0;
    for (; 8 * g + 8 <= tail; ++g) {
      const __m256 v = _mm256_loadu_ps(xt + 8 * g);
      const __m256 th = tt ? _mm256_loadu_ps(tt + 8 * g) : _mm256_setzero_ps();
      w |= static_cast<word_t>(static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(v, th, kPredicate)))) << (8 * g);
    }
    if (const int rest = tail - 8 * g) {
      const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
      const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(rest), lane);
      const __m256 v = _mm256_maskload_ps(xt + 8 * g, mask);
      const __m256 th = tt ? _mm256_maskload_ps(tt + 8 * g, mask) : _mm256_setzero_ps();
      w |= static_cast<word_t>(static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(v, th, kPredicate)))) << (8 * g);
    }
    out[full] = w;
  }
}

template <int kPredicate>
void pack_rows(const BitpackArgs& a) {
  const std::int64_t cg = a.channels / a.groups;  // groups start at word boundaries (bitpack.h)
  const std::int64_t wg = words_for(cg);
  for (std::int64_t r = 0; r < a.rows; ++r) {
    for (std::int64_t g = 0; g < a.groups; ++g) {
      pack_segment<kPredicate>(a.x + r * a.channels + g * cg, a.thresholds ? a.thresholds + g * cg : nullptr,
                               cg, a.out + (r * a.groups + g) * wg);
    }
  }
}

}  // namespace

void bitpack__avx2(const BitpackArgs& a) {
  if (a.mode == PackMode::kSign) {
    pack_rows<_CMP_LT_OQ>(a);
  } else {
    pack_rows<_CMP_GT_OQ>(a);
  }
}

}  // namespace onebit
