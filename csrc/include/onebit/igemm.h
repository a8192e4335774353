// Integer GEMM ("igemm") for the engine's int8-quantized float layers (the stem and head of a model
// exported with quantize="int8"; onebit/export/quantize.py gives the quantization, this the product).
//
//   A: m rows of kp int16 values, kp = k rounded up to even: the quantized activations, each in
//      [-127, 127]; A[r][k] (the pad column when k is odd) must be 0.
//   B: n rows of k int8 weights in [-127, 127], packed once (igemm_pack_b) into panels.
//   C[r][j] = sum_{i < k} A[r][i] * B[j][i], exact in int32: |C| <= k * 127 * 127 < 2^31 for every
//   k <= kIgemmMaxK.
//
// Why int16 activations and pairs of K: x86's integer multiply-add vpmaddwd takes two int16 pairs
// per 32-bit lane and returns a0 * b0 + a1 * b1 as int32, exactly (|a|, |b| <= 127: no overflow, and
// unlike vpmaddubsw no int16 saturation). So one instruction does 2 multiply-adds per lane, twice a
// float FMA's lanes: 8 lanes x 2 = 16 MACs per 256-bit instruction against 8 for FP32.
//
// Panel layout (the one every variant reads): B's rows are grouped in blocks of kIgemmBlock = 8
// (block q = rows 8q .. 8q + 7; rows >= n are 0). For block q and pair p (columns 2p, 2p + 1) the
// panel holds 16 int8,
//     panels[(q * pairs + p) * 16 + 2 * j + e] = B[8q + j][2p + e]     (j < 8, e < 2; 0 past n or k),
// with pairs = kp / 2. Sign-extended to int16 these 16 bytes are one 256-bit register of 8 lanes
// (b0, b1) for the 8 rows, which vpmaddwd multiplies with a broadcast pair (a0, a1) of a row of A.
#pragma once

#include <cstdint>

namespace onebit {

inline constexpr int kIgemmBlock = 8;
inline constexpr std::int64_t kIgemmMaxK = 133000;  // 133000 * 127 * 127 < 2^31

inline std::int64_t igemm_kp(std::int64_t k) { return (k + 1) / 2 * 2; }
// Bytes of the panels of n rows of k weights.
inline std::int64_t igemm_panel_bytes(std::int64_t n, std::int64_t k) {
  return (n + kIgemmBlock - 1) / kIgemmBlock * igemm_kp(k) / 2 * 16;
}
// w: n x k row-major int8 -> panels (igemm_panel_bytes(n, k) bytes), the layout above.
void igemm_pack_b(const std::int8_t* w, std::int64_t n, std::int64_t k, std::int8_t* panels);

struct IgemmArgs {
  const std::int16_t* a;
  std::int64_t m, lda;      // rows of A and their stride in int16 elements (lda >= kp)
  const std::int8_t* b;     // panels of n rows (igemm_pack_b)
  std::int64_t n, k;        // 1 <= k <= kIgemmMaxK
  std::int32_t* c;
  std::int64_t ldc;         // c[r * ldc + j] for r < m, j < n; every one of these is written
};

}  // namespace onebit
