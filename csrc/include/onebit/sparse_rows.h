// Building the block-sparse weights of sbgemm.h from dense packed rows (engine load, bindings).
// A separate header from sbgemm.h: it uses std::vector, which kernel translation units compiled
// with ISA flags must not instantiate (scratch.h explains why).
#pragma once

#include <cstdint>
#include <vector>

#include "onebit/sbgemm.h"

namespace onebit {

// Owner of a SparseRows' arrays, built from dense rows (row r at dense + r * ld, kw words each).
// Lives in a portable translation unit (runtime/sparse_rows.cpp): kernels only see SparseRows.
struct SparseRowsStorage {
  std::int64_t n = 0, kw = 0;
  std::vector<std::int32_t> live_begin, live_word, row_pop;
  std::vector<word_t> data;
  SparseRows view() const { return {n, kw, live_begin.data(), live_word.data(), data.data(), row_pop.data()}; }
  std::int64_t live_words() const { return static_cast<std::int64_t>(live_word.size()); }
};
SparseRowsStorage make_sparse_rows(const word_t* dense, std::int64_t n, std::int64_t kw, std::int64_t ld);


}  // namespace onebit
