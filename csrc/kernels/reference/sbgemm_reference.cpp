// Reference sbgemm: one bit at a time, C[m][n] = sum_i x_i b_i with x_i = 1 - 2 A_i (sbgemm.h),
// over the words the block-sparse B stores (a word it does not store is 0 by definition, and adds
// nothing). No popcount identity: the executable spec the optimized variants are tested against.
#include "onebit/kernels.h"

namespace onebit {

void sbgemm__reference(const SbgemmArgs& p) {
  const SparseRows& b = p.b;
  for (std::int64_t m = 0; m < p.m; ++m) {
    const word_t* a = p.a + m * p.lda;
    for (std::int64_t q = 0; q < b.blocks(); ++q) {
      for (int i = 0; i < kSparseBlockRows && q * kSparseBlockRows + i < b.n; ++i) {
        std::int64_t dot = 0;
        for (std::int32_t j = b.live_begin[q]; j < b.live_begin[q + 1]; ++j) {
          const word_t aw = a[b.live_word[j]], bw = b.data[static_cast<std::int64_t>(j) * kSparseBlockRows + i];
          for (int bit = 0; bit < kWordBits; ++bit) {
            const int x = 1 - 2 * static_cast<int>((aw >> bit) & 1u);
            dot += x * static_cast<int>((bw >> bit) & 1u);
          }
        }
        p.c[m * p.ldc + q * kSparseBlockRows + i] = static_cast<std::int32_t>(dot);
      }
    }
  }
}

}  // namespace onebit
