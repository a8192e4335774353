// AVX-512 VPOPCNTDQ binary GEMM. Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq
// -mavx512vpopcntdq; dispatched only when the CPU has them.
//
// Two register-tiled kernels; both do one (combine, vpopcntq, vpaddq) triple per 512 bit pairs
// in the inner loop, with 64-bit accumulator lanes that stay in registers for the whole K loop.
// They differ in what the 8 lanes of a vector hold.
//
// kvec (bgemm_4x4__avx512_kvec): lanes run along K. Rows of A and B are used as they are: a
//   tile is kMr rows of A x kNr rows of B with one accumulator per pair; a step loads 8 words of
//   each of the kMr + kNr rows and does kMr * kNr triples. Lane l of an accumulator holds the
//   popcount of words w = l (mod 8), so each output needs a horizontal sum at the end (done 8 at
//   a time by a transpose-and-add tree), and the K tail is a masked load (masked-off lanes are 0
//   and add 0). No scratch memory. Costs that do not shrink with K: the 8 -> 1 sums and the
//   partly empty last vector (K = 576 is 9 words: 2 vector steps), so it suits long K.
//
// nvec (bgemm_5x32__avx512_nvec): lanes run along N. B is first repacked into panels of 8 rows
//   whose words are interleaved (panel q, word w = the 8 words w of rows 8q..8q+7, one zmm), so
//   lane l of an accumulator is output column 8q + l. A tile is kMr rows of A x kNv panels; a
//   step loads kNv panel vectors, broadcasts one word of each of the kMr rows of A and does
//   kMr * kNv triples. Accumulators are whole output vectors: no horizontal sums and no K tail
//   (a step is one word), only an N tail (lanes past n are computed on zero rows and not stored).
//   The repacking is O(N * KW) against O(M * N * KW) of work, so it suits all but tiny M: with one or
//   two rows of A, bgemm__5x32__avx512_nvec runs kvec instead.
//
// Both end with the output transform C = row_term - 2 pop (bgemm.h): row_term = K (kXor) or
// popcount(A row) (kAnd); sums are narrowed to int32 (pop <= K <= INT32_MAX).

// GCC 12 warns that the _mm512_undefined_* pass-through operands inside the intrinsic headers
// are uninitialized (GCC bug 105593, fixed in GCC 13); they are unused by design.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <utility>

#include "onebit/kernels.h"
#include "onebit/scratch.h"  // not std::vector: see scratch.h for why ISA units avoid std templates

namespace onebit {
namespace {

constexpr int kLanes = 8;  // 64-bit words per zmm

inline __mmask8 low_lanes(std::int64_t valid) {  // valid in [0, 8]: the low `valid` lanes
  return static_cast<__mmask8>(valid >= kLanes ? 0xFFu : (1u << valid) - 1u);
}

struct Xor {
  static __m512i apply(__m512i a, __m512i b) { return _mm512_xor_si512(a, b); }
};
struct And {
  static __m512i apply(__m512i a, __m512i b) { return _mm512_and_si512(a, b); }
};

// kAnd row terms: popcount of each row of A, once per call (shared by every output column).
const std::int64_t* row_popcounts(const BgemmArgs& p) {
  const std::int64_t kw = words_for(p.k);
  auto* out = static_cast<std::int64_t*>(scratch(ScratchSlot::kRowTerms, sizeof(std::int64_t) * p.m));
  for (std::int64_t m = 0; m < p.m; ++m) {
    const word_t* a = p.a + m * p.lda;
    __m512i acc = _mm512_setzero_si512();
    for (std::int64_t w = 0; w < kw; w += kLanes) {
      acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_maskz_loadu_epi64(low_lanes(kw - w), a + w)));
    }
    out[m] = _mm512_reduce_add_epi64(acc);
  }
  return out;
}

// Every tile size up to the full one, kRows x kCols (units: rows of B, or panels of 8 of them).
// Edge tiles take the instantiation of their exact size, so every loop bound inside a tile is a
// compile-time constant and all accumulators live in registers.
template <int kRows, int kCols, class Fn>
struct TileTable {
  Fn fn[kRows][kCols];  // fn[r - 1][c - 1]: an r x c tile
};

// ---------------------------------------------------------------- kvec: lanes along K
namespace kvec {

constexpr int kMr = 4;  // rows of A per tile
constexpr int kNr = 4;  // rows of B per tile

// Lane l of the result = the sum of the 8 lanes of v_l.
//   level 1: unpacklo + unpackhi of (v_2p, v_2p+1) leaves, in each 128-bit block, a partial sum
//            of v_2p in the low lane and of v_2p+1 in the high lane.
//   level 2: adding blocks {0,2} to blocks {1,3} (shuffle_i64x2) of two such vectors halves the
//            number of partials.
//   level 3: the same once more; block q then holds the full sums of v_2q, v_2q+1.
inline __m512i hsum8(__m512i v0, __m512i v1, __m512i v2, __m512i v3, __m512i v4, __m512i v5,
                     __m512i v6, __m512i v7) {
  const __m512i s0 = _mm512_add_epi64(_mm512_unpacklo_epi64(v0, v1), _mm512_unpackhi_epi64(v0, v1));
  const __m512i s1 = _mm512_add_epi64(_mm512_unpacklo_epi64(v2, v3), _mm512_unpackhi_epi64(v2, v3));
  const __m512i s2 = _mm512_add_epi64(_mm512_unpacklo_epi64(v4, v5), _mm512_unpackhi_epi64(v4, v5));
  const __m512i s3 = _mm512_add_epi64(_mm512_unpacklo_epi64(v6, v7), _mm512_unpackhi_epi64(v6, v7));
  constexpr int kEven = _MM_SHUFFLE(2, 0, 2, 0);  // blocks 0, 2 of each source
  constexpr int kOdd = _MM_SHUFFLE(3, 1, 3, 1);   // blocks 1, 3 of each source
  const __m512i r0 = _mm512_add_epi64(_mm512_shuffle_i64x2(s0, s1, kEven), _mm512_shuffle_i64x2(s0, s1, kOdd));
  const __m512i r1 = _mm512_add_epi64(_mm512_shuffle_i64x2(s2, s3, kEven), _mm512_shuffle_i64x2(s2, s3, kOdd));
  return _mm512_add_epi64(_mm512_shuffle_i64x2(r0, r1, kEven), _mm512_shuffle_i64x2(r0, r1, kOdd));
}

// One kRows x kCols tile at (m0, n0).
template <class Combine, int kRows, int kCols>
void tile(const BgemmArgs& p, std::int64_t kw, std::int64_t m0, std::int64_t n0, const std::int64_t* row_term) {
  constexpr int kAcc = kRows * kCols;
  constexpr int kGroups = (kAcc + kLanes - 1) / kLanes;
  const word_t* a[kRows];
  const word_t* b[kCols];
  for (int i = 0; i < kRows; ++i) a[i] = p.a + (m0 + i) * p.lda;
  for (int j = 0; j < kCols; ++j) b[j] = p.b + (n0 + j) * p.ldb;

  // Accumulator t = i * kCols + j, padded with zero vectors to whole groups of 8 for hsum8.
  // (Unrolled on purpose: as a loop, GCC 12 turns it into a memset that it cannot delete.)
  __m512i acc[kGroups * kLanes];
#pragma GCC unroll 64
  for (int t = 0; t < kGroups * kLanes; ++t) acc[t] = _mm512_setzero_si512();

  // Full steps and the masked tail in one loop, so the accumulators never leave registers.
  for (std::int64_t w = 0; w < kw; w += kLanes) {
    const __mmask8 mask = low_lanes(kw - w);
    __m512i av[kRows];
    for (int i = 0; i < kRows; ++i) av[i] = _mm512_maskz_loadu_epi64(mask, a[i] + w);
    for (int j = 0; j < kCols; ++j) {
      const __m512i bv = _mm512_maskz_loadu_epi64(mask, b[j] + w);
      for (int i = 0; i < kRows; ++i) {
        acc[i * kCols + j] = _mm512_add_epi64(acc[i * kCols + j], _mm512_popcnt_epi64(Combine::apply(av[i], bv)));
      }
    }
  }

  alignas(32) std::int32_t pop[kGroups * kLanes];
  for (int g = 0; g < kGroups; ++g) {
    const int o = g * kLanes;  // acc indexed directly (no pointer into it): it stays in registers
    const __m512i sums = hsum8(acc[o], acc[o + 1], acc[o + 2], acc[o + 3], acc[o + 4], acc[o + 5],
                               acc[o + 6], acc[o + 7]);
    _mm256_store_si256(reinterpret_cast<__m256i*>(pop + o), _mm512_cvtepi64_epi32(sums));
  }
  for (int i = 0; i < kRows; ++i) {
    const std::int32_t t = static_cast<std::int32_t>(row_term ? row_term[m0 + i] : p.k);
    std::int32_t* c = p.c + (m0 + i) * p.ldc + n0;
    for (int j = 0; j < kCols; ++j) c[j] = t - 2 * pop[i * kCols + j];
  }
}

template <class Combine>
using TileFn = void (*)(const BgemmArgs&, std::int64_t, std::int64_t, std::int64_t, const std::int64_t*);

template <class Combine, int... kI>
TileTable<kMr, kNr, TileFn<Combine>> make_tiles(std::integer_sequence<int, kI...>) {
  TileTable<kMr, kNr, TileFn<Combine>> t{};
  ((t.fn[kI / kNr][kI % kNr] = &tile<Combine, kI / kNr + 1, kI % kNr + 1>), ...);
  return t;
}

template <class Combine>
void run(const BgemmArgs& p, const std::int64_t* row_term) {
  static const auto tiles = make_tiles<Combine>(std::make_integer_sequence<int, kMr * kNr>{});
  const std::int64_t kw = words_for(p.k);
  auto do_tile = [&](std::int64_t m0, std::int64_t n0) {
    const int mr = static_cast<int>(std::min<std::int64_t>(kMr, p.m - m0));
    const int nr = static_cast<int>(std::min<std::int64_t>(kNr, p.n - n0));
    tiles.fn[mr - 1][nr - 1](p, kw, m0, n0, row_term);
  };
  // Sweep the smaller operand in the inner loop: it stays in cache while the tiles of the larger
  // one are each loaded once.
  if (p.m >= p.n) {
    for (std::int64_t m0 = 0; m0 < p.m; m0 += kMr) {
      for (std::int64_t n0 = 0; n0 < p.n; n0 += kNr) do_tile(m0, n0);
    }
  } else {
    for (std::int64_t n0 = 0; n0 < p.n; n0 += kNr) {
      for (std::int64_t m0 = 0; m0 < p.m; m0 += kMr) do_tile(m0, n0);
    }
  }
}

}  // namespace kvec

// ---------------------------------------------------------------- nvec: lanes along N
namespace nvec {

constexpr int kMr = 5;  // rows of A per tile
constexpr int kNv = 4;  // panels (of 8 rows of B) per tile: 32 output columns
// 5 x 4 = 20 accumulators + 4 panel vectors + a broadcast word, of 32 zmm registers. Measured
// against 4x6, 6x4, 7x3, 8x3, 9x3, 10x2, 12x2 on the ResNet-18 shapes: all within a few
// percent, 5x4 ahead on the shortest K (fewest accumulators to store per tile).

// 8x8 transpose of 64-bit elements: afterwards r[j] lane l = (before) r[l] lane j.
inline void transpose8(__m512i r[kLanes]) {
  __m512i t[kLanes];
  __m512i u[kLanes];
#pragma GCC unroll 4
  for (int q = 0; q < 4; ++q) {  // t[2q]: words 0,2,4,6 of rows 2q, 2q+1; t[2q+1]: words 1,3,5,7
    t[2 * q] = _mm512_unpacklo_epi64(r[2 * q], r[2 * q + 1]);
    t[2 * q + 1] = _mm512_unpackhi_epi64(r[2 * q], r[2 * q + 1]);
  }
  const __m512i lo = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
  const __m512i hi = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
#pragma GCC unroll 2
  for (int h = 0; h < 2; ++h) {  // rows 4h..4h+3
#pragma GCC unroll 2
    for (int e = 0; e < 2; ++e) {  // u[4h + q]: word q of the 4 rows, then word q + 4
      u[4 * h + e] = _mm512_permutex2var_epi64(t[4 * h + e], lo, t[4 * h + 2 + e]);
      u[4 * h + 2 + e] = _mm512_permutex2var_epi64(t[4 * h + e], hi, t[4 * h + 2 + e]);
    }
  }
#pragma GCC unroll 4
  for (int q = 0; q < 4; ++q) {
    r[q] = _mm512_shuffle_i64x2(u[q], u[4 + q], _MM_SHUFFLE(1, 0, 1, 0));
    r[q + 4] = _mm512_shuffle_i64x2(u[q], u[4 + q], _MM_SHUFFLE(3, 2, 3, 2));
  }
}

// Panel layout: panel q holds rows 8q..8q+7 of B; its word (w, l) at out[(q * kw + w) * 8 + l]
// is word w of row 8q + l, or 0 for rows past n. Built from 8x8 word blocks, transposed.
void pack_panels(const BgemmArgs& p, std::int64_t kw, word_t* out) {
  const std::int64_t panels = (p.n + kLanes - 1) / kLanes;
  for (std::int64_t q = 0; q < panels; ++q) {
    const word_t* src = p.b + q * kLanes * p.ldb;
    word_t* dst = out + q * kw * kLanes;
    const std::int64_t rows = std::min<std::int64_t>(kLanes, p.n - q * kLanes);
    for (std::int64_t w0 = 0; w0 < kw; w0 += kLanes) {
      const std::int64_t words = std::min<std::int64_t>(kLanes, kw - w0);
      const __mmask8 mask = low_lanes(words);
      __m512i r[kLanes];
#pragma GCC unroll 8
      for (int l = 0; l < kLanes; ++l) {
        r[l] = l < rows ? _mm512_maskz_loadu_epi64(mask, src + l * p.ldb + w0) : _mm512_setzero_si512();
      }
      transpose8(r);
#pragma GCC unroll 8
      for (int j = 0; j < kLanes; ++j) {
        if (j < words) _mm512_storeu_si512(dst + (w0 + j) * kLanes, r[j]);
      }
    }
  }
}

// One kRows x (8 kVecs) tile: rows m0.. of A against the kVecs panels at `panels`, whose first
// column is n0.
template <class Combine, int kRows, int kVecs>
void tile(const BgemmArgs& p, std::int64_t kw, std::int64_t m0, std::int64_t n0, const word_t* panels,
          const std::int64_t* row_term) {
  __m512i acc[kRows][kVecs];
#pragma GCC unroll 16
  for (int i = 0; i < kRows; ++i) {
#pragma GCC unroll 16
    for (int v = 0; v < kVecs; ++v) acc[i][v] = _mm512_setzero_si512();
  }
  const word_t* a = p.a + m0 * p.lda;
  for (std::int64_t w = 0; w < kw; ++w) {
    __m512i b[kVecs];
    for (int v = 0; v < kVecs; ++v) b[v] = _mm512_loadu_si512(panels + (v * kw + w) * kLanes);
    for (int i = 0; i < kRows; ++i) {
      const __m512i x = _mm512_set1_epi64(static_cast<long long>(a[i * p.lda + w]));
      for (int v = 0; v < kVecs; ++v) {
        acc[i][v] = _mm512_add_epi64(acc[i][v], _mm512_popcnt_epi64(Combine::apply(x, b[v])));
      }
    }
  }
  // Output: two neighbouring accumulators (16 columns) at a time. Each pop fits in the low 32
  // bits of its 64-bit lane, so one vpermt2d gathers the 16 low halves in column order.
  const __m512i low_halves = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const std::int64_t cols = p.n - n0;  // > 8 (kVecs - 1): only the last vector may be partial
  for (int i = 0; i < kRows; ++i) {
    const __m512i t = _mm512_set1_epi32(static_cast<int>(row_term ? row_term[m0 + i] : p.k));
    std::int32_t* c = p.c + (m0 + i) * p.ldc + n0;
    for (int v = 0; v < kVecs; v += 2) {
      const __m512i hi = v + 1 < kVecs ? acc[i][v + 1] : _mm512_setzero_si512();
      const __m512i pop = _mm512_permutex2var_epi32(acc[i][v], low_halves, hi);
      const __m512i out = _mm512_sub_epi32(t, _mm512_add_epi32(pop, pop));
      const int in_tile = std::min(2, kVecs - v) * kLanes;  // columns this pair covers
      const std::int64_t valid = std::min<std::int64_t>(in_tile, cols - v * kLanes);
      if (valid == 2 * kLanes) {
        _mm512_storeu_si512(c + v * kLanes, out);
      } else {
        _mm512_mask_storeu_epi32(c + v * kLanes, static_cast<__mmask16>((1u << valid) - 1u), out);
      }
    }
  }
}

template <class Combine>
using TileFn = void (*)(const BgemmArgs&, std::int64_t, std::int64_t, std::int64_t, const word_t*,
                        const std::int64_t*);

template <class Combine, int... kI>
TileTable<kMr, kNv, TileFn<Combine>> make_tiles(std::integer_sequence<int, kI...>) {
  TileTable<kMr, kNv, TileFn<Combine>> t{};
  ((t.fn[kI / kNv][kI % kNv] = &tile<Combine, kI / kNv + 1, kI % kNv + 1>), ...);
  return t;
}

template <class Combine>
void run(const BgemmArgs& p, const std::int64_t* row_term) {
  static const auto tiles = make_tiles<Combine>(std::make_integer_sequence<int, kMr * kNv>{});
  const std::int64_t kw = words_for(p.k);
  const std::int64_t panels = (p.n + kLanes - 1) / kLanes;
  const word_t* packed = static_cast<const word_t*>(p.packed_b);
  if (!packed) {
    auto* mine = static_cast<word_t*>(scratch(ScratchSlot::kPanels, sizeof(word_t) * panels * kw * kLanes));
    pack_panels(p, kw, mine);
    packed = mine;
  }
  // The kNv panels of a column block (kNv * 8 * kw words) stay in L1 while A streams past them.
  for (std::int64_t q0 = 0; q0 < panels; q0 += kNv) {
    const int nv = static_cast<int>(std::min<std::int64_t>(kNv, panels - q0));
    const word_t* block = packed + q0 * kw * kLanes;
    for (std::int64_t m0 = 0; m0 < p.m; m0 += kMr) {
      const int mr = static_cast<int>(std::min<std::int64_t>(kMr, p.m - m0));
      tiles.fn[mr - 1][nv - 1](p, kw, m0, q0 * kLanes, block, row_term);
    }
  }
}

}  // namespace nvec
}  // namespace

void bgemm__4x4__avx512_kvec(const BgemmArgs& p) {
  if (p.mode == BgemmMode::kXor) {
    kvec::run<Xor>(p, nullptr);  // row_term = K
  } else {
    kvec::run<And>(p, row_popcounts(p));
  }
}

std::int64_t bgemm_avx512_nvec_packed_bytes(std::int64_t n, std::int64_t k) {
  return (n + kLanes - 1) / kLanes * words_for(k) * kLanes * static_cast<std::int64_t>(sizeof(word_t));
}

void bgemm_avx512_nvec_pack(const word_t* b, std::int64_t n, std::int64_t k, std::int64_t ldb, void* out) {
  BgemmArgs shape{};
  shape.b = b, shape.n = n, shape.k = k, shape.ldb = ldb;
  nvec::pack_panels(shape, words_for(k), static_cast<word_t*>(out));
}

// One or two rows of A (a batch-1 binary linear layer): each word of B serves at most two rows, so
// repacking B into panels (a read and a write of all of it) would cost more than the product; kvec
// reads B's rows as they are. (The AVX2 nvec kernel routes the same rows the same way; measured there.)
void bgemm__5x32__avx512_nvec(const BgemmArgs& p) {
  const bool few_rows = p.m <= 2;
  if (p.mode == BgemmMode::kXor) {
    few_rows ? kvec::run<Xor>(p, nullptr) : nvec::run<Xor>(p, nullptr);  // row_term = K
  } else {
    const std::int64_t* row_term = row_popcounts(p);
    few_rows ? kvec::run<And>(p, row_term) : nvec::run<And>(p, row_term);
  }
}

}  // namespace onebit
