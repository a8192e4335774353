// SBNN's two-level weights {alpha, beta} on +-1 inputs: sbconv2d / sblinear (float output).
// Semantics: onebit/export/reference.py; weight domain: onebit/quantizers/domain.py.
//
// Per output channel co the weight is w_i = beta + gain m_i with m_i in {0, 1} (gain = alpha - beta,
// the converter puts m = 1 on the value of larger magnitude, so beta = 0 in SBNN's sparse domain).
// With x_i = 1 - 2 b_i (bit 1 = -1) over the taps V that count (valid taps; with pad "one" every tap,
// padded ones being +1 = bit 0):
//   dot(x, w) = beta sum_V x + gain dot_V(x, m)
//   sum_V x    = n_V - 2 popcount(B)                       (shared by every output channel)
//   dot_V(x,m) = popcount(M_V) - 2 popcount(B AND M)      (an AND-popcount on the mask)
// Padded taps are packed as bit 0 and excluded from n_V and popcount(M_V) with pad "zero" (PyTorch
// pads with the value 0, which adds nothing). Only the mask's nonzero words are visited: at sparsity
// s the AND-popcount costs (1 - s) of a dense one, and beta = 0 for every channel skips sum_V x.
// Output transform: v = float(dot_m) * gain + float(sum_x) * beta; v = v + bias; then
// fma(v, bn_scale, bn_shift) with a folded BatchNorm (two-level weights are not integers, so PyTorch's
// float conv itself rounds: this agrees with it to a few ulps, not bit for bit).
#include <cmath>
#include <cstring>

#include "op.h"

namespace onebit::engine {
namespace {

inline int pop(word_t w) { return __builtin_popcountll(w); }

class SBConv final : public Op {
 public:
  SBConv(const OpDef& d, const std::vector<ValueDef>& v) : Op(d, v) {
    conv_ = d.type == "sbconv2d";
    if (x_.kind != ValueKind::kBits || x_.domain != Domain::kPm1) fail("needs a pm1 bits input");
    if (conv_) {
      for (int i = 0; i < 2; ++i) k_[i] = int_attr(d, "kernel", i), s_[i] = int_attr(d, "stride", i),
                                  dil_[i] = int_attr(d, "dilation", i);
      pt_ = int_attr(d, "padding", 0), pl_ = int_attr(d, "padding", 2), g_ = int_attr(d, "groups");
      pad_one_ = str_attr(d, "pad") == "one";
    }
    cin_g_ = x_.c() / g_, cout_ = y_.c(), wg_ = words_for(cin_g_), taps_ = k_[0] * k_[1];
    auto it = d.u64.find("mask");
    if (it == d.u64.end() || static_cast<std::int64_t>(it->second.size()) != cout_ * taps_ * wg_)
      fail("mask must be uint64 [Cout, kh, kw, words_for(Cin/groups)]");
    load_mask(it->second);
    gain_ = f32(d, "gain", cout_), beta_ = f32(d, "beta", cout_), bias_ = f32(d, "bias", cout_);
    bn_scale_ = f32(d, "bn_scale", cout_, true), bn_shift_ = f32(d, "bn_shift", cout_, bn_scale_.empty());
    for (float b : beta_) dense_term_ = dense_term_ || b != 0.0f;
  }
  std::int64_t scratch_bytes() const override { return taps_ * (wg_ * 8 + 1); }
  void run(const RunCtx& ctx) const override {
    const std::int64_t pixels = y_.pixels();
    parallel_for(ctx.batch * pixels, ctx.num_threads, [&](int t, std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) pixel(ctx, t, i / pixels, i % pixels);
    });
  }

 private:
  // Nonzero mask words per output channel as (offset into the im2col row, word); popcount(M) per tap.
  void load_mask(const std::vector<word_t>& m) {
    nz_begin_.push_back(0);
    for (std::int64_t co = 0; co < cout_; ++co) {
      for (std::int64_t t = 0; t < taps_; ++t) {
        std::int32_t count = 0;
        for (std::int64_t i = 0; i < wg_; ++i) {
          const word_t w = m[(co * taps_ + t) * wg_ + i];
          if (w) nz_.push_back({t * wg_ + i, w}), count += pop(w);
        }
        tap_pop_.push_back(count);
      }
      nz_begin_.push_back(static_cast<std::int64_t>(nz_.size()));
    }
  }
  // Bits [start, start + n) of a pixel's row of words (a group's channels), tail bits 0.
  static void extract(const word_t* src, std::int64_t src_words, std::int64_t start, std::int64_t n, word_t* dst) {
    const std::int64_t nw = words_for(n), w0 = start / kWordBits;
    const int sh = static_cast<int>(start % kWordBits);
    for (std::int64_t i = 0; i < nw; ++i) {
      word_t v = src[w0 + i] >> sh;
      if (sh && w0 + i + 1 < src_words) v |= src[w0 + i + 1] << (kWordBits - sh);
      dst[i] = v;
    }
    if (n % kWordBits) dst[nw - 1] &= (word_t{1} << (n % kWordBits)) - 1;
  }
  // The im2col row of output pixel p for group g; valid[t] = the tap counts (inside, or pad "one").
  void im2col(const word_t* x, std::int64_t g, std::int64_t p, word_t* row, std::uint8_t* valid) const {
    const std::int64_t oh = p / y_.w(), ow = p % y_.w(), win = words_for(x_.c());
    for (std::int64_t kh = 0; kh < k_[0]; ++kh)
      for (std::int64_t kw = 0; kw < k_[1]; ++kw) {
        const std::int64_t ih = oh * s_[0] - pt_ + kh * dil_[0], iw = ow * s_[1] - pl_ + kw * dil_[1];
        const std::int64_t t = kh * k_[1] + kw;
        const bool inside = ih >= 0 && ih < x_.h() && iw >= 0 && iw < x_.w();
        valid[t] = inside || pad_one_;
        if (!inside) std::memset(row + t * wg_, 0, wg_ * 8);
        else extract(x + (ih * x_.w() + iw) * win, win, g * cin_g_, cin_g_, row + t * wg_);
      }
  }
  void pixel(const RunCtx& ctx, int thread, std::int64_t n, std::int64_t p) const {
    word_t* row = reinterpret_cast<word_t*>(ctx.thread_scratch(thread));
    std::uint8_t* valid = reinterpret_cast<std::uint8_t*>(row + taps_ * wg_);
    const word_t* x = ctx.at<const word_t>(in_[0], n, x_.bytes());
    float* y = ctx.at<float>(out_[0], n, y_.bytes()) + p * cout_;
    const std::int64_t cout_g = cout_ / g_;
    for (std::int64_t g = 0; g < g_; ++g) {
      im2col(x, g, p, row, valid);
      std::int64_t n_valid = 0, pop_x = 0;
      bool all_valid = true;
      for (std::int64_t t = 0; t < taps_; ++t) n_valid += valid[t] ? cin_g_ : 0, all_valid = all_valid && valid[t];
      if (dense_term_)
        for (std::int64_t i = 0; i < taps_ * wg_; ++i) pop_x += pop(row[i]);
      const float sum_x = static_cast<float>(n_valid - 2 * pop_x);
      for (std::int64_t co = g * cout_g; co < (g + 1) * cout_g; ++co) {
        std::int64_t pop_and = 0, pop_m = 0;
        for (std::int64_t j = nz_begin_[co]; j < nz_begin_[co + 1]; ++j) pop_and += pop(row[nz_[j].first] & nz_[j].second);
        for (std::int64_t t = 0; t < taps_; ++t) pop_m += (all_valid || valid[t]) ? tap_pop_[co * taps_ + t] : 0;
        float v = static_cast<float>(pop_m - 2 * pop_and) * gain_[co] + sum_x * beta_[co];
        v = v + bias_[co];
        y[co] = bn_scale_.empty() ? v : std::fma(v, bn_scale_[co], bn_shift_[co]);
      }
    }
  }

  bool conv_ = false, pad_one_ = false, dense_term_ = false;
  std::int64_t k_[2] = {1, 1}, s_[2] = {1, 1}, dil_[2] = {1, 1}, pt_ = 0, pl_ = 0, g_ = 1;
  std::int64_t cin_g_, cout_, wg_, taps_;
  std::vector<std::pair<std::int64_t, word_t>> nz_;
  std::vector<std::int64_t> nz_begin_;
  std::vector<std::int32_t> tap_pop_;
  std::vector<float> gain_, beta_, bias_, bn_scale_, bn_shift_;
};

}  // namespace

std::unique_ptr<Op> make_sparse_op(const OpDef& d, const std::vector<ValueDef>& v) {
  if (d.type == "sbconv2d" || d.type == "sblinear") return std::make_unique<SBConv>(d, v);
  return nullptr;
}

}  // namespace onebit::engine
