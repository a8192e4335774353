// The engine's float GEMM (float_gemm.h): OpenBLAS when linked, else a blocked C++ fallback.
#include "float_gemm.h"

#include <algorithm>
#include <cstdio>
#include <mutex>

#ifdef ONEBIT_OPENBLAS
#include <cblas.h>
#endif

namespace onebit::engine {
#ifndef ONEBIT_OPENBLAS
namespace {

// Fallback: for each C element a dot product over k with 8 independent partial sums (lanes k % 8),
// which the compiler maps onto vector registers without reassociating any one sum; rows of A and B
// are walked in 4 x 4 blocks so each A row and B row is reused from L1 across the block.
float dot(const float* a, const float* b, std::int64_t K) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    for (int l = 0; l < 8; ++l) s[l] += a[k + l] * b[k + l];
  }
  for (; k < K; ++k) s[k % 8] += a[k] * b[k];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

void sgemm_fallback(std::int64_t M, std::int64_t N, std::int64_t K, const float* A, std::int64_t lda, const float* B,
                    std::int64_t ldb, float* C, std::int64_t ldc) {
  for (std::int64_t i0 = 0; i0 < M; i0 += 4) {
    for (std::int64_t j0 = 0; j0 < N; j0 += 4) {
      for (std::int64_t i = i0; i < std::min(M, i0 + 4); ++i) {
        for (std::int64_t j = j0; j < std::min(N, j0 + 4); ++j) C[i * ldc + j] = dot(A + i * lda, B + j * ldb, K);
      }
    }
  }
}

}  // namespace
#endif

#ifdef ONEBIT_OPENBLAS
void sgemm_nt(std::int64_t M, std::int64_t N, std::int64_t K, const float* A, std::int64_t lda, const float* B,
              std::int64_t ldb, float* C, std::int64_t ldc) {
  static std::once_flag once;
  std::call_once(once, [] { scipy_openblas_set_num_threads(1); });
  if (M <= 0 || N <= 0) return;
  scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(M), static_cast<blasint>(N),
                    static_cast<blasint>(K), 1.0f, A, static_cast<blasint>(lda), B, static_cast<blasint>(ldb), 0.0f, C,
                    static_cast<blasint>(ldc));
}

const char* float_gemm_backend() {
  static const char* name = [] {
    static char buf[256];
    const char* cfg = scipy_openblas_get_config();
    std::snprintf(buf, sizeof(buf), "openblas (scipy-openblas32: %s)", cfg ? cfg : "?");
    return buf;
  }();
  return name;
}
#else
void sgemm_nt(std::int64_t M, std::int64_t N, std::int64_t K, const float* A, std::int64_t lda, const float* B,
              std::int64_t ldb, float* C, std::int64_t ldc) {
  sgemm_fallback(M, N, K, A, lda, B, ldb, C, ldc);
}

const char* float_gemm_backend() { return "blocked-c++"; }
#endif

}  // namespace onebit::engine
