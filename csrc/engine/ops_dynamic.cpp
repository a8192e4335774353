// DyBNN ops (semantics: onebit/export/reference.py): the hyper function's pooling statistics and
// the two ops that consume its per-sample output.
//
// The hyper function h(x) = FC2(ReLU(FC1(stats(x)))) runs as ordinary engine ops
//   channel_stats -> linear -> relu -> linear [-> tanh]
// and its output, one float vector per sample, feeds
//   dybitpack(x, alpha):  bit(n, p, c) = x < alpha[n, c]   (DySign: sign(x - alpha), bit 1 = -1;
//                         x - alpha < 0 <=> x < alpha exactly for finite floats, as subtraction of
//                         two different floats is never 0 with gradual underflow);
//   dyprelu(x, h):        t = x - h[n, c];  y = (t > 0 ? t : slope[c] t) + h[n, C + c].
// channel_stats: per sample and channel the mean (and the population std, "mean_std"), accumulated
// in double and rounded once; a [F] input has no spatial extent (mean = x, std = 0).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "onebit/kernels.h"
#include "op.h"

namespace onebit::engine {
namespace {

class ChannelStats final : public Op {
 public:
  ChannelStats(const OpDef& d, const std::vector<ValueDef>& v) : Op(d, v), std_(str_attr(d, "statistic") == "mean_std") {
    if (y_.c() != x_.c() * (std_ ? 2 : 1)) fail("output must have C (mean) or 2C (mean_std) features");
  }
  // Per sample, threads take ranges of channels; each channel is summed over the pixels in increasing
  // order (the result does not depend on the thread count), walking the NHWC rows contiguously.
  void run(const RunCtx& ctx) const override {
    const std::int64_t c = x_.c(), hw = x_.pixels();
    for (std::int64_t n = 0; n < ctx.batch; ++n) {
      const float* x = ctx.at<const float>(in_[0], n, x_.bytes());
      float* y = ctx.at<float>(out_[0], n, y_.bytes());
      ctx.parallel_for(c, [&](int, std::int64_t c0, std::int64_t c1) {
        std::vector<double> acc(static_cast<std::size_t>(c1 - c0), 0.0), mean(acc.size());
        for (std::int64_t p = 0; p < hw; ++p) {
          const float* row = x + p * c + c0;
          for (std::int64_t k = 0; k < c1 - c0; ++k) acc[k] += row[k];
        }
        for (std::int64_t k = 0; k < c1 - c0; ++k) {
          mean[k] = acc[k] / static_cast<double>(hw);
          y[c0 + k] = static_cast<float>(mean[k]);
        }
        if (!std_) return;
        std::fill(acc.begin(), acc.end(), 0.0);
        for (std::int64_t p = 0; p < hw; ++p) {
          const float* row = x + p * c + c0;
          for (std::int64_t k = 0; k < c1 - c0; ++k) acc[k] += (row[k] - mean[k]) * (row[k] - mean[k]);
        }
        for (std::int64_t k = 0; k < c1 - c0; ++k) y[c + c0 + k] = static_cast<float>(std::sqrt(acc[k] / static_cast<double>(hw)));
      });
    }
  }

 private:
  bool std_;
};

class Tanh final : public Op {
 public:
  using Op::Op;
  void run(const RunCtx& ctx) const override {
    const std::int64_t n = ctx.batch * x_.pixels() * x_.c();
    const float* x = reinterpret_cast<const float*>(ctx.ptr[in_[0]]);
    float* y = reinterpret_cast<float*>(ctx.ptr[out_[0]]);
    for (std::int64_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
  }
};

// Shared shape check: the second input is a per-sample vector of `per` x C floats.
void check_vector(const Op& op, const ValueDef& x, const ValueDef& h, std::int64_t per, const char* what) {
  if (h.kind != ValueKind::kFloat || h.shape.size() != 1 || h.c() != per * x.c())
    throw std::invalid_argument(std::string("engine: ") + what + ": second input must be float [" +
                                std::to_string(per) + " C]");
  (void)op;
}

class DyBitpack final : public Op {
 public:
  DyBitpack(const OpDef& d, const std::vector<ValueDef>& v) : Op(d, v) {
    if (in_.size() != 2) fail("needs inputs (x, alpha)");
    check_vector(*this, x_, v[in_[1]], 1, "dybitpack");
    h_ = v[in_[1]];
  }
  // The dispatched bitpack kernel (bitpack.h: kSign with per-channel thresholds packs bit = x < t),
  // with this sample's alpha as the thresholds, on the rows of flat pixels each thread takes.
  void run(const RunCtx& ctx) const override {
    const auto& kern = select_kernel(bitpack_kernels());
    const std::int64_t c = x_.c(), hw = x_.pixels(), nw = words_for(c);
    ctx.parallel_for(ctx.batch * hw, [&](int, std::int64_t r0, std::int64_t r1) {
      for_each_sample(r0, r1, hw, [&](std::int64_t n, std::int64_t b, std::int64_t e) {
        kern.fn(BitpackArgs{ctx.at<const float>(in_[0], n, x_.bytes()) + b * c, ctx.at<const float>(in_[1], n, h_.bytes()),
                            e - b, c, PackMode::kSign, ctx.at<word_t>(out_[0], n, y_.bytes()) + b * nw, 1});
      });
    });
  }

 private:
  ValueDef h_;
};

class DyPReLU final : public Op {
 public:
  DyPReLU(const OpDef& d, const std::vector<ValueDef>& v) : Op(d, v) {
    if (in_.size() != 2) fail("needs inputs (x, shifts)");
    check_vector(*this, x_, v[in_[1]], 2, "dyprelu");
    h_ = v[in_[1]];
    slope_ = f32(d, "slope", x_.c());
  }
  // DyPReLU is RPReLU with per-sample shifts: the same float operations as the engine's vectorized
  // rprelu loop (ew_apply, kRprelu: t = x - shift_in; (t > 0 ? t : slope t) + shift_out), run per
  // sample on the rows of flat pixels each thread takes.
  void run(const RunCtx& ctx) const override {
    const std::int64_t c = x_.c(), hw = x_.pixels();
    ctx.parallel_for(ctx.batch * hw, [&](int, std::int64_t r0, std::int64_t r1) {
      for_each_sample(r0, r1, hw, [&](std::int64_t n, std::int64_t b, std::int64_t e) {
        const float* h = ctx.at<const float>(in_[1], n, h_.bytes());
        const float* x = ctx.at<const float>(in_[0], n, x_.bytes()) + b * c;
        float* y = ctx.at<float>(out_[0], n, y_.bytes()) + b * c;
        ew_apply(EwParams{kRprelu, slope_.data(), h, h + c, 0, 0}, x, nullptr, y, e - b, c, c);
      });
    });
  }

 private:
  ValueDef h_;
  std::vector<float> slope_;
};

}  // namespace

std::unique_ptr<Op> make_dynamic_op(const OpDef& d, const std::vector<ValueDef>& v) {
  if (d.type == "channel_stats") return std::make_unique<ChannelStats>(d, v);
  if (d.type == "tanh") return std::make_unique<Tanh>(d, v);
  if (d.type == "dybitpack") return std::make_unique<DyBitpack>(d, v);
  if (d.type == "dyprelu") return std::make_unique<DyPReLU>(d, v);
  return nullptr;
}

}  // namespace onebit::engine
