// A persistent thread pool for the engine: created once with the Engine, reused by every op of every
// call (no thread creation per op or per call).
//
// parallel_for(n, fn) splits [0, n) into min(size(), n) contiguous chunks; chunk t runs fn(t, begin,
// end) -- t indexes the per-thread scratch of the call -- the caller runs chunk 0 and the workers the
// rest, and it returns when every chunk is done (exceptions are rethrown on the caller, first chunk
// first). Chunk bounds depend on n and size() only.
//
// Concurrency: one parallel region uses the pool at a time. A caller that finds the pool busy (another
// run() of the same Engine is inside a region) does not wait: it runs all chunks itself, in order, on
// its own thread. So concurrent run() calls never deadlock and never share scratch; they get the same
// results (ops compute each output element the same way whatever thread runs it) at less parallelism.
//
// Waiting: workers spin (with a pause) for ~kSpinIters before sleeping on a condition variable, so
// the back-to-back small ops of one inference do not pay a futex wake-up each (tens of microseconds);
// an idle engine sleeps.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace onebit::engine {

using ChunkFn = std::function<void(int, std::int64_t, std::int64_t)>;

class ThreadPool {
 public:
  explicit ThreadPool(int num_threads);  // num_threads - 1 worker threads; the caller is thread 0
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  void parallel_for(std::int64_t n, const ChunkFn& fn);

 private:
  void worker(int index);
  void run_chunk(int t) noexcept;
  void wait_done() const;

  std::vector<std::thread> workers_;
  std::mutex busy_;  // held by the caller of the region in flight
  std::mutex m_;     // guards sleeping / waking
  std::condition_variable cv_;
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<int> remaining_{0};
  std::atomic<bool> stop_{false};
  // The region in flight (written before generation_ is bumped, read after it is seen).
  const ChunkFn* fn_ = nullptr;
  std::int64_t n_ = 0;
  int chunks_ = 0;
  std::vector<std::exception_ptr> errors_;
};

// The pool of the run() in progress on this thread (set by Engine::run), or nullptr.
ThreadPool*& current_pool();

}  // namespace onebit::engine
