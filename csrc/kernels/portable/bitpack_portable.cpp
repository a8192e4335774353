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

template <PackMode kMode>
void pack_rows(const BitpackArgs& a) {
  const std::int64_t words = words_for(a.channels);
  for (std::int64_t r = 0; r < a.rows; ++r) {
    const float* row = a.x + r * a.channels;
    for (std::int64_t w = 0; w < words; ++w) {
      const std::int64_t c0 = w * kWordBits;
      const int n = static_cast<int>(std::min<std::int64_t>(kWordBits, a.channels - c0));
      a.out[r * words + w] = pack_word<kMode>(row + c0, a.thresholds ? a.thresholds + c0 : nullptr, n);
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
