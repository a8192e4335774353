// Resampling float ops (semantics: onebit/export/reference.py): adaptive max/avg pooling and the
// option-A shortcut "subsample" (ResNet-20's parameter-free downsampling).
//
// Adaptive pooling uses torch's window rule along each axis: output index i of O over an input of
// length I covers [floor(i I / O), ceil((i + 1) I / O)). Windows may overlap or repeat (I < O
// upsamples), so this is not an ordinary pool; the converter lowers the cases that are (uniform
// windows) to maxpool/avgpool instead. Averages sum in (ih, iw) order and divide by the window size.
#include <cmath>
#include <cstring>
#include <limits>

#include "op.h"

namespace onebit::engine {
namespace {

class AdaptivePool final : public Op {
 public:
  AdaptivePool(const OpDef& d, const std::vector<ValueDef>& v) : Op(d, v), max_(str_attr(d, "mode") == "max") {
    if (x_.shape.size() != 3 || y_.shape.size() != 3 || y_.c() != x_.c()) fail("needs [C, H, W] in and out");
  }
  void run(const RunCtx& ctx) const override {
    const std::int64_t c = x_.c(), H = x_.h(), W = x_.w(), OH = y_.h(), OW = y_.w();
    for (std::int64_t n = 0; n < ctx.batch; ++n) {
      const float* x = ctx.at<const float>(in_[0], n, x_.bytes());
      float* y = ctx.at<float>(out_[0], n, y_.bytes());
      for (std::int64_t oh = 0; oh < OH; ++oh) {
        const std::int64_t h0 = oh * H / OH, h1 = ((oh + 1) * H + OH - 1) / OH;
        for (std::int64_t ow = 0; ow < OW; ++ow) {
          const std::int64_t w0 = ow * W / OW, w1 = ((ow + 1) * W + OW - 1) / OW;
          const float count = static_cast<float>((h1 - h0) * (w1 - w0));
          float* yo = y + (oh * OW + ow) * c;
          for (std::int64_t ch = 0; ch < c; ++ch) {
            float acc = max_ ? -std::numeric_limits<float>::infinity() : 0.0f;
            for (std::int64_t ih = h0; ih < h1; ++ih)
              for (std::int64_t iw = w0; iw < w1; ++iw) {
                const float v = x[(ih * W + iw) * c + ch];
                acc = max_ ? (v > acc || std::isnan(v) ? v : acc) : acc + v;
              }
            yo[ch] = max_ ? acc : acc / count;
          }
        }
      }
    }
  }

 private:
  bool max_;
};

// y[oh, ow, c] = x[oh * sh, ow * sw, c] for c < C_in, 0 for the appended channels (He et al. option A).
class Subsample final : public Op {
 public:
  Subsample(const OpDef& d, const std::vector<ValueDef>& v) : Op(d, v) {
    s_[0] = int_attr(d, "stride", 0);
    s_[1] = int_attr(d, "stride", 1);
    if (y_.c() < x_.c()) fail("cannot drop channels");
  }
  void run(const RunCtx& ctx) const override {
    const std::int64_t ci = x_.c(), co = y_.c();
    for (std::int64_t n = 0; n < ctx.batch; ++n) {
      const float* x = ctx.at<const float>(in_[0], n, x_.bytes());
      float* y = ctx.at<float>(out_[0], n, y_.bytes());
      for (std::int64_t oh = 0; oh < y_.h(); ++oh)
        for (std::int64_t ow = 0; ow < y_.w(); ++ow) {
          float* yo = y + (oh * y_.w() + ow) * co;
          std::memcpy(yo, x + (oh * s_[0] * x_.w() + ow * s_[1]) * ci, ci * sizeof(float));
          std::memset(yo + ci, 0, (co - ci) * sizeof(float));
        }
    }
  }

 private:
  std::int64_t s_[2];
};

}  // namespace

std::unique_ptr<Op> make_resample_op(const OpDef& d, const std::vector<ValueDef>& v) {
  if (d.type == "adaptive_pool") return std::make_unique<AdaptivePool>(d, v);
  if (d.type == "subsample") return std::make_unique<Subsample>(d, v);
  return nullptr;
}

}  // namespace onebit::engine
