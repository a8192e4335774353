// Binary 2-D convolution ("bconv2d") on bit-packed NHWC activations.
//
// Layouts (all little-endian uint64 words, bitpack.h; G = groups, Cg = C_in / G, Og = C_out / G):
//   x:      (N, H, W, G * words_for(Cg)) words. Each group's Cg channels start at a word
//           boundary: channel g * Cg + j is bit j % 64 of word g * words_for(Cg) + j / 64 of its
//           pixel (output_transform.h: grouped_words). G = 1 is the plain NHWC packing of C_in.
//   weight: (C_out, KH, KW, words_for(Cg)) words: output channel o, tap (ky, kx), the Cg input
//           channels of group o / Og, each tap padded to whole words. With taps word-aligned the
//           implicit im2col row of an output pixel is a concatenation of whole input words.
//   out:    (N, OH, OW, C_out) int32 / float, or (N, OH, OW, grouped_words(C_out, out_groups))
//           words: see OutputTransform. OH = (H + 2 pad_h - dil_h (KH - 1) - 1) / stride_h + 1.
// Padding bits (past Cg in each group / tap) are 0 in x and weight and stay 0 in bit outputs.
//
// The dot product of output pixel p and output channel o (group g) over the taps t = (ky, kx):
//     acc[p][o] = sum_t sum_{j < Cg} a(p, t, j) * w(o, t, j)
// with w = 1 - 2 B (weight bit 1 <=> -1) and a per BgemmMode (bgemm.h): kXor a = 1 - 2 A (+-1),
// kAnd a = A ({0,1}). kMask: a = 1 - 2 A (+-1) and w = B ({0,1}: SBNN's mask, bit 1 <=> 1); the
// optimized variants run it on the block-sparse weights `sparse` (sbgemm.h), which must hold the
// same bits as `weight` (the reference reads `weight`). A tap that falls outside the input (padding) has a = pad_value for every j:
//   pad_value +1 (kXor): bits 0;  -1 (kXor): bits 1;  1 (kAnd): bits 1;  0: the tap adds nothing.
// For kAnd, pad_value 0 and "bits 0" are the same thing (a = A = 0), so zero padding is exact.
// For kXor, a = 0 is not a bit value. Derivation of the correction the optimized kernels use:
// they fill padded taps with bits 0 (+1 padding), giving
//     acc_plus = sum_{valid t} dot_t + sum_{padded t} sum_j (+1) w(o, t, j),
// and sum_j w(o, t, j) = sum_j (1 - 2 B_j) = Cg - 2 popcount(w(o, t)) =: wsum[o][t], so
//     acc_zero = acc_plus - sum_{padded t} wsum[o][t].
// Equivalently acc_zero = K_valid - 2 popcount over the valid taps only, K_valid = #valid * Cg.
// kMask pads like kXor: bits 0 (+1) for pad_value +1 and 0, Cg bits set for -1. A padded tap with
// bits 0 adds sum_j (+1) B_j = popcount(w(o, t)) to sbgemm's result, so for pad_value 0
//     acc_zero = acc_plus - sum_{padded t} wsum[o][t],  wsum[o][t] = popcount(w(o, t))   (kMask).
//
// Range: |acc| <= KH * KW * Cg, which must be < 2^31 (checked by the binding).
//
// Threads: a call computes the output pixels [pixel_begin, pixel_end) of the flat (n, oy, ox)
// order; the kernels are single-threaded and use thread-local scratch (scratch.h), so an engine
// parallelizes by giving each thread its own pixel range of the same layer.
#pragma once

#include <cstdint>

#include "onebit/bgemm.h"
#include "onebit/bitpack.h"
#include "onebit/output_transform.h"
#include "onebit/sbgemm.h"

namespace onebit {

// Output size of one spatial dimension (PyTorch's formula, floor division); 0 means no output
// (the window does not fit: C++ division truncates toward 0, so that case is handled first).
inline constexpr std::int64_t conv_out_size(std::int64_t in, std::int64_t kernel, std::int64_t stride,
                                            std::int64_t pad, std::int64_t dilation) {
  const std::int64_t span = in + 2 * pad - dilation * (kernel - 1) - 1;  // last window start
  return span < 0 ? 0 : span / stride + 1;
}

struct Bconv2dArgs {
  const word_t* x;
  std::int64_t batch, height, width, in_channels, groups;
  const word_t* weight;
  std::int64_t out_channels, kernel_h, kernel_w;
  std::int64_t stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  BgemmMode mode;
  int pad_value;           // kXor: +1, 0 or -1; kAnd: 0 or 1 (see above)
  OutputTransform output;  // out rows = output pixels in (n, oy, ox) order
  std::int64_t pixel_begin, pixel_end;  // output pixels this call computes
  // Optional (kXor / kMask with pad_value 0 only): wsum[t][o] (kXor: Cg - 2 popcount(w(o, t)); kMask:
  // popcount(w(o, t))) as (KH * KW, C_out) int32, a constant of the weights an engine computes once
  // (bconv2d_tap_sums). nullptr: each call computes it.
  const std::int32_t* tap_sums = nullptr;
  // kMask only: the weights of each group g as block-sparse rows, sparse[g] (sbgemm.h): C_out / G rows
  // of KH * KW * words_for(Cg) words. Required by the optimized variants in kMask.
  const SparseRows* sparse = nullptr;
  // Optional (kXor / kAnd): the weights packed once for the bgemm variant `packed_for`
  // (bconv2d_pack_weight), group g at packed_weight + g * packed_group_bytes. Read only by the bconv2d
  // variant built on that bgemm; any other (a forced lower ISA, say) reads `weight` as it always does.
  const void* packed_weight = nullptr;
  void (*packed_for)(const BgemmArgs&) = nullptr;
  std::int64_t packed_group_bytes = 0;

  std::int64_t out_height() const { return conv_out_size(height, kernel_h, stride_h, pad_h, dilation_h); }
  std::int64_t out_width() const { return conv_out_size(width, kernel_w, stride_w, pad_w, dilation_w); }
};

// wsum[t][o] (see tap_sums above) into out: KH * KW * C_out int32. Uses a.weight and the shape only.
void bconv2d_tap_sums(const Bconv2dArgs& a, std::int32_t* out);

// Bytes per group of a.weight packed for `gemm` (a multiple of 64), 0 when gemm reads B as it is
// (or a.mode is kMask). pack_weight writes groups * that many bytes to out (64-byte aligned); call it
// only where gemm runs. Uses a.weight and the shape only.
std::int64_t bconv2d_packed_group_bytes(const Bconv2dArgs& a, void (*gemm)(const BgemmArgs&));
void bconv2d_pack_weight(const Bconv2dArgs& a, void (*gemm)(const BgemmArgs&), void* out);

}  // namespace onebit
