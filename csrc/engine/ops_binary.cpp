// Binary ops of the engine: bitpack, bconv2d, blinear, bmaxpool (semantics: onebit/export/reference.py).
// They call the dispatched layer kernels (kernels.h) with everything that depends only on the weights
// prepared once here, at engine load: packed weights, zero-padding tap sums, thresholds in the
// kernels' form. Work is split over the Engine's thread pool by output pixels (bconv2d), output
// channels (blinear), rows (bitpack) or samples (bmaxpool).
//
// Output transform (per output channel co, exact integer d; the engine's record -> the kernels'):
//   bits:  the record says bit = (d >= T) XOR f; the kernels compute bit = flip ? d > thr : d < thr
//          (output_transform.h). With flip = 1 - f and thr = T - flip:
//            f = 0: d >= T  <=>  d > T - 1   (d is an integer)  -> flip 1, thr = T - 1
//            f = 1: !(d >= T) <=> d < T                         -> flip 0, thr = T
//          thr is clamped to int32: T = INT32_MIN with f = 0 is "always 1", and d > INT32_MIN holds for
//          every |d| <= K < 2^31, so the clamp keeps the comparison.
//   float: v = float(d) * alpha + beta (two roundings: the kernels' kFloat transform, built without
//          FMA), then, when a BatchNorm was folded, fma(v, bn_scale, bn_shift) here (PyTorch's BN
//          arithmetic; a second rounding stage that one multiplier and bias could not reproduce).
// Spatial padding (bconv2d.h): pm1 + pad "one" -> pad_value +1; pm1 + "zero" -> pad_value 0 with the
// tap sums computed at load; {0,1} + "zero" -> 0; {0,1} + "one" -> 1.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdlib>
#include <limits>
#include <memory>
#include <string>

#include "onebit/kernels.h"
#include "op.h"

namespace onebit::engine {
namespace {

constexpr std::int64_t kRowTile = 64;  // blinear: samples per bgemm call

// The output transform of a binary layer, in the kernels' terms (see the top of the file).
struct Transform {
  bool bits = false, bn = false;
  std::vector<float> alpha, beta, bn_scale, bn_shift;
  std::vector<std::int32_t> thr;
  std::vector<std::uint8_t> flip;

  // `rows` rows of `n` floats (row stride ld) for channels [c0, c0 + n): the BN stage in place.
  void bn_stage(float* y, std::int64_t rows, std::int64_t n, std::int64_t ld, std::int64_t c0) const {
    if (bn) ew_apply(bn_params(c0), y, nullptr, y, rows, ld, n);
  }
  EwParams bn_params(std::int64_t c0) const {
    return EwParams{kAffineFma, bn_scale.data() + c0, bn_shift.data() + c0, nullptr, 0, 0};
  }
};

class BinaryBase : public Op {
 public:
  BinaryBase(const OpDef& d, const std::vector<ValueDef>& v) : Op(d, v) {
    xor_ = str_attr(d, "mode") == "xor";
    if ((x_.domain == Domain::kPm1) != xor_) fail("mode does not match the input domain");
    const std::int64_t cout = y_.c();
    t_.bits = str_attr(d, "output") == "bits";
    if (!t_.bits) {
      t_.alpha = f32(d, "alpha", cout);
      t_.beta = f32(d, "beta", cout);
      t_.bn_scale = f32(d, "bn_scale", cout, true);
      t_.bn_shift = f32(d, "bn_shift", cout, t_.bn_scale.empty());
      t_.bn = !t_.bn_scale.empty();
      return;
    }
    auto it = d.i32.find("threshold");
    auto jt = d.u8.find("flip");
    if (it == d.i32.end() || jt == d.u8.end() || static_cast<std::int64_t>(it->second.size()) != cout ||
        static_cast<std::int64_t>(jt->second.size()) != cout)
      fail("bits output needs int32 threshold and uint8 flip per output channel");
    t_.thr.resize(cout);
    t_.flip.resize(cout);
    for (std::int64_t c = 0; c < cout; ++c) {
      const std::uint8_t kflip = jt->second[c] ? 0 : 1;
      const std::int64_t thr = static_cast<std::int64_t>(it->second[c]) - kflip;
      t_.flip[c] = kflip;
      t_.thr[c] = static_cast<std::int32_t>(std::max<std::int64_t>(thr, std::numeric_limits<std::int32_t>::min()));
    }
  }

 protected:
  BgemmMode mode() const { return xor_ ? BgemmMode::kXor : BgemmMode::kAnd; }
  bool xor_ = true;
  Transform t_;
};

class BConv2d final : public BinaryBase {
 public:
  BConv2d(const OpDef& d, const std::vector<ValueDef>& v) : BinaryBase(d, v) {
    Bconv2dArgs& a = args_;
    a.height = x_.h(), a.width = x_.w(), a.in_channels = x_.c(), a.groups = int_attr(d, "groups");
    a.out_channels = y_.c(), a.kernel_h = int_attr(d, "kernel", 0), a.kernel_w = int_attr(d, "kernel", 1);
    a.stride_h = int_attr(d, "stride", 0), a.stride_w = int_attr(d, "stride", 1);
    a.dilation_h = int_attr(d, "dilation", 0), a.dilation_w = int_attr(d, "dilation", 1);
    a.pad_h = int_attr(d, "padding", 0), a.pad_w = int_attr(d, "padding", 2);
    // The kernels pad symmetrically; an asymmetric record is fine when it yields the same windows,
    // i.e. the same output size (the last window then ends inside the symmetric padding).
    if (a.out_height() != y_.h() || a.out_width() != y_.w()) fail("padding must be symmetric");
    const std::int64_t wg = words_for(a.in_channels / a.groups), taps = a.kernel_h * a.kernel_w;
    auto it = d.u64.find("weight");
    if (it == d.u64.end() || static_cast<std::int64_t>(it->second.size()) != y_.c() * taps * wg)
      fail("weight must be uint64 [Cout, kh, kw, words_for(Cin/groups)]");
    w_ = it->second;
    a.weight = w_.data();
    a.mode = mode();
    const bool one = str_attr(d, "pad") == "one";
    a.pad_value = one ? 1 : 0;  // pm1: +1 / 0 (corrected by tap sums); {0,1}: 1 / 0
    if (xor_ && !one) {
      tap_sums_.resize(taps * y_.c());
      bconv2d_tap_sums(a, tap_sums_.data());
      a.tap_sums = tap_sums_.data();
    }
    OutputTransform& o = a.output;
    o.kind = t_.bits ? OutputKind::kBits : OutputKind::kFloat;
    o.multiplier = t_.alpha.data(), o.bias = t_.beta.data();
    o.threshold = t_.thr.data(), o.flip = t_.flip.data();
    // The engine's bit values are plain packed rows; grouped kernels want each group word-aligned.
    regroup_ = a.groups > 1 && (a.in_channels / a.groups) % kWordBits != 0;
    pack_weight(a);
  }
  std::int64_t packed_weight_bytes() const override { return args_.packed_group_bytes * args_.groups; }
  std::int64_t scratch_bytes() const override { return regroup_ ? x_.pixels() * args_.groups * words_for(x_.c() / args_.groups) * 8 : 0; }
  bool accepts_stages() const override { return !t_.bits; }

  void run(const RunCtx& ctx) const override {
    const auto& kern = select_kernel(bconv2d_kernels());
    const std::int64_t per_sample = y_.pixels();
    ctx.parallel_for(ctx.batch * per_sample, [&](int t, std::int64_t p0, std::int64_t p1) {
      if (!regroup_) return call(kern.fn, ctx.at<const word_t>(in_[0], 0, x_.bytes()), ctx.batch, 0, p0, p1, ctx);
      for_each_sample(p0, p1, per_sample, [&](std::int64_t n, std::int64_t b, std::int64_t e) {
        word_t* x = reinterpret_cast<word_t*>(ctx.thread_scratch(t));
        regroup(ctx.at<const word_t>(in_[0], n, x_.bytes()), x);
        call(kern.fn, x, 1, n, b, e, ctx);
      });
    });
  }

 private:
  // The weights packed once for the bgemm dispatch picks now, when it is one that would repack them on
  // every call (bgemm_packing). That repack is per call and per block of output pixels: N x K = 512 x
  // 4608 (a 7x7x512 layer) took 25 us of 240 us with 49 rows on the AVX2 ntab kernel (fit of the call
  // time over 48..192 rows). A lower ISA forced later reads the plain weights.
  // ONEBIT_ENGINE_PREPACK=0 (read at load) turns it off, to compare both in one benchmark run.
  void pack_weight(Bconv2dArgs& a) {
    const char* env = std::getenv("ONEBIT_ENGINE_PREPACK");
    if (env && std::string(env) == "0") return;
    const BgemmFn gemm = select_kernel(bgemm_kernels()).fn;
    const std::int64_t bytes = bconv2d_packed_group_bytes(a, gemm);
    if (bytes == 0) return;
    packed_.reset(std::aligned_alloc(64, static_cast<std::size_t>(bytes * a.groups)));
    if (!packed_) throw std::bad_alloc();
    bconv2d_pack_weight(a, gemm, packed_.get());
    a.packed_weight = packed_.get(), a.packed_for = gemm, a.packed_group_bytes = bytes;
  }
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<void, Free> packed_;

  // Pixels [p0, p1) of the images at x (batch images, the first one being sample n0 of the call).
  void call(void (*fn)(const Bconv2dArgs&), const word_t* x, std::int64_t batch, std::int64_t n0, std::int64_t p0,
            std::int64_t p1, const RunCtx& ctx) const {
    Bconv2dArgs a = args_;
    a.x = x, a.batch = batch, a.pixel_begin = p0, a.pixel_end = p1;
    a.output.out = ctx.ptr[out_[0]] + n0 * y_.bytes();
    // Float output: the transform, the BN stage and the fused stages in one pass over each block of
    // int32 rows the kernel finishes (Op::run_stages, ew_chain).
    const Epilogue e{this, &ctx, n0 * y_.pixels()};
    if (!t_.bits && (t_.bn || !stages_.empty())) {
      if (fusion_.from_acc) {
        a.output.epilogue_acc = &epilogue_acc;
      } else {
        a.output.epilogue = &epilogue;
      }
      a.output.epilogue_ctx = &e;
    }
    fn(a);
  }
  struct Epilogue {
    const BConv2d* op;
    const RunCtx* ctx;
    std::int64_t pixel0;  // flat batch pixel of the call's pixel 0
  };
  // The BN stage and the fused stages on a block of rows: on the kernel's floats (epilogue) or from its
  // int32 sums through the float transform (epilogue_acc).
  static void epilogue(const void* p, float* y, std::int64_t first, std::int64_t rows) {
    finish_block(*static_cast<const Epilogue*>(p), y, first, rows, nullptr);
  }
  static void epilogue_acc(const void* p, const std::int32_t* acc, std::int64_t ld_acc, float* y, std::int64_t first,
                           std::int64_t rows) {
    const auto& e = *static_cast<const Epilogue*>(p);
    const EwSource src{nullptr, acc, ld_acc, e.op->t_.alpha.data(), e.op->t_.beta.data()};
    finish_block(e, y, first, rows, &src);
  }
  static void finish_block(const Epilogue& e, float* y, std::int64_t first, std::int64_t rows, const EwSource* src) {
    const std::int64_t c = e.op->y_.c();
    const EwParams bn = e.op->t_.bn_params(0);
    e.op->run_stages(*e.ctx, e.pixel0 + first, y, rows, c, 0, c, e.op->t_.bn ? &bn : nullptr, src);
  }

  void regroup(const word_t* x, word_t* out) const { regroup_words(x, x_.pixels(), x_.c(), args_.groups, out); }

  Bconv2dArgs args_{};
  bool regroup_ = false;
  std::vector<word_t> w_;
  std::vector<std::int32_t> tap_sums_;
};

// blinear: bgemm over (samples x output channels); threads take 64-channel-aligned ranges of output
// channels, so every thread writes whole words of the bit output.
class BLinear final : public BinaryBase {
 public:
  BLinear(const OpDef& d, const std::vector<ValueDef>& v) : BinaryBase(d, v) {
    kw_ = words_for(x_.c());
    auto it = d.u64.find("weight");
    if (it == d.u64.end() || static_cast<std::int64_t>(it->second.size()) != y_.c() * kw_)
      fail("weight must be uint64 [out_features, words_for(in_features)]");
    w_ = it->second;
  }
  std::int64_t scratch_bytes() const override { return kRowTile * y_.c() * 4; }

  void run(const RunCtx& ctx) const override {
    const auto& gemm = select_kernel(bgemm_kernels());
    const auto& to_bits = select_kernel(acc2bits_kernels());
    const std::int64_t units = words_for(y_.c());  // 64-channel units
    ctx.parallel_for(units, [&](int t, std::int64_t u0, std::int64_t u1) {
      const std::int64_t c0 = u0 * kWordBits, c1 = std::min(u1 * kWordBits, y_.c()), n = c1 - c0;
      auto* acc = reinterpret_cast<std::int32_t*>(ctx.thread_scratch(t));
      for (std::int64_t s0 = 0; s0 < ctx.batch; s0 += kRowTile) {
        const std::int64_t rows = std::min(kRowTile, ctx.batch - s0);
        gemm.fn(BgemmArgs{ctx.at<const word_t>(in_[0], s0, x_.bytes()), w_.data() + c0 * kw_, rows, n, x_.c(), kw_, kw_,
                          mode(), acc, n});
        for (std::int64_t r = 0; r < rows; ++r) write_row(acc + r * n, s0 + r, c0, n, ctx, to_bits.fn);
      }
    });
  }

 private:
  void write_row(const std::int32_t* acc, std::int64_t s, std::int64_t c0, std::int64_t n, const RunCtx& ctx,
                 void (*to_bits)(const Acc2BitsArgs&)) const {
    if (t_.bits) {
      word_t* y = ctx.at<word_t>(out_[0], s, y_.bytes()) + c0 / kWordBits;
      to_bits(Acc2BitsArgs{acc, 1, n, n, t_.thr.data() + c0, t_.flip.data() + c0, 1, y});
    } else {
      float* y = ctx.at<float>(out_[0], s, y_.bytes()) + c0;
      acc2float(acc, 1, n, n, t_.alpha.data() + c0, t_.beta.data() + c0, y);
      t_.bn_stage(y, 1, n, n, c0);
    }
  }

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
    ctx.parallel_for(rows, [&](int, std::int64_t r0, std::int64_t r1) {
      kern.fn(BitpackArgs{x + r0 * c, thresholds_.empty() ? nullptr : thresholds_.data(), r1 - r0, c, mode_,
                          y + r0 * words_for(c)});
    });
  }

 private:
  PackMode mode_;
  std::vector<float> thresholds_;
};

// Max-pool on bits: per channel OR of the window where or_mask (the bit rises with the pooled value),
// AND where it falls (bmaxpool.h: and_mask = the complement); padding never wins.
class BMaxPool final : public Op {
 public:
  BMaxPool(const OpDef& d, const std::vector<ValueDef>& v) : Op(d, v) {
    BmaxpoolArgs& a = args_;
    a.height = x_.h(), a.width = x_.w(), a.words = words_for(x_.c());
    a.kernel_h = int_attr(d, "kernel", 0), a.kernel_w = int_attr(d, "kernel", 1);
    a.stride_h = int_attr(d, "stride", 0), a.stride_w = int_attr(d, "stride", 1);
    a.pad_h = int_attr(d, "padding", 0), a.pad_w = int_attr(d, "padding", 1);
    a.dilation_h = a.dilation_w = 1;
    a.mode = PackMode::kSign;
    auto it = d.u8.find("or_mask");
    if (it == d.u8.end() || static_cast<std::int64_t>(it->second.size()) != x_.c()) fail("or_mask must be uint8 [C]");
    and_mask_.assign(a.words, 0);
    for (std::int64_t c = 0; c < x_.c(); ++c) and_mask_[c / kWordBits] |= word_t{it->second[c] == 0} << (c % kWordBits);
    a.and_mask = and_mask_.data();
    if (2 * a.pad_h > a.kernel_h || 2 * a.pad_w > a.kernel_w) fail("padding exceeds half the kernel");
    // ceil_mode can add a last window that starts in the padding: the kernels use floor sizes only.
    floor_ = conv_out_size(a.height, a.kernel_h, a.stride_h, a.pad_h, 1) == y_.h() &&
             conv_out_size(a.width, a.kernel_w, a.stride_w, a.pad_w, 1) == y_.w();
  }
  void run(const RunCtx& ctx) const override {
    const auto& kern = select_kernel(bmaxpool_kernels());
    ctx.parallel_for(ctx.batch, [&](int, std::int64_t n0, std::int64_t n1) {
      BmaxpoolArgs a = args_;
      a.x = ctx.at<const word_t>(in_[0], n0, x_.bytes());
      a.out = ctx.at<word_t>(out_[0], n0, y_.bytes());
      a.batch = n1 - n0;
      floor_ ? kern.fn(a) : ceil_pool(a);
    });
  }

 private:
  // ceil_mode sizes (windows clipped to the input; each has a valid tap, as torch guarantees).
  void ceil_pool(const BmaxpoolArgs& a) const {
    const std::int64_t nw = a.words, H = a.height, W = a.width;
    for (std::int64_t n = 0; n < a.batch; ++n) {
      const word_t* x = a.x + n * H * W * nw;
      for (std::int64_t p = 0; p < y_.pixels(); ++p) {
        const std::int64_t oh = p / y_.w(), ow = p % y_.w();
        const std::int64_t h0 = std::max<std::int64_t>(oh * a.stride_h - a.pad_h, 0), h1 = std::min(oh * a.stride_h - a.pad_h + a.kernel_h, H);
        const std::int64_t w0 = std::max<std::int64_t>(ow * a.stride_w - a.pad_w, 0), w1 = std::min(ow * a.stride_w - a.pad_w + a.kernel_w, W);
        for (std::int64_t i = 0; i < nw; ++i) {
          word_t any = 0, all = ~word_t{0};
          for (std::int64_t ih = h0; ih < h1; ++ih)
            for (std::int64_t iw = w0; iw < w1; ++iw) any |= x[(ih * W + iw) * nw + i], all &= x[(ih * W + iw) * nw + i];
          a.out[(n * y_.pixels() + p) * nw + i] = (all & a.and_mask[i]) | (any & ~a.and_mask[i]);
        }
      }
    }
  }

  bool floor_ = true;
  BmaxpoolArgs args_{};
  std::vector<word_t> and_mask_;
};

}  // namespace

namespace {
// Channels [start, start + n) of a row of `src_words` words into dst: words_for(n) words, tail 0.
void extract_bits(const word_t* src, std::int64_t src_words, std::int64_t start, std::int64_t n, word_t* dst) {
  const std::int64_t nw = words_for(n), w0 = start / kWordBits;
  const int sh = static_cast<int>(start % kWordBits);
  for (std::int64_t i = 0; i < nw; ++i) {
    word_t v = src[w0 + i] >> sh;  // low bits from this word, high bits from the next (when shifted)
    if (sh && w0 + i + 1 < src_words) v |= src[w0 + i + 1] << (kWordBits - sh);
    dst[i] = v;
  }
  if (n % kWordBits) dst[nw - 1] &= (word_t{1} << (n % kWordBits)) - 1;
}
}  // namespace

void regroup_words(const word_t* x, std::int64_t pixels, std::int64_t channels, std::int64_t groups, word_t* out) {
  const std::int64_t cg = channels / groups, wg = words_for(cg), win = words_for(channels);
  for (std::int64_t p = 0; p < pixels; ++p) {
    for (std::int64_t k = 0; k < groups; ++k) extract_bits(x + p * win, win, k * cg, cg, out + (p * groups + k) * wg);
  }
}

std::unique_ptr<Op> make_binary_op(const OpDef& d, const std::vector<ValueDef>& v) {
  if (d.type == "bconv2d") return std::make_unique<BConv2d>(d, v);
  if (d.type == "blinear") return std::make_unique<BLinear>(d, v);
  if (d.type == "bitpack") return std::make_unique<Bitpack>(d, v);
  if (d.type == "bmaxpool") return std::make_unique<BMaxPool>(d, v);
  return nullptr;
}

}  // namespace onebit::engine
