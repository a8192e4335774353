// Reference binary max-pool: per channel, the max of the values the bits stand for (bmaxpool.h),
// without the AND / OR identity the optimized variant uses.
#include "onebit/kernels.h"

namespace onebit {
namespace {

inline int bit_at(const word_t* row, std::int64_t i) {
  return static_cast<int>((row[i / kWordBits] >> (i % kWordBits)) & 1u);
}

}  // namespace

void bmaxpool__reference(const BmaxpoolArgs& a) {
  const std::int64_t oh = conv_out_size(a.height, a.kernel_h, a.stride_h, a.pad_h, a.dilation_h);
  const std::int64_t ow = conv_out_size(a.width, a.kernel_w, a.stride_w, a.pad_w, a.dilation_w);
  for (std::int64_t n = 0; n < a.batch; ++n) {
    for (std::int64_t oy = 0; oy < oh; ++oy) {
      for (std::int64_t ox = 0; ox < ow; ++ox) {
        word_t* out = a.out + ((n * oh + oy) * ow + ox) * a.words;
        for (std::int64_t c = 0; c < a.words * kWordBits; ++c) {
          // and_mask bit set: the +-1 reading (AND); clear: the {0,1} reading (OR).
          const bool sign = a.and_mask ? bit_at(a.and_mask, c) != 0 : a.mode == PackMode::kSign;
          // max over the valid taps of the values the bits stand for (bmaxpool.h); bit 0 <=> +1
          // in kSign, so the max is +1 (bit 0) as soon as one bit is 0; in kHeaviside bit 1 <=> 1.
          int best = -2;
          for (std::int64_t ky = 0; ky < a.kernel_h; ++ky) {
            for (std::int64_t kx = 0; kx < a.kernel_w; ++kx) {
              const std::int64_t iy = oy * a.stride_h - a.pad_h + ky * a.dilation_h;
              const std::int64_t ix = ox * a.stride_w - a.pad_w + kx * a.dilation_w;
              if (iy < 0 || iy >= a.height || ix < 0 || ix >= a.width) continue;  // never wins
              const int bit = bit_at(a.x + ((n * a.height + iy) * a.width + ix) * a.words, c);
              const int value = sign ? 1 - 2 * bit : bit;
              if (value > best) best = value;
            }
          }
          const int bit = sign ? (best == -1) : (best == 1);
          if (c % kWordBits == 0) out[c / kWordBits] = 0;
          out[c / kWordBits] |= static_cast<word_t>(bit) << (c % kWordBits);
        }
      }
    }
  }
}

}  // namespace onebit
