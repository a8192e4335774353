// AVX-512 bit-packing. Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vpopcntdq;
// dispatched only when the CPU has them.
//
// One 64-bit word = 4 groups of 16 floats. _mm512_mask_cmp_ps_mask returns a 16-bit mask with
// lane j -> bit j, so group g lands at bits 16g..16g+15: element c -> bit c % 64.
// The last, partial word uses a lane mask: masked-off lanes are neither loaded nor compared, so
// their bits are 0 (the padding convention) and nothing past the row end is read.
#include <immintrin.h>

#include <algorithm>

#include "onebit/kernels.h"

namespace onebit {
namespace {

inline __mmask16 lane_mask(int valid) {
  // valid in [0, 16]: the low `valid` lanes.
  return valid >= 16 ? static_cast<__mmask16>(0xFFFF)
                     : static_cast<__mmask16>((1u << std::max(valid, 0)) - 1u);
}

// A full word: 4 unmasked 16-lane compares.
template <int kPredicate>
inline word_t pack_full_word(const float* x, const float* t) {
  word_t w = 0;
  for (int g = 0; g < 4; ++g) {
    const __m512 v = _mm512_loadu_ps(x + 16 * g);
    const __m512 th = t ? _mm512_loadu_ps(t + 16 * g) : _mm512_setzero_ps();
    w |= static_cast<word_t>(_mm512_cmp_ps_mask(v, th, kPredicate)) << (16 * g);
  }
  return w;
}

// The last, partial word (n < 64 elements): lane-masked loads and compares.
template <int kPredicate>
word_t pack_tail_word(const float* x, const float* t, int n) {
  word_t w = 0;
  for (int g = 0; g < 4 && n - 16 * g > 0; ++g) {
    const __mmask16 m = lane_mask(n - 16 * g);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + 16 * g);
    const __m512 th = t ? _mm512_maskz_loadu_ps(m, t + 16 * g) : _mm512_setzero_ps();
    w |= static_cast<word_t>(_mm512_mask_cmp_ps_mask(m, v, th, kPredicate)) << (16 * g);
  }
  return w;
}

// One segment of `channels` floats (a row, or one group of a row) into words_for(channels) words.
template <int kPredicate>
void pack_segment(const float* x, const float* t, std::int64_t channels, word_t* out) {
  const std::int64_t full = channels / kWordBits;
  const int tail = static_cast<int>(channels - full * kWordBits);
  for (std::int64_t w = 0; w < full; ++w) {
    const std::int64_t c0 = w * kWordBits;
    out[w] = pack_full_word<kPredicate>(x + c0, t ? t + c0 : nullptr);
  }
  if (tail) {
    const std::int64_t c0 = full * kWordBits;
    out[full] = pack_tail_word<kPredicate>(x + c0, t ? t + c0 : nullptr, tail);
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

void bitpack__avx512(const BitpackArgs& a) {
  if (a.mode == PackMode::kSign) {
    pack_rows<_CMP_LT_OQ>(a);
  } else {
    pack_rows<_CMP_GT_OQ>(a);
  }
}

}  // namespace onebit
