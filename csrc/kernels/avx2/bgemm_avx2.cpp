// AVX2 binary GEMM. Compiled with -mavx2 -mfma -mbmi2 -mpopcnt; dispatched only when the CPU has them.
//
// AVX2 has no vector popcount. Popcounts come from the nibble table: vpshufb looks up the
// popcount (0..4) of each 4-bit nibble, both nibbles of every byte are added into byte counters,
// and vpsadbw sums each 8 byte counters into their 64-bit lane before a byte can overflow.
//
// Layout (as bgemm_5x32__avx512_nvec, with 4 lanes): lanes run along N. B is repacked into
// panels of 4 rows with interleaved words, stored already split into a low-nibble plane and a
// high-nibble plane; lane l of an accumulator is output column 4q + l. A tile is 3 rows of A x
// 2 panels (8 columns): a step of one word broadcasts the word of each row of A, splits it into
// nibbles once, and does 3 x 2 x (2 combines, 2 vpshufb, 2 byte adds). Nibble splitting commutes
// with both combines: (a op b) & 0xF = (a & 0xF) op (b & 0xF), and likewise for the high nibble.
// No horizontal sums, no K tail; the output transform is C = row_term - 2 pop (bgemm.h).
//
// Measured here (Zen 4, 1 thread, G binary MAC/s on 3136x64x576 / 784x128x1152 / 196x256x2304 /
// 49x512x4608) against the alternatives, before keeping this one:
//   this kernel (3x8, lanes along N, nibble table):       345  398  420  415
//   lanes along K, nibble table, 3x2 tile:                  93  159  221  280
//   scalar popcnt (64-bit words), 2x4 tile:                165  193  208  218
// Lanes along K pay a horizontal sum per output and a part-empty last vector, which dominate at
// short K; scalar popcnt is bound by 3 scalar ops per 64 bit pairs.
#include <immintrin.h>

#include <algorithm>
#include <utility>

#include "avx2_words.h"
#include "onebit/kernels.h"
#include "onebit/scratch.h"  // not std::vector: see scratch.h for why ISA units avoid std templates

namespace onebit {
namespace {

constexpr int kLanes = kWordLanes;  // 64-bit words per ymm
constexpr int kMr = 3;     // rows of A per tile
constexpr int kNv = 2;     // panels (of 4 rows of B) per tile: 8 output columns
// 3 x 2 byte accumulators + 2 x 2 nibble planes of B + 2 nibbles of A + table + mask: all 16 ymm.

// A byte counter gains at most 8 per step (4 per nibble), so 31 steps fit in 255.
constexpr int kFlushSteps = 31;

// Panel layout: panel q holds rows 4q..4q+3 of B (0 past n); for word w, the 4 words of its rows
// split into nibbles: low plane at out + ((q * kw + w) * 2) * 4, high plane right after it.
void pack_panels(const BgemmArgs& p, std::int64_t kw, word_t* out) {
  const std::int64_t panels = (p.n + kLanes - 1) / kLanes;
  for (std::int64_t q = 0; q < panels; ++q) {
    const word_t* src = p.b + q * kLanes * p.ldb;
    word_t* dst = out + q * kw * 2 * kLanes;
    const std::int64_t rows = std::min<std::int64_t>(kLanes, p.n - q * kLanes);
    for (std::int64_t w0 = 0; w0 < kw; w0 += kLanes) {
      const std::int64_t words = std::min<std::int64_t>(kLanes, kw - w0);
      __m256i r[kLanes];
#pragma GCC unroll 4
      for (int l = 0; l < kLanes; ++l) {
        r[l] = l < rows ? load_words(src + l * p.ldb + w0, words) : _mm256_setzero_si256();
      }
      transpose4(r);
#pragma GCC unroll 4
      for (int j = 0; j < kLanes; ++j) {
        if (j < words) {
          const Nibbles nb = split(r[j]);
          word_t* d = dst + (w0 + j) * 2 * kLanes;
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(d), nb.lo);
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + kLanes), nb.hi);
        }
      }
    }
  }
}

// One kRows x (4 kVecs) tile: rows m0.. of A against the kVecs panels at `panels` (first column n0).
template <class Combine, int kRows, int kVecs>
void tile(const BgemmArgs& p, std::int64_t kw, std::int64_t m0, std::int64_t n0, const word_t* panels,
          const std::int64_t* row_term) {
  const __m256i table = popcount_table();
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const word_t* a = p.a + m0 * p.lda;
  __m256i total[kRows][kVecs];  // 64-bit popcounts: lane l = column n0 + 4v + l
#pragma GCC unroll 16
  for (int i = 0; i < kRows; ++i) {
#pragma GCC unroll 16
    for (int v = 0; v < kVecs; ++v) total[i][v] = _mm256_setzero_si256();
  }
  for (std::int64_t w0 = 0; w0 < kw; w0 += kFlushSteps) {
    const std::int64_t w1 = std::min<std::int64_t>(kw, w0 + kFlushSteps);
    __m256i bytes[kRows][kVecs];  // byte counters, flushed into `total` after each chunk
#pragma GCC unroll 16
    for (int i = 0; i < kRows; ++i) {
#pragma GCC unroll 16
      for (int v = 0; v < kVecs; ++v) bytes[i][v] = _mm256_setzero_si256();
    }
    for (std::int64_t w = w0; w < w1; ++w) {
      Nibbles b[kVecs];
      for (int v = 0; v < kVecs; ++v) {
        const word_t* bp = panels + (v * kw + w) * 2 * kLanes;
        b[v].lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bp));
        b[v].hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bp + kLanes));
      }
      for (int i = 0; i < kRows; ++i) {
        const __m256i x = _mm256_set1_epi64x(static_cast<long long>(a[i * p.lda + w]));
        const __m256i xl = _mm256_and_si256(x, low4);
        const __m256i xh = _mm256_and_si256(_mm256_srli_epi16(x, 4), low4);
        for (int v = 0; v < kVecs; ++v) {
          bytes[i][v] = _mm256_add_epi8(bytes[i][v], _mm256_shuffle_epi8(table, Combine::apply(xl, b[v].lo)));
          bytes[i][v] = _mm256_add_epi8(bytes[i][v], _mm256_shuffle_epi8(table, Combine::apply(xh, b[v].hi)));
        }
      }
    }
    for (int i = 0; i < kRows; ++i) {
      for (int v = 0; v < kVecs; ++v) {
        total[i][v] = _mm256_add_epi64(total[i][v], _mm256_sad_epu8(bytes[i][v], _mm256_setzero_si256()));
      }
    }
  }
  // Each pop fits in the low 32 bits of its 64-bit lane: gather those 4 halves into 128 bits.
  const __m256i low_halves = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
  const std::int64_t cols = p.n - n0;
  for (int i = 0; i < kRows; ++i) {
    const __m128i t = _mm_set1_epi32(static_cast<int>(row_term ? row_term[m0 + i] : p.k));
    std::int32_t* c = p.c + (m0 + i) * p.ldc + n0;
    for (int v = 0; v < kVecs; ++v) {
      const __m128i pop = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(total[i][v], low_halves));
      const __m128i out = _mm_sub_epi32(t, _mm_add_epi32(pop, pop));
      const std::int64_t valid = std::min<std::int64_t>(kLanes, cols - v * kLanes);
      if (valid == kLanes) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(c + v * kLanes), out);
      } else {
        const __m128i mask = _mm_cmpgt_epi32(_mm_set1_epi32(static_cast<int>(valid)), _mm_setr_epi32(0, 1, 2, 3));
        _mm_maskstore_epi32(c + v * kLanes, mask, out);
      }
    }
  }
}

template <class Combine>
using TileFn = void (*)(const BgemmArgs&, std::int64_t, std::int64_t, std::int64_t, const word_t*,
                        const std::int64_t*);

// fn[r - 1][c - 1]: the r x c tile. Edge tiles take the instantiation of their exact size, so
// every loop bound inside a tile is a compile-time constant.
template <class Combine>
struct TileTable {
  TileFn<Combine> fn[kMr][kNv];
};

template <class Combine, int... kI>
TileTable<Combine> make_tiles(std::integer_sequence<int, kI...>) {
  TileTable<Combine> t{};
  ((t.fn[kI / kNv][kI % kNv] = &tile<Combine, kI / kNv + 1, kI % kNv + 1>), ...);
  return t;
}

template <class Combine>
void run(const BgemmArgs& p, const std::int64_t* row_term) {
  static const TileTable<Combine> tiles = make_tiles<Combine>(std::make_integer_sequence<int, kMr * kNv>{});
  const std::int64_t kw = words_for(p.k);
  const std::int64_t panels = (p.n + kLanes - 1) / kLanes;
  auto* packed = static_cast<word_t*>(scratch(ScratchSlot::kPanels, sizeof(word_t) * panels * kw * 2 * kLanes));
  pack_panels(p, kw, packed);
  for (std::int64_t q0 = 0; q0 < panels; q0 += kNv) {
    const int nv = static_cast<int>(std::min<std::int64_t>(kNv, panels - q0));
    const word_t* block = packed + q0 * kw * 2 * kLanes;
    for (std::int64_t m0 = 0; m0 < p.m; m0 += kMr) {
      const int mr = static_cast<int>(std::min<std::int64_t>(kMr, p.m - m0));
      tiles.fn[mr - 1][nv - 1](p, kw, m0, q0 * kLanes, block, row_term);
    }
  }
}

// One or two rows of A (a batch-1 binary linear layer): every word of B is used by at most two rows,
// so repacking B into nibble panels (a read and a write of 2x its size) costs more than the product
// itself. Instead lanes run along K over B's own rows: per 4 words, combine with A's 4 words, split
// into nibbles, 2 vpshufb + 2 byte adds into that output's counters; 4 outputs at a time share the
// loads and splits of A. Flushes as in `tile`, then one horizontal sum per output. The K tail (kw not
// a multiple of 4) is a masked load of zero words, which add nothing to either popcount.
template <class Combine, int kRows>
void gemv_rows(const BgemmArgs& p, std::int64_t kw, const std::int64_t* row_term) {
  const __m256i table = popcount_table();
  constexpr int kCols = 4;
  for (std::int64_t n0 = 0; n0 < p.n; n0 += kCols) {
    const int cols = static_cast<int>(std::min<std::int64_t>(kCols, p.n - n0));
    __m256i total[kRows][kCols];
#pragma GCC unroll 8
    for (int i = 0; i < kRows; ++i) {
#pragma GCC unroll 8
      for (int j = 0; j < kCols; ++j) total[i][j] = _mm256_setzero_si256();
    }
    for (std::int64_t w0 = 0; w0 < kw; w0 += kLanes * kFlushSteps) {
      const std::int64_t w1 = std::min<std::int64_t>(kw, w0 + kLanes * kFlushSteps);
      __m256i bytes[kRows][kCols];
#pragma GCC unroll 8
      for (int i = 0; i < kRows; ++i) {
#pragma GCC unroll 8
        for (int j = 0; j < kCols; ++j) bytes[i][j] = _mm256_setzero_si256();
      }
      for (std::int64_t w = w0; w < w1; w += kLanes) {
        const std::int64_t valid = std::min<std::int64_t>(kLanes, kw - w);
        __m256i x[kRows];
#pragma GCC unroll 8
        for (int i = 0; i < kRows; ++i) x[i] = load_words(p.a + i * p.lda + w, valid);
#pragma GCC unroll 8
        for (int j = 0; j < kCols; ++j) {
          const __m256i b = j < cols ? load_words(p.b + (n0 + j) * p.ldb + w, valid) : _mm256_setzero_si256();
#pragma GCC unroll 8
          for (int i = 0; i < kRows; ++i) {
            const Nibbles nb = split(Combine::apply(x[i], b));
            bytes[i][j] = _mm256_add_epi8(bytes[i][j], _mm256_shuffle_epi8(table, nb.lo));
            bytes[i][j] = _mm256_add_epi8(bytes[i][j], _mm256_shuffle_epi8(table, nb.hi));
          }
        }
      }
#pragma GCC unroll 8
      for (int i = 0; i < kRows; ++i) {
#pragma GCC unroll 8
        for (int j = 0; j < kCols; ++j)
          total[i][j] = _mm256_add_epi64(total[i][j], _mm256_sad_epu8(bytes[i][j], _mm256_setzero_si256()));
      }
    }
    for (int i = 0; i < kRows; ++i) {
      const std::int64_t t = row_term ? row_term[i] : p.k;
      for (int j = 0; j < cols; ++j) {
        const __m128i h = _mm_add_epi64(_mm256_castsi256_si128(total[i][j]), _mm256_extracti128_si256(total[i][j], 1));
        const std::int64_t pop = _mm_cvtsi128_si64(h) + _mm_extract_epi64(h, 1);
        p.c[i * p.ldc + n0 + j] = static_cast<std::int32_t>(t - 2 * pop);
      }
    }
  }
}

template <class Combine>
void run_any(const BgemmArgs& p, const std::int64_t* row_term) {
  const std::int64_t kw = words_for(p.k);
  if (p.m == 1) return gemv_rows<Combine, 1>(p, kw, row_term);
  if (p.m == 2) return gemv_rows<Combine, 2>(p, kw, row_term);
  run<Combine>(p, row_term);
}

}  // namespace

void bgemm__3x8__avx2_nvec(const BgemmArgs& p) {
  if (p.mode == BgemmMode::kXor) {
    run_any<Xor>(p, nullptr);  // row_term = K
    return;
  }
  // kAnd: row_term = popcount(A row), once per row of A, shared by every column.
  run_any<And>(p, row_popcounts(p.a, p.m, p.lda, words_for(p.k)));
}

}  // namespace onebit
