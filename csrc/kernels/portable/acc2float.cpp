// The int32 -> float output transform y = float(acc) * multiplier[c] + bias[c] (output_transform.h):
// the reference, the portable variant (the same loop, which the compiler vectorizes with the baseline
// x86-64 SSE2: 4 lanes) and the dispatching entry point. Built without FMA flags, so the multiply and
// the add round separately, as torch's `acc * m + b` does.
#include "onebit/kernels.h"

namespace onebit {
namespace {

void rows_loop(const Acc2FloatArgs& p) {
  for (std::int64_t r = 0; r < p.rows; ++r) {
    const std::int32_t* a = p.acc + r * p.ld_acc;
    float* y = p.out + r * p.channels;
    if (p.bias) {
      for (std::int64_t c = 0; c < p.channels; ++c) y[c] = static_cast<float>(a[c]) * p.multiplier[c] + p.bias[c];
    } else {
      for (std::int64_t c = 0; c < p.channels; ++c) y[c] = static_cast<float>(a[c]) * p.multiplier[c];
    }
  }
}

}  // namespace

void acc2float__reference(const Acc2FloatArgs& p) { rows_loop(p); }
void acc2float__portable(const Acc2FloatArgs& p) { rows_loop(p); }

void acc2float(const std::int32_t* acc, std::int64_t rows, std::int64_t channels, std::int64_t ld_acc,
               const float* multiplier, const float* bias, float* out) {
  select_kernel(acc2float_kernels()).fn(Acc2FloatArgs{acc, rows, channels, ld_acc, multiplier, bias, out});
}

}  // namespace onebit
