// igemm_pack_b (igemm.h): n x k row-major int8 weights -> the panel layout every igemm variant reads.
//   panels[(q * pairs + p) * 16 + 2 * j + e] = B[8q + j][2p + e], 0 where 8q + j >= n or 2p + e >= k.
// Portable C++ on purpose: it runs once per layer at load, never in the inner loop.
#include "onebit/igemm.h"

namespace onebit {

void igemm_pack_b(const std::int8_t* w, std::int64_t n, std::int64_t k, std::int8_t* panels) {
  const std::int64_t pairs = igemm_kp(k) / 2;
  const std::int64_t blocks = (n + kIgemmBlock - 1) / kIgemmBlock;
  for (std::int64_t q = 0; q < blocks; ++q) {
    std::int8_t* block = panels + q * pairs * 2 * kIgemmBlock;
    for (std::int64_t p = 0; p < pairs; ++p) {
      for (std::int64_t j = 0; j < kIgemmBlock; ++j) {
        const std::int64_t row = q * kIgemmBlock + j;
        for (std::int64_t e = 0; e < 2; ++e) {
          const std::int64_t col = 2 * p + e;
          block[p * 2 * kIgemmBlock + 2 * j + e] = (row < n && col < k) ? w[row * k + col] : std::int8_t{0};
        }
      }
    }
  }
}

}  // namespace onebit
