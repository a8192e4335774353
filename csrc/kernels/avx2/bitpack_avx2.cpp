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

template <int kPredicate>
void pack_rows(const BitpackArgs& a) {
  const std::int64_t words = words_for(a.channels);
  const std::int64_t full = a.channels / kWordBits;
  const int tail = static_cast<int>(a.channels - full * kWordBits);
  alignas(32) float xbuf[kWordBits];
  alignas(32) float tbuf[kWordBits];
  for (std::int64_t r = 0; r < a.rows; ++r) {
    const float* row = a.x + r * a.channels;
    word_t* out = a.out + r * words;
    for (std::int64_t w = 0; w < full; ++w) {
      out[w] = pack_full_word<kPredicate>(row + w * kWordBits,
                                          a.thresholds ? a.thresholds + w * kWordBits : nullptr);
    }
    if (tail) {
      std::memset(xbuf, 0, sizeof(xbuf));
      std::memset(tbuf, 0, sizeof(tbuf));
      std::memcpy(xbuf, row + full * kWordBits, sizeof(float) * tail);
      if (a.thresholds) std::memcpy(tbuf, a.thresholds + full * kWordBits, sizeof(float) * tail);
      out[full] = pack_full_word<kPredicate>(xbuf, tbuf);
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
