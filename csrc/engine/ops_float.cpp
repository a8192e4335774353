// Float ops of the engine (stem, head, shortcuts, activations, pools), NHWC. conv2d / linear are
// im2col + sgemm (float_gemm.h: OpenBLAS, single-threaded per tile); every op splits its work over
// the Engine's thread pool.
//
// Semantics follow onebit/export/reference.py op by op. Where PyTorch's CPU arithmetic is known, the
// same operation order is used so that the values feeding a binarizer match it bit for bit: BatchNorm
// is fma(x, scale, shift); the other affine ops are x * scale + shift, two roundings (this unit is
// compiled with -ffp-contract=off so the compiler never fuses them). Float convolution and linear
// layers sum in a different order than MKL-DNN (differences of a few ulps).
//
// Determinism: conv2d / linear cut their output into tiles whose bounds depend on the layer's shape
// only (per sample, never across samples), and each tile is one sgemm call, so a result does not
// depend on the thread count nor on the batch it was computed in.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "float_gemm.h"
#include "onebit/isa.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "op.h"

namespace onebit::engine {
namespace {

class Elementwise final : public Op {
 public:
  Elementwise(const OpDef& d, const std::vector<ValueDef>& v) : Op(d, v) {
    const std::int64_t c = x_.c();
    kind_ = type_ == "affine" ? kAffine : type_ == "relu" ? kRelu : type_ == "hardtanh" ? kHardtanh
          : type_ == "prelu" ? kPrelu : type_ == "rprelu" ? kRprelu : kAdd;
    if (type_ == "affine") {
      a_ = f32(d, "scale", c);
      b_ = f32(d, "shift", c);
      if (int_attr(d, "fma") != 0) kind_ = kAffineFma;
    } else if (type_ == "prelu") {
      a_ = f32(d, "slope", c);
    } else if (type_ == "rprelu") {
      b_ = f32(d, "shift_in", c);
      a_ = f32(d, "slope", c);
      s_ = f32(d, "shift_out", c);
    } else if (type_ == "hardtanh") {
      lo_ = static_cast<float>(real_attr(d, "min"));
      hi_ = static_cast<float>(real_attr(d, "max"));
    }
  }
  void run(const RunCtx& ctx) const override {
    const std::int64_t c = x_.c();
    const float* x = reinterpret_cast<const float*>(ctx.ptr[in_[0]]);
    const float* z = kind_ == kAdd ? reinterpret_cast<const float*>(ctx.ptr[in_[1]]) : nullptr;
    float* y = reinterpret_cast<float*>(ctx.ptr[out_[0]]);
    const EwParams p = params(0);
    ctx.parallel_for(ctx.batch * x_.pixels(), [&](int, std::int64_t p0, std::int64_t p1) {
      // Rows of C contiguous floats; one flat run of (p1 - p0) * C when nothing is per channel.
      const bool flat = kind_ == kAdd || kind_ == kRelu || kind_ == kHardtanh;
      const std::int64_t rows = flat ? 1 : p1 - p0, n = flat ? (p1 - p0) * c : c;
      ew_apply(p, x + p0 * c, z ? z + p0 * c : nullptr, y + p0 * c, rows, c, n);
    });
  }
  bool is_stage() const override { return true; }
  void stage(float* y, const float* z, std::int64_t rows, std::int64_t ld, std::int64_t c0, std::int64_t n) const override {
    ew_apply(params(c0), y, z, y, rows, ld, n);
  }
  bool stage_params(std::int64_t c0, EwParams* p) const override {
    *p = params(c0);
    return true;
  }

 private:
  EwParams params(std::int64_t c0) const {
    return EwParams{kind_, a_.empty() ? nullptr : a_.data() + c0, b_.empty() ? nullptr : b_.data() + c0,
                    s_.empty() ? nullptr : s_.data() + c0, lo_, hi_};
  }

  EwKind kind_;
  std::vector<float> a_, b_, s_;
  float lo_ = 0, hi_ = 0;
};

// conv2d: per tile of output pixels (of one sample) and output channels (of one group), im2col of the
// tile's pixels (K = kh * kw * Cin/g floats per row, zeros for padding; skipped for 1x1 stride-1
// unpadded convs, whose input rows are the im2col rows), one sgemm with the weights
// [Cout][kh][kw][Cin/g], then the bias.
class Conv2d final : public Op {
 public:
  Conv2d(const OpDef& d, const std::vector<ValueDef>& v) : Op(d, v), c_(conv_geom(d)) {
    g_ = c_.g;
    cin_g_ = x_.c() / g_;
    cout_ = y_.c();
    cout_g_ = cout_ / g_;
    kdim_ = c_.k[0] * c_.k[1] * cin_g_;
    w_ = to_tap_major(f32(d, "weight", cout_ * kdim_).data(), cout_, cin_g_, c_.k[0] * c_.k[1]);
    bias_ = f32(d, "bias", cout_, true);
    if (bias_.empty()) bias_.assign(cout_, 0.0f);
    ones_.assign(cout_, 1.0f);
    direct_ = c_.k[0] == 1 && c_.k[1] == 1 && c_.s[0] == 1 && c_.s[1] == 1 && c_.pt == 0 && c_.pl == 0;
    interior_columns(c_, x_, y_, &ow_lo_, &ow_hi_);
    // ~128 KiB of im2col rows per tile
    tiles_ = ConvTiles(y_.pixels(), g_, cout_g_, std::clamp<std::int64_t>((128 << 10) / (4 * kdim_), 8, 512));
  }
  std::int64_t scratch_bytes() const override { return direct_ ? 0 : tiles_.rows * kdim_ * 4; }
  bool accepts_stages() const override { return true; }

  void run(const RunCtx& ctx) const override {
    tiles_.for_each(ctx, [&](int t, std::int64_t n, std::int64_t p0, std::int64_t rows, std::int64_t g, std::int64_t cg0,
                             std::int64_t cols) { tile(ctx, t, n, p0, rows, g * cout_g_ + cg0, cols, g); });
  }

 private:
  void tile(const RunCtx& ctx, int t, std::int64_t n, std::int64_t p0, std::int64_t rows, std::int64_t c0,
            std::int64_t cols, std::int64_t g) const {
    const float* x = ctx.at<const float>(in_[0], n, x_.bytes());
    const float* a = x + p0 * x_.c() + g * cin_g_;
    std::int64_t lda = x_.c();
    if (!direct_) {
      float* buf = reinterpret_cast<float*>(ctx.thread_scratch(t));
      im2col_tile(c_, x_, y_, x, g, p0, rows, buf, kdim_, ow_lo_, ow_hi_,
                  [](float* dst, const float* src, std::int64_t n) { std::memcpy(dst, src, n * sizeof(float)); });
      a = buf, lda = kdim_;
    }
    float* y = ctx.at<float>(out_[0], n, y_.bytes()) + p0 * cout_ + c0;
    sgemm_nt(rows, cols, kdim_, a, lda, w_.data() + c0 * kdim_, kdim_, y, cout_);
    if (!stages_.empty() && fusion_.one_pass) {  // the bias as the chain's first op: y * 1 + b = y + b exactly
      const EwParams bias{kAffine, ones_.data() + c0, bias_.data() + c0, nullptr, 0, 0};
      return run_stages(ctx, n * y_.pixels() + p0, y, rows, cout_, c0, cols, &bias);
    }
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t j = 0; j < cols; ++j) y[r * cout_ + j] += bias_[c0 + j];
    }
    run_stages(ctx, n * y_.pixels() + p0, y, rows, cout_, c0, cols);
  }

  ConvGeom c_;
  std::int64_t g_, cin_g_, cout_, cout_g_, kdim_, ow_lo_, ow_hi_;
  ConvTiles tiles_;
  bool direct_ = false;
  std::vector<float> w_, bias_, ones_;
};

// linear: y = x . W^T + b, per sample and tile of 64 output features. One sample per call on purpose:
// OpenBLAS forwards M = 1 to gemv, whose summation order differs from gemm's, so a sample's result
// would otherwise depend on the batch it came in (at batch 1, the latency case, it is gemv anyway).
class Linear final : public Op {
 public:
  Linear(const OpDef& d, const std::vector<ValueDef>& v) : Op(d, v) {
    in_f_ = x_.c();
    out_f_ = y_.c();
    w_ = f32(d, "weight", in_f_ * out_f_);
    bias_ = f32(d, "bias", out_f_, true);
    if (bias_.empty()) bias_.assign(out_f_, 0.0f);
  }
  void run(const RunCtx& ctx) const override {
    const std::int64_t ftiles = (out_f_ + kTile - 1) / kTile;
    ctx.parallel_for(ctx.batch * ftiles, [&](int, std::int64_t i0, std::int64_t i1) {
      for (std::int64_t i = i0; i < i1; ++i) {
        const std::int64_t s = i / ftiles, f0 = i % ftiles * kTile, cols = std::min(kTile, out_f_ - f0);
        float* y = ctx.at<float>(out_[0], s, y_.bytes()) + f0;
        sgemm_nt(1, cols, in_f_, ctx.at<const float>(in_[0], s, x_.bytes()), in_f_, w_.data() + f0 * in_f_, in_f_, y, out_f_);
        for (std::int64_t j = 0; j < cols; ++j) y[j] += bias_[f0 + j];
      }
    });
  }

 private:
  static constexpr std::int64_t kTile = 64;
  std::int64_t in_f_, out_f_;
  std::vector<float> w_, bias_;
};

// y[ch] = max(y[ch], x[ch]) with NaN winning (torch's max-pool propagates NaN): x > y (ordered) or x
// is NaN. The AVX2 form computes the same mask (GT_OQ | UNORD_Q on x, x) and blends: same values.
#if defined(__x86_64__) || defined(__i386__)
[[gnu::target("avx2")]] void max_into_avx2(float* y, const float* x, std::int64_t n) {
  std::int64_t ch = 0;
  for (; ch + 8 <= n; ch += 8) {
    const __m256 xv = _mm256_loadu_ps(x + ch), yv = _mm256_loadu_ps(y + ch);
    const __m256 take = _mm256_or_ps(_mm256_cmp_ps(xv, yv, _CMP_GT_OQ), _mm256_cmp_ps(xv, xv, _CMP_UNORD_Q));
    _mm256_storeu_ps(y + ch, _mm256_blendv_ps(yv, xv, take));
  }
  for (; ch < n; ++ch) y[ch] = (x[ch] > y[ch] || x[ch] != x[ch]) ? x[ch] : y[ch];
}
#endif

void max_into_plain(float* y, const float* x, std::int64_t n) {
  for (std::int64_t ch = 0; ch < n; ++ch) y[ch] = (x[ch] > y[ch] || x[ch] != x[ch]) ? x[ch] : y[ch];
}

using MaxIntoFn = void (*)(float*, const float*, std::int64_t);
MaxIntoFn max_into_for_isa() {  // once per op run: active_isa() is not free per call
#if defined(__x86_64__) || defined(__i386__)
  if (active_isa() >= Isa::kAvx2) return &max_into_avx2;
#endif
  return &max_into_plain;
}

}  // namespace

// Max-pool output row oh: per output column, -inf, then max_into over the window's rows (ih outer) and
// columns (iw inner) clipped to the input, so the same order of taps (and NaN / signed zero winners)
// wherever the input rows come from.
void max_pool_row(const PoolGeom& g, const ValueDef& x, const ValueDef& y, std::int64_t oh, const float* const* rows,
                  float* out) {
  const MaxIntoFn max_into = max_into_for_isa();
  const std::int64_t c = x.c(), W = x.w();
  std::int64_t h0, h1;
  g.rows(x.h(), oh, &h0, &h1);
  for (std::int64_t ow = 0; ow < y.w(); ++ow) {
    const std::int64_t w0 = std::max<std::int64_t>(ow * g.s[1] - g.p[1], 0);
    const std::int64_t w1 = std::min({ow * g.s[1] - g.p[1] + g.k[1], W + g.p[1], W});
    float* yo = out + ow * c;
    std::fill(yo, yo + c, -std::numeric_limits<float>::infinity());
    for (std::int64_t ih = h0; ih < h1; ++ih) {
      for (std::int64_t iw = w0; iw < w1; ++iw) max_into(yo, rows[ih - h0] + iw * c, c);
    }
  }
}

namespace {

// maxpool, avgpool (torch's divisor rules), global_avgpool.
class Pool final : public Op {
 public:
  Pool(const OpDef& d, const std::vector<ValueDef>& v) : Op(d, v), max_(type_ == "maxpool") {
    if (type_ == "global_avgpool") {
      g_ = PoolGeom{{x_.h(), x_.w()}, {1, 1}, {0, 0}};
      return;
    }
    for (int i = 0; i < 2; ++i) {
      g_.k[i] = int_attr(d, "kernel", i);
      g_.s[i] = int_attr(d, "stride", i);
      g_.p[i] = int_attr(d, "padding", i);
    }
    if (type_ == "avgpool") include_pad_ = int_attr(d, "count_include_pad") != 0;
  }
  const PoolGeom* max_pool() const override { return max_ ? &g_ : nullptr; }

  void run(const RunCtx& ctx) const override {
    ctx.parallel_for(ctx.batch * y_.h(), [&](int, std::int64_t r0, std::int64_t r1) {
      std::vector<const float*> rows(g_.k[0]);
      for (std::int64_t r = r0; r < r1; ++r) {
        const std::int64_t n = r / y_.h(), oh = r % y_.h();
        const float* x = ctx.at<const float>(in_[0], n, x_.bytes());
        float* y = ctx.at<float>(out_[0], n, y_.bytes()) + oh * y_.w() * y_.c();
        if (!max_) {
          avg_row(x, oh, y);
          continue;
        }
        std::int64_t h0, h1;
        g_.rows(x_.h(), oh, &h0, &h1);
        for (std::int64_t ih = h0; ih < h1; ++ih) rows[ih - h0] = x + ih * x_.w() * x_.c();
        max_pool_row(g_, x_, y_, oh, rows.data(), y);
      }
    });
  }

 private:
  // Output row oh of an average pool (torch's divisor rules) of one sample.
  void avg_row(const float* x, std::int64_t oh, float* y) const {
    const std::int64_t c = x_.c(), H = x_.h(), W = x_.w();
    for (std::int64_t ow = 0; ow < y_.w(); ++ow) {
      std::int64_t h0 = oh * g_.s[0] - g_.p[0], w0 = ow * g_.s[1] - g_.p[1];
      std::int64_t h1 = std::min(h0 + g_.k[0], H + g_.p[0]), w1 = std::min(w0 + g_.k[1], W + g_.p[1]);
      const std::int64_t padded = (h1 - h0) * (w1 - w0);
      h0 = std::max<std::int64_t>(h0, 0), w0 = std::max<std::int64_t>(w0, 0);
      h1 = std::min(h1, H), w1 = std::min(w1, W);
      const float div = static_cast<float>(include_pad_ ? padded : (h1 - h0) * (w1 - w0));
      float* yo = y + ow * c;
      // Taps outer, channels inner (contiguous, vectorized); the same per-channel order of taps as
      // a channel-outer loop, so the same sums.
      std::fill(yo, yo + c, 0.0f);
      for (std::int64_t ih = h0; ih < h1; ++ih) {
        for (std::int64_t iw = w0; iw < w1; ++iw) {
          const float* xi = x + (ih * W + iw) * c;
          for (std::int64_t ch = 0; ch < c; ++ch) yo[ch] += xi[ch];
        }
      }
      for (std::int64_t ch = 0; ch < c; ++ch) yo[ch] /= div;
    }
  }

  bool max_;
  PoolGeom g_{};
  bool include_pad_ = true;
};

// concat along channels; flatten from NHWC to PyTorch's (C, H, W) order.
class Reshape final : public Op {
 public:
  Reshape(const OpDef& d, const std::vector<ValueDef>& v) : Op(d, v) {
    for (int i : in_) ins_.push_back(v[i]);
  }
  void run(const RunCtx& ctx) const override {
    if (type_ == "flatten") {
      for (std::int64_t n = 0; n < ctx.batch; ++n) {
        float* y = ctx.at<float>(out_[0], n, y_.bytes());
        const float* x = ctx.at<const float>(in_[0], n, x_.bytes());
        const std::int64_t c = x_.c(), hw = x_.pixels();
        for (std::int64_t ch = 0; ch < c; ++ch)
          for (std::int64_t p = 0; p < hw; ++p) y[ch * hw + p] = x[p * c + ch];
      }
      return;
    }
    // Concat: pixels of the batch split over the pool (a copy bound by memory: ReActNet-A's first
    // concat moves 3 MB, which one thread alone took 0.2 ms for).
    const std::int64_t pixels = y_.pixels();
    ctx.parallel_for(ctx.batch * pixels, [&](int, std::int64_t r0, std::int64_t r1) {
      for (std::int64_t r = r0; r < r1; ++r) {
        const std::int64_t n = r / pixels, p = r % pixels;
        float* y = ctx.at<float>(out_[0], n, y_.bytes()) + p * y_.c();
        for (std::size_t k = 0; k < ins_.size(); ++k) {
          const std::int64_t c = ins_[k].c();
          std::memcpy(y, ctx.at<const float>(in_[k], n, ins_[k].bytes()) + p * c, c * sizeof(float));
          y += c;
        }
      }
    });
  }

 private:
  std::vector<ValueDef> ins_;
};

}  // namespace

std::unique_ptr<Op> make_float_op(const OpDef& d, const std::vector<ValueDef>& v) {
  const std::string& t = d.type;
  if (t == "affine" || t == "relu" || t == "hardtanh" || t == "prelu" || t == "rprelu" || t == "add")
    return std::make_unique<Elementwise>(d, v);
  if (t == "conv2d") return std::make_unique<Conv2d>(d, v);
  if (t == "linear") return std::make_unique<Linear>(d, v);
  if (t == "maxpool" || t == "avgpool" || t == "global_avgpool") return std::make_unique<Pool>(d, v);
  if (t == "concat" || t == "flatten") return std::make_unique<Reshape>(d, v);
  return nullptr;
}

}  // namespace onebit::engine
