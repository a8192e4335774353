// The int32 -> float output transform y = float(acc) * multiplier[c] + bias[c] (output_transform.h).
// One variant: a convert, a multiply and an add per element, vectorized by the compiler. Built
// without FMA flags, so the multiply and the add round separately, as torch's `acc * m + b` does.
#include "onebit/output_transform.h"

namespace onebit {

void acc2float(const std::int32_t* acc, std::int64_t rows, std::int64_t channels, std::int64_t ld_acc,
               const float* multiplier, const float* bias, float* out) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int32_t* a = acc + r * ld_acc;
    float* y = out + r * channels;
    if (bias) {
      for (std::int64_t c = 0; c < channels; ++c) y[c] = static_cast<float>(a[c]) * multiplier[c] + bias[c];
    } else {
      for (std::int64_t c = 0; c < channels; ++c) y[c] = static_cast<float>(a[c]) * multiplier[c];
    }
  }
}

}  // namespace onebit
