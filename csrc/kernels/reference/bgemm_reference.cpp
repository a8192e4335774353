// Reference binary GEMM: one bit at a time, straight from the definition of the dot product
// (bgemm.h), without the popcount identities the optimized variants rely on. The executable spec.
#include "onebit/kernels.h"

namespace onebit {
namespace {

// Bit i of a packed row (bitpack.h: element i lives in word i / 64, bit i % 64).
inline int bit_at(const word_t* row, std::int64_t i) {
  return static_cast<int>((row[i / kWordBits] >> (i % kWordBits)) & 1u);
}

}  // namespace

void bgemm__reference(const BgemmArgs& p) {
  for (std::int64_t m = 0; m < p.m; ++m) {
    const word_t* a = p.a + m * p.lda;
    for (std::int64_t n = 0; n < p.n; ++n) {
      const word_t* b = p.b + n * p.ldb;
      std::int64_t dot = 0;
      for (std::int64_t i = 0; i < p.k; ++i) {
        const int w = 1 - 2 * bit_at(b, i);  // weight: bit 1 <=> -1
        // activation: +-1 (bit 1 <=> -1) in kXor, {0,1} (bit 1 <=> 1) in kAnd
        const int x = p.mode == BgemmMode::kXor ? 1 - 2 * bit_at(a, i) : bit_at(a, i);
        dot += x * w;
      }
      p.c[m * p.ldc + n] = static_cast<std::int32_t>(dot);
    }
  }
}

}  // namespace onebit
