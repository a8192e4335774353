// Float GEMM for the engine's float conv2d / linear (the stem and the head): C = A . B^T.
//
// Backend: OpenBLAS (PyPI's scipy-openblas32 wheel, symbols prefixed scipy_) when the build found it
// (CMake option ONEBIT_OPENBLAS, on by default), else a cache-blocked C++ loop (float_gemm.cpp).
// OpenBLAS runs single-threaded (set once, at first use): the engine's own thread pool splits the
// work into tiles and each pool thread calls sgemm on its tile, so the two never oversubscribe the
// cores and results do not depend on the thread count (each C element is one sgemm's dot product,
// whose order depends on K only). The scipy-openblas32 library is private to that wheel (numpy and
// scipy bundle their own), so the thread setting affects no one else.
#pragma once

#include <cstdint>

namespace onebit::engine {

// C[m][n] = sum_k A[m][k] * B[n][k] for m < M, n < N (row-major; A row stride lda, B ldb, C ldc).
// Every element of the M x N block of C is overwritten.
void sgemm_nt(std::int64_t M, std::int64_t N, std::int64_t K, const float* A, std::int64_t lda, const float* B,
              std::int64_t ldb, float* C, std::int64_t ldc);

// "openblas <version/config>" or "blocked-c++".
const char* float_gemm_backend();

}  // namespace onebit::engine
