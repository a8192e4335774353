// Elastic-Link's gated add (semantics: onebit/export/reference.py, model: onebit/nn/elastic_link.py):
//   out[c] = y[c] + gate[c] * T(x)[c]
// y is the binary conv's float output (BatchNorm folded), x the link input after its stride pooling
// (an avgpool op before this one). T aligns the channels:
//   identity:          T(x)[c] = x[c]
//   squeeze_mean/sum:  T(x)[c] = sum_{k < g} x[c g + k]  (/ g for the mean),  C_in = g C_out
//   expand_tile:       T(x)[c] = x[c mod C_in];   expand_interleave: T(x)[c] = x[c / g],  C_out = g C_in
// (a real 1x1 conv path is a conv2d op before this one, with path identity). Two roundings, as
// PyTorch's gate * T(x) then + y (this library is compiled with -ffp-contract=off).
// The identity path is an epilogue stage (op.h): fused into the binary conv that produces y, it runs
// on each block of the conv's output while the block is in cache (same two roundings).
#include "op.h"

namespace onebit::engine {
namespace {

class ElasticAdd final : public Op {
 public:
  enum Path { kIdentity, kSqueezeMean, kSqueezeSum, kTile, kInterleave };
  ElasticAdd(const OpDef& d, const std::vector<ValueDef>& v) : Op(d, v) {
    if (in_.size() != 2) fail("needs inputs (y, x)");
    l_ = v[in_[1]];
    const std::string p = str_attr(d, "path");
    path_ = p == "identity" ? kIdentity : p == "squeeze_mean" ? kSqueezeMean : p == "squeeze_sum" ? kSqueezeSum
          : p == "expand_tile" ? kTile : kInterleave;
    const std::int64_t co = x_.c(), ci = l_.c();
    if (l_.pixels() != x_.pixels() || (path_ == kIdentity && ci != co) ||
        ((path_ == kSqueezeMean || path_ == kSqueezeSum) && ci % co) || ((path_ == kTile || path_ == kInterleave) && co % ci))
      fail("link input shape does not fit the path");
    g_ = path_ == kSqueezeMean || path_ == kSqueezeSum ? ci / co : co / ci;
    gate_ = f32(d, "gate", co);
  }
  void run(const RunCtx& ctx) const override {
    const std::int64_t co = x_.c(), ci = l_.c();
    const float* y = reinterpret_cast<const float*>(ctx.ptr[in_[0]]);
    const float* x = reinterpret_cast<const float*>(ctx.ptr[in_[1]]);
    float* out = reinterpret_cast<float*>(ctx.ptr[out_[0]]);
    ctx.parallel_for(ctx.batch * x_.pixels(), [&](int, std::int64_t p0, std::int64_t p1) {  // flat pixels
      for (std::int64_t p = p0; p < p1; ++p)
        for (std::int64_t c = 0; c < co; ++c) out[p * co + c] = y[p * co + c] + gate_[c] * align(x + p * ci, c, ci);
    });
  }
  bool is_stage() const override { return path_ == kIdentity; }
  bool stage_commutes() const override { return false; }
  void stage(float* y, const float* z, std::int64_t rows, std::int64_t ld, std::int64_t c0, std::int64_t n) const override {
    const float* g = gate_.data() + c0;
    for (std::int64_t r = 0; r < rows; ++r, y += ld, z += ld)
      for (std::int64_t c = 0; c < n; ++c) y[c] = y[c] + g[c] * z[c];
  }

 private:
  float align(const float* x, std::int64_t c, std::int64_t ci) const {
    switch (path_) {
      case kIdentity: return x[c];
      case kTile: return x[c % ci];
      case kInterleave: return x[c / g_];
      default: {
        float s = 0.0f;
        for (std::int64_t k = 0; k < g_; ++k) s += x[c * g_ + k];
        return path_ == kSqueezeMean ? s / static_cast<float>(g_) : s;
      }
    }
  }
  Path path_;
  ValueDef l_;
  std::int64_t g_ = 1;
  std::vector<float> gate_;
};

}  // namespace

std::unique_ptr<Op> make_elastic_op(const OpDef& d, const std::vector<ValueDef>& v) {
  if (d.type == "elastic_add") return std::make_unique<ElasticAdd>(d, v);
  return nullptr;
}

}  // namespace onebit::engine
