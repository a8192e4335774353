// Block-sparse binary GEMM ("sbgemm") for SBNN's sparse weights: +-1 activations x {0,1} weights.
//
//   A: m rows of kw words (activations, bit 1 <=> -1, as in bgemm.h).
//   B: n rows of kw words (a mask: bit 1 <=> weight 1, bit 0 <=> weight 0), stored block-sparse
//      (SparseRows below): only the words that are nonzero in some row of a block are kept.
//   C[m][n] = sum_i x_i b_i  with x_i = 1 - 2 A_i, b_i = B_i.
//
// Derivation: x_i b_i = B_i - 2 (A_i AND B_i), so
//     C[m][n] = popcount(B_n) - 2 popcount(A_m AND B_n).
// popcount(B_n) is a constant of the weights (SparseRows::row_pop). A word where B_n is 0 adds
// nothing to either popcount, whatever A holds: skipping it is exact. That is the whole sparsity
// win, and it needs AND (in kXor a zero weight word still meets the activations: a XOR 0 = a).
// Padding bits of B's last word must be 0 (they would enter popcount(B_n)); A's are then free.
//
// Block-sparse layout: rows are grouped in blocks of kSparseBlockRows = 8 consecutive rows (the
// lane width of the AVX-512 panels and two AVX2 panels). For block q, the live words are the word
// indices w where some row of the block has a nonzero word; they are listed in increasing order at
// live_word[live_begin[q] .. live_begin[q + 1]), and live word j of the whole list stores the 8 rows'
// words at data[8 j .. 8 j + 8) (rows past n are 0). A kernel visits, per block, only its live
// words: the work is (live words / kw) of a dense GEMM, which is what structured pruning buys
// (methods.md 4.6: all-zero parts of a kernel are skipped). Unstructured masks leave almost every
// word live and cost what the dense kernel costs.
//
// Range: |C| <= kw * 64 < 2^31 for every kw the engine admits (the caller checks K).
#pragma once

#include <cstdint>

#include "onebit/bitpack.h"

namespace onebit {

inline constexpr int kSparseBlockRows = 8;

struct SparseRows {
  std::int64_t n = 0, kw = 0;                 // rows, words per row
  const std::int32_t* live_begin = nullptr;  // blocks + 1 offsets into live_word
  const std::int32_t* live_word = nullptr;   // word index of each live block-word
  const word_t* data = nullptr;              // 8 words per live block-word
  const std::int32_t* row_pop = nullptr;     // popcount(B_n) over the whole row, n entries
  std::int64_t blocks() const { return (n + kSparseBlockRows - 1) / kSparseBlockRows; }
};

struct SbgemmArgs {
  const word_t* a;
  std::int64_t m, lda;  // rows of A and their stride in words (lda >= b.kw)
  SparseRows b;
  std::int32_t* c;
  std::int64_t ldc;  // c[r * ldc + j] for row r, column j < b.n; every element is written
};

}  // namespace onebit
