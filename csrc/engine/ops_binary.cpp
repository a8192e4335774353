// Binary ops of the engine: bitpack, bconv2d, blinear, bmaxpool (semantics: onebit/export/reference.py).
//
// bconv2d = im2col on bits + the dispatched bgemm (bgemm.h) + the output transform.
//
// im2col row of an output pixel: for every tap (kh, kw) the Cin/g bits of the input pixel under it,
// starting a fresh word per tap (KW = kh * kw * Wg words, Wg = words_for(Cin/g)); the weights are packed
// the same way by the converter, so the unused bits of each tap's last word are 0 in both operands.
// The GEMM runs with k = 64 KW (every word "full"):
//   xor (+-1 x +-1):  bgemm gives 64 KW - 2 pop;  d = K - 2 pop = bgemm - (64 KW - K),  K = kh kw Cin/g,
//                     because padding bit pairs (0, 0) never count in pop.
//   and ({0,1} x +-1): bgemm gives popcount(A) - 2 popcount(A AND B), which does not involve k.
// Spatial padding, by the value it stands for (reference.py):
//   pm1, pad "one" (+1):  bit 0 -- exact, nothing to correct.
//   01,  pad "zero" (0):  bit 0 -- exact.        01, pad "one" (1): bit 1 for the tap's Cin/g channels.
//   pm1, pad "zero" (0):  a third value. We pack bit 0 (+1), which adds w_i * (+1) for every padded tap
//     to the dot product, so  d_true = d_packed - sum_{padded taps t} S[co][t],  S[co][t] = sum_i w_i
//     = Cin/g - 2 popcount(W[co][t]) (precomputed per output channel and tap; border pixels only).
//
// Output transform (per output channel co, integer d):
//   float: v = float(d) * alpha + beta  (two roundings, -ffp-contract=off), then fma(v, bn_scale, bn_shift)
//          when a BatchNorm was folded;
//   bits:  bit = (d >= threshold) XOR flip  (thresholds derived exactly by the converter, fold.py).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "onebit/bgemm.h"
#include "onebit/kernels.h"
#include "op.h"

namespace onebit::engine {
namespace {

constexpr std::int64_t kTileRows = 64;  // output pixels per im2col + GEMM tile

inline int popcount64(word_t w) { return __builtin_popcountll(w); }

// Copy bits [start, start + n) of a row of `src_words` words into dst (words_for(n) words, tail bits 0).
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

// The output transform shared by bconv2d and blinear.
struct Transform {
  bool bits = false, bn = false;
  std::vector<float> alpha, beta, bn_scale, bn_shift;
  std::vector<std::int32_t> threshold;
  std::vector<std::uint8_t> flip;

  // d: `rows` x `n` int32 (row stride ldd) for output channels [co0, co0 + n); writes rows of the output.
  void apply(const std::int32_t* d, std::int64_t ldd, std::int64_t rows, std::int64_t n, std::int64_t co0,
             std::int64_t correction_offset, char* out, std::int64_t cout) const {
    const std::int64_t wout = words_for(cout);
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::int32_t* dr = d + r * ldd;
      if (bits) {
        word_t* o = reinterpret_cast<word_t*>(out) + r * wout;
        for (std::int64_t j = 0; j < n; ++j) {
          const std::int64_t co = co0 + j;
          const bool bit = ((dr[j] - correction_offset) >= threshold[co]) != (flip[co] != 0);
          o[co / kWordBits] |= word_t{bit} << (co % kWordBits);
        }
      } else {
        float* o = reinterpret_cast<float*>(out) + r * cout;
        for (std::int64_t j = 0; j < n; ++j) {
          const std::int64_t co = co0 + j;
          const float v = static_cast<float>(dr[j] - correction_offset) * alpha[co] + beta[co];
          o[co] = bn ? std::fma(v, bn_scale[co], bn_shift[co]) : v;
        }
      }
    }
  }
};

class BinaryBase : public Op {
 public:
  BinaryBase(const OpDef& d, const std::vector<ValueDef>& v) : Op(d, v) {
    xor_ = str_attr(d, "mode") == "xor";
    const std::int64_t cout = y_.c();
    t_.bits = str_attr(d, "output") == "bits";
    if (t_.bits) {
      auto it = d.i32.find("threshold");
      auto jt = d.u8.find("flip");
      if (it == d.i32.end() || jt == d.u8.end() || static_cast<std::int64_t>(it->second.size()) != cout ||
          static_cast<std::int64_t>(jt->second.size()) != cout)
        fail("bits output needs int32 threshold and uint8 flip per output channel");
      t_.threshold = it->second;
      t_.flip = jt->second;
    } else {
      t_.alpha = f32(d, "alpha", cout);
      t_.beta = f32(d, "beta", cout);
      t_.bn_scale = f32(d, "bn_scale", cout, true);
      t_.bn_shift = f32(d, "bn_shift", cout, t_.bn_scale.empty());
      t_.bn = !t_.bn_scale.empty();
    }
    if ((x_.domain == Domain::kPm1) != xor_) fail("mode does not match the input domain");
  }

 protected:
  void bgemm(const word_t* a, std::int64_t m, const word_t* b, std::int64_t n, std::int64_t k, std::int64_t kw,
             std::int32_t* c) const {
    const auto& kern = select_kernel(bgemm_kernels());
    BgemmArgs args{a, b, m, n, k, kw, kw, xor_ ? BgemmMode::kXor : BgemmMode::kAnd, c, n};
    kern.fn(args);
  }
  bool xor_ = true;
  Transform t_;
};

class BConv2d final : public BinaryBase {
 public:
  BConv2d(const OpDef& d, const std::vector<ValueDef>& v) : BinaryBase(d, v) {
    for (int i = 0; i < 2; ++i) {
      k_[i] = int_attr(d, "kernel", i);
      s_[i] = int_attr(d, "stride", i);
      dil_[i] = int_attr(d, "dilation", i);
    }
    pt_ = int_attr(d, "padding", 0);
    pl_ = int_attr(d, "padding", 2);
    g_ = int_attr(d, "groups");
    cin_g_ = x_.c() / g_;
    cout_g_ = y_.c() / g_;
    wg_ = words_for(cin_g_);
    taps_ = k_[0] * k_[1];
    kw_ = taps_ * wg_;
    auto it = d.u64.find("weight");
    if (it == d.u64.end() || static_cast<std::int64_t>(it->second.size()) != y_.c() * kw_)
      fail("weight must be uint64 [Cout, kh, kw, words_for(Cin/groups)]");
    w_ = it->second;
    const bool one = str_attr(d, "pad") == "one";
    correct_ = xor_ && !one;
    pad_word_fill_ = !xor_ && one;  // {0,1} input padded with 1
    if (correct_) {
      tap_sum_.resize(y_.c() * taps_);
      for (std::int64_t co = 0; co < y_.c(); ++co)
        for (std::int64_t t = 0; t < taps_; ++t) {
          std::int64_t pop = 0;
          for (std::int64_t i = 0; i < wg_; ++i) pop += popcount64(w_[(co * taps_ + t) * wg_ + i]);
          tap_sum_[co * taps_ + t] = static_cast<std::int32_t>(cin_g_ - 2 * pop);
        }
    }
  }
  std::int64_t scratch_bytes() const override { return kTileRows * (kw_ * 8 + cout_g_ * 4 + taps_); }

  void run(const RunCtx& ctx) const override {
    const std::int64_t pixels = y_.pixels(), tiles = (pixels + kTileRows - 1) / kTileRows;
    parallel_for(ctx.batch * tiles, ctx.num_threads, [&](int t, std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) {
        const std::int64_t p0 = (i % tiles) * kTileRows;
        tile(ctx, t, i / tiles, p0, std::min(pixels, p0 + kTileRows));
      }
    });
  }

 private:
  void tile(const RunCtx& ctx, int thread, std::int64_t n, std::int64_t p0, std::int64_t p1) const {
    char* scratch = ctx.thread_scratch(thread);
    word_t* a = reinterpret_cast<word_t*>(scratch);
    std::int32_t* c = reinterpret_cast<std::int32_t*>(scratch + kTileRows * kw_ * 8);
    std::uint8_t* padded = reinterpret_cast<std::uint8_t*>(scratch + kTileRows * (kw_ * 8 + cout_g_ * 4));
    const word_t* x = ctx.at<const word_t>(in_[0], n, x_.bytes());
    char* y = ctx.ptr[out_[0]] + n * y_.bytes();
    const std::int64_t out_row = t_.bits ? words_for(y_.c()) * 8 : y_.c() * 4;
    if (t_.bits) std::memset(y + p0 * out_row, 0, (p1 - p0) * out_row);
    const std::int64_t rows = p1 - p0, k_bits = kw_ * kWordBits, k_true = taps_ * cin_g_;
    for (std::int64_t g = 0; g < g_; ++g) {
      for (std::int64_t p = p0; p < p1; ++p) im2col(x, g, p, a + (p - p0) * kw_, padded + (p - p0) * taps_);
      bgemm(a, rows, w_.data() + g * cout_g_ * kw_, cout_g_, k_bits, kw_, c);
      if (correct_) correct(c, padded, rows, g);
      t_.apply(c, cout_g_, rows, cout_g_, g * cout_g_, xor_ ? k_bits - k_true : 0, y + p0 * out_row, y_.c());
    }
  }

  void im2col(const word_t* x, std::int64_t g, std::int64_t p, word_t* row, std::uint8_t* padded) const {
    const std::int64_t oh = p / y_.w(), ow = p % y_.w(), win = words_for(x_.c());
    for (std::int64_t kh = 0; kh < k_[0]; ++kh) {
      const std::int64_t ih = oh * s_[0] - pt_ + kh * dil_[0];
      for (std::int64_t kw = 0; kw < k_[1]; ++kw) {
        const std::int64_t iw = ow * s_[1] - pl_ + kw * dil_[1], t = kh * k_[1] + kw;
        word_t* dst = row + t * wg_;
        const bool out = ih < 0 || ih >= x_.h() || iw < 0 || iw >= x_.w();
        padded[t] = out;
        if (out) {
          std::memset(dst, pad_word_fill_ ? 0xff : 0, wg_ * 8);
          if (pad_word_fill_ && cin_g_ % kWordBits) dst[wg_ - 1] = (word_t{1} << (cin_g_ % kWordBits)) - 1;
        } else if (g_ == 1) {
          std::memcpy(dst, x + (ih * x_.w() + iw) * win, wg_ * 8);
        } else {
          extract_bits(x + (ih * x_.w() + iw) * win, win, g * cin_g_, cin_g_, dst);
        }
      }
    }
  }

  // pm1 input with zero padding: remove what the +1 packed for each padded tap added (see the top).
  void correct(std::int32_t* c, const std::uint8_t* padded, std::int64_t rows, std::int64_t g) const {
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::uint8_t* pr = padded + r * taps_;
      if (std::none_of(pr, pr + taps_, [](std::uint8_t v) { return v != 0; })) continue;
      for (std::int64_t j = 0; j < cout_g_; ++j) {
        const std::int32_t* s = tap_sum_.data() + (g * cout_g_ + j) * taps_;
        std::int32_t sum = 0;
        for (std::int64_t t = 0; t < taps_; ++t) sum += pr[t] ? s[t] : 0;
        c[r * cout_g_ + j] -= sum;
      }
    }
  }

  std::int64_t k_[2], s_[2], dil_[2], pt_, pl_, g_, cin_g_, cout_g_, wg_, taps_, kw_;
  bool correct_ = false, pad_word_fill_ = false;
  std::vector<word_t> w_;
  std::vector<std::int32_t> tap_sum_;
};

class BLinear final : public BinaryBase {
 public:
  BLinear(const OpDef& d, const std::vector<ValueDef>& v) : BinaryBase(d, v) {
    kw_ = words_for(x_.c());
    auto it = d.u64.find("weight");
    if (it == d.u64.end() || static_cast<std::int64_t>(it->second.size()) != y_.c() * kw_)
      fail("weight must be uint64 [out_features, words_for(in_features)]");
    w_ = it->second;
  }
  std::int64_t scratch_bytes() const override { return kTileRows * y_.c() * 4; }
  void run(const RunCtx& ctx) const override {
    const std::int64_t tiles = (ctx.batch + kTileRows - 1) / kTileRows, out_row = y_.bytes();
    for (std::int64_t i = 0; i < tiles; ++i) {
      const std::int64_t n0 = i * kTileRows, rows = std::min(kTileRows, ctx.batch - n0);
      std::int32_t* c = reinterpret_cast<std::int32_t*>(ctx.thread_scratch(0));
      bgemm(ctx.at<const word_t>(in_[0], n0, x_.bytes()), rows, w_.data(), y_.c(), x_.c(), kw_, c);
      char* y = ctx.ptr[out_[0]] + n0 * out_row;
      if (t_.bits) std::memset(y, 0, rows * out_row);
      t_.apply(c, y_.c(), rows, y_.c(), 0, 0, y, y_.c());
    }
  }

 private:
  std::int64_t kw_;
  std::vector<word_t> w_;
};

class Bitpack final : public Op {
 public:
  Bitpack(const OpDef& d, const std::vector<ValueDef>& v) : Op(d, v) {
    mode_ = str_attr(d, "mode") == "sign" ? PackMode::kSign : PackMode::kHeaviside;
    thresholds_ = f32(d, "thresholds", x_.c(), true);
  }
  void run(const RunCtx& ctx) const override {
    const std::int64_t rows = ctx.batch * x_.pixels(), c = x_.c();
    const auto& kern = select_kernel(bitpack_kernels());
    const float* x = reinterpret_cast<const float*>(ctx.ptr[in_[0]]);
    word_t* y = reinterpret_cast<word_t*>(ctx.ptr[out_[0]]);
    parallel_for(rows, ctx.num_threads, [&](int, std::int64_t r0, std::int64_t r1) {
      BitpackArgs args{x + r0 * c, thresholds_.empty() ? nullptr : thresholds_.data(), r1 - r0, c, mode_,
                       y + r0 * words_for(c)};
      kern.fn(args);
    });
  }

 private:
  PackMode mode_;
  std::vector<float> thresholds_;
};

// Max-pool on bits: per channel OR of the window where or_mask (the bit rises with the pooled value),
// AND where it falls; positions outside the input are skipped (torch pads max-pools with -inf).
class BMaxPool final : public Op {
 public:
  BMaxPool(const OpDef& d, const std::vector<ValueDef>& v) : Op(d, v) {
    for (int i = 0; i < 2; ++i) {
      k_[i] = int_attr(d, "kernel", i);
      s_[i] = int_attr(d, "stride", i);
      p_[i] = int_attr(d, "padding", i);
    }
    auto it = d.u8.find("or_mask");
    if (it == d.u8.end() || static_cast<std::int64_t>(it->second.size()) != x_.c()) fail("or_mask must be uint8 [C]");
    mask_.assign(words_for(x_.c()), 0);
    for (std::int64_t c = 0; c < x_.c(); ++c) mask_[c / kWordBits] |= word_t{it->second[c] != 0} << (c % kWordBits);
  }
  void run(const RunCtx& ctx) const override {
    const std::int64_t nw = words_for(x_.c()), H = x_.h(), W = x_.w();
    for (std::int64_t n = 0; n < ctx.batch; ++n) {
      const word_t* x = ctx.at<const word_t>(in_[0], n, x_.bytes());
      word_t* y = ctx.at<word_t>(out_[0], n, y_.bytes());
      for (std::int64_t oh = 0; oh < y_.h(); ++oh)
        for (std::int64_t ow = 0; ow < y_.w(); ++ow) {
          const std::int64_t h0 = std::max<std::int64_t>(oh * s_[0] - p_[0], 0), h1 = std::min(oh * s_[0] - p_[0] + k_[0], H);
          const std::int64_t w0 = std::max<std::int64_t>(ow * s_[1] - p_[1], 0), w1 = std::min(ow * s_[1] - p_[1] + k_[1], W);
          for (std::int64_t i = 0; i < nw; ++i) {
            word_t any = 0, all = ~word_t{0};
            for (std::int64_t ih = h0; ih < h1; ++ih)
              for (std::int64_t iw = w0; iw < w1; ++iw) {
                any |= x[(ih * W + iw) * nw + i];
                all &= x[(ih * W + iw) * nw + i];
              }
            y[(oh * y_.w() + ow) * nw + i] = (any & mask_[i]) | (all & ~mask_[i]);
          }
        }
    }
  }

 private:
  std::int64_t k_[2], s_[2], p_[2];
  std::vector<word_t> mask_;
};

}  // namespace

std::unique_ptr<Op> make_binary_op(const OpDef& d, const std::vector<ValueDef>& v) {
  if (d.type == "bconv2d") return std::make_unique<BConv2d>(d, v);
  if (d.type == "blinear") return std::make_unique<BLinear>(d, v);
  if (d.type == "bitpack") return std::make_unique<Bitpack>(d, v);
  if (d.type == "bmaxpool") return std::make_unique<BMaxPool>(d, v);
  return nullptr;
}

}  // namespace onebit::engine
