// Word loads, a 4x4 word transpose and the nibble popcount shared by the AVX2 bgemm units
// (bgemm_avx2.cpp, bgemm_avx2_ntab.cpp, sbgemm_avx2.cpp). Include only from AVX2 translation units (compiled with -mavx2). The
// functions have internal linkage (an unnamed namespace): each unit gets its own copy, and no weak
// symbol that a unit without AVX2 could end up calling (cmake/check_isa_symbols.cmake).
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "onebit/bitpack.h"
#include "onebit/scratch.h"

namespace onebit {
namespace {  // NOLINT(build/namespaces): internal linkage on purpose, see above

constexpr int kWordLanes = 4;  // 64-bit words per ymm

// `valid` (1..4) words from p; vpmaskmovq reads nothing from masked-off lanes and zeroes them.
inline __m256i load_words(const word_t* p, std::int64_t valid) {
  if (valid >= kWordLanes) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i mask = _mm256_cmpgt_epi64(_mm256_set1_epi64x(valid), _mm256_setr_epi64x(0, 1, 2, 3));
  return _mm256_maskload_epi64(reinterpret_cast<const long long*>(p), mask);
}

// 4x4 transpose of 64-bit elements: afterwards r[j] lane l = (before) r[l] lane j.
inline void transpose4(__m256i r[kWordLanes]) {
  const __m256i t0 = _mm256_unpacklo_epi64(r[0], r[1]);  // r0w0 r1w0 r0w2 r1w2
  const __m256i t1 = _mm256_unpackhi_epi64(r[0], r[1]);  // r0w1 r1w1 r0w3 r1w3
  const __m256i t2 = _mm256_unpacklo_epi64(r[2], r[3]);
  const __m256i t3 = _mm256_unpackhi_epi64(r[2], r[3]);
  r[0] = _mm256_permute2x128_si256(t0, t2, 0x20);
  r[1] = _mm256_permute2x128_si256(t1, t3, 0x20);
  r[2] = _mm256_permute2x128_si256(t0, t2, 0x31);
  r[3] = _mm256_permute2x128_si256(t1, t3, 0x31);
}

// The combine of each bgemm mode (bgemm.h), on whole vectors.
struct Xor {
  static __m256i apply(__m256i a, __m256i b) { return _mm256_xor_si256(a, b); }
};
struct And {
  static __m256i apply(__m256i a, __m256i b) { return _mm256_and_si256(a, b); }
};

// Nibble popcount: vpshufb looks each byte's low 4 bits up in a 16-entry table (per 128-bit lane), so
// popcount(byte) = table[byte & 0x0F] + table[byte >> 4]. A bitwise op commutes with the split
// ((x op y) & 0x0F = (x & 0x0F) op (y & 0x0F)), so operands may be split once and combined per plane.
inline __m256i popcount_table() {
  return _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,   // popcount
                          0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);  // of 0..15
}

struct Nibbles {
  __m256i lo, hi;
};

inline Nibbles split(__m256i v) {
  // vpsrlw shifts 16-bit lanes: the mask drops the bits that came in from the byte above.
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  return {_mm256_and_si256(v, low4), _mm256_and_si256(_mm256_srli_epi16(v, 4), low4)};
}

// kAnd's row term (bgemm.h): popcount of each of the m rows of A (kw words, stride lda), in the
// row-term scratch slot of this thread.
inline const std::int64_t* row_popcounts(const word_t* a, std::int64_t m, std::int64_t lda, std::int64_t kw) {
  auto* pop = static_cast<std::int64_t*>(scratch(ScratchSlot::kRowTerms, sizeof(std::int64_t) * m));
  for (std::int64_t r = 0; r < m; ++r) {
    std::int64_t s = 0;
    for (std::int64_t w = 0; w < kw; ++w) s += static_cast<std::int64_t>(_mm_popcnt_u64(a[r * lda + w]));
    pop[r] = s;
  }
  return pop;
}

}  // namespace
}  // namespace onebit
