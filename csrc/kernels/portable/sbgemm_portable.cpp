// Portable sbgemm: 4 rows of A x one block of 8 rows of B per tile, scalar popcounts of A AND B
// over the block's live words only (sbgemm.h), then C = popcount(B_n) - 2 pop.
// Each step loads the 4 A words at the live word's index and the block's 8 B words: every loaded
// word feeds 8 (A) or 4 (B) popcounts.
#include <algorithm>

#include "onebit/kernels.h"

namespace onebit {
namespace {

constexpr int kMr = 4;
constexpr int kNr = kSparseBlockRows;

template <int kRows>
void tile(const SbgemmArgs& p, std::int64_t m0, std::int64_t q) {
  const SparseRows& b = p.b;
  const word_t* a[kRows];
  for (int i = 0; i < kRows; ++i) a[i] = p.a + (m0 + i) * p.lda;
  std::int64_t pop[kRows][kNr] = {};
  for (std::int32_t j = b.live_begin[q]; j < b.live_begin[q + 1]; ++j) {
    const word_t* bw = b.data + static_cast<std::int64_t>(j) * kNr;
    const std::int32_t w = b.live_word[j];
    for (int i = 0; i < kRows; ++i) {
      const word_t av = a[i][w];
      for (int c = 0; c < kNr; ++c) pop[i][c] += __builtin_popcountll(av & bw[c]);
    }
  }
  const std::int64_t cols = std::min<std::int64_t>(kNr, b.n - q * kNr);
  for (int i = 0; i < kRows; ++i) {
    std::int32_t* c = p.c + (m0 + i) * p.ldc + q * kNr;
    for (std::int64_t k = 0; k < cols; ++k) c[k] = static_cast<std::int32_t>(b.row_pop[q * kNr + k] - 2 * pop[i][k]);
  }
}

}  // namespace

void sbgemm__4x8__portable(const SbgemmArgs& p) {
  for (std::int64_t q = 0; q < p.b.blocks(); ++q) {
    std::int64_t m0 = 0;
    for (; m0 + kMr <= p.m; m0 += kMr) tile<kMr>(p, m0, q);
    for (; m0 < p.m; ++m0) tile<1>(p, m0, q);
  }
}

}  // namespace onebit
