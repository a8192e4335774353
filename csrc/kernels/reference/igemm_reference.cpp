// Reference igemm: the executable spec of igemm.h the optimized variants are tested against.
// One product at a time, B[j][i] read back from the panel layout by its defining formula
//     B[8q + jj][2p + e] = panels[(q * pairs + p) * 16 + 2 * jj + e],
// summed in int64 over i < k only (the pad column of A is never read), then stored as int32: the
// bound |C| <= k * 127 * 127 < 2^31 of igemm.h makes the narrowing exact.
#include "onebit/kernels.h"

namespace onebit {
namespace {

std::int64_t panel_value(const std::int8_t* panels, std::int64_t pairs, std::int64_t j, std::int64_t i) {
  const std::int64_t q = j / kIgemmBlock, jj = j % kIgemmBlock, p = i / 2, e = i % 2;
  return panels[(q * pairs + p) * 2 * kIgemmBlock + 2 * jj + e];
}

}  // namespace

void igemm__reference(const IgemmArgs& args) {
  const std::int64_t pairs = igemm_kp(args.k) / 2;
  for (std::int64_t r = 0; r < args.m; ++r) {
    const std::int16_t* a = args.a + r * args.lda;
    for (std::int64_t j = 0; j < args.n; ++j) {
      std::int64_t sum = 0;
      for (std::int64_t i = 0; i < args.k; ++i) {
        sum += static_cast<std::int64_t>(a[i]) * panel_value(args.b, pairs, j, i);
      }
      args.c[r * args.ldc + j] = static_cast<std::int32_t>(sum);
    }
  }
}

}  // namespace onebit
