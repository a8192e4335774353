// Portable binary max-pool: a word op per 64 channels (bmaxpool.h derives AND for +-1, OR for
// {0,1}). Memory-bound word loops, which the compiler vectorizes; built without ISA flags.
#include <algorithm>

#include "onebit/kernels.h"

namespace onebit {
namespace {

// Each op: identity(m) starts the window, apply(acc, x, m) adds a tap; m = the and_mask word.
struct And {
  static word_t identity(word_t) { return ~word_t{0}; }  // x AND all-ones = x
  static word_t apply(word_t acc, word_t x, word_t) { return acc & x; }
};
struct Or {
  static word_t identity(word_t) { return 0; }  // x OR 0 = x
  static word_t apply(word_t acc, word_t x, word_t) { return acc | x; }
};
// Per bit: AND where m is 1, OR where m is 0; the identity is 1 for AND bits, 0 for OR bits = m.
struct Mixed {
  static word_t identity(word_t m) { return m; }
  static word_t apply(word_t acc, word_t x, word_t m) { return ((acc & x) & m) | ((acc | x) & ~m); }
};

// First and one-past-last kernel index k with 0 <= o * stride - pad + k * dilation < size.
inline void valid_taps(std::int64_t o, std::int64_t size, std::int64_t kernel, std::int64_t stride, std::int64_t pad,
                       std::int64_t dilation, std::int64_t* k0, std::int64_t* k1) {
  const std::int64_t start = o * stride - pad;
  *k0 = start >= 0 ? 0 : (-start + dilation - 1) / dilation;
  *k1 = std::min(kernel, start >= size ? 0 : (size - 1 - start) / dilation + 1);
}

template <class Op>
void pool(const BmaxpoolArgs& a) {
  const std::int64_t oh = conv_out_size(a.height, a.kernel_h, a.stride_h, a.pad_h, a.dilation_h);
  const std::int64_t ow = conv_out_size(a.width, a.kernel_w, a.stride_w, a.pad_w, a.dilation_w);
  for (std::int64_t n = 0; n < a.batch; ++n) {
    for (std::int64_t oy = 0; oy < oh; ++oy) {
      std::int64_t ky0, ky1;
      valid_taps(oy, a.height, a.kernel_h, a.stride_h, a.pad_h, a.dilation_h, &ky0, &ky1);
      for (std::int64_t ox = 0; ox < ow; ++ox) {
        std::int64_t kx0, kx1;
        valid_taps(ox, a.width, a.kernel_w, a.stride_w, a.pad_w, a.dilation_w, &kx0, &kx1);
        word_t* out = a.out + ((n * oh + oy) * ow + ox) * a.words;
        // Padding bits: the window has a valid tap (pad <= kernel / 2), and AND / OR of 0 bits is 0.
        for (std::int64_t w = 0; w < a.words; ++w) out[w] = Op::identity(a.and_mask ? a.and_mask[w] : 0);
        for (std::int64_t ky = ky0; ky < ky1; ++ky) {
          const std::int64_t iy = oy * a.stride_h - a.pad_h + ky * a.dilation_h;
          for (std::int64_t kx = kx0; kx < kx1; ++kx) {
            const std::int64_t ix = ox * a.stride_w - a.pad_w + kx * a.dilation_w;
            const word_t* in = a.x + ((n * a.height + iy) * a.width + ix) * a.words;
            for (std::int64_t w = 0; w < a.words; ++w) out[w] = Op::apply(out[w], in[w], a.and_mask ? a.and_mask[w] : 0);
          }
        }
      }
    }
  }
}

}  // namespace

void bmaxpool__portable(const BmaxpoolArgs& a) {
  if (a.and_mask) {
    pool<Mixed>(a);  // per channel
  } else if (a.mode == PackMode::kSign) {
    pool<And>(a);  // +-1: max is -1 (bit 1) only if every bit is 1
  } else {
    pool<Or>(a);   // {0,1}: max is 1 if any bit is 1
  }
}

}  // namespace onebit
