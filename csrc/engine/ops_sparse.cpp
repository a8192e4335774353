// SBNN's two-level weights {alpha, beta} on +-1 inputs: sbconv2d / sblinear (float output), computed
// by the dispatched bconv2d kernels (kXor) with the mask as the weight operand.
// Semantics: onebit/export/reference.py; weight domain: onebit/quantizers/domain.py.
//
// Per output channel co the weight is w_i = beta + gain m_i with m_i in {0, 1} (gain = alpha - beta;
// the converter puts m = 1 on the value of larger magnitude, so beta = 0 in SBNN's sparse domain).
// Inputs x_i = 1 - 2 A_i (bit 1 = -1). V = the taps that count for an output pixel: the valid taps,
// or every tap with pad "one" (a padded tap is x = +1 there, bits 0); with pad "zero" PyTorch pads
// with the value 0, which adds nothing, so padded taps are not in V.
//   dot(x, w) = beta sum_V x + gain dot_V(x, m)                              (1)
// The mask is packed like binary weights (bit 1 = m 1, the "-1" bit), so the bconv2d kXor kernel run
// with the mask as its weight computes, per pixel and channel (bconv2d.h, pad_value +1 for pad "one";
// pad_value 0 + tap sums for pad "zero", which remove exactly the padded taps' contributions):
//   acc(co) = sum_V x_i (1 - 2 m_i) = sum_V x - 2 dot_V(x, m)                (2)
// S = sum_V x = n_V - 2 popcount_V(A) (n_V = #taps in V * Cg) is shared by every output channel of a
// group; it is computed here per output pixel from the input words of the taps in V           (3)
// (padded taps of pad "one" are bits 0: they add Cg to n_V and nothing to the popcount). From (2):
//   dot_V(x, m) = (S - acc) / 2  ( = popcount(M_V) - 2 popcount(A AND M_V) ), exact in integers  (4)
// so the result is bit-identical to the former per-pixel popcount loop. |acc|, |S| <= K < 2^31.
// Structured sparsity (groups = 1): an output channel whose mask is all zero has dot_V(x, m) = 0; it
// is dropped from the kernel's weights (the GEMM runs on the live channels only) and its output is
// beta S + bias from (1). Cost: live / C_out of a dense bconv2d of the same shape plus the S sums.
// sblinear is the same computation as a 1x1 convolution on 1x1 images (rows = samples).
// Output transform: v = float(dot_m) * gain + float(S) * beta; v = v + bias; then
// fma(v, bn_scale, bn_shift) with a folded BatchNorm (two-level weights are not integers, so PyTorch's
// float conv itself rounds: this agrees with it to a few ulps, not bit for bit; it is bit-identical
// to onebit/export/reference.py).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "onebit/kernels.h"
#include "op.h"

namespace onebit::engine {
namespace {

void extract_bits(const word_t* src, std::int64_t src_words, std::int64_t start, std::int64_t n, word_t* dst) {
  const std::int64_t nw = words_for(n), w0 = start / kWordBits;
  const int sh = static_cast<int>(start % kWordBits);
  for (std::int64_t i = 0; i < nw; ++i) {
    word_t v = src[w0 + i] >> sh;
    if (sh && w0 + i + 1 < src_words) v |= src[w0 + i + 1] << (kWordBits - sh);
    dst[i] = v;
  }
  if (n % kWordBits) dst[nw - 1] &= (word_t{1} << (n % kWordBits)) - 1;
}

class SBConv final : public Op {
 public:
  SBConv(const OpDef& d, const std::vector<ValueDef>& v) : Op(d, v) {
    const bool conv = d.type == "sbconv2d";
    if (x_.kind != ValueKind::kBits || x_.domain != Domain::kPm1) fail("needs a pm1 bits input");
    Bconv2dArgs& a = args_;
    a.kernel_h = a.kernel_w = a.stride_h = a.stride_w = a.dilation_h = a.dilation_w = 1;
    a.pad_h = a.pad_w = 0, a.groups = 1;
    bool pad_one = false;
    if (conv) {
      a.height = x_.h(), a.width = x_.w(), a.groups = int_attr(d, "groups");
      a.kernel_h = int_attr(d, "kernel", 0), a.kernel_w = int_attr(d, "kernel", 1);
      a.stride_h = int_attr(d, "stride", 0), a.stride_w = int_attr(d, "stride", 1);
      a.dilation_h = int_attr(d, "dilation", 0), a.dilation_w = int_attr(d, "dilation", 1);
      a.pad_h = int_attr(d, "padding", 0), a.pad_w = int_attr(d, "padding", 2);
      pad_one = str_attr(d, "pad") == "one";
    } else {
      a.height = a.width = 1;  // a linear layer: a 1x1 convolution on 1x1 images
    }
    a.in_channels = x_.c(), cout_ = y_.c();
    if (conv && (a.out_height() != y_.h() || a.out_width() != y_.w())) fail("padding must be symmetric");
    const std::int64_t g = a.groups, cin_g = a.in_channels / g, wg = words_for(cin_g), taps = a.kernel_h * a.kernel_w;
    row_ = taps * wg, cout_g_ = cout_ / g;
    auto it = d.u64.find("mask");
    if (it == d.u64.end() || static_cast<std::int64_t>(it->second.size()) != cout_ * row_)
      fail("mask must be uint64 [Cout, kh, kw, words_for(Cin/groups)]");
    gain_ = f32(d, "gain", cout_), beta_ = f32(d, "beta", cout_), bias_ = f32(d, "bias", cout_);
    bn_scale_ = f32(d, "bn_scale", cout_, true), bn_shift_ = f32(d, "bn_shift", cout_, bn_scale_.empty());
    // Kernel channels: the live mask rows. Only groups = 1 drops dead channels (the kernel needs the
    // same channel count in every group).
    const word_t* m = it->second.data();
    col_.assign(cout_, -1);
    std::int64_t per_group = cout_g_;
    if (g == 1) {
      per_group = 0;
      for (std::int64_t co = 0; co < cout_; ++co)
        if (std::any_of(m + co * row_, m + (co + 1) * row_, [](word_t w) { return w != 0; })) col_[co] = per_group++;
    } else {
      for (std::int64_t co = 0; co < cout_; ++co) col_[co] = co;
    }
    cols_ = g * per_group;
    w_.assign(cols_ * row_, 0);
    for (std::int64_t co = 0; co < cout_; ++co)
      if (col_[co] >= 0) std::copy(m + co * row_, m + (co + 1) * row_, w_.begin() + col_[co] * row_);
    for (std::int64_t co = 0; co < cout_; ++co) grp_.push_back(co / cout_g_);
    cg_ = cin_g, wg_ = wg, pad_one_ = pad_one;
    a.out_channels = cols_, a.weight = w_.data(), a.mode = BgemmMode::kXor;
    a.pad_value = pad_one ? 1 : 0;
    if (!pad_one && a.pad_h + a.pad_w > 0) {
      tap_sums_.resize(taps * cols_);
      bconv2d_tap_sums(a, tap_sums_.data());
      a.tap_sums = tap_sums_.data();
    }
    a.output.kind = OutputKind::kInt32;
    regroup_ = g > 1 && cin_g % kWordBits != 0;
    // Output pixels per kernel call: the int32 block stays within ~256 KiB.
    tile_ = std::clamp<std::int64_t>((std::int64_t{1} << 18) / (4 * (cols_ + g)) / 60 * 60, 60, 1 << 14);
  }
  std::int64_t scratch_bytes() const override {
    return acc_bytes() + (regroup_ ? x_.pixels() * args_.groups * words_for(x_.c() / args_.groups) * 8 : 0);
  }

  void run(const RunCtx& ctx) const override {
    const auto& kern = select_kernel(bconv2d_kernels());
    const std::int64_t per_sample = y_.pixels();
    ctx.parallel_for(ctx.batch * per_sample, [&](int t, std::int64_t p0, std::int64_t p1) {
      char* scratch = ctx.thread_scratch(t);
      auto* acc = reinterpret_cast<std::int32_t*>(scratch);
      float* y = ctx.at<float>(out_[0], 0, y_.bytes());
      if (!regroup_) return tiles(kern.fn, ctx.at<const word_t>(in_[0], 0, x_.bytes()), ctx.batch, p0, p1, acc, y);
      auto* xr = reinterpret_cast<word_t*>(scratch + acc_bytes());
      for (std::int64_t n = p0 / per_sample; n * per_sample < p1; ++n) {  // one sample at a time
        regroup(ctx.at<const word_t>(in_[0], n, x_.bytes()), xr);
        const std::int64_t b = std::max(p0, n * per_sample) - n * per_sample;
        const std::int64_t e = std::min(p1, (n + 1) * per_sample) - n * per_sample;
        tiles(kern.fn, xr, 1, b, e, acc, y + n * per_sample * cout_);
      }
    });
  }

 private:
  std::int64_t acc_bytes() const { return (tile_ * (cols_ + args_.groups) * 4 + 63) / 64 * 64; }

  // Output pixels [p0, p1) of the `batch` images at x (flat (n, oy, ox) order, y at pixel 0).
  void tiles(void (*fn)(const Bconv2dArgs&), const word_t* x, std::int64_t batch, std::int64_t p0, std::int64_t p1,
             std::int32_t* acc, float* y) const {
    for (std::int64_t q = p0; q < p1; q += tile_) {
      const std::int64_t q1 = std::min(p1, q + tile_);
      std::int32_t* sums = acc + tile_ * cols_;
      if (cols_ > 0) {
        Bconv2dArgs a = args_;
        a.x = x, a.batch = batch, a.pixel_begin = q, a.pixel_end = q1;
        // The kernel writes pixel p's row at out + p * cols_: shift the block so pixel q lands at acc.
        a.output.out = reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(acc) - q * cols_ * 4);
        fn(a);
      }
      box_sums(x, q, q1, sums);
      finish(acc, sums, q1 - q, y + q * cout_);
    }
  }

  // S of eq. (3) for output pixels [q0, q1) and every group: sums[(q - q0) * groups + g]. The kernel
  // input has groups word-aligned: pixel stride groups * wg words, group g at word g * wg.
  void box_sums(const word_t* x, std::int64_t q0, std::int64_t q1, std::int32_t* sums) const {
    const Bconv2dArgs& a = args_;
    const std::int64_t oh = a.out_height(), ow = a.out_width(), g = a.groups, pw = g * wg_;
    for (std::int64_t q = q0; q < q1; ++q) {
      const std::int64_t n = q / (oh * ow), p = q % (oh * ow), oy = p / ow, ox = p % ow;
      const word_t* xn = x + n * a.height * a.width * pw;
      for (std::int64_t k = 0; k < g; ++k) {
        std::int64_t taps = 0, ones = 0;
        for (std::int64_t ky = 0; ky < a.kernel_h; ++ky) {
          const std::int64_t iy = oy * a.stride_h - a.pad_h + ky * a.dilation_h;
          for (std::int64_t kx = 0; kx < a.kernel_w; ++kx) {
            const std::int64_t ix = ox * a.stride_w - a.pad_w + kx * a.dilation_w;
            if (iy < 0 || iy >= a.height || ix < 0 || ix >= a.width) {
              taps += pad_one_;
              continue;
            }
            ++taps;
            const word_t* w = xn + (iy * a.width + ix) * pw + k * wg_;
            for (std::int64_t i = 0; i < wg_; ++i) ones += __builtin_popcountll(w[i]);
          }
        }
        sums[(q - q0) * g + k] = static_cast<std::int32_t>(taps * cg_ - 2 * ones);
      }
    }
  }

  void finish(const std::int32_t* acc, const std::int32_t* sums, std::int64_t rows, float* y) const {
    const std::int64_t g = args_.groups;
    for (std::int64_t r = 0; r < rows; ++r, acc += cols_, y += cout_, sums += g) {
      for (std::int64_t co = 0; co < cout_; ++co) {
        const std::int64_t s = sums[grp_[co]];
        const std::int64_t dot_m = col_[co] < 0 ? 0 : (s - acc[col_[co]]) / 2;  // eq. (4)
        float v = static_cast<float>(dot_m) * gain_[co] + static_cast<float>(s) * beta_[co];
        v = v + bias_[co];
        y[co] = bn_scale_.empty() ? v : std::fma(v, bn_scale_[co], bn_shift_[co]);
      }
    }
  }

  void regroup(const word_t* x, word_t* out) const {
    const std::int64_t g = args_.groups, cg = x_.c() / g, wg = words_for(cg), win = words_for(x_.c());
    for (std::int64_t p = 0; p < x_.pixels(); ++p)
      for (std::int64_t k = 0; k < g; ++k) extract_bits(x + p * win, win, k * cg, cg, out + (p * g + k) * wg);
  }

  Bconv2dArgs args_{};
  bool regroup_ = false, pad_one_ = false;
  std::int64_t cout_ = 0, cout_g_ = 1, row_ = 0, cols_ = 0, tile_ = 60, cg_ = 1, wg_ = 1;
  std::vector<word_t> w_;                 // kernel weights: (cols_, kh, kw, words_for(Cg))
  std::vector<std::int32_t> tap_sums_;
  std::vector<std::int64_t> col_, grp_;  // kernel channel of each output channel (-1: dead); its group
  std::vector<float> gain_, beta_, bias_, bn_scale_, bn_shift_;
};

}  // namespace

std::unique_ptr<Op> make_sparse_op(const OpDef& d, const std::vector<ValueDef>& v) {
  if (d.type == "sbconv2d" || d.type == "sblinear") return std::make_unique<SBConv>(d, v);
  return nullptr;
}

}  // namespace onebit::engine
