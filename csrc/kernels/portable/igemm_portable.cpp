// Portable igemm (igemm.h): 4 rows of A x one block of 8 rows of B per tile, plain C++ that any
// x86-64 compiles (the compiler vectorizes it with SSE2).
//
// A step of the tile is one pair p of K: the block's 16 panel bytes (byte t = 2j + e holds
// B[j][2p + e]) meet the pair (A[r][2p], A[r][2p + 1]) of each of the 4 rows. Each row keeps 16
// int32 lanes, lane t accumulating A[r][2p + e] * B[j][2p + e]: an element-wise multiply-add over
// the panel's own byte order, which GCC vectorizes as widening int16 multiplies (the form
// acc[j] += a0 * b[2j] + a1 * b[2j + 1] needs a deinterleave per step and ran 4.7x slower). The two
// lanes of column j are added once at the end: C[r][8q + j] = lane 2j + lane (2j + 1).
// Exact in int32: a product is at most 127 * 127 in magnitude, a lane sums at most kp / 2 of them
// and the final sum at most kp, of which the pad column's are 0 (B is 0 past k in the panels):
// every partial sum is at most k * 127^2 < 2^31.
#include <algorithm>

#include "onebit/kernels.h"

namespace onebit {
namespace {

constexpr int kMr = 4;
constexpr int kNr = kIgemmBlock;

template <int kRows>
void tile(const IgemmArgs& args, std::int64_t r0, std::int64_t q, std::int64_t pairs) {
  const std::int8_t* block = args.b + q * pairs * 2 * kNr;
  const std::int16_t* a[kRows];
  for (int i = 0; i < kRows; ++i) a[i] = args.a + (r0 + i) * args.lda;
  std::int32_t acc[kRows][2 * kNr] = {};
  for (std::int64_t p = 0; p < pairs; ++p) {
    std::int16_t b[2 * kNr];
    for (int t = 0; t < 2 * kNr; ++t) b[t] = block[p * 2 * kNr + t];
    for (int i = 0; i < kRows; ++i) {
      const std::int16_t a0 = a[i][2 * p], a1 = a[i][2 * p + 1];
      for (int t = 0; t < 2 * kNr; t += 2) {
        acc[i][t] += a0 * b[t];
        acc[i][t + 1] += a1 * b[t + 1];
      }
    }
  }
  const std::int64_t cols = std::min<std::int64_t>(kNr, args.n - q * kNr);
  for (int i = 0; i < kRows; ++i) {
    std::int32_t* c = args.c + (r0 + i) * args.ldc + q * kNr;
    for (std::int64_t j = 0; j < cols; ++j) c[j] = acc[i][2 * j] + acc[i][2 * j + 1];
  }
}

template <int kRows>
void row_tile(const IgemmArgs& args, std::int64_t r0, std::int64_t blocks, std::int64_t pairs) {
  for (std::int64_t q = 0; q < blocks; ++q) tile<kRows>(args, r0, q, pairs);
}

}  // namespace

void igemm__4x8__portable(const IgemmArgs& args) {
  const std::int64_t pairs = igemm_kp(args.k) / 2;
  const std::int64_t blocks = (args.n + kNr - 1) / kNr;
  std::int64_t r0 = 0;
  for (; r0 + kMr <= args.m; r0 += kMr) row_tile<kMr>(args, r0, blocks, pairs);
  switch (args.m - r0) {
    case 3: row_tile<3>(args, r0, blocks, pairs); break;
    case 2: row_tile<2>(args, r0, blocks, pairs); break;
    case 1: row_tile<1>(args, r0, blocks, pairs); break;
    default: break;
  }
}

}  // namespace onebit
