// bconv2d by im2col + bgemm: for a block of output pixels, copy each pixel's taps (whole words,
// bconv2d.h) into a row of a scratch matrix, run a register-tiled bgemm kernel of one ISA on it,
// correct the padding and word-alignment terms, then apply the output transform.
//
// Cost outside the GEMM, per layer call: a padded copy of the input images (pad pattern around
// them, so im2col needs no bounds checks), im2col as KH runs of KW * wg contiguous words per
// output pixel (dilation 1, one group; else KH * KW runs of wg words), the bgemm's own repacking
// of the weights into panels, and one pass over the int32 block for bit / float output. 1x1
// stride-1 unpadded layers skip im2col: the input rows are the GEMM rows. Blocks of output
// pixels (kBlockBytes of im2col rows) keep the im2col block and the int32 block in L2.
//
// This unit is built without ISA flags: it only copies words and adds integers; the work that
// needs an ISA (the bgemm and the bit output transform) runs through the kernel pointers each
// variant passes in (the variants at the bottom name the bgemm they use), and dispatch only
// selects a variant whose ISA the CPU has.
//
// Derivations (the bgemm identities are in bgemm.h, the padding correction in bconv2d.h):
//   * An im2col row is KH*KW taps of words_for(Cg) words; its padding bits are 0 in the rows and
//     the weights, so popcounts over the whole row are popcounts over the K = KH*KW*Cg logical bits.
//     bgemm needs k with words_for(k) = row words. When words_for(K) equals the row words (Cg % 64
//     == 0, or one tap) k = K. Otherwise k = 64 * row words and, in kXor, bgemm returns
//     k - 2 pop = (K - 2 pop) + (k - K): subtract k - K. kAnd returns popcount(A) - 2 pop, with
//     no K in it: nothing to correct.
//   * Padded taps are filled with the pad pattern: bits 0 for pad_value +1 (kXor, kMask) and 0
//     (kAnd), the Cg channel bits set for -1 (kXor, kMask) and 1 (kAnd); then the bgemm result is
//     exact, except kXor / kMask with pad_value 0, where bits 0 stood for +1: subtract wsum[t][o]
//     per padded tap t (bconv2d.h).
//   * kMask runs the block-sparse sbgemm (sbgemm.h) of the variant on a.sparse[g] instead of bgemm;
//     its result has no K in it (popcount(B) - 2 popcount(A AND B)): no k correction.
//   * Dense rows (one group, several taps, Cg < 64 dividing 64, not kMask): a tap of Cg channels fills
//     only Cg bits of its word, so word-aligned taps would make the GEMM pay 64 / Cg times the logical
//     K (ReActNet-A's first 3x3 conv: Cg = 32, half of every word zero). Instead tpw = 64 / Cg taps
//     share a word: tap t at bits (t % tpw) * Cg of word t / tpw, in the rows and in the weights alike
//     (the weights are rearranged per call: C_out x taps words). A bit pattern per tap and
//     popcounts over whole words are unchanged by where the taps sit, so the identities above hold
//     with row words = ceil(taps / tpw) = words_for(K): k = K, no k correction.
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "onebit/kernels.h"
#include "onebit/scratch.h"

namespace onebit {
namespace {

using Acc2BitsFn = void (*)(const Acc2BitsArgs&);
using Acc2FloatFn = void (*)(const Acc2FloatArgs&);
using SbgemmFn = void (*)(const SbgemmArgs&);

constexpr std::int64_t kBlockBytes = 64 * 1024;  // im2col block: stays in L2 while bgemm sweeps it
constexpr std::int64_t kBlockRowMultiple = 60;   // a multiple of every bgemm tile height (3, 4, 5)

struct Plan {
  std::int64_t oh, ow, taps, cg, wg, og;  // wg: words per tap and group; og: outputs per group
  std::int64_t row_words, pixel_words;    // im2col row; one input pixel (all groups)
  std::int64_t k;                         // k passed to bgemm
  std::int64_t tpw;                       // taps per word: 64 / Cg in dense rows, else 1
  std::int32_t k_fix;                     // subtracted from every output (kXor, see above)
  bool zero_pad_fix;                      // kXor, pad_value 0: subtract wsum of padded taps
  bool pad_ones;                          // padded taps are the Cg channel bits set
};

Plan make_plan(const Bconv2dArgs& a) {
  Plan p{};
  p.oh = a.out_height();
  p.ow = a.out_width();
  p.taps = a.kernel_h * a.kernel_w;
  p.cg = a.in_channels / a.groups;
  p.wg = words_for(p.cg);
  p.og = a.out_channels / a.groups;
  const bool dense = a.groups == 1 && p.taps > 1 && p.cg < kWordBits && kWordBits % p.cg == 0 &&
                     a.mode != BgemmMode::kMask;
  p.tpw = dense ? kWordBits / p.cg : 1;
  p.row_words = dense ? (p.taps + p.tpw - 1) / p.tpw : p.taps * p.wg;
  p.pixel_words = a.groups * p.wg;
  const std::int64_t k_logical = p.taps * p.cg;
  p.k = words_for(k_logical) == p.row_words ? k_logical : kWordBits * p.row_words;
  p.k_fix = a.mode == BgemmMode::kXor ? static_cast<std::int32_t>(p.k - k_logical) : 0;
  const bool pm1 = a.mode != BgemmMode::kAnd;  // kXor, kMask: +-1 activations
  p.zero_pad_fix = pm1 && a.pad_value == 0 && (a.pad_h > 0 || a.pad_w > 0);
  p.pad_ones = (pm1 && a.pad_value == -1) || (a.mode == BgemmMode::kAnd && a.pad_value == 1);
  return p;
}

// The pad pattern of one tap and group: wg words, the low cg bits set or none.
void fill_pad(const Plan& p, word_t* pad) {
  for (std::int64_t w = 0; w < p.wg; ++w) {
    const std::int64_t bits = p.pad_ones ? std::min<std::int64_t>(kWordBits, p.cg - w * kWordBits) : 0;
    pad[w] = bits == kWordBits ? ~word_t{0} : (word_t{1} << bits) - 1;
  }
}

// The images the optimized path reads: the input itself when there is no padding, otherwise a
// copy with pad_h / pad_w pixels of the pad pattern around each image (cheap: one word per 64
// channels and pixel, against KH*KW*C_out bit-MACs per bit of it). In the padded images every tap
// of every output pixel is in bounds, so im2col has no bounds checks and copies whole runs.
struct Images {
  const word_t* base;   // image n0 at base, image n at base + (n - n0) * hp * wp * pixel_words
  std::int64_t n0, hp, wp;
};

// Words of scratch the padded copy of images [n0, n1] needs (0: no padding, no copy).
std::int64_t padded_words(const Bconv2dArgs& a, const Plan& p, std::int64_t n0, std::int64_t n1) {
  if (a.pad_h == 0 && a.pad_w == 0) return 0;
  return (n1 - n0 + 1) * (a.height + 2 * a.pad_h) * (a.width + 2 * a.pad_w) * p.pixel_words;
}

Images pad_images(const Bconv2dArgs& a, const Plan& p, std::int64_t n0, std::int64_t n1, const word_t* pad,
                  word_t* buf) {
  if (a.pad_h == 0 && a.pad_w == 0) return {a.x, 0, a.height, a.width};
  const std::int64_t hp = a.height + 2 * a.pad_h, wp = a.width + 2 * a.pad_w, pw = p.pixel_words;
  for (std::int64_t n = n0; n <= n1; ++n) {
    for (std::int64_t y = 0; y < hp; ++y) {
      word_t* row = buf + ((n - n0) * hp + y) * wp * pw;
      const std::int64_t iy = y - a.pad_h;
      const bool inside = iy >= 0 && iy < a.height;
      for (std::int64_t x = 0; x < wp; ++x) {
        if (inside && x == a.pad_w) {  // the input row, in one copy
          std::memcpy(row + x * pw, a.x + (n * a.height + iy) * a.width * pw, sizeof(word_t) * a.width * pw);
          x += a.width - 1;
          continue;
        }
        for (std::int64_t g = 0; g < a.groups; ++g) std::memcpy(row + x * pw + g * p.wg, pad, sizeof(word_t) * p.wg);
      }
    }
  }
  return {buf, n0, hp, wp};
}

// `count` words. The runs here are a few words (3 for 64 channels and a 3-wide kernel), too short
// for a memcpy call: 2 words at a time with SSE2 (x86-64 baseline), else a plain loop.
inline void copy_words(word_t* dst, const word_t* src, std::int64_t count) {
  std::int64_t i = 0;
#if defined(__SSE2__)
  for (; i + 2 <= count; i += 2) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
  }
#endif
  for (; i < count; ++i) dst[i] = src[i];
}

// Rows of group g for output pixels [p0, p0 + rows). The taps of row ky are KW runs of wg words,
// dilation_w * pixel_words apart; with dilation 1 and one group they touch: one run of KW * wg.
void im2col(const Bconv2dArgs& a, const Plan& p, const Images& im, std::int64_t g, std::int64_t p0,
            std::int64_t rows, word_t* buf) {
  const std::int64_t pw = p.pixel_words;
  const bool one_run = a.dilation_w == 1 && pw == p.wg;
  const std::int64_t run = one_run ? a.kernel_w * p.wg : p.wg, runs = one_run ? 1 : a.kernel_w;
  const std::int64_t run_step = a.dilation_w * pw, row_step = a.dilation_h * im.wp * pw, pixel_step = a.stride_w * pw;
  for (std::int64_t r = 0; r < rows;) {  // one output-row segment at a time
    const std::int64_t px = p0 + r;
    const std::int64_t n = px / (p.oh * p.ow), oy = px / p.ow % p.oh, ox0 = px % p.ow;
    const std::int64_t count = std::min(rows - r, p.ow - ox0);
    const word_t* src0 = im.base + (((n - im.n0) * im.hp + oy * a.stride_h) * im.wp + ox0 * a.stride_w) * pw + g * p.wg;
    word_t* dst0 = buf + r * p.row_words;
    for (std::int64_t i = 0; i < count; ++i) {
      const word_t* src = src0 + i * pixel_step;
      word_t* dst = dst0 + i * p.row_words;
      for (std::int64_t ky = 0; ky < a.kernel_h; ++ky, src += row_step) {
        for (std::int64_t k = 0; k < runs; ++k, dst += run) copy_words(dst, src + k * run_step, run);
      }
    }
    r += count;
  }
}

// Dense rows (tpw > 1, one group, wg = pixel words = 1): the same walk as im2col, each tap's word
// shifted to its place in the row (its bits past Cg are 0: the padding convention and the pad pattern).
void im2col_dense(const Bconv2dArgs& a, const Plan& p, const Images& im, std::int64_t p0, std::int64_t rows,
                  word_t* buf) {
  const std::int64_t run_step = a.dilation_w, row_step = a.dilation_h * im.wp;
  for (std::int64_t r = 0; r < rows;) {  // one output-row segment at a time
    const std::int64_t px = p0 + r;
    const std::int64_t n = px / (p.oh * p.ow), oy = px / p.ow % p.oh, ox0 = px % p.ow;
    const std::int64_t count = std::min(rows - r, p.ow - ox0);
    const word_t* src0 = im.base + ((n - im.n0) * im.hp + oy * a.stride_h) * im.wp + ox0 * a.stride_w;
    for (std::int64_t i = 0; i < count; ++i) {
      const word_t* src = src0 + i * a.stride_w;
      word_t* dst = buf + (r + i) * p.row_words;
      std::fill(dst, dst + p.row_words, word_t{0});
      int shift = 0;  // tap t at bits (t % tpw) * Cg of word t / tpw, counted without divisions
      for (std::int64_t ky = 0; ky < a.kernel_h; ++ky, src += row_step) {
        for (std::int64_t kx = 0; kx < a.kernel_w; ++kx) {
          *dst |= src[kx * run_step] << shift;
          shift += static_cast<int>(p.cg);
          if (shift == kWordBits) shift = 0, ++dst;
        }
      }
    }
    r += count;
  }
}

// The weights in dense rows (see the header): out[o * row_words + t / tpw] holds tap t of output o.
void dense_weights(const Bconv2dArgs& a, const Plan& p, word_t* out) {
  for (std::int64_t o = 0; o < a.out_channels; ++o) {
    word_t* row = out + o * p.row_words;
    std::fill(row, row + p.row_words, word_t{0});
    for (std::int64_t t = 0; t < p.taps; ++t) row[t / p.tpw] |= a.weight[o * p.taps + t] << (t % p.tpw * p.cg);
  }
}

// Subtract wsum[t][:] of every padded tap t of output pixel px from its accumulator row.
void fix_zero_padding(const Bconv2dArgs& a, const Plan& p, std::int64_t px, const std::int32_t* tap_sums,
                      std::int32_t* acc) {
  const std::int64_t oy = px / p.ow % p.oh, ox = px % p.ow;
  const std::int64_t y0 = oy * a.stride_h - a.pad_h, x0 = ox * a.stride_w - a.pad_w;
  const bool interior = y0 >= 0 && y0 + (a.kernel_h - 1) * a.dilation_h < a.height && x0 >= 0 &&
                        x0 + (a.kernel_w - 1) * a.dilation_w < a.width;
  if (interior) return;
  for (std::int64_t ky = 0; ky < a.kernel_h; ++ky) {
    const std::int64_t iy = y0 + ky * a.dilation_h;
    for (std::int64_t kx = 0; kx < a.kernel_w; ++kx) {
      const std::int64_t ix = x0 + kx * a.dilation_w;
      if (iy >= 0 && iy < a.height && ix >= 0 && ix < a.width) continue;
      const std::int32_t* ws = tap_sums + (ky * a.kernel_w + kx) * a.out_channels;
      for (std::int64_t c = 0; c < a.out_channels; ++c) acc[c] -= ws[c];
    }
  }
}

void fix_block(const Bconv2dArgs& a, const Plan& p, std::int64_t p0, std::int64_t rows, const std::int32_t* tap_sums,
               std::int32_t* acc) {
  for (std::int64_t r = 0; r < rows; ++r) {
    std::int32_t* row = acc + r * a.out_channels;
    if (p.k_fix) {
      for (std::int64_t c = 0; c < a.out_channels; ++c) row[c] -= p.k_fix;
    }
    if (p.zero_pad_fix) fix_zero_padding(a, p, p0 + r, tap_sums, row);
  }
}

// The output transform of a block of rows (int32 rows were written in place by bgemm).
void write_block(const Bconv2dArgs& a, std::int64_t p0, std::int64_t rows, const std::int32_t* acc, Acc2BitsFn to_bits,
                 Acc2FloatFn to_float) {
  const OutputTransform& t = a.output;
  if (t.kind == OutputKind::kFloat) {
    float* out = static_cast<float*>(t.out) + p0 * a.out_channels;
    if (t.epilogue_acc) return t.epilogue_acc(t.epilogue_ctx, acc, a.out_channels, out, p0, rows);
    to_float(Acc2FloatArgs{acc, rows, a.out_channels, a.out_channels, t.multiplier, t.bias, out});
    if (t.epilogue) t.epilogue(t.epilogue_ctx, out, p0, rows);
  } else if (t.kind == OutputKind::kBits) {
    word_t* out = static_cast<word_t*>(t.out) + p0 * grouped_words(a.out_channels, t.out_groups);
    to_bits(Acc2BitsArgs{acc, rows, a.out_channels, a.out_channels, t.threshold, t.flip, t.out_groups, out});
  }
}

// 1x1, stride 1, no padding: output pixel p reads input pixel p only, so the input rows are the
// im2col rows (lda = the words of a pixel, group g at word offset g * wg): no copy at all.
bool direct_rows(const Bconv2dArgs& a) {
  return a.kernel_h == 1 && a.kernel_w == 1 && a.stride_h == 1 && a.stride_w == 1 && a.pad_h == 0 && a.pad_w == 0;
}

void run(const Bconv2dArgs& a, BgemmFn gemm, SbgemmFn sgemm, Acc2BitsFn to_bits, Acc2FloatFn to_float) {
  if (a.pixel_end <= a.pixel_begin) return;
  if (a.mode == BgemmMode::kMask && !a.sparse) throw std::invalid_argument("bconv2d: kMask needs sparse weights");
  const Plan p = make_plan(a);
  const bool direct = direct_rows(a);
  const std::int64_t block = std::max(kBlockRowMultiple, kBlockBytes / (8 * p.row_words) / kBlockRowMultiple *
                                                             kBlockRowMultiple);
  const std::int64_t rows_max = std::min(block, a.pixel_end - a.pixel_begin);
  const std::int64_t n0 = a.pixel_begin / (p.oh * p.ow), n1 = (a.pixel_end - 1) / (p.oh * p.ow);
  const std::int64_t padded = direct ? 0 : padded_words(a, p, n0, n1);
  const std::int64_t im2col_words = direct ? 0 : rows_max * p.row_words;
  auto* pad = static_cast<word_t*>(scratch(ScratchSlot::kIm2col, sizeof(word_t) * (p.wg + padded + im2col_words)));
  fill_pad(p, pad);
  const Images im = direct ? Images{a.x, 0, a.height, a.width} : pad_images(a, p, n0, n1, pad, pad + p.wg);
  word_t* buf = pad + p.wg + padded;
  const std::int32_t* tap_sums = a.tap_sums;
  if (p.zero_pad_fix && !tap_sums) {
    auto* ts = static_cast<std::int32_t*>(scratch(ScratchSlot::kConvTerms, sizeof(std::int32_t) * p.taps * a.out_channels));
    bconv2d_tap_sums(a, ts);
    tap_sums = ts;
  }
  const bool packed = a.packed_weight && a.packed_for == gemm;
  const word_t* weight = a.weight;
  if (p.tpw > 1) {  // also when packed: a bgemm reads B as it is for some shapes (few rows, last columns)
    auto* dw = static_cast<word_t*>(scratch(ScratchSlot::kDenseWeights, sizeof(word_t) * a.out_channels * p.row_words));
    dense_weights(a, p, dw);
    weight = dw;
  }
  const bool int_out = a.output.kind == OutputKind::kInt32;  // bgemm writes the output itself
  auto* acc_buf = int_out ? nullptr
                          : static_cast<std::int32_t*>(scratch(ScratchSlot::kAcc, sizeof(std::int32_t) * rows_max * a.out_channels));
  for (std::int64_t p0 = a.pixel_begin; p0 < a.pixel_end; p0 += rows_max) {
    const std::int64_t rows = std::min(rows_max, a.pixel_end - p0);
    std::int32_t* acc = int_out ? static_cast<std::int32_t*>(a.output.out) + p0 * a.out_channels : acc_buf;
    for (std::int64_t g = 0; g < a.groups; ++g) {
      const word_t* rows_a = direct ? a.x + p0 * p.pixel_words + g * p.wg : buf;
      if (!direct) p.tpw > 1 ? im2col_dense(a, p, im, p0, rows, buf) : im2col(a, p, im, g, p0, rows, buf);
      const std::int64_t lda = direct ? p.pixel_words : p.row_words;
      if (a.mode == BgemmMode::kMask) {
        sgemm(SbgemmArgs{rows_a, rows, lda, a.sparse[g], acc + g * p.og, a.out_channels});
      } else {
        BgemmArgs b{rows_a, weight + g * p.og * p.row_words, rows, p.og, p.k, lda, p.row_words, a.mode,
                    acc + g * p.og, a.out_channels};
        if (packed) {
          b.packed_b = static_cast<const char*>(a.packed_weight) + g * a.packed_group_bytes;
        }
        gemm(b);
      }
    }
    fix_block(a, p, p0, rows, tap_sums, acc);
    write_block(a, p0, rows, acc, to_bits, to_float);
  }
}

}  // namespace

void bconv2d_tap_sums(const Bconv2dArgs& a, std::int32_t* out) {
  // wsum[t][o] = sum_j (1 - 2 B_j) = Cg - 2 popcount(w(o, t)) (bconv2d.h); kMask: sum_j B_j =
  // popcount(w(o, t)). Padding bits are 0.
  const std::int64_t taps = a.kernel_h * a.kernel_w, cg = a.in_channels / a.groups, wg = words_for(cg);
  for (std::int64_t o = 0; o < a.out_channels; ++o) {
    for (std::int64_t t = 0; t < taps; ++t) {
      const word_t* w = a.weight + (o * taps + t) * wg;
      std::int64_t pop = 0;
      for (std::int64_t i = 0; i < wg; ++i) pop += __builtin_popcountll(w[i]);
      out[t * a.out_channels + o] = static_cast<std::int32_t>(a.mode == BgemmMode::kMask ? pop : cg - 2 * pop);
    }
  }
}

std::int64_t bconv2d_packed_group_bytes(const Bconv2dArgs& a, BgemmFn gemm) {
  const BgemmPacking* packing = bgemm_packing(gemm);
  if (!packing || a.mode == BgemmMode::kMask) return 0;
  const Plan p = make_plan(a);
  return packing->bytes(p.og, p.k);
}

void bconv2d_pack_weight(const Bconv2dArgs& a, BgemmFn gemm, void* out) {
  const std::int64_t bytes = bconv2d_packed_group_bytes(a, gemm);
  if (bytes == 0) return;
  const Plan p = make_plan(a);
  std::vector<word_t> dense;  // the rows the kernel multiplies: dense ones when taps share words
  if (p.tpw > 1) {
    dense.resize(static_cast<std::size_t>(a.out_channels * p.row_words));
    dense_weights(a, p, dense.data());
  }
  const word_t* weight = p.tpw > 1 ? dense.data() : a.weight;
  for (std::int64_t g = 0; g < a.groups; ++g) {
    bgemm_packing(gemm)->pack(weight + g * p.og * p.row_words, p.og, p.k, p.row_words,
                              static_cast<char*>(out) + g * bytes);
  }
}

void bconv2d__im2col_4x4__portable(const Bconv2dArgs& a) {
  run(a, &bgemm__4x4__portable, &sbgemm__4x8__portable, &acc2bits__portable, &acc2float__portable);
}
void bconv2d__im2col_3x8__avx2_nvec(const Bconv2dArgs& a) {
  run(a, &bgemm__3x8__avx2_nvec, &sbgemm__3x8__avx2_nvec, &acc2bits__avx2, &acc2float__avx2);
}
void bconv2d__im2col_3x64__avx2_ntab(const Bconv2dArgs& a) {
  run(a, &bgemm__3x64__avx2_ntab, &sbgemm__3x8__avx2_nvec, &acc2bits__avx2, &acc2float__avx2);
}
void bconv2d__im2col_5x32__avx512_nvec(const Bconv2dArgs& a) {
  run(a, &bgemm__5x32__avx512_nvec, &sbgemm__8x8__avx512_nvec, &acc2bits__avx512, &acc2float__avx512);
}

}  // namespace onebit
