// The engine's persistent thread pool (thread_pool.h).
#include "thread_pool.h"

#include <algorithm>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ONEBIT_PAUSE() _mm_pause()
#else
#define ONEBIT_PAUSE() ((void)0)
#endif

namespace onebit::engine {
namespace {
constexpr int kSpinIters = 1 << 13;  // ~10-200 us of pause instructions before sleeping
}

ThreadPool*& current_pool() {
  thread_local ThreadPool* pool = nullptr;
  return pool;
}

ThreadPool::ThreadPool(int num_threads) {
  const int workers = std::max(1, num_threads) - 1;
  errors_.resize(workers + 1);
  workers_.reserve(workers);
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this, i] { worker(i + 1); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(m_);
    stop_.store(true, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_release);
  }
  cv_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::run_chunk(int t) noexcept {
  try {
    (*fn_)(t, n_ * t / chunks_, n_ * (t + 1) / chunks_);
  } catch (...) {
    errors_[t] = std::current_exception();
  }
}

void ThreadPool::worker(int index) {
  std::uint64_t seen = 0;
  for (;;) {
    std::uint64_t g = generation_.load(std::memory_order_acquire);
    for (int i = 0; g == seen && i < kSpinIters; ++i) {
      ONEBIT_PAUSE();
      g = generation_.load(std::memory_order_acquire);
    }
    if (g == seen) {
      std::unique_lock<std::mutex> lock(m_);
      cv_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      g = generation_.load(std::memory_order_acquire);
    }
    seen = g;
    if (stop_.load(std::memory_order_acquire)) return;
    if (index < chunks_) run_chunk(index);
    // Every worker acknowledges every region (even without a chunk), so none still reads the
    // region's fields when the next region writes them.
    remaining_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::wait_done() const {
  for (int i = 0; remaining_.load(std::memory_order_acquire) > 0; ++i) {
    if (i < kSpinIters) {
      ONEBIT_PAUSE();
    } else {
      std::this_thread::yield();
    }
  }
}

void ThreadPool::parallel_for(std::int64_t n, const ChunkFn& fn) {
  if (n <= 0) return;
  const int chunks = static_cast<int>(std::min<std::int64_t>(size(), n));
  std::unique_lock<std::mutex> region(busy_, std::try_to_lock);
  if (chunks == 1 || !region.owns_lock()) {  // one chunk, or the pool is busy: run here, same chunks
    for (int t = 0; t < chunks; ++t) fn(t, n * t / chunks, n * (t + 1) / chunks);
    return;
  }
  fn_ = &fn;
  n_ = n;
  chunks_ = chunks;
  std::fill(errors_.begin(), errors_.end(), nullptr);
  remaining_.store(size() - 1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(m_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  cv_.notify_all();
  run_chunk(0);
  wait_done();
  for (auto& e : errors_) {
    if (e) std::rethrow_exception(e);
  }
}

}  // namespace onebit::engine
