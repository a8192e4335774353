// Reference bit-packing: one element at a time, straight from the convention in bitpack.h.
#include <cstring>

#include "onebit/kernels.h"

namespace onebit {

void bitpack__reference(const BitpackArgs& a) {
  const std::int64_t words = words_for(a.channels);
  std::memset(a.out, 0, sizeof(word_t) * static_cast<std::size_t>(a.rows * words));
  for (std::int64_t r = 0; r < a.rows; ++r) {
    for (std::int64_t c = 0; c < a.channels; ++c) {
      const float t = a.thresholds ? a.thresholds[c] : 0.0f;
      if (pack_bit(a.x[r * a.channels + c], t, a.mode)) {
        a.out[r * words + c / kWordBits] |= word_t{1} << (c % kWordBits);
      }
    }
  }
}

}  // namespace onebit
