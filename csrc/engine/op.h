// Engine-internal: the Op interface, the run context, attribute access and a small parallel-for.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "onebit/bitpack.h"
#include "onebit/graph.h"
#include "thread_pool.h"

namespace onebit::engine {

// Everything an op needs at run time: where each value lives for this call, and scratch memory.
struct RunCtx {
  std::vector<char*> ptr;     // per value: start of its batch x bytes-per-sample block
  std::int64_t batch = 1;
  int num_threads = 1;
  char* scratch = nullptr;    // num_threads x scratch_per_thread bytes, 64-byte aligned
  std::int64_t scratch_per_thread = 0;
  char* shared = nullptr;     // batch x shared_per_sample bytes that all threads of one op share
  std::int64_t shared_per_sample = 0;

  template <class T>
  T* at(int value, std::int64_t sample, std::int64_t sample_bytes) const {
    return reinterpret_cast<T*>(ptr[value] + sample * sample_bytes);
  }
  char* thread_scratch(int t) const { return scratch + t * scratch_per_thread; }

  // The Engine's persistent pool (thread_pool.h): fn(t, begin, end) over [0, n) in at most
  // num_threads chunks; t < num_threads indexes thread_scratch. nullptr pool: one chunk, inline.
  ThreadPool* pool = nullptr;
  void parallel_for(std::int64_t n, const ChunkFn& fn) const {
    if (pool) {
      pool->parallel_for(n, fn);
    } else if (n > 0) {
      fn(0, 0, n);
    }
  }
};

// A conv op's geometry: kernel, stride, dilation (h, w), top / left padding, groups.
struct ConvGeom {
  std::int64_t k[2], s[2], dil[2], pt, pl, g;
};

// Per-channel elementwise float loops (elementwise.cpp), vectorized for the active ISA; the same float
// operations whatever the ISA. rows x n floats (row stride ld) of x [and z] -> y (y may be x).
enum EwKind { kAffine, kAffineFma, kRelu, kHardtanh, kPrelu, kRprelu, kAdd };
struct EwParams {
  EwKind kind;
  const float *a, *b, *s;  // per channel, offset to the tile's first channel (affine: scale, shift;
                           // prelu: slope; rprelu: slope, shift_in, shift_out)
  float lo, hi;            // hardtanh
};
void ew_apply(const EwParams& p, const float* x, const float* z, float* y, std::int64_t rows, std::int64_t ld,
              std::int64_t n);
// A chain of such ops in one pass (elementwise.cpp): source -> op 0 -> op 1 ... -> y, z of op k at
// stages[k].z (the tile's first element, row stride ld; nullptr when it has none). The source is float
// rows x (row stride ld; may be y), or int32 rows acc (row stride ld_acc) through acc2float's transform
// float(acc) * m[ch] + b[ch] (b not null). The values of acc2float, then ew_apply op after op. With no
// op (count 0) the source must be int32 rows: the transform alone.
struct EwStage {
  EwParams p;
  const float* z;
};
struct EwSource {
  const float* x;
  const std::int32_t* acc;
  std::int64_t ld_acc;
  const float *m, *b;
};
void ew_chain(const EwStage* stages, int count, const EwSource& src, float* y, std::int64_t rows, std::int64_t ld,
              std::int64_t n);

// A pooling window's geometry (maxpool, avgpool; a producer fused with a max-pool): kernel, stride,
// top / left padding (h, w). Output row oh reads the input rows [h0, h1) of `rows`: its window clipped
// to the input (empty when the window lies in the padding).
struct PoolGeom {
  std::int64_t k[2], s[2], p[2];
  void rows(std::int64_t H, std::int64_t oh, std::int64_t* h0, std::int64_t* h1) const {
    *h0 = std::max<std::int64_t>(oh * s[0] - p[0], 0);
    *h1 = std::min(oh * s[0] - p[0] + k[0], H);
  }
};

// What the engine fuses at load (ONEBIT_ENGINE_FUSE, Engine::Engine): epilogue stages into their
// producer, a max-pool into its producer, a producer's stages in one pass (ew_chain) rather than op by
// op, and a binary conv's chain starting from its int32 sums rather than from the kernel's floats.
struct FusionOptions {
  bool stages = true, pool = true, one_pass = true, from_acc = true;
};

class Op {
 public:
  Op(const OpDef& def, const std::vector<ValueDef>& values);
  virtual ~Op() = default;
  virtual void run(const RunCtx& ctx) const = 0;
  // Scratch bytes one thread needs for this op (reused by every op).
  virtual std::int64_t scratch_bytes() const { return 0; }
  // Bytes per sample of a buffer all threads of this op share during one run (ctx.shared; reused by
  // every op): an op that prepares its input once and then reads it from every thread.
  virtual std::int64_t shared_bytes_per_sample() const { return 0; }
  // Bytes of weights this op keeps packed for a kernel, besides the weights of the file (at load).
  virtual std::int64_t packed_weight_bytes() const { return 0; }

  const std::vector<int>& inputs() const { return in_; }
  const std::vector<int>& outputs() const { return out_; }

  // Epilogue fusion (Engine::Engine, at load; docs/architecture.md). A *stage* is a per-channel
  // elementwise float op (affine, relu, hardtanh, prelu, rprelu, add) that can run in place on a
  // tile of rows x n floats (row stride ld, channels [c0, c0 + n)) of its input: y = f(y[, z]),
  // z the same tile of its second operand (add). A *producer* (bconv2d with float output, conv2d)
  // runs the stages fused into it, in order, on each tile of its output right after computing it,
  // with the same float operations as the unfused ops (bit-identical results).
  virtual bool is_stage() const { return false; }
  // A two-operand stage whose operands cannot swap (y + gate * z): it fuses only when the producer's
  // output is its first input.
  virtual bool stage_commutes() const { return true; }
  virtual void stage(float* /*y*/, const float* /*z*/, std::int64_t /*rows*/, std::int64_t /*ld*/, std::int64_t /*c0*/,
                     std::int64_t /*n*/) const {}
  virtual bool accepts_stages() const { return false; }
  // A stage that is one EwKind op gives its parameters for channels from c0 here (then run_stages
  // runs the whole chain in one pass, ew_chain); false: run_stages calls stage().
  virtual bool stage_params(std::int64_t /*c0*/, EwParams* /*p*/) const { return false; }
  // Append `stage` (reading the current output and, for add, value z >= 0): this op then writes the
  // stage's output value and reads z too.
  void fuse(std::unique_ptr<Op> stage, int z);
  void set_fusion(const FusionOptions& f) { fusion_ = f; }
  std::size_t fused_stages() const { return stages_.size(); }

  // Max-pool fusion (Engine::Engine, at load; fused_pool.cpp). A maxpool op gives its geometry here.
  virtual const PoolGeom* max_pool() const { return nullptr; }
  // A producer that can compute any run of its output pixels on its own (the results of a pixel never
  // depend on which others are computed with it): compute_pixels writes pixels [p0, p0 + count) of
  // sample n, every channel, its fused stages applied, to y (row stride y_.c()), using thread t's
  // scratch (scratch_bytes()). FusedPool then max-pools rows of its output as it computes them,
  // and the full-size output is never written.
  virtual bool accepts_pool() const { return false; }
  // Once per run before any compute_pixels (may use ctx.parallel_for): per-sample preparation.
  virtual void prepare_pixels(const RunCtx& /*ctx*/) const {}
  virtual void compute_pixels(const RunCtx& /*ctx*/, int /*t*/, std::int64_t /*n*/, std::int64_t /*p0*/,
                              std::int64_t /*count*/, float* /*y*/) const {}

 protected:
  // The fused stages on a tile of this op's output: rows starting at flat pixel `pixel` (sample-major
  // over the batch), channels [c0, c0 + n), y = the tile's first element, row stride ld.
  // `first`: an op of the producer's own run before the stages (a binary layer's BN), or nullptr.
  // `src`: where the tile's values come from, when not already at y (int32 sums through acc2float's
  // transform, run in the same pass).
  void run_stages(const RunCtx& ctx, std::int64_t pixel, float* y, std::int64_t rows, std::int64_t ld, std::int64_t c0,
                  std::int64_t n, const EwParams* first = nullptr, const EwSource* src = nullptr) const;
  std::vector<std::unique_ptr<Op>> stages_;
  std::vector<int> stage_z_;  // per stage: the second operand's value, or -1
  FusionOptions fusion_;

  [[noreturn]] void fail(const std::string& msg) const {
    throw std::invalid_argument("engine: op " + type_ + " '" + name_ + "': " + msg);
  }
  std::int64_t int_attr(const OpDef& d, const char* key, std::size_t i = 0) const;
  std::string str_attr(const OpDef& d, const char* key) const;
  // A real attribute; an integer one is accepted too (JSON -1 for -1.0).
  double real_attr(const OpDef& d, const char* key) const;
  ConvGeom conv_geom(const OpDef& d) const;
  // A per-channel (or any) float tensor of exactly n elements; empty if optional and absent.
  std::vector<float> f32(const OpDef& d, const char* key, std::int64_t n, bool optional = false) const;

  std::string type_, name_;
  std::vector<int> in_, out_;
  ValueDef x_, y_;  // first input, output
};

// One im2col row of a float-input conv (conv2d, qconv2d; geometry from Op::conv_geom), for any element
// type T: output pixel (oh, ow)'s window of the NHWC input x (one group's Cin/g channels per tap), in
// the order [kh][kw][Cin/g], zeros for padding; `copy(dst, src, n)` copies n elements. Returns the
// row's end. (Callers step (oh, ow) along a tile: a division per row cost ~10 % of a 7x7 stem.)
template <class T, class Copy>
T* im2col_row(const ConvGeom& c, const ValueDef& x, const T* in, std::int64_t group, std::int64_t oh,
              std::int64_t ow, T* row, Copy&& copy) {
  const std::int64_t cin = x.c(), cin_g = cin / c.g;
  const std::int64_t iw0 = ow * c.s[1] - c.pl, iw1 = iw0 + (c.k[1] - 1) * c.dil[1];
  // One group, dilation 1, the window's row inside the image: its kw taps are one contiguous run.
  const bool run = c.g == 1 && c.dil[1] == 1 && iw0 >= 0 && iw1 < x.w();
  for (std::int64_t kh = 0; kh < c.k[0]; ++kh) {
    const std::int64_t ih = oh * c.s[0] - c.pt + kh * c.dil[0];
    if (run && ih >= 0 && ih < x.h()) {
      copy(row, in + (ih * x.w() + iw0) * cin, c.k[1] * cin);
      row += c.k[1] * cin;
      continue;
    }
    for (std::int64_t kw = 0; kw < c.k[1]; ++kw, row += cin_g) {
      const std::int64_t iw = ow * c.s[1] - c.pl + kw * c.dil[1];
      if (ih < 0 || ih >= x.h() || iw < 0 || iw >= x.w()) {
        std::fill(row, row + cin_g, T{0});
      } else {
        copy(row, in + (ih * x.w() + iw) * cin + group * cin_g, cin_g);
      }
    }
  }
  return row;
}

// Conv weights from the file's [Cout][Cin/g][kh][kw] to [Cout][kh][kw][Cin/g], the order of an NHWC
// im2col row (conv2d, qconv2d).
template <class T>
std::vector<T> to_tap_major(const T* w, std::int64_t cout, std::int64_t cin_g, std::int64_t taps) {
  std::vector<T> out(cout * cin_g * taps);
  for (std::int64_t o = 0; o < cout; ++o)
    for (std::int64_t i = 0; i < cin_g; ++i)
      for (std::int64_t t = 0; t < taps; ++t) out[(o * taps + t) * cin_g + i] = w[(o * cin_g + i) * taps + t];
  return out;
}

// The tiles of a float-input conv's output (conv2d, qconv2d), from the layer's shape only (so results
// never depend on threads or batch): `rows` output pixels of one sample x `cols` output channels of
// one group, with channel tiles of 64 when a sample has fewer than 4 pixel tiles (the 7x7 layers).
struct ConvTiles {
  std::int64_t pixels, groups, cout_g, rows, ptiles, cols, ctiles;
  ConvTiles() = default;
  ConvTiles(std::int64_t pixels_, std::int64_t groups_, std::int64_t cout_g_, std::int64_t rows_)
      : pixels(pixels_), groups(groups_), cout_g(cout_g_), rows(rows_), ptiles((pixels_ + rows_ - 1) / rows_),
        cols(ptiles >= 4 ? cout_g_ : std::min<std::int64_t>(64, cout_g_)), ctiles((cout_g_ + cols - 1) / cols) {}
  // fn(t, n, p0, rows, g, cg0, cols) for every tile of the batch (sample n, pixels [p0, p0 + rows), group
  // g, channels [cg0, cg0 + cols) of the group), split over the pool; t indexes thread scratch.
  template <class Fn>
  void for_each(const RunCtx& ctx, Fn&& fn) const {
    const std::int64_t per_sample = ptiles * groups * ctiles;
    ctx.parallel_for(ctx.batch * per_sample, [&](int t, std::int64_t i0, std::int64_t i1) {
      for (std::int64_t i = i0; i < i1; ++i) {
        const std::int64_t n = i / per_sample, r = i % per_sample;
        const std::int64_t p0 = r / (groups * ctiles) * rows, cg0 = r % ctiles * cols;
        fn(t, n, p0, std::min(rows, pixels - p0), r / ctiles % groups, cg0, std::min(cols, cout_g - cg0));
      }
    });
  }
};

// Output columns [lo, hi) whose kw taps all lie inside the input (0 <= ow * s - pl and
// ow * s - pl + (kw - 1) * dil <= W - 1); empty (lo >= hi) when there are none.
inline void interior_columns(const ConvGeom& c, const ValueDef& x, const ValueDef& y, std::int64_t* lo,
                             std::int64_t* hi) {
  const std::int64_t last = x.w() - 1 - (c.k[1] - 1) * c.dil[1] + c.pl;  // ow * s <= last
  *lo = (c.pl + c.s[1] - 1) / c.s[1];
  *hi = last < 0 ? 0 : std::min(last / c.s[1] + 1, y.w());
}

// The im2col rows of `rows` consecutive output pixels from flat pixel p0 (of one sample and group) into
// a (row r at a + r * lda), as im2col_row writes them. Pixels whose kw taps lie inside the image (output
// columns [ow_lo, ow_hi) of every output row; groups = 1, dilation 1) go kh outer, pixels inner: one
// `copy` per pixel and kh, a fixed source step, no per-row bookkeeping (the 7x7 stem's im2col ran 3x
// slower row by row). `copy` may write up to 16 bytes past n elements if lda leaves that room.
template <class T, class Copy>
void im2col_tile(const ConvGeom& c, const ValueDef& x, const ValueDef& y, const T* in, std::int64_t group,
                 std::int64_t p0, std::int64_t rows, T* a, std::int64_t lda, std::int64_t ow_lo, std::int64_t ow_hi,
                 Copy&& copy) {
  const std::int64_t cin = x.c(), run = c.k[1] * cin, step = c.s[1] * cin;
  const bool fast = c.g == 1 && c.dil[1] == 1;
  for (std::int64_t r = 0, oh = p0 / y.w(), ow = p0 % y.w(); r < rows; ++oh, ow = 0) {
    const std::int64_t n = std::min(rows - r, y.w() - ow);  // the pixels of output row oh in this tile
    const std::int64_t lo = fast ? std::clamp(ow_lo, ow, ow + n) : ow + n, hi = fast ? std::clamp(ow_hi, lo, ow + n) : ow + n;
    for (std::int64_t w = ow; w < ow + n; ++w) {
      if (w < lo || w >= hi) im2col_row(c, x, in, group, oh, w, a + (r + w - ow) * lda, copy);
    }
    for (std::int64_t kh = 0; kh < c.k[0] && lo < hi; ++kh) {
      const std::int64_t ih = oh * c.s[0] - c.pt + kh * c.dil[0];
      T* dst = a + (r + lo - ow) * lda + kh * run;
      if (ih < 0 || ih >= x.h()) {
        for (std::int64_t w = lo; w < hi; ++w, dst += lda) std::fill(dst, dst + run, T{0});
        continue;
      }
      const T* src = in + (ih * x.w() + lo * c.s[1] - c.pl) * cin;
      for (std::int64_t w = lo; w < hi; ++w, dst += lda, src += step) copy(dst, src, run);
    }
    r += n;
  }
}

// A flat range [r0, r1) of (sample, row) items with `per` rows per sample, in per-sample pieces:
// fn(n, b, e) for rows [b, e) of sample n (ops whose per-sample data differ: thresholds, regrouping).
template <class Fn>
void for_each_sample(std::int64_t r0, std::int64_t r1, std::int64_t per, Fn&& fn) {
  for (std::int64_t n = r0 / per; n * per < r1; ++n) fn(n, std::max(r0, n * per) - n * per, std::min(r1, (n + 1) * per) - n * per);
}

// A grouped binary conv's input layout (bconv2d.h) from the engine's plain packed rows: `pixels` rows of
// words_for(channels) words -> rows of `groups` word-aligned groups of channels / groups bits each
// (ops_binary.cpp; used by bconv2d and sbconv2d when channels / groups is not a multiple of 64).
void regroup_words(const word_t* x, std::int64_t pixels, std::int64_t channels, std::int64_t groups, word_t* out);

// Factories (ops_float.cpp, ops_binary.cpp); nullptr when the type is not theirs.
std::unique_ptr<Op> make_float_op(const OpDef& def, const std::vector<ValueDef>& values);
std::unique_ptr<Op> make_binary_op(const OpDef& def, const std::vector<ValueDef>& values);
// Method ops (ops_resample.cpp, ops_dynamic.cpp, ops_elastic.cpp, ops_sparse.cpp); nullptr when not theirs.
std::unique_ptr<Op> make_resample_op(const OpDef& def, const std::vector<ValueDef>& values);
std::unique_ptr<Op> make_dynamic_op(const OpDef& def, const std::vector<ValueDef>& values);
std::unique_ptr<Op> make_elastic_op(const OpDef& def, const std::vector<ValueDef>& values);
std::unique_ptr<Op> make_sparse_op(const OpDef& def, const std::vector<ValueDef>& values);
// Int8-quantized float layers (ops_quant.cpp): qconv2d, qlinear.
std::unique_ptr<Op> make_quantized_op(const OpDef& def, const std::vector<ValueDef>& values);
// A producer (accepts_pool) and the maxpool that is the only reader of its output, as one op
// (fused_pool.cpp).
// def: the fused op's name, type, inputs (the producer's) and output (the pool's).
std::unique_ptr<Op> make_fused_pool(const OpDef& def, const std::vector<ValueDef>& values, std::unique_ptr<Op> producer,
                                    std::unique_ptr<Op> pool);
// Max-pool output row oh of one sample (y.w() x y.c() floats at out) from the input rows of its window,
// rows[ih - h0] = input row ih (x.w() x x.c() floats) for [h0, h1) of g.rows (ops_float.cpp).
void max_pool_row(const PoolGeom& g, const ValueDef& x, const ValueDef& y, std::int64_t oh, const float* const* rows,
                  float* out);

// Run fn(t, begin, end) over [0, n) split into at most num_threads contiguous chunks on the pool of the
// Engine::run in progress on this thread (current_pool()); t indexes its scratch. Prefer
// ctx.parallel_for. Without a current pool the chunks run inline. Exceptions propagate.
void parallel_for(std::int64_t n, int num_threads, const std::function<void(int, std::int64_t, std::int64_t)>& fn);

}  // namespace onebit::engine
