// Float ops of the engine (stem, head, shortcuts, activations, pools), NHWC, plain C++ loops.
//
// Semantics follow onebit/export/reference.py op by op. Where PyTorch's CPU arithmetic is known, the
// same operation order is used so that the values feeding a binarizer match it bit for bit: BatchNorm
// is fma(x, scale, shift); the other affine ops are x * scale + shift, two roundings (this unit is
// compiled with -ffp-contract=off so the compiler never fuses them). Float convolution and linear
// layers sum in a different order than MKL-DNN (differences of a few ulps).
//
// TODO(perf): conv2d/linear are direct loops; DESIGN.md section 5 asks for a maintained BLAS
// (OpenBLAS) or oneDNN for the stem and head -- not linked yet.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "op.h"

namespace onebit::engine {
namespace {

// Per-pixel elementwise ops with per-channel parameters: channel = index % C.
class Elementwise final : public Op {
 public:
  enum Kind { kAffine, kRelu, kHardtanh, kPrelu, kRprelu, kAdd };
  Elementwise(const OpDef& d, const std::vector<ValueDef>& v) : Op(d, v) {
    const std::int64_t c = x_.c();
    kind_ = type_ == "affine" ? kAffine : type_ == "relu" ? kRelu : type_ == "hardtanh" ? kHardtanh
          : type_ == "prelu" ? kPrelu : type_ == "rprelu" ? kRprelu : kAdd;
    if (type_ == "affine") {
      a_ = f32(d, "scale", c);
      b_ = f32(d, "shift", c);
      fma_ = int_attr(d, "fma") != 0;
    } else if (type_ == "prelu") {
      a_ = f32(d, "slope", c);
    } else if (type_ == "rprelu") {
      b_ = f32(d, "shift_in", c);
      a_ = f32(d, "slope", c);
      s_ = f32(d, "shift_out", c);
    } else if (type_ == "hardtanh") {
      lo_ = static_cast<float>(d.reals.at("min"));
      hi_ = static_cast<float>(d.reals.at("max"));
    }
  }
  void run(const RunCtx& ctx) const override {
    const std::int64_t c = x_.c(), n = ctx.batch * x_.pixels() * c;
    const float* x = reinterpret_cast<const float*>(ctx.ptr[in_[0]]);
    float* y = reinterpret_cast<float*>(ctx.ptr[out_[0]]);
    if (kind_ == kAdd) {
      const float* z = reinterpret_cast<const float*>(ctx.ptr[in_[1]]);
      for (std::int64_t i = 0; i < n; ++i) y[i] = x[i] + z[i];
      return;
    }
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t ch = i % c;
      const float v = x[i];
      if (kind_ == kAffine) {
        y[i] = fma_ ? std::fma(v, a_[ch], b_[ch]) : v * a_[ch] + b_[ch];
      } else if (kind_ == kRelu) {
        y[i] = v > 0.0f ? v : 0.0f;  // NaN -> 0 differs from torch; NaN never reaches a model here
      } else if (kind_ == kHardtanh) {
        y[i] = std::min(std::max(v, lo_), hi_);
      } else if (kind_ == kPrelu) {
        y[i] = v > 0.0f ? v : a_[ch] * v;
      } else {  // rprelu: prelu(x - shift_in) + shift_out
        const float t = v - b_[ch];
        y[i] = (t > 0.0f ? t : a_[ch] * t) + s_[ch];
      }
    }
  }

 private:
  Kind kind_;
  std::vector<float> a_, b_, s_;
  bool fma_ = false;
  float lo_ = 0, hi_ = 0;
};

class Conv2d final : public Op {
 public:
  Conv2d(const OpDef& d, const std::vector<ValueDef>& v) : Op(d, v) {
    for (int i = 0; i < 2; ++i) {
      k_[i] = int_attr(d, "kernel", i);
      s_[i] = int_attr(d, "stride", i);
      dil_[i] = int_attr(d, "dilation", i);
    }
    pt_ = int_attr(d, "padding", 0);
    pl_ = int_attr(d, "padding", 2);
    g_ = int_attr(d, "groups");
    cin_g_ = x_.c() / g_;
    cout_ = y_.c();
    // [Cout][Cin/g][kh][kw] -> [Cout][kh][kw][Cin/g]: the channel sum reads contiguous memory
    const std::vector<float> w = f32(d, "weight", cout_ * cin_g_ * k_[0] * k_[1]);
    w_.resize(w.size());
    for (std::int64_t o = 0; o < cout_; ++o)
      for (std::int64_t i = 0; i < cin_g_; ++i)
        for (std::int64_t t = 0; t < k_[0] * k_[1]; ++t)
          w_[(o * k_[0] * k_[1] + t) * cin_g_ + i] = w[(o * cin_g_ + i) * k_[0] * k_[1] + t];
    bias_ = f32(d, "bias", cout_, true);
    if (bias_.empty()) bias_.assign(cout_, 0.0f);
  }
  void run(const RunCtx& ctx) const override {
    const std::int64_t ho = y_.h(), wo = y_.w(), rows = ctx.batch * ho * wo;
    parallel_for(rows, ctx.num_threads, [&](int, std::int64_t r0, std::int64_t r1) {
      for (std::int64_t r = r0; r < r1; ++r) pixel(ctx, r / (ho * wo), r % (ho * wo));
    });
  }

 private:
  void pixel(const RunCtx& ctx, std::int64_t n, std::int64_t p) const {
    const std::int64_t oh = p / y_.w(), ow = p % y_.w(), cin = x_.c(), cout_g = cout_ / g_;
    const float* x = ctx.at<const float>(in_[0], n, x_.bytes());
    float* y = ctx.at<float>(out_[0], n, y_.bytes()) + p * cout_;
    for (std::int64_t o = 0; o < cout_; ++o) {
      const std::int64_t g = o / cout_g;
      float acc = bias_[o];
      for (std::int64_t kh = 0; kh < k_[0]; ++kh) {
        const std::int64_t ih = oh * s_[0] - pt_ + kh * dil_[0];
        if (ih < 0 || ih >= x_.h()) continue;
        for (std::int64_t kw = 0; kw < k_[1]; ++kw) {
          const std::int64_t iw = ow * s_[1] - pl_ + kw * dil_[1];
          if (iw < 0 || iw >= x_.w()) continue;
          const float* xi = x + (ih * x_.w() + iw) * cin + g * cin_g_;
          const float* wi = w_.data() + ((o * k_[0] + kh) * k_[1] + kw) * cin_g_;
          float s = 0.0f;
          for (std::int64_t i = 0; i < cin_g_; ++i) s += xi[i] * wi[i];
          acc += s;
        }
      }
      y[o] = acc;
    }
  }
  std::int64_t k_[2], s_[2], dil_[2], pt_, pl_, g_, cin_g_, cout_;
  std::vector<float> w_, bias_;
};

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
    for (std::int64_t n = 0; n < ctx.batch; ++n) {
      const float* x = ctx.at<const float>(in_[0], n, x_.bytes());
      float* y = ctx.at<float>(out_[0], n, y_.bytes());
      for (std::int64_t o = 0; o < out_f_; ++o) {
        const float* w = w_.data() + o * in_f_;
        float s = 0.0f;
        for (std::int64_t i = 0; i < in_f_; ++i) s += w[i] * x[i];
        y[o] = s + bias_[o];
      }
    }
  }

 private:
  std::int64_t in_f_, out_f_;
  std::vector<float> w_, bias_;
};

// maxpool, avgpool (torch's divisor rules), global_avgpool.
class Pool final : public Op {
 public:
  Pool(const OpDef& d, const std::vector<ValueDef>& v) : Op(d, v), max_(type_ == "maxpool") {
    if (type_ == "global_avgpool") {
      k_[0] = x_.h(), k_[1] = x_.w(), s_[0] = s_[1] = 1, p_[0] = p_[1] = 0;
      return;
    }
    for (int i = 0; i < 2; ++i) {
      k_[i] = int_attr(d, "kernel", i);
      s_[i] = int_attr(d, "stride", i);
      p_[i] = int_attr(d, "padding", i);
    }
    if (type_ == "avgpool") include_pad_ = int_attr(d, "count_include_pad") != 0;
  }
  void run(const RunCtx& ctx) const override {
    const std::int64_t c = x_.c(), H = x_.h(), W = x_.w();
    for (std::int64_t n = 0; n < ctx.batch; ++n) {
      const float* x = ctx.at<const float>(in_[0], n, x_.bytes());
      float* y = ctx.at<float>(out_[0], n, y_.bytes());
      for (std::int64_t oh = 0; oh < y_.h(); ++oh) {
        for (std::int64_t ow = 0; ow < y_.w(); ++ow) {
          std::int64_t h0 = oh * s_[0] - p_[0], w0 = ow * s_[1] - p_[1];
          std::int64_t h1 = std::min(h0 + k_[0], H + p_[0]), w1 = std::min(w0 + k_[1], W + p_[1]);
          const std::int64_t padded = (h1 - h0) * (w1 - w0);
          h0 = std::max<std::int64_t>(h0, 0), w0 = std::max<std::int64_t>(w0, 0);
          h1 = std::min(h1, H), w1 = std::min(w1, W);
          const float div = static_cast<float>(include_pad_ ? padded : (h1 - h0) * (w1 - w0));
          float* yo = y + (oh * y_.w() + ow) * c;
          for (std::int64_t ch = 0; ch < c; ++ch) {
            float acc = max_ ? -std::numeric_limits<float>::infinity() : 0.0f;
            for (std::int64_t ih = h0; ih < h1; ++ih) {
              for (std::int64_t iw = w0; iw < w1; ++iw) {
                const float v = x[(ih * W + iw) * c + ch];
                acc = max_ ? (v > acc || std::isnan(v) ? v : acc) : acc + v;
              }
            }
            yo[ch] = max_ ? acc : acc / div;
          }
        }
      }
    }
  }

 private:
  bool max_;
  std::int64_t k_[2], s_[2], p_[2];
  bool include_pad_ = true;
};

// concat along channels; flatten from NHWC to PyTorch's (C, H, W) order.
class Reshape final : public Op {
 public:
  Reshape(const OpDef& d, const std::vector<ValueDef>& v) : Op(d, v) {
    for (int i : in_) ins_.push_back(v[i]);
  }
  void run(const RunCtx& ctx) const override {
    for (std::int64_t n = 0; n < ctx.batch; ++n) {
      float* y = ctx.at<float>(out_[0], n, y_.bytes());
      if (type_ == "flatten") {
        const float* x = ctx.at<const float>(in_[0], n, x_.bytes());
        const std::int64_t c = x_.c(), hw = x_.pixels();
        for (std::int64_t ch = 0; ch < c; ++ch)
          for (std::int64_t p = 0; p < hw; ++p) y[ch * hw + p] = x[p * c + ch];
        continue;
      }
      std::int64_t at = 0;
      for (std::size_t k = 0; k < ins_.size(); ++k) {
        const float* x = ctx.at<const float>(in_[k], n, ins_[k].bytes());
        const std::int64_t c = ins_[k].c();
        for (std::int64_t p = 0; p < y_.pixels(); ++p) std::memcpy(y + p * y_.c() + at, x + p * c, c * sizeof(float));
        at += c;
      }
    }
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
