// SBNN's two-level weights {alpha, beta} on +-1 inputs: sbconv2d / sblinear (float output), computed
// by the dispatched bconv2d kernels in kMask mode, i.e. the block-sparse sbgemm (sbgemm.h) that skips
// the zero words of the mask. Semantics: onebit/export/reference.py; weight domain:
// onebit/quantizers/domain.py; file encodings of the mask: onebit/export/lower_methods.py.
//
// Per output channel co the weight is w_i = beta + gain m_i with m_i in {0, 1} (gain = alpha - beta;
// the converter puts m = 1 on the rarer value, so the mask is sparse, and beta = 0 in SBNN's sparse
// domain). Inputs x_i = 1 - 2 A_i (bit 1 = -1). V = the taps that count for an output pixel: the
// valid taps, or every tap with pad "one" (a padded tap is x = +1 there, bits 0); with pad "zero"
// PyTorch pads with the value 0, which adds nothing, so padded taps are not in V.
//   dot(x, w) = beta sum_V x + gain dot_V(x, m)                                            (1)
// dot_V(x, m) is the bconv2d kMask result (bconv2d.h: pad_value +1 for pad "one"; pad_value 0 with
// the kMask tap sums for pad "zero"), exact in integers: no (S - acc) / 2 detour.
// S = sum_V x = n_V - 2 popcount_V(A) (n_V = #taps in V * Cg) is shared by every output channel of a
// group; it is only needed when some beta != 0, and then computed per output pixel from the input
// words of the taps in V (padded taps of pad "one" add Cg to n_V and nothing to the popcount).   (2)
// Output: v = float(dot_m) * gain + float(S) * beta; v = v + bias; then fma(v, bn_scale, bn_shift) with
// a folded BatchNorm. When every beta is 0: float(S) * 0 is a zero z, and P + z = P for the product
// P = float(dot_m) * gain unless P is itself a zero (then P + z is a zero too); adding the bias then
// gives the same value either way (at most the sign of a zero result differs when bias is -0, which
// compares equal and binarizes the same). So the kernel's kFloat transform y = float(dot_m) * gain + bias
// is the same arithmetic, fused into the kernel, and no S is computed. Two-level weights are not
// integers, so PyTorch's float conv itself rounds: this agrees with it to a few ulps, not bit for bit;
// it is bit-identical to onebit/export/reference.py.
//
// The mask arrives dense ("mask": [Cout, kh, kw, words_for(Cin/groups)]) or as its nonzero words
// ("mask_index": one bit per mask word, set where the word is nonzero, then "mask_words": those
// words in order). Both are checked here: sizes, index padding bits, the popcount of the index
// against the word count, and no bits past Cin/groups in any tap (they would enter popcount(m)).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "onebit/kernels.h"
#include "onebit/sparse_rows.h"
#include "op.h"

namespace onebit::engine {
namespace {

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
    a.in_channels = x_.c(), a.out_channels = cout_ = y_.c();
    if (conv && (a.out_height() != y_.h() || a.out_width() != y_.w())) fail("padding must be symmetric");
    const std::int64_t g = a.groups, taps = a.kernel_h * a.kernel_w;
    cg_ = a.in_channels / g, wg_ = words_for(cg_), row_ = taps * wg_;
    read_mask(d);
    gain_ = f32(d, "gain", cout_), beta_ = f32(d, "beta", cout_), bias_ = f32(d, "bias", cout_);
    bn_scale_ = f32(d, "bn_scale", cout_, true), bn_shift_ = f32(d, "bn_shift", cout_, bn_scale_.empty());
    const std::int64_t og = cout_ / g;
    for (std::int64_t k = 0; k < g; ++k) sparse_.push_back(make_sparse_rows(mask_.data() + k * og * row_, og, row_, row_));
    for (const auto& s : sparse_) views_.push_back(s.view());
    a.weight = mask_.data(), a.sparse = views_.data(), a.mode = BgemmMode::kMask;
    a.pad_value = pad_one ? 1 : 0, pad_one_ = pad_one;
    if (!pad_one && a.pad_h + a.pad_w > 0) {
      tap_sums_.resize(taps * cout_);
      bconv2d_tap_sums(a, tap_sums_.data());
      a.tap_sums = tap_sums_.data();
    }
    beta_zero_ = std::all_of(beta_.begin(), beta_.end(), [](float b) { return b == 0.0f; });
    if (beta_zero_) {
      a.output.kind = OutputKind::kFloat, a.output.multiplier = gain_.data(), a.output.bias = bias_.data();
    } else {
      a.output.kind = OutputKind::kInt32;
    }
    regroup_ = g > 1 && cg_ % kWordBits != 0;
    // Output pixels per kernel call (general path): the int32 block stays within ~256 KiB.
    tile_ = std::clamp<std::int64_t>((std::int64_t{1} << 18) / (4 * (cout_ + g)) / 60 * 60, 60, 1 << 14);
  }
  bool accepts_stages() const override { return true; }  // float output: epilogue fusion (op.h)
  std::int64_t scratch_bytes() const override {
    return acc_bytes() + (regroup_ ? x_.pixels() * args_.groups * wg_ * 8 : 0);
  }

  void run(const RunCtx& ctx) const override {
    const auto& kern = select_kernel(bconv2d_kernels());
    const std::int64_t per_sample = y_.pixels();
    ctx.parallel_for(ctx.batch * per_sample, [&](int t, std::int64_t p0, std::int64_t p1) {
      char* scratch = ctx.thread_scratch(t);
      auto* acc = reinterpret_cast<std::int32_t*>(scratch);
      float* y = ctx.at<float>(out_[0], 0, y_.bytes());
      if (!regroup_) return tiles(ctx, kern.fn, ctx.at<const word_t>(in_[0], 0, x_.bytes()), ctx.batch, 0, p0, p1, acc, y);
      auto* xr = reinterpret_cast<word_t*>(scratch + acc_bytes());
      for_each_sample(p0, p1, per_sample, [&](std::int64_t n, std::int64_t b, std::int64_t e) {
        regroup(ctx.at<const word_t>(in_[0], n, x_.bytes()), xr);
        tiles(ctx, kern.fn, xr, 1, n * per_sample, b, e, acc, y + n * per_sample * cout_);
      });
    });
  }

 private:
  std::int64_t acc_bytes() const { return beta_zero_ ? 0 : (tile_ * (cout_ + args_.groups) * 4 + 63) / 64 * 64; }

  void read_mask(const OpDef& d) {
    const std::int64_t total = cout_ * row_;
    auto dense = d.u64.find("mask");
    auto index = d.u64.find("mask_index");
    auto words = d.u64.find("mask_words");
    if ((dense != d.u64.end()) == (index != d.u64.end()) || (index != d.u64.end()) != (words != d.u64.end()))
      fail("needs either 'mask' or both 'mask_index' and 'mask_words'");
    if (dense != d.u64.end()) {
      if (static_cast<std::int64_t>(dense->second.size()) != total)
        fail("mask must be uint64 [Cout, kh, kw, words_for(Cin/groups)]");
      mask_ = dense->second;
    } else {
      const auto& idx = index->second;
      if (static_cast<std::int64_t>(idx.size()) != words_for(total)) fail("mask_index must have words_for(mask words) words");
      if (total % kWordBits && (idx.back() >> (total % kWordBits)) != 0) fail("mask_index has bits past the mask");
      std::int64_t live = 0;
      for (word_t w : idx) live += __builtin_popcountll(w);
      if (live != static_cast<std::int64_t>(words->second.size())) fail("mask_words does not match mask_index");
      mask_.assign(total, 0);
      std::int64_t j = 0;
      for (std::int64_t i = 0; i < total; ++i)
        if ((idx[i / kWordBits] >> (i % kWordBits)) & 1u) mask_[i] = words->second[j++];
    }
    if (cg_ % kWordBits) {
      const word_t pad = ~word_t{0} << (cg_ % kWordBits);
      for (std::int64_t s = 0; s < total / wg_; ++s)
        if (mask_[s * wg_ + wg_ - 1] & pad) fail("mask has bits set past Cin/groups in a tap (padding bits must be 0)");
    }
  }

  // Output pixels [p0, p1) of the `batch` images at x (flat (n, oy, ox) order, y at pixel 0, which is
  // flat pixel `pixel0` of the whole batch: where the fused stages find their second operands).
  void tiles(const RunCtx& ctx, void (*fn)(const Bconv2dArgs&), const word_t* x, std::int64_t batch,
             std::int64_t pixel0, std::int64_t p0, std::int64_t p1, std::int32_t* acc, float* y) const {
    Bconv2dArgs a = args_;
    a.x = x, a.batch = batch;
    const Epilogue e{this, &ctx, pixel0};
    if (beta_zero_) {  // y = float(dot_m) * gain + bias in the kernel, then BN and the fused stages per block
      a.pixel_begin = p0, a.pixel_end = p1, a.output.out = y;
      if (!bn_scale_.empty() || !stages_.empty()) a.output.epilogue = &epilogue, a.output.epilogue_ctx = &e;
      return fn(a);
    }
    for (std::int64_t q = p0; q < p1; q += tile_) {
      const std::int64_t q1 = std::min(p1, q + tile_);
      a.pixel_begin = q, a.pixel_end = q1;
      // The kernel writes pixel p's row at out + p * cout_: shift the block so pixel q lands at acc.
      a.output.out = reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(acc) - q * cout_ * 4);
      fn(a);
      std::int32_t* sums = acc + tile_ * cout_;
      box_sums(x, q, q1, sums);
      finish(acc, sums, q1 - q, y + q * cout_);
      const EwParams bn = bn_params();
      run_stages(ctx, pixel0 + q, y + q * cout_, q1 - q, cout_, 0, cout_, bn_scale_.empty() ? nullptr : &bn);
    }
  }

  struct Epilogue {
    const SBConv* op;
    const RunCtx* ctx;
    std::int64_t pixel0;
  };
  static void epilogue(const void* p, float* y, std::int64_t first, std::int64_t rows) {
    const auto& e = *static_cast<const Epilogue*>(p);
    const EwParams bn = e.op->bn_params();
    const std::int64_t c = e.op->cout_;
    e.op->run_stages(*e.ctx, e.pixel0 + first, y, rows, c, 0, c, e.op->bn_scale_.empty() ? nullptr : &bn);
  }
  // The BN stage (when the file has one): the first op of the stage chain.
  EwParams bn_params() const { return EwParams{kAffineFma, bn_scale_.data(), bn_shift_.data(), nullptr, 0, 0}; }

  // S of eq. (2) for output pixels [q0, q1) and every group: sums[(q - q0) * groups + g]. The kernel
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

  // v = float(dot_m) * gain + float(S) * beta; v = v + bias: eq. (1) (the BN stage follows in run_stages).
  void finish(const std::int32_t* acc, const std::int32_t* sums, std::int64_t rows, float* y) const {
    const std::int64_t g = args_.groups, og = cout_ / g;
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t k = 0; k < g; ++k) {
        const float s = static_cast<float>(sums[r * g + k]);
        const std::int32_t* ar = acc + r * cout_ + k * og;
        float* yr = y + r * cout_ + k * og;
        const float *gn = gain_.data() + k * og, *bt = beta_.data() + k * og, *bs = bias_.data() + k * og;
        for (std::int64_t c = 0; c < og; ++c) {
          const float v = static_cast<float>(ar[c]) * gn[c] + s * bt[c];
          yr[c] = v + bs[c];
        }
      }
    }
  }

  void regroup(const word_t* x, word_t* out) const { regroup_words(x, x_.pixels(), x_.c(), args_.groups, out); }

  Bconv2dArgs args_{};
  bool regroup_ = false, pad_one_ = false, beta_zero_ = false;
  std::int64_t cout_ = 0, row_ = 0, tile_ = 60, cg_ = 1, wg_ = 1;
  std::vector<word_t> mask_;  // dense: (Cout, kh, kw, words_for(Cg)); the reference layout
  std::vector<SparseRowsStorage> sparse_;
  std::vector<SparseRows> views_;  // one per group, into sparse_
  std::vector<std::int32_t> tap_sums_;
  std::vector<float> gain_, beta_, bias_, bn_scale_, bn_shift_;
};

}  // namespace

std::unique_ptr<Op> make_sparse_op(const OpDef& d, const std::vector<ValueDef>& v) {
  if (d.type == "sbconv2d" || d.type == "sblinear") return std::make_unique<SBConv>(d, v);
  return nullptr;
}

}  // namespace onebit::engine
