// make_sparse_rows (sparse_rows.h): dense packed rows -> the block-sparse layout of sbgemm.h.
#include "onebit/sparse_rows.h"

#include <stdexcept>

namespace onebit {

SparseRowsStorage make_sparse_rows(const word_t* dense, std::int64_t n, std::int64_t kw, std::int64_t ld) {
  if (n < 0 || kw < 1 || ld < kw) throw std::invalid_argument("make_sparse_rows: bad shape");
  SparseRowsStorage s;
  s.n = n, s.kw = kw;
  const std::int64_t blocks = (n + kSparseBlockRows - 1) / kSparseBlockRows;
  s.live_begin.reserve(blocks + 1);
  s.live_begin.push_back(0);
  s.row_pop.assign(n, 0);
  for (std::int64_t r = 0; r < n; ++r) {
    std::int64_t pop = 0;
    for (std::int64_t w = 0; w < kw; ++w) pop += __builtin_popcountll(dense[r * ld + w]);
    s.row_pop[r] = static_cast<std::int32_t>(pop);
  }
  for (std::int64_t q = 0; q < blocks; ++q) {
    const std::int64_t r0 = q * kSparseBlockRows;
    const std::int64_t rows = n - r0 < kSparseBlockRows ? n - r0 : kSparseBlockRows;
    for (std::int64_t w = 0; w < kw; ++w) {
      bool live = false;
      for (std::int64_t i = 0; i < rows; ++i) live = live || dense[(r0 + i) * ld + w] != 0;
      if (!live) continue;
      s.live_word.push_back(static_cast<std::int32_t>(w));
      for (std::int64_t i = 0; i < kSparseBlockRows; ++i) s.data.push_back(i < rows ? dense[(r0 + i) * ld + w] : 0);
    }
    s.live_begin.push_back(static_cast<std::int32_t>(s.live_word.size()));
  }
  return s;
}

}  // namespace onebit
