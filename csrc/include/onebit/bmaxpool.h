// Binary max-pooling on bit-packed NHWC activations: (N, H, W, words) -> (N, OH, OW, words).
//
// Max over a window, per channel, on the values the bits stand for (bitpack.h):
//   +-1 (PackMode::kSign, bit 1 <=> -1): the max is +1 unless every value is -1, i.e. the max's bit
//       is 1 iff all bits are 1: bit = AND of the window's bits.
//   {0,1} (PackMode::kHeaviside, bit 1 <=> 1): the max is 1 iff any value is 1: bit = OR.
// Both are bitwise, so one word op handles 64 channels, for any packing of the channels in the
// word dimension (grouped or not): padding bits are 0 everywhere, and AND / OR of zeros is 0.
// Padding never wins: taps outside the input are skipped (as torch pads max-pool with -inf).
// Every window must contain at least one valid tap: pad <= kernel / 2 (torch's rule, checked by
// the binding), so OH = conv_out_size(H, KH, stride, pad, dilation) and never an empty window.
#pragma once

#include <cstdint>

#include "onebit/bconv2d.h"  // conv_out_size
#include "onebit/bitpack.h"

namespace onebit {

struct BmaxpoolArgs {
  const word_t* x;
  std::int64_t batch, height, width, words;  // words per pixel
  std::int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  PackMode mode;  // kSign: AND, kHeaviside: OR (for every channel; see and_mask)
  word_t* out;    // (batch, OH, OW, words), every word written
  // Optional per-channel choice, `words` words: bit c set = AND for channel c, clear = OR; mode is
  // then ignored. (A converter that folds a max-pool into bits before a per-channel threshold with a
  // flip gets a min, i.e. the other op, on the flipped channels.) Padding bits: either op keeps 0.
  const word_t* and_mask = nullptr;
};

}  // namespace onebit
