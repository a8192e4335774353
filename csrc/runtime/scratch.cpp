#include "onebit/scratch.h"

#include <cstdlib>
#include <new>

namespace onebit {
namespace {

constexpr std::size_t kAlign = 64;  // a cache line, and the widest vector (zmm)

struct Buffer {
  void* data = nullptr;
  std::size_t size = 0;
  ~Buffer() { std::free(data); }
};

thread_local Buffer g_buffers[kScratchSlots];

}  // namespace

void* scratch(ScratchSlot slot, std::size_t bytes) {
  Buffer& buf = g_buffers[static_cast<int>(slot)];
  if (bytes > buf.size) {
    // Grow geometrically so that a sequence of growing requests reallocates O(log) times.
    std::size_t size = bytes > 2 * buf.size ? bytes : 2 * buf.size;
    size = (size + kAlign - 1) / kAlign * kAlign;  // aligned_alloc wants a multiple of the alignment
    void* data = std::aligned_alloc(kAlign, size);
    if (!data) throw std::bad_alloc();
    std::free(buf.data);
    buf.data = data;
    buf.size = size;
  }
  return buf.data;
}

}  // namespace onebit
