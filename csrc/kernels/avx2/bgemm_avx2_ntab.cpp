// AVX2 binary GEMM with per-nibble popcount tables selected by A. Compiled with -mavx2 -mfma -mbmi2
// -mpopcnt; dispatched only when the CPU has them.
//
// Idea: vpshufb is a 16-entry table lookup per byte. In 3x8__avx2_nvec (bgemm_avx2.cpp) the table
// is the fixed popcount table and the index is the combined nibble (a op b), so every 4 bits of
// every product pay for the combine. Here the combine moves into the table: for a nibble x of A,
//     T_op[x][y] = popcount(x op y),  y = 0..15   (op = XOR for kXor, AND for kAnd),
// one table per (mode, x): 2 x 16 tables of 32 bytes (the 16 entries twice, one per 128-bit lane).
// Since op is bitwise and the nibbles partition each word, popcount(A op B) over a row is the sum
// over its nibble positions s of T_op[A_s][B_s]. A vpshufb with table T_op[A_s] (same for every
// byte) and index bytes B_s of 32 different columns gives 32 of those terms in one instruction.
//
// Layout ("ntab"): B is repacked into panels of 32 columns; for each nibble position s of K (16 per
// word, s = 16 w + t is bits 4t..4t+3 of word w) a panel holds one 32-byte step vector, byte j =
// nibble s of column col(j), high 4 bits 0. The kNp panels of a tile are interleaved per step, so a
// tile reads one sequential stream (pack_block). Per step: load the kNp step vectors; per row of A,
// pick the table (offset of T[x] = 32 x = rotr(word, 4t - 5) & 0x1E0, x moved to bits 5..8: one
// rorx and one and on the integer pipes), load it, then per panel one vpshufb (index = the step
// vector) and one vpaddb into that row's byte counters. No combine, no nibble split of A, no
// horizontal sums.
//
// Cost per 256 bit-MACs (two 128-MAC vpshufb: one row of A, one step, both panels of a 3 x 2-panel
// tile, i.e. 3 x 64 outputs):
//   this kernel:     2 vpshufb + 2 vpaddb (vector pipes); 1 rorx + 1 and (integer pipes); 1 table
//                    load; 2/3 step-vector load (2 per step, shared by the 3 rows)
//   3x8__avx2_nvec:  2 combines + 2 vpshufb + 2 vpaddb + 1.5 for A's nibble split (broadcast
//                    shared by 2 panels: and, shift, and) = 7.5 vector-pipe ops
// Zen 3 runs vpshufb on 2 of its 4 vector pipes; measured here, a loop of independent vpshufb +
// vpaddb pairs sustains 0.6 cycles per pair (213 MAC/cycle), and ~0.64 with this tile's loads and
// table selection; this kernel reaches ~150 MAC/cycle (flushes, edges, the repack of B).
//
// Counters: a step adds at most 4 to a byte counter, so byte counters are flushed every
// kChunkWords = 3 words (48 steps, <= 192). A flush splits each byte counter into its even and odd
// bytes as 16-bit lanes (& 0x00FF, >> 8) and adds them to 16-bit counters; those gain <= 192 per
// chunk and are widened into int32 totals every 256 chunks (kSuperWords = 768 words: <= 49152).
//
// Column order: the repack (nibble_transpose) takes v[r] (r = 0..7) with 64-bit lane q = the word
// of column 8q + r, and leaves byte j = 16L + 2r + e of a step vector from v[r]'s lane 2L + e
// (L = 128-bit lane, e = 0/1). The even 16-bit counter, unit u = 8L + r, is then column 8(2L) + r,
// and the odd one column 8(2L + 1) + r: zero-extending the low / high 8 units of the even / odd
// counters gives columns 0-7, 8-15, 16-23, 24-31 in order (see `tile`).
//
// Measured here (Zen 3 EPYC, 3.2 GHz, 1 thread, benchmarks/bench_bgemm.py, G binary MAC/s on
// 3136x64x576 / 784x128x1152 / 196x256x2304 / 49x512x4608), kXor:
//   this kernel (3 x 2 panels):  462  488  505  482
//   3x8__avx2_nvec:              286  332  352  344
// Other tiles of this kernel (an earlier version that repacked all of B up front):
//   2 x 4 panels: 436 513 517 474;  3 x 3: 459 460 517 469;  4 x 2: 409 466 497 461;
//   1 x 4: 416 417 385 359.
// The 3 x 2 tile divides every N above into whole tiles and keeps 6 byte counters, 3 tables and
// temporaries inside the 16 ymm registers.
//
// K of at most 4 words (256 bits) runs few_words (below) instead of tiles.
// 3x8__avx2_nvec takes the shapes this kernel is not made for: one or two rows of A (its 1-2 row
// path does not repack B; the repack here costs more than a product with so few rows), N < 32, and
// the last columns when they fill less than half a panel (a panel costs the same with 1 or 32
// columns).
// Measured, G binary MAC/s, this kernel without that routing vs 3x8__avx2_nvec: M x N x K =
// 1000 x 8 x 576: 93 vs 292; 1000 x 16: 184 vs 294; 1000 x 24: 271 vs 292; 1000 x 48 (a panel and
// a half): 356 vs 290;
// 3 x 512 x 4608: 206 vs 180; 4 x 1000 x 9216: 224 vs 240.
#include <immintrin.h>

#include <algorithm>
#include <utility>

#include "avx2_words.h"
#include "onebit/kernels.h"
#include "onebit/scratch.h"  // not std::vector: see scratch.h for why ISA units avoid std templates

namespace onebit {
namespace {

constexpr int kLanes = kWordLanes;      // 64-bit words per ymm
constexpr int kPanelCols = 32;          // columns of B per panel: one byte each in a step vector
constexpr int kSteps = 16;              // nibbles per word
constexpr int kStepBytes = 32;          // one step vector
constexpr int kChunkWords = 3;          // byte counters: <= 4 per step x 48 steps = 192 <= 255
constexpr int kSuperWords = 3 * 256;    // 16-bit counters: <= 192 per chunk x 256 = 49152 <= 65535
constexpr int kMr = 3;                  // rows of A per tile
constexpr int kNp = 2;                  // panels per tile: 64 output columns
constexpr std::int64_t kMinRows = 3;      // fewer rows: 3x8__avx2_nvec (see the header)
constexpr std::int64_t kMinTailCols = 16;  // a last panel with fewer columns: 3x8__avx2_nvec
constexpr int kShortWords = 4;            // K of at most this many words: few_words

// tables.t[mode][x][y] = popcount(x op y) for y = 0..15, twice; mode 0 = XOR, 1 = AND.
struct Tables {
  alignas(32) unsigned char t[2][16][kStepBytes];
};

constexpr Tables make_tables() {
  Tables t{};
  for (int x = 0; x < 16; ++x) {
    for (int j = 0; j < kStepBytes; ++j) {
      const int y = j & 15;
      t.t[0][x][j] = static_cast<unsigned char>(__builtin_popcount(x ^ y));
      t.t[1][x][j] = static_cast<unsigned char>(__builtin_popcount(x & y));
    }
  }
  return t;
}
constexpr Tables kTables = make_tables();

// v[r] (r = 0..7): lane q = one word of column 8q + r. Writes its 16 step vectors, `step` bytes
// apart. Within each 128-bit lane L (columns of lanes 2L, 2L + 1):
//   1. vpshufb pairs the bytes: 16-bit unit b = (byte b of lane 2L, byte b of lane 2L + 1).
//   2. An 8x8 transpose of 16-bit units across v[0..7] (unpack 16, 32, 64): U_b unit r = v[r] unit b,
//      so byte 2r + e of U_b (in lane L) = byte b of the word in v[r]'s lane 2L + e.
//   3. Byte b holds nibbles 2b (low) and 2b + 1 (high): & 0x0F and (>> 4) & 0x0F give those steps
//      (vpsrlw shifts 16-bit lanes; the mask drops the bits shifted in from the byte above).
void nibble_transpose(const __m256i v[8], unsigned char* dst, std::int64_t step) {
  const __m256i pair = _mm256_setr_epi8(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15,
                                        0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
  __m256i a[8];  // a[2i] = units b 0..3 of v[2i], v[2i+1] interleaved; a[2i+1] = units 4..7
  for (int i = 0; i < 4; ++i) {
    const __m256i s0 = _mm256_shuffle_epi8(v[2 * i], pair), s1 = _mm256_shuffle_epi8(v[2 * i + 1], pair);
    a[2 * i] = _mm256_unpacklo_epi16(s0, s1);
    a[2 * i + 1] = _mm256_unpackhi_epi16(s0, s1);
  }
  __m256i c[8];  // c[4h + j]: units 2j, 2j + 1 of v[4h..4h+3], as two 64-bit groups
  for (int h = 0; h < 2; ++h) {
    const __m256i* x = a + 4 * h;
    c[4 * h + 0] = _mm256_unpacklo_epi32(x[0], x[2]);
    c[4 * h + 1] = _mm256_unpackhi_epi32(x[0], x[2]);
    c[4 * h + 2] = _mm256_unpacklo_epi32(x[1], x[3]);
    c[4 * h + 3] = _mm256_unpackhi_epi32(x[1], x[3]);
  }
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  for (int j = 0; j < 4; ++j) {
    const __m256i u[2] = {_mm256_unpacklo_epi64(c[j], c[4 + j]), _mm256_unpackhi_epi64(c[j], c[4 + j])};
    for (int e = 0; e < 2; ++e) {
      unsigned char* d = dst + 2 * (2 * j + e) * step;  // byte b = 2j + e: steps 2b, 2b + 1
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d), _mm256_and_si256(u[e], low4));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + step), _mm256_and_si256(_mm256_srli_epi16(u[e], 4), low4));
    }
  }
}

// Packs the np panels q0.. (columns 32 q0.., 0 past n) into one block: step s of panel q0 + d is at
//   out + (s * np + d) * 32,
// so a tile over the block reads one sequential stream.
void pack_block(const BgemmArgs& p, std::int64_t kw, std::int64_t q0, std::int64_t np, unsigned char* out) {
  for (std::int64_t d = 0; d < np; ++d) {
    for (std::int64_t w0 = 0; w0 < kw; w0 += kLanes) {
      const std::int64_t words = std::min<std::int64_t>(kLanes, kw - w0);
      __m256i v[kLanes][8];  // v[j][r] lane l = word w0 + j of column 8l + r of the panel
      for (int r = 0; r < 8; ++r) {
        __m256i x[kLanes];
        for (int l = 0; l < kLanes; ++l) {
          const std::int64_t col = (q0 + d) * kPanelCols + 8 * l + r;
          x[l] = col < p.n ? load_words(p.b + col * p.ldb + w0, words) : _mm256_setzero_si256();
        }
        transpose4(x);
        for (int j = 0; j < kLanes; ++j) v[j][r] = x[j];
      }
      for (int j = 0; j < words; ++j) {
        nibble_transpose(v[j], out + ((w0 + j) * kSteps * np + d) * kStepBytes, np * kStepBytes);
      }
    }
  }
}

// Offset of T[x] for nibble t of word a: x = bits 4t..4t+3, moved to bits 5..8 (x 32 bytes) by a
// right rotation of 4t - 5 (mod 64; t = 0, 1 rotate left by 5, 1). GCC emits one rorx.
inline std::uint64_t table_offset(std::uint64_t a, int t) {
  const int r = (4 * t + 59) & 63;
  return ((a >> r) | (a << ((64 - r) & 63))) & 0x1E0;
}

// Adds the byte counts of words [w0, w1) (<= kChunkWords) of rows m0.. to bytes[][].
template <int kRows, int kVecs>
inline void chunk(const BgemmArgs& p, const word_t* a, std::int64_t w0, std::int64_t w1, const unsigned char* panels,
                  const unsigned char* table, __m256i (&bytes)[kRows][kVecs]) {
  for (std::int64_t w = w0; w < w1; ++w) {
    std::uint64_t aw[kRows];
    for (int i = 0; i < kRows; ++i) aw[i] = a[i * p.lda + w];
    const unsigned char* bp = panels + w * kSteps * kVecs * kStepBytes;
#pragma GCC unroll 16
    for (int t = 0; t < kSteps; ++t) {
      __m256i b[kVecs];  // loaded once per step: as memory operands of each row's vpshufb, 10% slower
      for (int v = 0; v < kVecs; ++v)
        b[v] = _mm256_load_si256(reinterpret_cast<const __m256i*>(bp + (t * kVecs + v) * kStepBytes));
      for (int i = 0; i < kRows; ++i) {
        const __m256i tab = _mm256_load_si256(reinterpret_cast<const __m256i*>(table + table_offset(aw[i], t)));
        for (int v = 0; v < kVecs; ++v) {
          bytes[i][v] = _mm256_add_epi8(bytes[i][v], _mm256_shuffle_epi8(tab, b[v]));
          // Without this barrier GCC reassociates each counter's 16 adds into a balanced tree,
          // keeping every vpshufb result of the word live: spills on every step.
          asm("" : "+x"(bytes[i][v]));
        }
      }
    }
  }
}

// The popcounts of words [ws, we) (<= kSuperWords) of rows m0.. against the kVecs panels, added to
// tot[i][v][g] (g: columns 8g..8g+7 of panel v, int32).
template <int kRows, int kVecs>
inline void super_chunk(const BgemmArgs& p, const word_t* a, std::int64_t ws, std::int64_t we,
                        const unsigned char* panels, const unsigned char* table, __m256i (&tot)[kRows][kVecs][4]) {
  const __m256i even = _mm256_set1_epi16(0x00FF);
  __m256i half[kRows][kVecs][2];  // 16-bit counters: [0] even bytes, [1] odd bytes
  for (int i = 0; i < kRows; ++i)
    for (int v = 0; v < kVecs; ++v) half[i][v][0] = half[i][v][1] = _mm256_setzero_si256();
  for (std::int64_t w0 = ws; w0 < we; w0 += kChunkWords) {
    __m256i bytes[kRows][kVecs];
    for (int i = 0; i < kRows; ++i)
      for (int v = 0; v < kVecs; ++v) bytes[i][v] = _mm256_setzero_si256();
    chunk<kRows, kVecs>(p, a, w0, std::min<std::int64_t>(we, w0 + kChunkWords), panels, table, bytes);
    for (int i = 0; i < kRows; ++i)
      for (int v = 0; v < kVecs; ++v) {
        half[i][v][0] = _mm256_add_epi16(half[i][v][0], _mm256_and_si256(bytes[i][v], even));
        half[i][v][1] = _mm256_add_epi16(half[i][v][1], _mm256_srli_epi16(bytes[i][v], 8));
      }
  }
  // Group g = 2L + e: 128-bit lane L of counter e (column order in the header).
  for (int i = 0; i < kRows; ++i)
    for (int v = 0; v < kVecs; ++v)
      for (int g = 0; g < 4; ++g) {
        const __m256i h = half[i][v][g & 1];
        const __m128i lane = g < 2 ? _mm256_castsi256_si128(h) : _mm256_extracti128_si256(h, 1);
        tot[i][v][g] = _mm256_add_epi32(tot[i][v][g], _mm256_cvtepu16_epi32(lane));
      }
}

// One kRows x (32 kVecs) tile: rows m0.. of A against the kVecs panels at `panels` (first column n0).
template <int kRows, int kVecs>
void tile(const BgemmArgs& p, std::int64_t kw, std::int64_t m0, std::int64_t n0, const unsigned char* panels,
          const unsigned char* table, const std::int64_t* row_term) {
  const word_t* a = p.a + m0 * p.lda;
  __m256i tot[kRows][kVecs][4];
  for (int i = 0; i < kRows; ++i)
    for (int v = 0; v < kVecs; ++v)
      for (int g = 0; g < 4; ++g) tot[i][v][g] = _mm256_setzero_si256();
  for (std::int64_t ws = 0; ws < kw; ws += kSuperWords) {
    super_chunk<kRows, kVecs>(p, a, ws, std::min<std::int64_t>(kw, ws + kSuperWords), panels, table, tot);
  }
  const std::int64_t cols = p.n - n0;
  for (int i = 0; i < kRows; ++i) {
    const __m256i t = _mm256_set1_epi32(static_cast<int>(row_term ? row_term[m0 + i] : p.k));
    std::int32_t* c = p.c + (m0 + i) * p.ldc + n0;
    for (int v = 0; v < kVecs; ++v) {
      for (int g = 0; g < 4; ++g) {
        const std::int64_t c0 = v * kPanelCols + 8 * g;
        if (c0 >= cols) break;
        const __m256i out = _mm256_sub_epi32(t, _mm256_add_epi32(tot[i][v][g], tot[i][v][g]));
        if (cols - c0 >= 8) {
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + c0), out);
        } else {
          const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(cols - c0)),
                                                  _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
          _mm256_maskstore_epi32(c + c0, mask, out);
        }
      }
    }
  }
}

using TileFn = void (*)(const BgemmArgs&, std::int64_t, std::int64_t, std::int64_t, const unsigned char*,
                        const unsigned char*, const std::int64_t*);

// fn[r - 1][c - 1]: the r x c tile. Edge tiles take the instantiation of their exact size, so
// every loop bound inside a tile is a compile-time constant.
struct TileTable {
  TileFn fn[kMr][kNp];
};

template <int... kI>
TileTable make_tiles(std::integer_sequence<int, kI...>) {
  TileTable t{};
  ((t.fn[kI / kNp][kI % kNp] = &tile<kI / kNp + 1, kI % kNp + 1>), ...);
  return t;
}

constexpr std::int64_t panel_bytes(std::int64_t kw) { return kw * kSteps * kStepBytes; }

// Block by block: each block of kNp panels is packed right before the row tiles that sweep it, so it
// is still in L2 (a whole repacked B, 2x the size of B, can exceed L2: 590 KB for N x K = 512 x 4608).
// A B packed beforehand (bgemm_ntab_pack: the same blocks, one after the other) is read instead.
void run(const BgemmArgs& p, const std::int64_t* row_term) {
  static const TileTable tiles = make_tiles(std::make_integer_sequence<int, kMr * kNp>{});
  const std::int64_t kw = words_for(p.k);
  const std::int64_t panels = (p.n + kPanelCols - 1) / kPanelCols;
  const auto* packed = static_cast<const unsigned char*>(p.packed_b);
  auto* mine = packed ? nullptr : static_cast<unsigned char*>(scratch(ScratchSlot::kPanels, kNp * panel_bytes(kw)));
  const unsigned char* table = &kTables.t[p.mode == BgemmMode::kXor ? 0 : 1][0][0];
  for (std::int64_t q0 = 0; q0 < panels; q0 += kNp) {
    const int np = static_cast<int>(std::min<std::int64_t>(kNp, panels - q0));
    const unsigned char* block = packed ? packed + q0 * panel_bytes(kw) : mine;
    if (!packed) pack_block(p, kw, q0, np, mine);
    for (std::int64_t m0 = 0; m0 < p.m; m0 += kMr) {
      const int mr = static_cast<int>(std::min<std::int64_t>(kMr, p.m - m0));
      tiles.fn[mr - 1][np - 1](p, kw, m0, q0 * kPanelCols, block, table, row_term);
    }
  }
}

}  // namespace

namespace {
// The columns this kernel computes itself: whole panels, plus the last part-panel when it is at least
// half full (see the header); 3x8__avx2_nvec takes the rest.
std::int64_t own_columns(std::int64_t n) {
  const std::int64_t tail = n % kPanelCols;
  return tail < kMinTailCols ? n - tail : n;
}
}  // namespace

std::int64_t bgemm_ntab_packed_bytes(std::int64_t n, std::int64_t k) {
  return std::max<std::int64_t>(1, (own_columns(n) + kPanelCols - 1) / kPanelCols) * panel_bytes(words_for(k));
}

// B's own columns as `run` packs them, block by block (a last block of one panel when their count is
// odd: the block layout depends on it, so the columns must be exactly those `run` gets).
void bgemm_ntab_pack(const word_t* b, std::int64_t n, std::int64_t k, std::int64_t ldb, void* out) {
  n = own_columns(n);
  BgemmArgs shape{};
  shape.b = b, shape.n = n, shape.k = k, shape.ldb = ldb;
  const std::int64_t kw = words_for(k), panels = (n + kPanelCols - 1) / kPanelCols;
  for (std::int64_t q0 = 0; q0 < panels; q0 += kNp) {
    const std::int64_t np = std::min<std::int64_t>(kNp, panels - q0);
    pack_block(shape, kw, q0, np, static_cast<unsigned char*>(out) + q0 * panel_bytes(kw));
  }
}

namespace {
// K of at most kShortWords words (1x1 convs on <= 256 channels: ReActNet-A's first blocks, 112x112 to
// 28x28): a tile above would spend its fixed costs (flushes, widening, 8-column stores) on <= 64 steps.
// Instead, per row of A and 8 columns: the nibble popcount of bgemm_avx2.cpp on whole words. A and B
// are split into nibble planes once (x op y on a nibble plane = the plane of x op y, op bitwise), so
// per 4 outputs and word: 2 combines, 2 vpshufb, 2 vpaddb into byte counters (<= 8 per word, so <= 32),
// then one vpsadbw (byte sums -> the 64-bit lane's popcount). B's planes keep each 8 columns as two
// vectors, columns {0, 2, 4, 6} and {1, 3, 5, 7}: the two vectors' 64-bit counts then interleave into
// int32 lanes in column order with one shift and blend. Packed panels (packed_b) are not read here.
// Measured (1x1 bconv2d through the binding, 1 thread, int32 / float out), one word: 112x112, 32 -> 32
// channels 202 / 284 -> 132 / 205 us; 56x56, 64 -> 64: 86 -> 61 us (int32); a scalar popcnt loop was
// slower (306 us on the first). Two to four words (kernels.bgemm with B packed, best of 9 x 10 calls,
// two runs each): 3136 x 128 x 128 212-226 -> 287-321 G, 784 x 256 x 192 275 -> 300-314 G, 784 x 256
// x 256 289-292 -> 317-344 G; reactnet_a int8 1T 16.82 / 17.07 -> 16.49 / 16.71 ms (interleaved).
template <class Combine, int KW>
void few_words(const BgemmArgs& p, const std::int64_t* row_term) {
  const std::int64_t groups = (p.n + 7) / 8;
  // planes[(g * KW + w) * 4 + 2 h + {0: low, 1: high}]: word w of columns 8 g + {0,2,4,6} (h = 0) or
  // {1,3,5,7} (h = 1), split into nibbles.
  auto* planes = static_cast<__m256i*>(scratch(ScratchSlot::kPanels, sizeof(__m256i) * 4 * KW * groups));
  for (std::int64_t g = 0; g < groups; ++g) {
    for (int w = 0; w < KW; ++w) {
      alignas(32) word_t b[8];
      for (int j = 0; j < 8; ++j) {
        const std::int64_t col = 8 * g + (j < 4 ? 2 * j : 2 * (j - 4) + 1);  // {0,2,4,6}, {1,3,5,7}
        b[j] = col < p.n ? p.b[col * p.ldb + w] : 0;
      }
      for (int h = 0; h < 2; ++h) {
        const Nibbles v = split(_mm256_load_si256(reinterpret_cast<const __m256i*>(b + 4 * h)));
        planes[(g * KW + w) * 4 + 2 * h] = v.lo;
        planes[(g * KW + w) * 4 + 2 * h + 1] = v.hi;
      }
    }
  }
  const __m256i table = popcount_table();
  const __m256i zero = _mm256_setzero_si256();
  for (std::int64_t m = 0; m < p.m; ++m) {
    Nibbles a[KW];
#pragma GCC unroll 4
    for (int w = 0; w < KW; ++w) a[w] = split(_mm256_set1_epi64x(static_cast<long long>(p.a[m * p.lda + w])));
    const __m256i t = _mm256_set1_epi32(static_cast<int>(row_term ? row_term[m] : p.k));
    std::int32_t* c = p.c + m * p.ldc;
    for (std::int64_t g = 0; g < groups; ++g) {
      __m256i pop[2];
      for (int h = 0; h < 2; ++h) {
        __m256i bytes = _mm256_setzero_si256();  // <= 8 per word: <= 32
#pragma GCC unroll 4
        for (int w = 0; w < KW; ++w) {
          const __m256i* pl = planes + (g * KW + w) * 4 + 2 * h;
          const __m256i lo = Combine::apply(a[w].lo, pl[0]), hi = Combine::apply(a[w].hi, pl[1]);
          const __m256i both = _mm256_add_epi8(_mm256_shuffle_epi8(table, lo), _mm256_shuffle_epi8(table, hi));
          bytes = _mm256_add_epi8(bytes, both);
        }
        pop[h] = _mm256_sad_epu8(bytes, zero);  // <= 64 KW: the low 32 bits of each 64-bit lane
      }
      const __m256i pops = _mm256_blend_epi32(pop[0], _mm256_slli_epi64(pop[1], 32), 0xAA);
      const __m256i out = _mm256_sub_epi32(t, _mm256_add_epi32(pops, pops));
      const std::int64_t cols = p.n - 8 * g;
      if (cols >= 8) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + 8 * g), out);
      } else {
        const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(cols)),
                                                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        _mm256_maskstore_epi32(c + 8 * g, mask, out);
      }
    }
  }
}

template <class Combine>
void short_k(const BgemmArgs& p, const std::int64_t* row_term) {  // words_for(p.k) <= kShortWords
  switch (words_for(p.k)) {
    case 1: return few_words<Combine, 1>(p, row_term);
    case 2: return few_words<Combine, 2>(p, row_term);
    case 3: return few_words<Combine, 3>(p, row_term);
    default: return few_words<Combine, 4>(p, row_term);
  }
}
}  // namespace

void bgemm__3x64__avx2_ntab(const BgemmArgs& p) {
  if (words_for(p.k) <= kShortWords && p.m >= kMinRows) {
    if (p.mode == BgemmMode::kXor) {
      short_k<Xor>(p, nullptr);  // row_term = K
    } else {
      short_k<And>(p, row_popcounts(p.a, p.m, p.lda, words_for(p.k)));
    }
    return;
  }
  if (p.m < kMinRows || p.n < kPanelCols) {
    bgemm__3x8__avx2_nvec(p);
    return;
  }
  const std::int64_t cols = own_columns(p.n);
  BgemmArgs head = p;
  head.n = cols;
  if (p.mode == BgemmMode::kXor) {
    run(head, nullptr);  // row_term = K
  } else {
    // kAnd: row_term = popcount(A row), once per row of A, shared by every column.
    run(head, row_popcounts(p.a, p.m, p.lda, words_for(p.k)));
  }
  if (cols < p.n) {  // after run: 3x8__avx2_nvec reuses the scratch slots
    BgemmArgs rest = p;
    rest.b = p.b + cols * p.ldb;
    rest.packed_b = nullptr;
    rest.n = p.n - cols;
    rest.c = p.c + cols;
    bgemm__3x8__avx2_nvec(rest);
  }
}

}  // namespace onebit
