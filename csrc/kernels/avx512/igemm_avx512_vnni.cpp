// AVX-512 VNNI igemm (igemm.h): tiles of up to 6 rows of A x 64 columns, on vpdpbusd.
// Compiled with the AVX-512 flags (+ -mavx512vnni); dispatched only when the CPU has them.
//
// vpdpbusd multiplies, per 32-bit lane, 4 unsigned bytes of its first source by 4 signed bytes of
// its second and adds the 4 products to the lane: 64 multiply-adds per 512-bit instruction, with
// the accumulation folded in (the AVX2 kernel's vpmaddwd + vpaddd do 16 per 256-bit pair). The
// unsigned operand is A, offset by 128:
//     u = a + 128, in [1, 255] for a in [-127, 127]: the byte of a (two's complement) with its top
//     bit flipped, u = uint8(a) ^ 0x80 (a = -1 = 0xFF -> 0x7F = 127 = -1 + 128);
//     sum_i a_i w_i = sum_i u_i w_i - 128 sum_i w_i,
// so each column j subtracts corr_j = 128 sum_i W[j][i], which is itself a vpdpbusd of 128-bytes
// with B's vectors (computed while B is repacked).
// Exact: every partial sum of u * w is at most k * 255 * 127 in magnitude, below 2^31 for
// k <= kVnniMaxK = 66311, and corr_j at most k * 128 * 127: no lane ever wraps, and the difference is
// the exact int32 product sum of igemm.h. Larger k (no real layer has one) and m < kMinRows go to
// the AVX2 kernel: with a row or two of A (the batch-1 heads) B is read once, so repacking it here
// would cost as much as the product.
//
// Layouts, rebuilt per call in thread scratch:
//  B: igemm.h's panels (blocks of 8 rows x pairs of K) regrouped into column groups of 16 x quads
//     of K: group g (columns 16g .. 16g + 15), quad q (K 4q .. 4q + 3) is 64 bytes,
//         byte 4j + e = W[16g + j][4q + e]      (0 past n or k),
//     one zmm whose 32-bit lane j is column 16g + j's 4 weights of the quad. In the panels, block
//     2g + h at pairs 2q and 2q + 1 holds rows 8h .. 8h + 7 as 16-bit units (W[r][4q], W[r][4q + 1])
//     and (W[r][4q + 2], W[r][4q + 3]); interleaving the units of the two (punpcklwd, punpckhwd)
//     gives rows 8h .. 8h + 3 and 8h + 4 .. 8h + 7 with their 4 bytes in order: bytes 32h .. 32h + 31.
//     Groups are stored one after the other (kq / 4 quads each), then corr (16 int32 per group).
//  A: the rows of one tile as bytes u (vpmovwb keeps the low byte of each int16: a is in int8's
//     range), kq = 4 * quads bytes per row; past k (where B is 0) the bytes are 0x80.
//
// Tile: 6 rows x 4 groups = 24 zmm accumulators, 4 B vectors and 1 broadcast A quad: 29 of the 32
// zmm registers. Per quad: 4 loads of B, 6 broadcast loads of A, 24 vpdpbusd for 1536 multiply-adds.
// Fewer than 4 groups left: the same tile with 2 or 1 group(s); in the last group only columns
// < n are stored (a masked store).
//
// Not measured on hardware yet: the machines that built it have no AVX-512; its tests ran on SIMDe's
// emulation (scripts/test_avx512_emulated.sh). DESIGN.md section 6 measured vpdpbusd at 231 G MAC/s
// per core on the project's Zen 4, against ~70 G MAC/s for the AVX2 kernel on a Zen 3.
#include <immintrin.h>

#include <cstring>

#include "onebit/kernels.h"
#include "onebit/scratch.h"

namespace onebit {
namespace {

constexpr int kMr = 6;
constexpr int kGroupCols = 16;             // int32 lanes of a zmm
constexpr std::int64_t kQuadBytes = 64;    // one group x one quad
constexpr std::int64_t kMinRows = 8;       // fewer: the AVX2 kernel (see the header)
constexpr std::int64_t kVnniMaxK = 66311;  // 66311 * 255 * 127 < 2^31

// B's panels -> groups of 16 columns x quads, and corr (see the header).
void pack_b(const IgemmArgs& p, std::int64_t groups, std::int64_t quads, std::int8_t* out, std::int32_t* corr) {
  const std::int64_t pairs = igemm_kp(p.k) / 2, blocks = (p.n + kIgemmBlock - 1) / kIgemmBlock;
  const __m512i offset = _mm512_set1_epi8(static_cast<char>(0x80));
  auto chunk = [&](std::int64_t block, std::int64_t pair) {
    if (block >= blocks || pair >= pairs) return _mm_setzero_si128();
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p.b + (block * pairs + pair) * 16));
  };
  for (std::int64_t g = 0; g < groups; ++g) {
    __m512i c = _mm512_setzero_si512();
    for (std::int64_t q = 0; q < quads; ++q) {
      std::int8_t* dst = out + (g * quads + q) * kQuadBytes;
      for (int h = 0; h < 2; ++h) {
        const __m128i lo = chunk(2 * g + h, 2 * q), hi = chunk(2 * g + h, 2 * q + 1);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 32 * h), _mm_unpacklo_epi16(lo, hi));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 32 * h + 16), _mm_unpackhi_epi16(lo, hi));
      }
      c = _mm512_dpbusd_epi32(c, offset, _mm512_loadu_si512(dst));
    }
    _mm512_storeu_si512(corr + g * kGroupCols, c);
  }
}

// Rows [r0, r0 + rows) of A -> bytes u = uint8(a) ^ 0x80, kq per row (see the header).
void pack_a(const IgemmArgs& p, std::int64_t r0, int rows, std::int64_t kq, std::uint8_t* out) {
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  for (int r = 0; r < rows; ++r) {
    const std::int16_t* src = p.a + (r0 + r) * p.lda;
    std::uint8_t* dst = out + r * kq;
    std::int64_t i = 0;
    for (; i + 32 <= p.k; i += 32) {
      const __m256i bytes = _mm512_cvtepi16_epi8(_mm512_loadu_si512(src + i));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm256_xor_si256(bytes, flip));
    }
    for (; i < p.k; ++i) dst[i] = static_cast<std::uint8_t>(static_cast<std::uint8_t>(src[i]) ^ 0x80u);
    for (; i < kq; ++i) dst[i] = 0x80;
  }
}

inline __m512i broadcast_quad(const std::uint8_t* p) {
  std::int32_t quad;
  std::memcpy(&quad, p, sizeof quad);
  return _mm512_set1_epi32(quad);
}

// kRows rows of packed A (kq bytes apart) x kVecs groups from group g0; writes columns 16 g0 .. of
// rows r0 .. of C. Loops fully unrolled so that GCC keeps acc in registers (as in igemm_avx2.cpp).
template <int kRows, int kVecs>
void tile(const IgemmArgs& p, const std::uint8_t* a, std::int64_t kq, const std::int8_t* bq, const std::int32_t* corr,
          std::int64_t quads, std::int64_t r0, std::int64_t g0) {
  __m512i acc[kRows][kVecs];
#pragma GCC unroll 8
  for (int i = 0; i < kRows; ++i) {
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v) acc[i][v] = _mm512_setzero_si512();
  }
  const std::int8_t* b = bq + g0 * quads * kQuadBytes;
  for (std::int64_t q = 0; q < quads; ++q) {
    __m512i bv[kVecs];
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v) bv[v] = _mm512_loadu_si512(b + (v * quads + q) * kQuadBytes);
#pragma GCC unroll 8
    for (int i = 0; i < kRows; ++i) {
      const __m512i av = broadcast_quad(a + i * kq + 4 * q);
#pragma GCC unroll 4
      for (int v = 0; v < kVecs; ++v) acc[i][v] = _mm512_dpbusd_epi32(acc[i][v], av, bv[v]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < kRows; ++i) {
    std::int32_t* c = p.c + (r0 + i) * p.ldc;
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v) {
      const std::int64_t col = (g0 + v) * kGroupCols, left = p.n - col;
      const __m512i out = _mm512_sub_epi32(acc[i][v], _mm512_loadu_si512(corr + col));
      if (left >= kGroupCols) {
        _mm512_storeu_si512(c + col, out);
      } else {
        _mm512_mask_storeu_epi32(c + col, static_cast<__mmask16>((1u << left) - 1u), out);
      }
    }
  }
}

// Every group for one row tile: 4 at a time, then 2, then 1.
template <int kRows, int kVecs>
void columns(const IgemmArgs& p, const std::uint8_t* a, std::int64_t kq, const std::int8_t* bq,
             const std::int32_t* corr, std::int64_t quads, std::int64_t r0, std::int64_t g0, std::int64_t groups) {
  std::int64_t g = g0;
  for (; g + kVecs <= groups; g += kVecs) tile<kRows, kVecs>(p, a, kq, bq, corr, quads, r0, g);
  if constexpr (kVecs > 1) {
    if (g < groups) columns<kRows, kVecs / 2>(p, a, kq, bq, corr, quads, r0, g, groups);
  }
}

template <int kRows>
void row_tile(const IgemmArgs& p, std::uint8_t* a, std::int64_t kq, const std::int8_t* bq, const std::int32_t* corr,
              std::int64_t quads, std::int64_t r0, std::int64_t groups) {
  pack_a(p, r0, kRows, kq, a);
  columns<kRows, 4>(p, a, kq, bq, corr, quads, r0, 0, groups);
}

}  // namespace

void igemm__6x64__avx512_vnni(const IgemmArgs& args) {
  if (args.m < kMinRows || args.k > kVnniMaxK) {
    igemm__6x16__avx2(args);
    return;
  }
  const std::int64_t quads = (args.k + 3) / 4, kq = 4 * quads, groups = (args.n + kGroupCols - 1) / kGroupCols;
  const std::int64_t b_bytes = groups * quads * kQuadBytes;
  auto* bq = static_cast<std::int8_t*>(
      scratch(ScratchSlot::kIgemmB, static_cast<std::size_t>(b_bytes + groups * kGroupCols * 4)));
  auto* corr = reinterpret_cast<std::int32_t*>(bq + b_bytes);  // b_bytes is a multiple of 64
  auto* a = static_cast<std::uint8_t*>(scratch(ScratchSlot::kIgemmA, static_cast<std::size_t>(kMr * kq)));
  pack_b(args, groups, quads, bq, corr);
  std::int64_t r0 = 0;
  for (; r0 + kMr <= args.m; r0 += kMr) row_tile<kMr>(args, a, kq, bq, corr, quads, r0, groups);
  switch (args.m - r0) {
    case 5: row_tile<5>(args, a, kq, bq, corr, quads, r0, groups); break;
    case 4: row_tile<4>(args, a, kq, bq, corr, quads, r0, groups); break;
    case 3: row_tile<3>(args, a, kq, bq, corr, quads, r0, groups); break;
    case 2: row_tile<2>(args, a, kq, bq, corr, quads, r0, groups); break;
    case 1: row_tile<1>(args, a, kq, bq, corr, quads, r0, groups); break;
    default: break;
  }
}

}  // namespace onebit
