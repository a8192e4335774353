// AVX2 sbgemm (sbgemm.h): the nibble-table popcount and the lanes-along-N tile of
// bgemm_3x8__avx2_nvec (bgemm_avx2.cpp explains both), run over each block's live words only.
// Compiled with -mavx2 -mfma -mbmi2 -mpopcnt; dispatched only when the CPU has them.
//
// A block of 8 rows of B is one 3x8 tile's width: its live word j is 8 words (rows 0..7), i.e. two
// ymm panels of 4 lanes. They are split into low / high nibble planes once per call (scratch), so a
// step of the tile is: broadcast the A word at index live_word[j] for each of 3 rows, split it, and
// 3 x 2 x (2 ANDs, 2 vpshufb, 2 byte adds) — the dense kernel's step; the sparse kernel only takes
// fewer steps. Byte counters are flushed every 31 steps (8 per step, 255 max).
#include <immintrin.h>

#include <algorithm>

#include "avx2_words.h"
#include "onebit/kernels.h"
#include "onebit/scratch.h"

namespace onebit {
namespace {

constexpr int kLanes = 4;
constexpr int kMr = 3;
constexpr int kFlushSteps = 31;

// Plane layout per live word j: [lo rows 0-3][hi rows 0-3][lo rows 4-7][hi rows 4-7], 16 words.
void split_planes(const SparseRows& b, word_t* out) {
  const std::int64_t live = b.live_begin[b.blocks()];
  for (std::int64_t j = 0; j < live; ++j) {
    for (int v = 0; v < 2; ++v) {
      const Nibbles w = split(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.data + j * 8 + v * kLanes)));
      word_t* d = out + j * 16 + v * 8;
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d), w.lo);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + kLanes), w.hi);
    }
  }
}

template <int kRows>
void tile(const SbgemmArgs& p, std::int64_t m0, std::int64_t q, const word_t* planes) {
  const __m256i table = popcount_table();
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const SparseRows& b = p.b;
  const word_t* a[kRows];
#pragma GCC unroll 4
  for (int i = 0; i < kRows; ++i) a[i] = p.a + (m0 + i) * p.lda;
  const std::int32_t* live_word = b.live_word;
  __m256i total[kRows][2];
#pragma GCC unroll 4
  for (int i = 0; i < kRows; ++i) total[i][0] = total[i][1] = _mm256_setzero_si256();
  const std::int32_t j_end = b.live_begin[q + 1];
  for (std::int32_t j0 = b.live_begin[q]; j0 < j_end; j0 += kFlushSteps) {
    const std::int32_t j1 = std::min(j_end, j0 + kFlushSteps);
    __m256i bytes[kRows][2];
#pragma GCC unroll 4
    for (int i = 0; i < kRows; ++i) bytes[i][0] = bytes[i][1] = _mm256_setzero_si256();
    for (std::int32_t j = j0; j < j1; ++j) {
      const word_t* bp = planes + static_cast<std::int64_t>(j) * 16;
      const __m256i b0l = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bp));
      const __m256i b0h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bp + 4));
      const __m256i b1l = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bp + 8));
      const __m256i b1h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bp + 12));
      const std::int64_t w = live_word[j];
#pragma GCC unroll 4
      for (int i = 0; i < kRows; ++i) {
        const __m256i x = _mm256_set1_epi64x(static_cast<long long>(a[i][w]));
        const __m256i xl = _mm256_and_si256(x, low4);
        const __m256i xh = _mm256_and_si256(_mm256_srli_epi16(x, 4), low4);
        bytes[i][0] = _mm256_add_epi8(bytes[i][0], _mm256_shuffle_epi8(table, _mm256_and_si256(xl, b0l)));
        bytes[i][0] = _mm256_add_epi8(bytes[i][0], _mm256_shuffle_epi8(table, _mm256_and_si256(xh, b0h)));
        bytes[i][1] = _mm256_add_epi8(bytes[i][1], _mm256_shuffle_epi8(table, _mm256_and_si256(xl, b1l)));
        bytes[i][1] = _mm256_add_epi8(bytes[i][1], _mm256_shuffle_epi8(table, _mm256_and_si256(xh, b1h)));
      }
    }
#pragma GCC unroll 4
    for (int i = 0; i < kRows; ++i) {
      for (int v = 0; v < 2; ++v) total[i][v] = _mm256_add_epi64(total[i][v], _mm256_sad_epu8(bytes[i][v], _mm256_setzero_si256()));
    }
  }
  // C = popcount(B_n) - 2 pop; each pop fits the low 32 bits of its 64-bit lane.
  const __m256i low_halves = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
  const std::int64_t cols = std::min<std::int64_t>(kSparseBlockRows, b.n - q * kSparseBlockRows);
  for (int i = 0; i < kRows; ++i) {
    std::int32_t* c = p.c + (m0 + i) * p.ldc + q * kSparseBlockRows;
    const std::int32_t* rp = b.row_pop + q * kSparseBlockRows;
    for (int v = 0; v < 2; ++v) {
      const __m128i pop = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(total[i][v], low_halves));
      const std::int64_t valid = std::min<std::int64_t>(kLanes, cols - v * kLanes);
      if (valid <= 0) break;
      if (valid == kLanes) {  // vpmaskmov is slow on some CPUs (microcoded stores): full vectors plainly
        const __m128i rpop = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rp + v * kLanes));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(c + v * kLanes), _mm_sub_epi32(rpop, _mm_add_epi32(pop, pop)));
        continue;
      }
      const __m128i mask = _mm_cmpgt_epi32(_mm_set1_epi32(static_cast<int>(valid)), _mm_setr_epi32(0, 1, 2, 3));
      const __m128i rpop = _mm_maskload_epi32(rp + v * kLanes, mask);
      _mm_maskstore_epi32(c + v * kLanes, mask, _mm_sub_epi32(rpop, _mm_add_epi32(pop, pop)));
    }
  }
}

}  // namespace

void sbgemm__3x8__avx2_nvec(const SbgemmArgs& p) {
  const SparseRows& b = p.b;
  const std::int64_t live = b.live_begin[b.blocks()];
  auto* planes = static_cast<word_t*>(scratch(ScratchSlot::kPanels, sizeof(word_t) * (live * 16 + 1)));
  split_planes(b, planes);
  for (std::int64_t q = 0; q < b.blocks(); ++q) {
    std::int64_t m0 = 0;
    for (; m0 + kMr <= p.m; m0 += kMr) tile<kMr>(p, m0, q, planes);
    if (p.m - m0 == 2) tile<2>(p, m0, q, planes);
    if (p.m - m0 == 1) tile<1>(p, m0, q, planes);
  }
}

}  // namespace onebit
