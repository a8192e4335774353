// AVX2 igemm (igemm.h): tiles of up to 6 rows of A x 2 blocks (16 columns) of B, on vpmaddwd.
// Compiled with -mavx2 -mfma -mbmi2 -mpopcnt; dispatched only when the CPU has them.
//
// One step of a tile is one pair p of K (columns 2p, 2p + 1):
//   - B: the 16 panel bytes of a block at pair p are rows 0..7 x (2p, 2p + 1), byte 2j + e for row j
//     (igemm.h). vpmovsxbw sign-extends them to 16 int16, so 32-bit lane j holds (B[j][2p],
//     B[j][2p + 1]): one register per block, two for the tile's 16 columns.
//   - A: the pair (A[r][2p], A[r][2p + 1]) is 4 contiguous bytes of row r, read as one int32 (memcpy:
//     no aliasing of int16 storage through an int32 lvalue) and broadcast to all 8 lanes; as int16
//     lanes this is (a0, a1) in every 32-bit lane, low half first, matching B's (e = 0, e = 1).
//   - vpmaddwd(A, B) gives per 32-bit lane a0 * B[j][2p] + a1 * B[j][2p + 1], exactly: each product
//     is at most 127 * 127 = 16129 in magnitude, the sum at most 32258, far inside int32 (vpmaddwd
//     only wraps for -32768 * -32768 twice, impossible here). vpaddd adds it to the accumulator.
// Exactness of the accumulator: after any number of steps it holds a partial dot product, a sum of
// at most kp products of magnitude <= 127^2 of which the pad column's is 0 (B is 0 past k), so
// |acc| <= k * 127^2 < 2^31 for k <= kIgemmMaxK: never wraps.
//
// Register budget (16 ymm): 6 rows x 2 blocks = 12 accumulators, 2 sign-extended B registers and
// 1 broadcast A register: 15, and the 16th holds a vpmaddwd product until its vpaddd (the second
// product of a row overwrites the A register, dead by then). Per step 2 vpmovsxbw loads, 6 broadcast
// loads, 12 vpmaddwd and 12 vpaddd for 6 x 16 x 2 = 192 multiply-adds (16 per vpmaddwd, 2x an FP32
// FMA's 8). No spill: checked in the generated code with GCC 12.
//
// Fewer than 6 rows left: the same tile with fewer rows; with 1 or 2 rows, 4 blocks at a time
// (4 streams of B in flight, 4 or 8 accumulators). M = 1 (a batch-1 linear layer) is then a single
// sweep over B, each byte loaded once, which is what bounds it (memory, not arithmetic); on a 4 MB
// head 4 blocks at a time ran 1.3x faster than 2, and 8 no faster than 4.
// Fewer than 2 (or 4) blocks left: the same tile with fewer blocks; in the partial last block only
// columns < n are stored.
#include <immintrin.h>

#include <cstring>

#include "onebit/kernels.h"

namespace onebit {
namespace {

constexpr int kMr = 6;
constexpr std::int64_t kPairBytes = 2 * kIgemmBlock;  // 16 panel bytes per block and pair

inline __m256i load_b(const std::int8_t* p) {
  return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

inline __m256i broadcast_a(const std::int16_t* p) {
  std::int32_t pair;
  std::memcpy(&pair, p, sizeof pair);
  return _mm256_set1_epi32(pair);
}

// 8 columns of a row of C; cols < 8 only in the last block.
inline void store_block(std::int32_t* c, __m256i v, std::int64_t cols) {
  if (cols >= kIgemmBlock) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c), v);
    return;
  }
  alignas(32) std::int32_t lanes[kIgemmBlock];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), v);
  for (std::int64_t j = 0; j < cols; ++j) c[j] = lanes[j];
}

// Rows r0 .. r0 + kRows - 1 x blocks q0 .. q0 + kBlocks - 1. Every loop over rows or blocks is fully
// unrolled (#pragma GCC unroll) before GCC splits `acc` into scalars: without it GCC 12 keeps the
// accumulators on the stack (a load and a store per vpaddd, 1.6x slower).
template <int kRows, int kBlocks>
void tile(const IgemmArgs& args, std::int64_t r0, std::int64_t q0, std::int64_t pairs) {
  const std::int16_t* a[kRows];
#pragma GCC unroll 8
  for (int i = 0; i < kRows; ++i) a[i] = args.a + (r0 + i) * args.lda;
  const std::int8_t* b = args.b + q0 * pairs * kPairBytes;
  __m256i acc[kRows][kBlocks];
#pragma GCC unroll 8
  for (int i = 0; i < kRows; ++i) {
#pragma GCC unroll 8
    for (int v = 0; v < kBlocks; ++v) acc[i][v] = _mm256_setzero_si256();
  }
  for (std::int64_t p = 0; p < pairs; ++p) {
    __m256i bv[kBlocks];
#pragma GCC unroll 8
    for (int v = 0; v < kBlocks; ++v) bv[v] = load_b(b + (v * pairs + p) * kPairBytes);
#pragma GCC unroll 8
    for (int i = 0; i < kRows; ++i) {
      const __m256i av = broadcast_a(a[i] + 2 * p);
#pragma GCC unroll 8
      for (int v = 0; v < kBlocks; ++v) acc[i][v] = _mm256_add_epi32(acc[i][v], _mm256_madd_epi16(av, bv[v]));
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < kRows; ++i) {
    std::int32_t* c = args.c + (r0 + i) * args.ldc;
#pragma GCC unroll 8
    for (int v = 0; v < kBlocks; ++v) {
      const std::int64_t col = (q0 + v) * kIgemmBlock;
      store_block(c + col, acc[i][v], args.n - col);
    }
  }
}

// Every block from q0 on for one row tile: kBlocks at a time, the rest with half as many.
template <int kRows, int kBlocks>
void columns(const IgemmArgs& args, std::int64_t r0, std::int64_t q0, std::int64_t blocks, std::int64_t pairs) {
  std::int64_t q = q0;
  for (; q + kBlocks <= blocks; q += kBlocks) tile<kRows, kBlocks>(args, r0, q, pairs);
  if constexpr (kBlocks > 1) {
    if (q < blocks) columns<kRows, kBlocks / 2>(args, r0, q, blocks, pairs);
  }
}

}  // namespace

void igemm__6x16__avx2(const IgemmArgs& args) {
  const std::int64_t pairs = igemm_kp(args.k) / 2;
  const std::int64_t blocks = (args.n + kIgemmBlock - 1) / kIgemmBlock;
  std::int64_t r0 = 0;
  for (; r0 + kMr <= args.m; r0 += kMr) columns<kMr, 2>(args, r0, 0, blocks, pairs);
  switch (args.m - r0) {
    case 5: columns<5, 2>(args, r0, 0, blocks, pairs); break;
    case 4: columns<4, 2>(args, r0, 0, blocks, pairs); break;
    case 3: columns<3, 2>(args, r0, 0, blocks, pairs); break;
    case 2: columns<2, 4>(args, r0, 0, blocks, pairs); break;
    case 1: columns<1, 4>(args, r0, 0, blocks, pairs); break;
    default: break;
  }
}

}  // namespace onebit
