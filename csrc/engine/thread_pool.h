// A persistent thread pool for the engine: created once with the Engine, reused by every op of every
// call (no thread creation per op or per call).
//
// parallel_for(n, fn) splits [0, n) into C = min(kChunksPerThread * size(), n) contiguous chunks (chunk c
// is [n c / C, n (c + 1) / C): the bounds depend on n and size() only). The caller and the workers
// claim chunks from a shared atomic counter until none is left, and run fn(t, begin, end) on each,
// t = the participant (0 = the caller, i = worker i) indexing the per-thread scratch of the call (a
// participant runs its chunks one after another). It returns when every chunk is done; exceptions
// are rethrown on the caller, first chunk first.
//
// Why claiming: with fixed chunk-per-thread, the caller waited for every worker, so a worker that
// the OS had descheduled (another process on its core) stalled every op by a scheduler time slice
// (measured: a 7.7 M MAC model at 2 threads went from 0.07 ms to a 4 ms p90 under load). Now chunks
// nobody has claimed are taken by whoever is running; only a chunk already claimed by a preempted
// worker is waited for. One chunk per thread (kChunksPerThread): finer chunks measured slower idle
// (each chunk repeats per-call work: padded input copies, im2col, small-M sgemm calls; vgg_small at
// 2 threads 1.18 ms with 1 chunk per thread, 1.31 ms with 2, 1.42 ms with 4) and no better under load.
//
// Concurrency: one parallel region uses the pool at a time. A caller that finds the pool busy (another
// run() of the same Engine is inside a region) does not wait: it runs all chunks itself, in order, on
// its own thread. So concurrent run() calls never deadlock and never share scratch; they get the same
// results (ops compute each output element the same way whatever thread runs it) at less parallelism.
//
// Waiting: workers spin (with a pause) for ~300 us before sleeping on a condition variable, so
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
  static constexpr int kChunksPerThread = 1;
  void worker(int index);
  // Claim and run chunks of the region whose claim word has generation `gen` until none is left.
  void claim_and_run(std::uint64_t gen, int t) noexcept;

  std::vector<std::thread> workers_;
  std::mutex busy_;  // held by the caller of the region in flight
  std::mutex m_;     // guards sleeping / waking
  std::condition_variable cv_;
  std::atomic<std::uint64_t> generation_{0};  // bumped per region (wakes workers)
  // The claim word: (generation mod 2^24) << 40 | chunks << 20 | next unclaimed chunk. A participant
  // claims chunk k by a compare-exchange from k to k + 1 within the same generation, and only then
  // reads the region's fields below (written before the word was published).
  std::atomic<std::uint64_t> claim_{0};
  std::atomic<int> done_{0};  // chunks finished in the region in flight
  std::atomic<bool> stop_{false};
  const ChunkFn* fn_ = nullptr;
  std::int64_t n_ = 0;
  int chunks_ = 0;
  std::vector<std::exception_ptr> errors_;  // per chunk
};

// The pool of the run() in progress on this thread (set by Engine::run), or nullptr.
ThreadPool*& current_pool();

}  // namespace onebit::engine
