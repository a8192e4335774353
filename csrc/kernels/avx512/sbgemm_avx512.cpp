// AVX-512 VPOPCNTDQ sbgemm (sbgemm.h). Compiled with the AVX-512 flags; dispatched only when the CPU
// has them.
//
// A block of kSparseBlockRows = 8 rows of B is one zmm per live word: its 8 lanes are the block's 8
// rows at that word (the block-sparse layout stores them so, data[8 j .. 8 j + 8)). So the block is
// used as it is stored, with no repacking: a step of a tile takes live word j of the block, loads it
// once, and for each of kMr rows of A broadcasts A's word live_word[j] and does one (vpandq,
// vpopcntq, vpaddq) triple into that row's accumulator, whose lane l is then popcount(A_m AND B_l)
// over the live words so far. 64-bit lanes never overflow (pop <= K), so no flushes. At the end
// C = popcount(B_l) - 2 pop (sbgemm.h), narrowed to int32 (vpmovqd) and stored for the block's
// columns below n.
//
// kMr = 8 rows: 8 accumulators, a B vector and the broadcasts, well inside the 32 zmm registers;
// per step 1 + 8 loads and 8 triples, as the dense 5x32__avx512_nvec's 5 x 4 tile does 20 triples for
// 9 loads. Fewer rows at the end of A: the same tile with fewer rows. Not measured on hardware yet
// (tested bit for bit under SIMDe's emulation, scripts/test_avx512_emulated.sh).
#include <immintrin.h>

#include <algorithm>

#include "onebit/kernels.h"

namespace onebit {
namespace {

constexpr int kMr = 8;

template <int kRows>
void tile(const SbgemmArgs& p, std::int64_t m0, std::int64_t q) {
  const SparseRows& b = p.b;
  const word_t* a[kRows];
#pragma GCC unroll 8
  for (int i = 0; i < kRows; ++i) a[i] = p.a + (m0 + i) * p.lda;
  __m512i pop[kRows];
#pragma GCC unroll 8
  for (int i = 0; i < kRows; ++i) pop[i] = _mm512_setzero_si512();
  const std::int32_t j_end = b.live_begin[q + 1];
  for (std::int32_t j = b.live_begin[q]; j < j_end; ++j) {
    const __m512i bv = _mm512_loadu_si512(b.data + static_cast<std::int64_t>(j) * kSparseBlockRows);
    const std::int64_t w = b.live_word[j];
#pragma GCC unroll 8
    for (int i = 0; i < kRows; ++i) {
      const __m512i x = _mm512_set1_epi64(static_cast<long long>(a[i][w]));
      pop[i] = _mm512_add_epi64(pop[i], _mm512_popcnt_epi64(_mm512_and_si512(x, bv)));
    }
  }
  const std::int64_t cols = std::min<std::int64_t>(kSparseBlockRows, b.n - q * kSparseBlockRows);
  const __m256i valid = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(cols)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  const __m256i row_pop = _mm256_maskload_epi32(b.row_pop + q * kSparseBlockRows, valid);
#pragma GCC unroll 8
  for (int i = 0; i < kRows; ++i) {
    const __m256i p32 = _mm512_cvtepi64_epi32(pop[i]);
    const __m256i c = _mm256_sub_epi32(row_pop, _mm256_add_epi32(p32, p32));
    _mm256_maskstore_epi32(p.c + (m0 + i) * p.ldc + q * kSparseBlockRows, valid, c);
  }
}

}  // namespace

void sbgemm__8x8__avx512_nvec(const SbgemmArgs& p) {
  for (std::int64_t q = 0; q < p.b.blocks(); ++q) {
    std::int64_t m0 = 0;
    for (; m0 + kMr <= p.m; m0 += kMr) tile<kMr>(p, m0, q);
    switch (p.m - m0) {
      case 7: tile<7>(p, m0, q); break;
      case 6: tile<6>(p, m0, q); break;
      case 5: tile<5>(p, m0, q); break;
      case 4: tile<4>(p, m0, q); break;
      case 3: tile<3>(p, m0, q); break;
      case 2: tile<2>(p, m0, q); break;
      case 1: tile<1>(p, m0, q); break;
      default: break;
    }
  }
}

}  // namespace onebit
