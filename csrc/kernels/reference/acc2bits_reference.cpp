// Reference int32 -> bits output transform, element by element from output_transform.h.
#include <cstring>

#include "onebit/kernels.h"

namespace onebit {

void acc2bits__reference(const Acc2BitsArgs& a) {
  const std::int64_t cg = a.channels / a.groups, wg = words_for(cg), words = a.groups * wg;
  std::memset(a.out, 0, sizeof(word_t) * static_cast<std::size_t>(a.rows * words));
  for (std::int64_t r = 0; r < a.rows; ++r) {
    for (std::int64_t c = 0; c < a.channels; ++c) {
      const std::int32_t v = a.acc[r * a.ld_acc + c];
      const bool bit = (a.flip && a.flip[c]) ? v > a.threshold[c] : v < a.threshold[c];
      if (bit) a.out[r * words + (c / cg) * wg + (c % cg) / kWordBits] |= word_t{1} << ((c % cg) % kWordBits);
    }
  }
}

}  // namespace onebit
