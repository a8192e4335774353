// Portable binary GEMM: 4x4 register tiles of scalar popcount accumulators, no ISA flags
// (__builtin_popcountll becomes a bit-trick sequence or a libgcc call without -mpopcnt).
//
// Each tile keeps 4 words of A (one per row) and 4 of B in registers per step of K, so every
// loaded word feeds 4 popcounts. Both modes share the loop through `Combine` (XOR or AND) and
// finish with C = row_term - 2 pop (bgemm.h).
#include <algorithm>

#include "onebit/kernels.h"
#include "onebit/scratch.h"

namespace onebit {
namespace {

constexpr int kMr = 4;  // rows of A per tile
constexpr int kNr = 4;  // rows of B per tile

struct Xor {
  static word_t apply(word_t a, word_t b) { return a ^ b; }
};
struct And {
  static word_t apply(word_t a, word_t b) { return a & b; }
};

inline std::int64_t popcount(word_t w) { return __builtin_popcountll(w); }

// One mr x nr tile (mr <= kMr, nr <= kNr): popcounts of Combine(A row, B row) over kw words.
// Full tiles take the constant-bound path, which the compiler unrolls into registers.
template <class Combine, int kRows, int kCols>
void tile(const BgemmArgs& p, std::int64_t kw, std::int64_t m0, std::int64_t n0,
          std::int64_t pop[kMr][kNr]) {
  const word_t* a[kRows];
  const word_t* b[kCols];
  for (int i = 0; i < kRows; ++i) a[i] = p.a + (m0 + i) * p.lda;
  for (int j = 0; j < kCols; ++j) b[j] = p.b + (n0 + j) * p.ldb;
  std::int64_t acc[kRows][kCols] = {};
  for (std::int64_t w = 0; w < kw; ++w) {
    word_t av[kRows];
    word_t bv[kCols];
    for (int i = 0; i < kRows; ++i) av[i] = a[i][w];
    for (int j = 0; j < kCols; ++j) bv[j] = b[j][w];
    for (int i = 0; i < kRows; ++i) {
      for (int j = 0; j < kCols; ++j) acc[i][j] += popcount(Combine::apply(av[i], bv[j]));
    }
  }
  for (int i = 0; i < kRows; ++i) {
    for (int j = 0; j < kCols; ++j) pop[i][j] = acc[i][j];
  }
}

// Edge tiles (fewer than kMr rows or kNr columns): plain loops with runtime bounds.
template <class Combine>
void edge_tile(const BgemmArgs& p, std::int64_t kw, std::int64_t m0, std::int64_t n0, int mr, int nr,
               std::int64_t pop[kMr][kNr]) {
  for (int i = 0; i < mr; ++i) {
    const word_t* a = p.a + (m0 + i) * p.lda;
    for (int j = 0; j < nr; ++j) {
      const word_t* b = p.b + (n0 + j) * p.ldb;
      std::int64_t acc = 0;
      for (std::int64_t w = 0; w < kw; ++w) acc += popcount(Combine::apply(a[w], b[w]));
      pop[i][j] = acc;
    }
  }
}

template <class Combine>
void run(const BgemmArgs& p, const std::int64_t* row_term) {
  const std::int64_t kw = words_for(p.k);
  std::int64_t pop[kMr][kNr];
  for (std::int64_t m0 = 0; m0 < p.m; m0 += kMr) {
    const int mr = static_cast<int>(std::min<std::int64_t>(kMr, p.m - m0));
    for (std::int64_t n0 = 0; n0 < p.n; n0 += kNr) {
      const int nr = static_cast<int>(std::min<std::int64_t>(kNr, p.n - n0));
      if (mr == kMr && nr == kNr) {
        tile<Combine, kMr, kNr>(p, kw, m0, n0, pop);
      } else {
        edge_tile<Combine>(p, kw, m0, n0, mr, nr, pop);
      }
      for (int i = 0; i < mr; ++i) {
        const std::int64_t t = row_term ? row_term[m0 + i] : p.k;
        std::int32_t* c = p.c + (m0 + i) * p.ldc + n0;
        for (int j = 0; j < nr; ++j) c[j] = static_cast<std::int32_t>(t - 2 * pop[i][j]);
      }
    }
  }
}

}  // namespace

void bgemm__4x4__portable(const BgemmArgs& p) {
  if (p.mode == BgemmMode::kXor) {
    run<Xor>(p, nullptr);  // row_term = K
    return;
  }
  // kAnd: row_term = popcount(A row), once per row of A, shared by every column.
  const std::int64_t kw = words_for(p.k);
  auto* pop_a = static_cast<std::int64_t*>(scratch(ScratchSlot::kRowTerms, sizeof(std::int64_t) * p.m));
  for (std::int64_t m = 0; m < p.m; ++m) {
    std::int64_t s = 0;
    for (std::int64_t w = 0; w < kw; ++w) s += popcount(p.a[m * p.lda + w]);
    pop_a[m] = s;
  }
  run<And>(p, pop_a);
}

}  // namespace onebit
