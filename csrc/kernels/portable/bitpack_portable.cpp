// Portable bit-packing: a word at a time, branch-free, written so the compiler can vectorize
// the compare of each 64-element chunk. Built without any ISA flags.
#include <algorithm>

#include "onebit/kernels.h"

namespace onebit {
namespace {

template <PackMode kMode>
word_t pack_word(const float* x, const float* t, int n) {
  word_t w = 0;
  for (int j = 0; j < n; ++j) {
    const float tj = t ? t[j] : 0.0f;
    const bool bit = kMode == PackMode::kSign ? (x[j] < tj) : (x[j] > tj);
    w |= static_cast<word_t>(bit) << j;
  }
  return w;
}

// One segment of `channels` floats (a row, or one group of a row) into words_for(channels) words.
template <PackMode kMode>
void pack_segment(const float* x, const float* t, std::int64_t channels, word_t* out) {
  for (std::int64_t w = 0; w < words_for(channels); ++w) {
    const std::int64_t c0 = w * kWordBits;
    const int n = static_cast<int>(std::min<std::int64_t>(kWordBits, channels - c0));
    out[w] = pack_word<kMode>(x + c0, t ? t + c0 : nullptr, n);
  }
}

template <PackMode kMode>
void pack_rows(const BitpackArgs& a) {
  const std::int64_t cg = a.channels / a.groups;  // groups start at word boundaries (bitpack.h)
  const std::int64_t wg = words_for(cg);
  for (std::int64_t r = 0; r < a.rows; ++r) {
    for (std::int64_t g = 0; g < a.groups; ++g) {
      pack_segment<kMode>(a.x + r * a.channels + g * cg, a.thresholds ? a.thresholds + g * cg : nullptr, cg,
                          a.out + (r * a.groups + g) * wg);
    }
  }
}

}  // namespace

void bitpack__portable(const BitpackArgs& a) {
  if (a.mode == PackMode::kSign) {
    pack_rows<PackMode::kSign>(a);
  } else {
    pack_rows<PackMode::kHeaviside>(a);
  }
}

}  // namespace onebit
