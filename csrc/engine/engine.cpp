// Engine: builds ops from the graph, plans the arena once, runs every op in C++.
//
// Arena planning: a value lives from the op that defines it to its last reader (the input from the
// start, the output to the end). Values are placed first-fit at per-sample byte offsets so that no two
// values alive at the same time overlap; every size and offset is a multiple of 64. With batch N
// each value takes N times its per-sample bytes at N times its offset, which preserves both
// properties, so one plan serves every batch size.
#include "onebit/engine.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>

#include "op.h"

namespace onebit {
namespace engine {

Op::Op(const OpDef& def, const std::vector<ValueDef>& values)
    : type_(def.type), name_(def.name), in_(def.inputs), out_(def.outputs) {
  if (in_.empty() || out_.size() != 1) fail("needs inputs and exactly one output");
  for (int v : in_) {
    if (v < 0 || v >= static_cast<int>(values.size())) fail("input index out of range");
  }
  if (out_[0] < 0 || out_[0] >= static_cast<int>(values.size())) fail("output index out of range");
  x_ = values[in_[0]];
  y_ = values[out_[0]];
}

std::int64_t Op::int_attr(const OpDef& d, const char* key, std::size_t i) const {
  auto it = d.ints.find(key);
  if (it == d.ints.end() || it->second.size() <= i) fail(std::string("missing integer attribute ") + key);
  return it->second[i];
}

std::string Op::str_attr(const OpDef& d, const char* key) const {
  auto it = d.strs.find(key);
  if (it == d.strs.end()) fail(std::string("missing string attribute ") + key);
  return it->second;
}

double Op::real_attr(const OpDef& d, const char* key) const {
  auto it = d.reals.find(key);
  if (it != d.reals.end()) return it->second;
  auto jt = d.ints.find(key);
  if (jt == d.ints.end() || jt->second.size() != 1) fail(std::string("missing real attribute ") + key);
  return static_cast<double>(jt->second[0]);
}

ConvGeom Op::conv_geom(const OpDef& d) const {
  ConvGeom c;
  for (int i = 0; i < 2; ++i)
    c.k[i] = int_attr(d, "kernel", i), c.s[i] = int_attr(d, "stride", i), c.dil[i] = int_attr(d, "dilation", i);
  c.pt = int_attr(d, "padding", 0), c.pl = int_attr(d, "padding", 2), c.g = int_attr(d, "groups");
  return c;
}

std::vector<float> Op::f32(const OpDef& d, const char* key, std::int64_t n, bool optional) const {
  auto it = d.f32.find(key);
  if (it == d.f32.end()) {
    if (optional) return {};
    fail(std::string("missing float32 tensor ") + key);
  }
  if (static_cast<std::int64_t>(it->second.size()) != n) {
    fail(std::string("tensor ") + key + " has " + std::to_string(it->second.size()) + " elements, expected " +
         std::to_string(n));
  }
  return it->second;
}

void Op::fuse(std::unique_ptr<Op> stage, int z) {
  out_[0] = stage->outputs()[0];
  if (z >= 0) in_.push_back(z);
  stage_z_.push_back(z);
  stages_.push_back(std::move(stage));
}

// One pass of ew_chain when every stage is an EwKind op (and the chain is short); else op by op.
void Op::run_stages(const RunCtx& ctx, std::int64_t pixel, float* y, std::int64_t rows, std::int64_t ld, std::int64_t c0,
                    std::int64_t n, const EwParams* first, const EwSource* src) const {
  auto z_of = [&](std::size_t k) {  // stage k's second operand at the tile, or nullptr
    return stage_z_[k] < 0 ? nullptr : reinterpret_cast<const float*>(ctx.ptr[stage_z_[k]]) + pixel * ld + c0;
  };
  constexpr std::size_t kMaxChain = 8;
  EwStage chain[kMaxChain];
  int count = 0;
  if (first) chain[count++] = EwStage{*first, nullptr};
  bool one_pass = fusion_.one_pass && stages_.size() + count <= kMaxChain;
  for (std::size_t k = 0; one_pass && k < stages_.size(); ++k) {
    one_pass = stages_[k]->stage_params(c0, &chain[count].p);
    chain[count++].z = z_of(k);
  }
  if (one_pass) return ew_chain(chain, count, src ? *src : EwSource{y, nullptr, 0, nullptr, nullptr}, y, rows, ld, n);
  if (src) ew_chain(nullptr, 0, *src, y, rows, ld, n);
  if (first) ew_apply(*first, y, nullptr, y, rows, ld, n);
  for (std::size_t k = 0; k < stages_.size(); ++k) stages_[k]->stage(y, z_of(k), rows, ld, c0, n);
}

void parallel_for(std::int64_t n, int num_threads, const std::function<void(int, std::int64_t, std::int64_t)>& fn) {
  ThreadPool* pool = current_pool();
  if (pool && num_threads > 1) {
    // Fewer chunks than the pool has threads when the caller asks for fewer.
    const std::int64_t chunks = std::min<std::int64_t>({num_threads, pool->size(), n});
    pool->parallel_for(chunks, [&](int t, std::int64_t c0, std::int64_t) { fn(t, n * c0 / chunks, n * (c0 + 1) / chunks); });
  } else if (n > 0) {
    fn(0, 0, n);
  }
}

}  // namespace engine

namespace {

constexpr std::int64_t kAlign = 64;
std::int64_t align_up(std::int64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// First-fit placement of [def, last] lifetimes; returns offsets and the total size (per sample).
std::int64_t plan(const std::vector<ValueDef>& values, const std::vector<int>& def, const std::vector<int>& last,
                  std::vector<std::int64_t>* offsets) {
  const int n = static_cast<int>(values.size());
  offsets->assign(n, -1);
  std::vector<int> order;
  for (int v = 0; v < n; ++v) {
    if (def[v] != INT32_MAX) order.push_back(v);
  }
  std::sort(order.begin(), order.end(), [&](int a, int b) { return values[a].bytes() > values[b].bytes(); });
  std::int64_t total = 0;
  std::vector<int> placed;
  for (int v : order) {
    const std::int64_t size = align_up(values[v].bytes());
    std::vector<std::pair<std::int64_t, std::int64_t>> busy;
    for (int u : placed) {
      if (def[u] <= last[v] && def[v] <= last[u]) busy.emplace_back((*offsets)[u], (*offsets)[u] + align_up(values[u].bytes()));
    }
    std::sort(busy.begin(), busy.end());
    std::int64_t at = 0;
    for (auto& [lo, hi] : busy) {
      if (at + size <= lo) break;
      at = std::max(at, hi);
    }
    (*offsets)[v] = at;
    total = std::max(total, at + size);
    placed.push_back(v);
  }
  return total;
}

}  // namespace

Engine::Arena::~Arena() { std::free(data); }

// ONEBIT_ENGINE_FUSE (read at load): unset or "1" fuses everything; "0" nothing (every op on its own,
// as the graph lists them: tests compare both); else a comma list of what to do, of stages, pool,
// one_pass, from_acc (FusionOptions), to measure each step (benchmarks/bench_engine_ab.py).
namespace {
engine::FusionOptions fusion_options(const char* env) {
  engine::FusionOptions f;
  if (!env || std::strcmp(env, "1") == 0) return f;
  f = engine::FusionOptions{false, false, false, false};
  const std::string list = env;
  for (std::size_t b = 0; b < list.size();) {
    const std::size_t e = std::min(list.find(',', b), list.size());
    const std::string item = list.substr(b, e - b);
    if (item == "stages") f.stages = true;
    else if (item == "pool") f.pool = true;
    else if (item == "one_pass") f.one_pass = true;
    else if (item == "from_acc") f.from_acc = true;
    else if (item != "0")
      throw std::runtime_error("engine: ONEBIT_ENGINE_FUSE='" + list +
                               "': expected 0, 1 or a comma list of stages, pool, one_pass, from_acc");
    b = e + 1;
  }
  return f;
}
}  // namespace

// Fusion down the chain of single readers from the producer in slot i, in the place of the chain's last op
// (every operand is ready there, and nothing in between reads the chain's values):
// * epilogue: a float output whose only reader is a stage (op.h) -- not the graph output -- takes that
//   stage in; an add's other operand must have the output's shape (then z's tile is y's tile);
// * max-pool (fused_pool.cpp): a producer that computes any run of its output pixels on its own
//   (accepts_pool) and whose output's only reader is a maxpool runs as one op with it, which never
//   stores the producer's output and takes further stages in (a BN after the pool).
void Engine::fuse_chain(int i, std::vector<std::unique_ptr<engine::Op>>& ops, std::vector<int>& origin,
                        const std::vector<int>& readers, const engine::FusionOptions& fusion) const {
  const int nops = static_cast<int>(ops.size());
  for (int at = i;;) {
    const int v = ops[at]->outputs()[0];
    if (v == graph_.output || readers[v] != 1) return;
    int j = at + 1;
    while (j < nops && !(ops[j] && std::count(ops[j]->inputs().begin(), ops[j]->inputs().end(), v))) ++j;
    if (j == nops) return;
    const std::vector<int>& ins = ops[j]->inputs();
    if (fusion.pool && ops[j]->max_pool() && ops[at]->accepts_pool() && ins.size() == 1) {
      OpDef d;
      d.type = graph_.ops[i].type, d.name = graph_.ops[i].name;
      d.inputs = ops[at]->inputs(), d.outputs = ops[j]->outputs();
      ops[j] = engine::make_fused_pool(d, graph_.values, std::move(ops[at]), std::move(ops[j]));
      ops[j]->set_fusion(fusion);
    } else {
      if (!fusion.stages || !ops[at]->accepts_stages() || !ops[j]->is_stage() ||
          graph_.values[ops[j]->outputs()[0]].shape != graph_.values[v].shape)
        return;
      int z = -1;
      if (ins.size() == 2) {
        z = ins[0] == v ? ins[1] : ins[0];
        if (z == v || (!ops[j]->stage_commutes() && ins[0] != v) || graph_.values[z].kind != ValueKind::kFloat ||
            graph_.values[z].shape != graph_.values[v].shape)
          return;
      } else if (ins.size() != 1) {
        return;
      }
      ops[at]->fuse(std::move(ops[j]), z);
      ops[j] = std::move(ops[at]);
    }
    origin[j] = i;
    at = j;
  }
}

Engine::Engine(GraphDef graph, int num_threads) : graph_(std::move(graph)), num_threads_(std::max(1, num_threads)) {
  const int nv = static_cast<int>(graph_.values.size());
  if (graph_.input < 0 || graph_.input >= nv || graph_.output < 0 || graph_.output >= nv) {
    throw std::invalid_argument("engine: input/output value index out of range");
  }
  if (input().kind != ValueKind::kFloat || input().shape.size() != 3 || output().kind != ValueKind::kFloat) {
    throw std::invalid_argument("engine: the input must be float [C, H, W] and the output float");
  }
  std::vector<int> def(nv, INT32_MAX), last(nv, -1), readers(nv, 0);
  def[graph_.input] = -1;
  const int nops = static_cast<int>(graph_.ops.size());
  std::vector<std::unique_ptr<engine::Op>> ops;
  for (int i = 0; i < nops; ++i) {
    const OpDef& d = graph_.ops[i];
    std::unique_ptr<engine::Op> op = engine::make_binary_op(d, graph_.values);
    if (!op) op = engine::make_float_op(d, graph_.values);
    if (!op) op = engine::make_resample_op(d, graph_.values);
    if (!op) op = engine::make_dynamic_op(d, graph_.values);
    if (!op) op = engine::make_elastic_op(d, graph_.values);
    if (!op) op = engine::make_sparse_op(d, graph_.values);
    if (!op) op = engine::make_quantized_op(d, graph_.values);
    if (!op) throw std::invalid_argument("engine: unknown op type '" + d.type + "' ('" + d.name + "')");
    for (int v : op->inputs()) {
      if (def[v] == INT32_MAX || def[v] >= i) throw std::invalid_argument("engine: op '" + d.name + "' reads an undefined value");
      ++readers[v];
    }
    if (def[op->outputs()[0]] != INT32_MAX) throw std::invalid_argument("engine: value defined twice at '" + d.name + "'");
    def[op->outputs()[0]] = i;
    ops.push_back(std::move(op));
  }
  if (def[graph_.output] == INT32_MAX) throw std::invalid_argument("engine: the output is never computed");
  // Fusion at load (fuse_chain; ONEBIT_ENGINE_FUSE: fusion_options).
  const engine::FusionOptions fusion = fusion_options(std::getenv("ONEBIT_ENGINE_FUSE"));
  for (auto& op : ops) op->set_fusion(fusion);
  std::vector<int> origin(nops);  // per slot: the graph index of the op there (its producer's when fused)
  for (int i = 0; i < nops; ++i) origin[i] = i;
  for (int i = 0; i < nops; ++i) {
    if (!ops[i] || origin[i] != i || !(ops[i]->accepts_stages() || ops[i]->accepts_pool())) continue;
    fuse_chain(i, ops, origin, readers, fusion);
  }
  // The op list to run (graph index of each), lifetimes and the arena plan.
  std::fill(def.begin(), def.end(), INT32_MAX);
  def[graph_.input] = -1;
  for (int i = 0; i < nops; ++i) {
    if (!ops[i]) continue;
    const int k = static_cast<int>(ops_.size());
    for (int v : ops[i]->inputs()) last[v] = k;
    def[ops[i]->outputs()[0]] = k;
    last[ops[i]->outputs()[0]] = std::max(last[ops[i]->outputs()[0]], k);
    scratch_per_thread_ = std::max(scratch_per_thread_, align_up(ops[i]->scratch_bytes()));
    shared_per_sample_ = std::max(shared_per_sample_, align_up(ops[i]->shared_bytes_per_sample()));
    graph_index_.push_back(origin[i]);
    ops_.push_back(std::move(ops[i]));
  }
  last[graph_.output] = static_cast<int>(ops_.size());
  arena_per_sample_ = plan(graph_.values, def, last, &offsets_);
  threads_ = std::make_unique<engine::ThreadPool>(num_threads_);
}

Engine::~Engine() = default;

std::unique_ptr<Engine::Arena> Engine::borrow(std::size_t bytes) const {
  std::unique_ptr<Arena> arena;
  {
    std::lock_guard<std::mutex> lock(pool_mutex_);
    if (!pool_.empty()) {
      arena = std::move(pool_.back());
      pool_.pop_back();
    }
  }
  if (!arena) arena = std::make_unique<Arena>();
  if (arena->bytes < bytes) {
    std::free(arena->data);
    arena->data = std::aligned_alloc(kAlign, static_cast<std::size_t>(align_up(static_cast<std::int64_t>(bytes))));
    if (!arena->data) {
      arena->bytes = 0;
      throw std::bad_alloc();
    }
    arena->bytes = bytes;
  }
  return arena;
}

void Engine::give_back(std::unique_ptr<Arena> arena) const {
  std::lock_guard<std::mutex> lock(pool_mutex_);
  pool_.push_back(std::move(arena));
}

void Engine::run(const float* in, std::int64_t batch, float* out, std::vector<double>* op_seconds) const {
  if (batch < 1) throw std::invalid_argument("engine: batch must be >= 1");
  const std::int64_t act = batch * arena_per_sample_;
  const std::int64_t scratch = num_threads_ * scratch_per_thread_, shared = batch * shared_per_sample_;
  std::unique_ptr<Arena> arena = borrow(static_cast<std::size_t>(act + scratch + shared));
  char* base = static_cast<char*>(arena->data);
  engine::RunCtx ctx;
  ctx.batch = batch;
  ctx.num_threads = num_threads_;
  ctx.scratch = base + act;
  ctx.scratch_per_thread = scratch_per_thread_;
  ctx.shared = base + act + scratch;
  ctx.shared_per_sample = shared_per_sample_;
  ctx.pool = threads_.get();
  struct PoolScope {  // current_pool() for ops that use the free parallel_for
    engine::ThreadPool* saved;
    explicit PoolScope(engine::ThreadPool* p) : saved(engine::current_pool()) { engine::current_pool() = p; }
    ~PoolScope() { engine::current_pool() = saved; }
  } scope(threads_.get());
  ctx.ptr.resize(graph_.values.size(), nullptr);
  for (std::size_t v = 0; v < graph_.values.size(); ++v) {
    if (offsets_[v] >= 0) ctx.ptr[v] = base + batch * offsets_[v];
  }
  // NCHW -> NHWC
  const ValueDef& iv = input();
  const std::int64_t c = iv.c(), hw = iv.pixels();
  float* x = reinterpret_cast<float*>(ctx.ptr[graph_.input]);
  for (std::int64_t n = 0; n < batch; ++n) {
    for (std::int64_t ch = 0; ch < c; ++ch) {
      for (std::int64_t p = 0; p < hw; ++p) x[(n * hw + p) * c + ch] = in[(n * c + ch) * hw + p];
    }
  }
  if (op_seconds) {
    op_seconds->assign(graph_.ops.size(), 0.0);  // an op fused into another reports 0 (its time is the producer's)
    for (std::size_t i = 0; i < ops_.size(); ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      ops_[i]->run(ctx);
      (*op_seconds)[graph_index_[i]] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
  } else {
    for (const auto& op : ops_) op->run(ctx);
  }
  // NHWC -> NCHW (a no-op reorder for [F] and 1x1 outputs)
  const ValueDef& ov = output();
  const std::int64_t oc = ov.c(), ohw = ov.pixels();
  const float* y = reinterpret_cast<const float*>(ctx.ptr[graph_.output]);
  for (std::int64_t n = 0; n < batch; ++n) {
    for (std::int64_t ch = 0; ch < oc; ++ch) {
      for (std::int64_t p = 0; p < ohw; ++p) out[(n * oc + ch) * ohw + p] = y[(n * ohw + p) * oc + ch];
    }
  }
  give_back(std::move(arena));
}

std::int64_t Engine::packed_weight_bytes() const {
  std::int64_t total = 0;
  for (const auto& op : ops_) total += op->packed_weight_bytes();
  return total;
}

}  // namespace onebit
