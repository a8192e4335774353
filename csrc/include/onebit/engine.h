// The inference engine: a validated op list, an arena planned once, all ops in C++.
//
// Concurrency: run() may be called from several threads at once. Each call borrows an arena (the
// memory of every activation) from a pool and returns it afterwards, so concurrent calls run in
// parallel on separate memory; a pool grows to the largest number of simultaneous calls seen.
//
// Threads: the Engine owns a persistent thread pool of num_threads (num_threads - 1 workers plus the
// calling thread), created here and reused by every op of every call. Concurrent calls share it one
// parallel region at a time: a call that finds the pool busy runs that op's work on its own thread
// instead of waiting (csrc/engine/thread_pool.h), with identical results.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "onebit/graph.h"

namespace onebit {

namespace engine {
class Op;
struct FusionOptions;
class ThreadPool;
}

class Engine {
 public:
  // Throws std::invalid_argument naming the op when the graph is inconsistent.
  Engine(GraphDef graph, int num_threads);
  ~Engine();

  // in: batch x C x H x W float32 (NCHW, contiguous). out: batch x output elements, in PyTorch's
  // order (NCHW for a [C, H, W] output).
  // op_seconds (optional): filled with the wall time of every op, in graph order (profiling).
  void run(const float* in, std::int64_t batch, float* out, std::vector<double>* op_seconds = nullptr) const;

  const ValueDef& input() const { return graph_.values[graph_.input]; }
  const ValueDef& output() const { return graph_.values[graph_.output]; }
  int num_threads() const { return num_threads_; }
  // Bytes of activation memory one sample needs (the planned arena, without kernel scratch).
  std::int64_t arena_bytes_per_sample() const { return arena_per_sample_; }
  // Bytes of weights packed at load for the kernels dispatch picked then (bconv2d on the bgemm
  // variants that would otherwise repack them on every call); 0 when none.
  std::int64_t packed_weight_bytes() const;

 private:
  struct Arena {
    void* data = nullptr;
    std::size_t bytes = 0;
    ~Arena();
  };
  std::unique_ptr<Arena> borrow(std::size_t bytes) const;
  void give_back(std::unique_ptr<Arena> arena) const;
  // Load-time fusion of the chain of single readers from the producer in slot i (engine.cpp).
  void fuse_chain(int i, std::vector<std::unique_ptr<engine::Op>>& ops, std::vector<int>& origin,
                  const std::vector<int>& readers, const engine::FusionOptions& fusion) const;

  GraphDef graph_;
  int num_threads_;
  std::vector<std::unique_ptr<engine::Op>> ops_;  // after fusion (fewer than graph_.ops)
  std::vector<int> graph_index_;                   // per op of ops_: its index in graph_.ops
  std::unique_ptr<engine::ThreadPool> threads_;
  std::vector<std::int64_t> offsets_;  // per-sample byte offset of every value in the arena
  std::int64_t arena_per_sample_ = 0;
  std::int64_t scratch_per_thread_ = 0;
  std::int64_t shared_per_sample_ = 0;  // max over ops of Op::shared_bytes_per_sample, aligned
  mutable std::mutex pool_mutex_;
  mutable std::vector<std::unique_ptr<Arena>> pool_;
};

}  // namespace onebit
