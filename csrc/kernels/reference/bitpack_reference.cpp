// Reference bit-packing: one element at a time, straight from the convention in bitpack.h.
#include <cstring>

#include "onebit/kernels.h"

namespace onebit {

void bitpack__reference(const BitpackArgs& a) {
  const std::int64_t cg = a.channels / a.groups;  // channels per group
  const std::int64_t wg = words_for(cg);          // words per group
  const std::int64_t words = a.groups * wg;
  std::memset(a.out, 0, sizeof(word_t) * static_cast<std::size_t>(a.rows * words));
  for (std::int64_t r = 0; r < a.rows; ++r) {
    for (std::int64_t c = 0; c < a.channels; ++c) {
      const float t = a.thresholds ? a.thresholds[c] : 0.0f;
      if (pack_bit(a.x[r * a.channels + c], t, a.mode)) {
        const std::int64_t g = c / cg, j = c % cg;
        a.out[r * words + g * wg + j / kWordBits] |= word_t{1} << (j % kWordBits);
      }
    }
  }
}

}  // namespace onebit
