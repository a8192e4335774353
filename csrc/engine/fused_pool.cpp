// A max-pool fused into the op that produces its input (Engine::Engine at load; op.h: accepts_pool).
//
// Unfused, a ResNet stem writes its whole output (112 x 112 x 64 floats: 3.2 MB, past L2) and the
// max-pool reads it back. Fused, each thread owns a run of pooled output rows and keeps the producer's
// output rows of the current window in a ring of k_h rows in its scratch: pooled row oh needs input
// rows [h0, h1) (PoolGeom::rows), which only grow with oh, so row ih lives in slot ih % k_h and rows
// already in the ring from the previous pooled row (h0 <= ih < hi) are not computed again; with
// stride 2 and k_h = 3 that is 2 new rows per pooled row, the first pooled row of a thread 3.
//
// Values: compute_pixels gives the values the producer's own run() writes (its contract), and
// max_pool_row is the maxpool op's own loop (same taps, same order), so the result is bit-identical
// to the two ops run one after the other (tests: ONEBIT_ENGINE_FUSE=0 against fused).
#include "op.h"

namespace onebit::engine {
namespace {

class FusedPool final : public Op {
 public:
  FusedPool(const OpDef& d, const std::vector<ValueDef>& v, std::unique_ptr<Op> producer, std::unique_ptr<Op> pool)
      : Op(d, v), producer_(std::move(producer)), g_(*pool->max_pool()), mid_(v[producer_->outputs()[0]]) {
    ring_offset_ = (producer_->scratch_bytes() + 63) / 64 * 64;
    row_floats_ = mid_.w() * mid_.c();
  }
  std::int64_t scratch_bytes() const override { return ring_offset_ + g_.k[0] * row_floats_ * 4; }
  std::int64_t shared_bytes_per_sample() const override { return producer_->shared_bytes_per_sample(); }
  std::int64_t packed_weight_bytes() const override { return producer_->packed_weight_bytes(); }
  bool accepts_stages() const override { return true; }  // on the pooled rows (a BN after the pool)

  void run(const RunCtx& ctx) const override {
    producer_->prepare_pixels(ctx);
    ctx.parallel_for(ctx.batch * y_.h(), [&](int t, std::int64_t r0, std::int64_t r1) { pooled_rows(ctx, t, r0, r1); });
  }

 private:
  // Pooled rows [r0, r1) of the batch (sample-major) on thread t.
  void pooled_rows(const RunCtx& ctx, int t, std::int64_t r0, std::int64_t r1) const {
    auto* ring = reinterpret_cast<float*>(ctx.thread_scratch(t) + ring_offset_);
    const std::int64_t k = g_.k[0];
    std::vector<const float*> rows(k);
    std::int64_t sample = -1, lo = 0, hi = 0;  // the ring holds rows [lo, hi) of `sample`
    for (std::int64_t r = r0; r < r1; ++r) {
      const std::int64_t n = r / y_.h(), oh = r % y_.h();
      std::int64_t h0, h1;
      g_.rows(mid_.h(), oh, &h0, &h1);
      if (n != sample || h0 < lo || h0 >= hi) sample = n, lo = hi = h0;  // nothing in the ring to reuse
      lo = h0;
      for (std::int64_t ih = hi; ih < h1; ++ih) {
        producer_->compute_pixels(ctx, t, n, ih * mid_.w(), mid_.w(), ring + ih % k * row_floats_);
      }
      hi = std::max(hi, h1);
      for (std::int64_t ih = h0; ih < h1; ++ih) rows[ih - h0] = ring + ih % k * row_floats_;
      float* y = ctx.at<float>(out_[0], n, y_.bytes()) + oh * y_.w() * y_.c();
      max_pool_row(g_, mid_, y_, oh, rows.data(), y);
      run_stages(ctx, n * y_.pixels() + oh * y_.w(), y, y_.w(), y_.c(), 0, y_.c());
    }
  }

  std::unique_ptr<Op> producer_;
  PoolGeom g_;
  ValueDef mid_;  // the producer's output, never stored whole
  std::int64_t ring_offset_ = 0, row_floats_ = 0;
};

}  // namespace

std::unique_ptr<Op> make_fused_pool(const OpDef& def, const std::vector<ValueDef>& values, std::unique_ptr<Op> producer,
                                    std::unique_ptr<Op> pool) {
  return std::make_unique<FusedPool>(def, values, std::move(producer), std::move(pool));
}

}  // namespace onebit::engine
