// Int8-quantized float layers: qconv2d and qlinear (onebit/export/quantize.py gives the scheme,
// reference.py the executable spec). Per sample: a = max |x|, inv = 127 / a, q = round(clamp(x * inv,
// -127, 127)) (half to even) into a buffer all threads share (ctx.shared), then the exact integer
// product with the int8 weights on igemm (igemm.h; im2col of the quantized rows for a conv), then
// y = float(acc) * (s_x * s_w[c]) + bias[c] and the fused epilogue stages.
//
// The integer sums are exact, so neither the tiling, the thread count, the batch nor the igemm variant
// changes a result; the float steps are the reference's (this unit is compiled with -ffp-contract=off,
// so x * s + b stays two roundings). A non-finite activation inside the network (an overflow) is
// outside the spec: the clamp maps NaN to -127, as the reference does, but max |x| may then differ.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "onebit/igemm.h"
#include "onebit/isa.h"
#include "onebit/kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "op.h"

namespace onebit::engine {
namespace {

// ---- per-sample quantization and the output transform: plain and AVX2, the same float operations ----

float abs_max_plain(const float* x, std::int64_t n) {
  float m = 0.0f;
  for (std::int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  return m;
}

// v = x * inv; v = v > -127 ? v : -127; v = v < 127 ? v : 127; q = nearbyint(v) (round half to even).
void quantize_plain(const float* x, std::int64_t n, float inv, std::int16_t* q) {
  for (std::int64_t i = 0; i < n; ++i) {
    float v = x[i] * inv;
    v = v > -127.0f ? v : -127.0f;
    v = v < 127.0f ? v : 127.0f;
    q[i] = static_cast<std::int16_t>(std::nearbyint(v));
  }
}

// y[j] = float(acc[j]) * (sx * ws[j]) + b[j] for j < n.
void transform_plain(const std::int32_t* acc, std::int64_t n, float sx, const float* ws, const float* b, float* y) {
  for (std::int64_t j = 0; j < n; ++j) y[j] = static_cast<float>(acc[j]) * (sx * ws[j]) + b[j];
}

#if defined(__x86_64__) || defined(__i386__)
[[gnu::target("avx2")]] float abs_max_avx2(const float* x, std::int64_t n) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_setzero_ps();
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, m);
  float r = abs_max_plain(x + i, n - i);
  for (float v : lanes) r = std::max(r, v);
  return r;
}

// max_ps(v, lo) returns lo when v is NaN and min_ps(v, hi) keeps lo: the plain clamp's result.
// cvtps_epi32 rounds with MXCSR's mode, round-to-nearest-even as nearbyint under the default mode.
[[gnu::target("avx2")]] void quantize_avx2(const float* x, std::int64_t n, float inv, std::int16_t* q) {
  const __m256 s = _mm256_set1_ps(inv), lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 a = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), s), lo), hi);
    const __m256 b = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i + 8), s), lo), hi);
    // packs works within 128-bit lanes: [a0..3 b0..3 | a4..7 b4..7]; the permute restores the order.
    const __m256i p = _mm256_packs_epi32(_mm256_cvtps_epi32(a), _mm256_cvtps_epi32(b));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i), _mm256_permute4x64_epi64(p, 0xD8));
  }
  quantize_plain(x + i, n - i, inv, q + i);
}

[[gnu::target("avx2")]] void transform_avx2(const std::int32_t* acc, std::int64_t n, float sx, const float* ws,
                                            const float* b, float* y) {
  const __m256 s = _mm256_set1_ps(sx);
  std::int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 a = _mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + j)));
    const __m256 scale = _mm256_mul_ps(s, _mm256_loadu_ps(ws + j));
    _mm256_storeu_ps(y + j, _mm256_add_ps(_mm256_mul_ps(a, scale), _mm256_loadu_ps(b + j)));
  }
  transform_plain(acc + j, n - j, sx, ws + j, b + j, y + j);
}
#endif

struct QuantFns {
  float (*abs_max)(const float*, std::int64_t);
  void (*quantize)(const float*, std::int64_t, float, std::int16_t*);
  void (*transform)(const std::int32_t*, std::int64_t, float, const float*, const float*, float*);
  void (*igemm)(const IgemmArgs&);
};

QuantFns quant_fns() {  // once per op run
  QuantFns f{&abs_max_plain, &quantize_plain, &transform_plain, select_kernel(igemm_kernels()).fn};
#if defined(__x86_64__) || defined(__i386__)
  if (active_isa() >= Isa::kAvx2) f.abs_max = &abs_max_avx2, f.quantize = &quantize_avx2, f.transform = &transform_avx2;
#endif
  return f;
}

// ---- the ops -------------------------------------------------------------------------------------------

// Shared by qconv2d and qlinear: the int8 weights (n_out rows of k, packed per group into igemm
// panels), their scales and the bias; per-sample activation scales.
class Quantized : public Op {
 public:
  Quantized(const OpDef& d, const std::vector<ValueDef>& v) : Op(d, v) {}

 protected:
  // The file's int8 weight of cout x k values (as bytes), checked: none is -128.
  const std::vector<std::uint8_t>& weight_bytes(const OpDef& d, std::int64_t cout, std::int64_t k) const {
    auto it = d.u8.find("weight");
    if (it == d.u8.end() || static_cast<std::int64_t>(it->second.size()) != cout * k)
      fail("needs an int8 weight of " + std::to_string(cout * k) + " elements");
    if (k < 1 || k > kIgemmMaxK) fail("k = " + std::to_string(k) + " is outside [1, " + std::to_string(kIgemmMaxK) + "]");
    for (std::uint8_t byte : it->second) {
      if (byte == 0x80) fail("weight holds -128; quantized weights must lie in [-127, 127]");
    }
    return it->second;
  }

  // w: [Cout][k] int8 (as bytes) in the order of the GEMM's A rows, `groups` blocks of Cout / groups
  // rows, each packed on its own; then the scales and the bias.
  void load_weights(const OpDef& d, const std::uint8_t* w, std::int64_t cout, std::int64_t k, std::int64_t groups) {
    const auto* w8 = reinterpret_cast<const std::int8_t*>(w);
    k_ = k, cout_g_ = cout / groups, group_bytes_ = igemm_panel_bytes(cout_g_, k);
    panels_.assign(groups * group_bytes_, 0);
    for (std::int64_t g = 0; g < groups; ++g) igemm_pack_b(w8 + g * cout_g_ * k, cout_g_, k, panels_.data() + g * group_bytes_);
    scale_ = f32(d, "weight_scale", cout);
    for (float s : scale_) {
      if (!(s >= 0.0f) || !std::isfinite(s)) fail("weight_scale must be finite and >= 0");
    }
    bias_ = f32(d, "bias", cout, true);
    if (bias_.empty()) bias_.assign(cout, 0.0f);
  }

  // ctx.shared per sample: kHeader bytes holding max |x| (then s_x), then the quantized int16 values.
  static constexpr std::int64_t kHeader = 64;
  static float* amax(const RunCtx& ctx, std::int64_t n) { return reinterpret_cast<float*>(ctx.shared + n * ctx.shared_per_sample); }
  static std::int16_t* quantized(const RunCtx& ctx, std::int64_t n) {
    return reinterpret_cast<std::int16_t*>(ctx.shared + n * ctx.shared_per_sample + kHeader);
  }

  // Per sample: the quantized copy of the input (rows of `row` values, `stride` int16 apart, the rest
  // of a row 0) and s_x = max |x| / 127 in the header.
  void quantize_input(const RunCtx& ctx, const QuantFns& f, std::int64_t rows, std::int64_t row, std::int64_t stride) const {
    ctx.parallel_for(ctx.batch, [&](int, std::int64_t n0, std::int64_t n1) {
      for (std::int64_t n = n0; n < n1; ++n) *amax(ctx, n) = f.abs_max(ctx.at<const float>(in_[0], n, x_.bytes()), rows * row);
    });
    ctx.parallel_for(ctx.batch * rows, [&](int, std::int64_t r0, std::int64_t r1) {
      for_each_sample(r0, r1, rows, [&](std::int64_t n, std::int64_t b, std::int64_t e) {
        const float a = *amax(ctx, n), inv = a > 0.0f ? 127.0f / a : 0.0f;
        const float* x = ctx.at<const float>(in_[0], n, x_.bytes());
        std::int16_t* q = quantized(ctx, n);
        if (stride == row) {
          f.quantize(x + b * row, (e - b) * row, inv, q + b * row);
          return;
        }
        for (std::int64_t r = b; r < e; ++r) {
          f.quantize(x + r * row, row, inv, q + r * stride);
          std::fill(q + r * stride + row, q + (r + 1) * stride, std::int16_t{0});
        }
      });
    });
    for (std::int64_t n = 0; n < ctx.batch; ++n) *amax(ctx, n) /= 127.0f;  // now s_x
  }

  const std::int8_t* panels(std::int64_t g, std::int64_t c0) const {  // c0: a multiple of kIgemmBlock in group g
    return panels_.data() + g * group_bytes_ + c0 / kIgemmBlock * (igemm_kp(k_) / 2) * 16;
  }

  std::int64_t k_ = 0, cout_g_ = 0, group_bytes_ = 0;
  std::vector<std::int8_t> panels_;
  std::vector<float> scale_, bias_;
};

// qconv2d: the quantized sample (NHWC int16) in ctx.shared; per tile of output pixels (of one sample)
// and output channels (of one group) an im2col of the tile's rows (K = kh * kw * Cin/g values in the
// order [kh][kw][Cin/g], zeros for padding and for the pad column to an even K), one igemm into an
// int32 tile, the output transform and the fused stages. Tiles depend on the layer's shape only.
class QConv2d final : public Quantized {
 public:
  QConv2d(const OpDef& d, const std::vector<ValueDef>& v) : Quantized(d, v), c_(conv_geom(d)) {
    g_ = c_.g;
    cin_g_ = x_.c() / g_;
    const std::int64_t taps = c_.k[0] * c_.k[1], kdim = taps * cin_g_;
    load_weights(d, to_tap_major(weight_bytes(d, y_.c(), kdim).data(), y_.c(), cin_g_, taps).data(), y_.c(), kdim, g_);
    kp_ = igemm_kp(kdim);
    lda_ = kp_ + kSlack / 2;  // im2col rows kSlack bytes longer than K: room for copy_run's overrun
    interior_columns(c_, x_, y_, &ow_lo_, &ow_hi_);
    // ~64 KiB of im2col rows per tile
    tiles_ = ConvTiles(y_.pixels(), g_, cout_g_, std::clamp<std::int64_t>((64 << 10) / (2 * lda_), 8, 512));
  }
  std::int64_t scratch_bytes() const override { return scale_offset() + tiles_.cols * 4; }
  std::int64_t shared_bytes_per_sample() const override { return kHeader + x_.pixels() * x_.c() * 2 + kSlack; }
  bool accepts_stages() const override { return true; }

  void run(const RunCtx& ctx) const override {
    const QuantFns f = quant_fns();
    quantize_input(ctx, f, x_.pixels(), x_.c(), x_.c());
    tiles_.for_each(ctx, [&](int t, std::int64_t n, std::int64_t p0, std::int64_t rows, std::int64_t g, std::int64_t cg0,
                             std::int64_t cols) {
      tile(ctx, f, t, n, p0, rows, g, cg0, cols, ctx.at<float>(out_[0], n, y_.bytes()) + p0 * y_.c());
    });
  }

  // Max-pool fusion (op.h): every output value is exact integer sums and per-element float steps, so
  // any run of pixels, in tiles of the same size, gives the values run() gives.
  bool accepts_pool() const override { return true; }
  void prepare_pixels(const RunCtx& ctx) const override {
    quantize_input(ctx, quant_fns(), x_.pixels(), x_.c(), x_.c());
  }
  void compute_pixels(const RunCtx& ctx, int t, std::int64_t n, std::int64_t p0, std::int64_t count,
                      float* y) const override {
    const QuantFns f = quant_fns();
    for (std::int64_t q = 0; q < count; q += tiles_.rows) {
      const std::int64_t rows = std::min(tiles_.rows, count - q);
      for (std::int64_t g = 0; g < g_; ++g) {
        for (std::int64_t cg0 = 0; cg0 < cout_g_; cg0 += tiles_.cols)
          tile(ctx, f, t, n, p0 + q, rows, g, cg0, std::min(tiles_.cols, cout_g_ - cg0), y + q * y_.c());
      }
    }
  }

 private:
  // Pixels [p0, p0 + rows) of sample n, channels [cg0, cg0 + cols) of group g, to y (pixel p0's first
  // channel; row stride y_.c()).
  void tile(const RunCtx& ctx, const QuantFns& f, int t, std::int64_t n, std::int64_t p0, std::int64_t rows,
            std::int64_t g, std::int64_t cg0, std::int64_t cols, float* y) const {
    const std::int64_t c0 = g * cout_g_ + cg0;
    y += c0;
    const float sx = *amax(ctx, n);
    const std::int16_t* q = quantized(ctx, n);
    auto* a = reinterpret_cast<std::int16_t*>(ctx.thread_scratch(t));
    auto* acc = reinterpret_cast<std::int32_t*>(ctx.thread_scratch(t) + acc_offset());
    im2col_tile(c_, x_, y_, q, g, p0, rows, a, lda_, ow_lo_, ow_hi_,
                [](std::int16_t* d, const std::int16_t* s, std::int64_t n) { copy_run(d, s, n); });
    for (std::int64_t r = 0; r < rows; ++r) std::fill(a + r * lda_ + k_, a + r * lda_ + kp_, std::int16_t{0});
    f.igemm(IgemmArgs{a, rows, lda_, panels(g, cg0), cols, k_, acc, cols});
    if (fusion_.from_acc && !stages_.empty()) {  // the transform and the stages in one pass (ew_chain)
      // float(acc) * m + b with m[j] = sx * s_w[j]: the product transform computes per element, once.
      auto* m = reinterpret_cast<float*>(ctx.thread_scratch(t) + scale_offset());
      for (std::int64_t j = 0; j < cols; ++j) m[j] = sx * scale_[c0 + j];
      const EwSource src{nullptr, acc, cols, m, &bias_[c0]};
      return run_stages(ctx, n * y_.pixels() + p0, y, rows, y_.c(), c0, cols, nullptr, &src);
    }
    for (std::int64_t r = 0; r < rows; ++r) f.transform(acc + r * cols, cols, sx, &scale_[c0], &bias_[c0], y + r * y_.c());
    run_stages(ctx, n * y_.pixels() + p0, y, rows, y_.c(), c0, cols);
  }

  // Copies of short runs (the stem's 7 taps x 3 channels are 42 bytes) as 16-byte moves: up to 7 values
  // past the run are read (kSlack after the quantized sample) and written: into the next kh block of the
  // row, written after it (im2col_tile goes kh in order), or past K into the row's kSlack bytes (lda_),
  // which the pad-column fill and igemm never read beyond K's pair.
  static constexpr std::int64_t kSlack = 64;
  static void copy_run(std::int16_t* dst, const std::int16_t* src, std::int64_t n) {
    for (std::int64_t i = 0; i < n; i += 8) std::memcpy(dst + i, src + i, 16);
  }
  std::int64_t acc_offset() const { return (tiles_.rows * lda_ * 2 + 63) / 64 * 64; }
  std::int64_t scale_offset() const { return acc_offset() + (tiles_.rows * tiles_.cols * 4 + 63) / 64 * 64; }

  ConvGeom c_;
  std::int64_t g_, cin_g_, kp_, lda_, ow_lo_, ow_hi_;
  ConvTiles tiles_;
};

// qlinear: the quantized samples (kp int16 each) in ctx.shared, then per tile of 64 output features
// one igemm over the whole batch (its sums are exact: batching changes nothing).
class QLinear final : public Quantized {
 public:
  QLinear(const OpDef& d, const std::vector<ValueDef>& v) : Quantized(d, v) {
    load_weights(d, weight_bytes(d, y_.c(), x_.c()).data(), y_.c(), x_.c(), 1);
  }
  std::int64_t scratch_bytes() const override { return 0; }
  std::int64_t shared_bytes_per_sample() const override { return kHeader + igemm_kp(k_) * 2; }

  // The int32 sums go into the output's own memory (int32 and float32 are both 4 bytes; the output is
  // [N][out] contiguous), and the transform turns each into its float in place.
  void run(const RunCtx& ctx) const override {
    const QuantFns f = quant_fns();
    quantize_input(ctx, f, 1, k_, igemm_kp(k_));
    const std::int64_t out = y_.c(), tiles = (out + kTile - 1) / kTile, lda = ctx.shared_per_sample / 2;
    auto* acc = reinterpret_cast<std::int32_t*>(ctx.at<float>(out_[0], 0, y_.bytes()));
    ctx.parallel_for(tiles, [&](int, std::int64_t i0, std::int64_t i1) {
      const std::int64_t c0 = i0 * kTile, cols = std::min(i1 * kTile, out) - c0;
      f.igemm(IgemmArgs{quantized(ctx, 0), ctx.batch, lda, panels(0, c0), cols, k_, acc + c0, out});
      for (std::int64_t n = 0; n < ctx.batch; ++n)
        f.transform(acc + n * out + c0, cols, *amax(ctx, n), &scale_[c0], &bias_[c0], ctx.at<float>(out_[0], n, y_.bytes()) + c0);
    });
  }

 private:
  static constexpr std::int64_t kTile = 64;
};

}  // namespace

std::unique_ptr<Op> make_quantized_op(const OpDef& d, const std::vector<ValueDef>& v) {
  if (d.type == "qconv2d") return std::make_unique<QConv2d>(d, v);
  if (d.type == "qlinear") return std::make_unique<QLinear>(d, v);
  return nullptr;
}

}  // namespace onebit::engine
