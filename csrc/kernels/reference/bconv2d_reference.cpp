// Reference binary conv2d: direct convolution one bit at a time, straight from the definition in
// bconv2d.h (padded taps take pad_value, or are skipped when it is 0), followed by the output
// transform written from its definition in output_transform.h. No popcount identity, no im2col,
// no padding correction: the executable spec the optimized variants are tested against.
#include <cstring>
#include <vector>

#include "onebit/kernels.h"

namespace onebit {
namespace {

inline int bit_at(const word_t* row, std::int64_t i) {
  return static_cast<int>((row[i / kWordBits] >> (i % kWordBits)) & 1u);
}

// The value an activation bit stands for: +-1 (bit 1 <=> -1) in kXor and kMask, {0,1} in kAnd.
inline int activation(int bit, BgemmMode mode) { return mode == BgemmMode::kAnd ? bit : 1 - 2 * bit; }
// The value a weight bit stands for: +-1 (bit 1 <=> -1), or {0,1} (bit 1 <=> 1) in kMask.
inline int weight(int bit, BgemmMode mode) { return mode == BgemmMode::kMask ? bit : 1 - 2 * bit; }

// The dot product of output pixel (n, oy, ox) and output channel o.
std::int64_t dot(const Bconv2dArgs& a, std::int64_t n, std::int64_t oy, std::int64_t ox, std::int64_t o) {
  const std::int64_t cg = a.in_channels / a.groups, wg = words_for(cg);
  const std::int64_t g = o / (a.out_channels / a.groups);
  std::int64_t sum = 0;
  for (std::int64_t ky = 0; ky < a.kernel_h; ++ky) {
    for (std::int64_t kx = 0; kx < a.kernel_w; ++kx) {
      const std::int64_t iy = oy * a.stride_h - a.pad_h + ky * a.dilation_h;
      const std::int64_t ix = ox * a.stride_w - a.pad_w + kx * a.dilation_w;
      const bool inside = iy >= 0 && iy < a.height && ix >= 0 && ix < a.width;
      const word_t* px = a.x + ((n * a.height + iy) * a.width + ix) * a.groups * wg + g * wg;
      const word_t* w = a.weight + ((o * a.kernel_h + ky) * a.kernel_w + kx) * wg;
      for (std::int64_t j = 0; j < cg; ++j) {
        const int x = inside ? activation(bit_at(px, j), a.mode) : a.pad_value;
        sum += x * weight(bit_at(w, j), a.mode);
      }
    }
  }
  return sum;
}

void write_output(const OutputTransform& t, std::int64_t pixel, std::int64_t channels, const std::int64_t* acc) {
  if (t.kind == OutputKind::kInt32) {
    auto* out = static_cast<std::int32_t*>(t.out) + pixel * channels;
    for (std::int64_t c = 0; c < channels; ++c) out[c] = static_cast<std::int32_t>(acc[c]);
  } else if (t.kind == OutputKind::kFloat) {
    auto* out = static_cast<float*>(t.out) + pixel * channels;
    if (t.epilogue_acc) {
      std::vector<std::int32_t> row(acc, acc + channels);
      return t.epilogue_acc(t.epilogue_ctx, row.data(), channels, out, pixel, 1);
    }
    for (std::int64_t c = 0; c < channels; ++c) {
      const float scaled = static_cast<float>(acc[c]) * t.multiplier[c];
      out[c] = scaled + (t.bias ? t.bias[c] : 0.0f);
    }
    if (t.epilogue) t.epilogue(t.epilogue_ctx, out, pixel, 1);
  } else {
    const std::int64_t cg = channels / t.out_groups, wg = words_for(cg), words = t.out_groups * wg;
    word_t* out = static_cast<word_t*>(t.out) + pixel * words;
    std::memset(out, 0, sizeof(word_t) * static_cast<std::size_t>(words));
    for (std::int64_t c = 0; c < channels; ++c) {
      const bool bit = (t.flip && t.flip[c]) ? acc[c] > t.threshold[c] : acc[c] < t.threshold[c];
      if (bit) out[(c / cg) * wg + (c % cg) / kWordBits] |= word_t{1} << ((c % cg) % kWordBits);
    }
  }
}

}  // namespace

void bconv2d__reference(const Bconv2dArgs& a) {
  const std::int64_t oh = a.out_height(), ow = a.out_width();
  std::int64_t* acc = new std::int64_t[static_cast<std::size_t>(a.out_channels)];
  for (std::int64_t p = a.pixel_begin; p < a.pixel_end; ++p) {
    const std::int64_t n = p / (oh * ow), oy = p / ow % oh, ox = p % ow;
    for (std::int64_t o = 0; o < a.out_channels; ++o) acc[o] = dot(a, n, oy, ox, o);
    write_output(a.output, p, a.out_channels, acc);
  }
  delete[] acc;
}

}  // namespace onebit
