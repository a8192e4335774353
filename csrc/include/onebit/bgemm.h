// Binary GEMM ("bgemm"): C = A . B^T over packed bit rows, int32 output.
//
//   A: M rows (activations), B: N rows (weights), each row K logical bits packed into
//   KW = words_for(K) little-endian uint64 words (bitpack.h); padding bits of the last word are 0
//   in both operands. C[m][n] is the dot product of row m of A with row n of B.
//
// Derivation of the two modes (bits A_i, B_i; i = 0..K-1; popcounts over the K logical bits):
//
//   kXor: +-1 x +-1 (BNN, XNOR-Net, Bi-Real, ReActNet, ...).  Bit 1 <=> -1, so a_i = 1 - 2 A_i and
//     w_i = 1 - 2 B_i.  Their product is +1 where the bits agree and -1 where they differ:
//         a_i w_i = 1 - 2 (A_i XOR B_i)
//     Summing over i:
//         C[m][n] = sum_i (1 - 2 (A_i XOR B_i)) = K - 2 popcount(A XOR B).
//     Padding positions have A_i = B_i = 0, so A XOR B is 0 there: popcount over all KW words is
//     the popcount over the K logical bits, and only the true K enters the formula.
//
//   kAnd: {0,1} activations x +-1 weights (Si-BNN).  Activation bit 1 <=> 1, so a_i = A_i; weight
//     bit 1 <=> -1, so w_i = 1 - 2 B_i:
//         C[m][n] = sum_i A_i (1 - 2 B_i) = sum_i A_i - 2 sum_i A_i B_i
//                 = popcount(A) - 2 popcount(A AND B).
//     popcount(A) depends on the row of A only (shared by every n); padding positions have A_i = 0
//     and add nothing to either popcount, so K does not appear at all.
//
// Every optimized variant ends with the same output transform, C = row_term - 2 pop, where
//   kXor: row_term = K,            pop = popcount(A XOR B)
//   kAnd: row_term = popcount(A),  pop = popcount(A AND B).
// (No shared inline helper here on purpose: each ISA translation unit has its own flags, and an
// inline function emitted by an AVX-512 unit could be the one the linker keeps for all of them.)
//
// (The reference variant instead sums a_i w_i bit by bit, so that it checks these identities.)
//
// Range: 0 <= pop <= K and |C| <= K. Popcounts accumulate in 64-bit counters (the AVX2 kernel in
// byte counters flushed to 64 bits before they can overflow), so any K <= INT32_MAX is exact.
#pragma once

#include <cstdint>

#include "onebit/bitpack.h"

namespace onebit {

// Dot-product modes; the values are part of the Python binding and of the model file.
// kMask = 2: +-1 activations x {0,1} weights (SBNN's sparse weights): not a bgemm mode — bgemm
// kernels take kXor and kAnd only — but bconv2d's mode for the block-sparse sbgemm (sbgemm.h).
enum class BgemmMode : int { kXor = 0, kAnd = 1, kMask = 2 };

// Arguments shared by every bgemm variant.
//   a:   m rows, row r at a + r * lda; words_for(k) words each (lda >= words_for(k)).
//   b:   n rows, row r at b + r * ldb; words_for(k) words each (ldb >= words_for(k)).
//   k:   logical bit count, 1 <= k <= INT32_MAX.
//   c:   m x n int32, row r at c + r * ldc (ldc >= n); every element is written.
// Words past words_for(k) in a row are never read; padding bits inside the last word must be 0.
struct BgemmArgs {
  const word_t* a;
  const word_t* b;
  std::int64_t m;
  std::int64_t n;
  std::int64_t k;
  std::int64_t lda;
  std::int64_t ldb;
  BgemmMode mode;
  std::int32_t* c;
  std::int64_t ldc;
  // Optional: B already in the layout this variant would repack it into, made once by the variant's
  // BgemmPacking::pack from these same b, n, k and ldb (an engine's constant weights). nullptr: the
  // variant repacks B itself if it needs to. b stays required (some shapes read B as it is).
  const void* packed_b = nullptr;
};

// The variants that repack B on every call (bgemm_packing in kernels.h) can take it packed once.
//   bytes(n, k):                the size of the packed B, a multiple of 64;
//   pack(b, n, k, ldb, out):    B (n rows of words_for(k) words, ldb apart) into out, 64-byte aligned.
struct BgemmPacking {
  std::int64_t (*bytes)(std::int64_t n, std::int64_t k);
  void (*pack)(const word_t* b, std::int64_t n, std::int64_t k, std::int64_t ldb, void* out);
};

}  // namespace onebit
