// The engine's persistent thread pool (thread_pool.h).
#include "thread_pool.h"

#include <algorithm>
#include <chrono>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ONEBIT_PAUSE() _mm_pause()
#else
#define ONEBIT_PAUSE() ((void)0)
#endif

namespace onebit::engine {
namespace {
constexpr int kSpinIters = 1 << 13;  // the caller's wait: pause instructions before yielding
// A worker spins this long after its last region before it sleeps: by the clock, not by a count of
// pause instructions, whose latency differs ~20x between CPUs (a few cycles to ~140). It must cover
// the gap between the ops of one inference and between back-to-back calls, or the worker sleeps and
// the next region's chunks are all taken by the caller before the futex wake-up lands.
constexpr auto kWorkerSpin = std::chrono::microseconds(300);
}

ThreadPool*& current_pool() {
  thread_local ThreadPool* pool = nullptr;
  return pool;
}

namespace {
constexpr int kGenShift = 40, kChunkShift = 20;
constexpr std::uint64_t kField = (std::uint64_t{1} << 20) - 1;
inline std::uint64_t gen_of(std::uint64_t c) { return c >> kGenShift; }
inline std::uint64_t chunks_of(std::uint64_t c) { return (c >> kChunkShift) & kField; }
inline std::uint64_t next_of(std::uint64_t c) { return c & kField; }
}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  const int workers = std::max(1, num_threads) - 1;
  errors_.resize(static_cast<std::size_t>(kChunksPerThread) * (workers + 1));
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

void ThreadPool::claim_and_run(std::uint64_t gen, int t) noexcept {
  std::uint64_t c = claim_.load(std::memory_order_acquire);
  for (;;) {
    if (gen_of(c) != gen || next_of(c) >= chunks_of(c)) return;  // another region, or nothing left
    if (!claim_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
    // Chunk k is ours: the region cannot end (nor its fields change) before done_ counts it.
    const std::int64_t k = static_cast<std::int64_t>(next_of(c));
    try {
      (*fn_)(t, n_ * k / chunks_, n_ * (k + 1) / chunks_);
    } catch (...) {
      errors_[static_cast<std::size_t>(k)] = std::current_exception();
    }
    done_.fetch_add(1, std::memory_order_acq_rel);
    c = claim_.load(std::memory_order_acquire);
  }
}

void ThreadPool::worker(int index) {
  std::uint64_t seen = 0;
  for (;;) {
    std::uint64_t g = generation_.load(std::memory_order_acquire);
    const auto spin_start = std::chrono::steady_clock::now();
    for (int i = 1; g == seen; ++i) {
      ONEBIT_PAUSE();
      g = generation_.load(std::memory_order_acquire);
      if (i % 64 == 0 && std::chrono::steady_clock::now() - spin_start > kWorkerSpin) break;
    }
    if (g == seen) {
      std::unique_lock<std::mutex> lock(m_);
      cv_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      g = generation_.load(std::memory_order_acquire);
    }
    seen = g;
    if (stop_.load(std::memory_order_acquire)) return;
    claim_and_run(g & ((std::uint64_t{1} << 24) - 1), index);
  }
}

void ThreadPool::parallel_for(std::int64_t n, const ChunkFn& fn) {
  if (n <= 0) return;
  const int chunks = static_cast<int>(std::min<std::int64_t>(std::int64_t{kChunksPerThread} * size(), n));
  std::unique_lock<std::mutex> region(busy_, std::try_to_lock);
  if (size() == 1 || chunks == 1 || !region.owns_lock()) {  // run here, same chunks
    for (int k = 0; k < chunks; ++k) fn(0, n * k / chunks, n * (k + 1) / chunks);
    return;
  }
  fn_ = &fn;
  n_ = n;
  chunks_ = chunks;
  std::fill(errors_.begin(), errors_.begin() + chunks, nullptr);
  done_.store(0, std::memory_order_relaxed);
  std::uint64_t gen;
  {
    std::lock_guard<std::mutex> lock(m_);
    gen = (generation_.load(std::memory_order_relaxed) + 1) & ((std::uint64_t{1} << 24) - 1);
    claim_.store(gen << kGenShift | static_cast<std::uint64_t>(chunks) << kChunkShift, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_release);
  }
  cv_.notify_all();
  claim_and_run(gen, 0);
  for (int i = 0; done_.load(std::memory_order_acquire) < chunks; ++i) {
    if (i < kSpinIters) {
      ONEBIT_PAUSE();
    } else {
      std::this_thread::yield();
    }
  }
  for (int k = 0; k < chunks; ++k) {
    if (errors_[static_cast<std::size_t>(k)]) std::rethrow_exception(errors_[static_cast<std::size_t>(k)]);
  }
}

}  // namespace onebit::engine
