// Per-thread scratch memory for kernels (repacked operands, per-row terms).
//
// It lives in a portable translation unit on purpose. Kernel translation units are compiled with
// their ISA's flags and must not instantiate std:: templates (std::vector and the like): the
// out-of-line copies of those are weak symbols that the linker merges across units, so the copy
// compiled with -mavx512* could be the one every unit calls, on a CPU without AVX-512.
#pragma once

#include <cstddef>

namespace onebit {

// kPanels, kRowTerms: bgemm. kIm2col, kAcc, kConvTerms: bconv2d (which calls bgemm and acc2bits in
// between). kBitTerms: acc2bits. kIgemmA, kIgemmB: igemm's repacked operands. kDenseWeights: bconv2d's
// weights with several taps per word (bconv2d_im2col.cpp).
enum class ScratchSlot : int {
  kPanels = 0, kRowTerms = 1, kIm2col = 2, kAcc = 3, kConvTerms = 4, kBitTerms = 5, kIgemmA = 6, kIgemmB = 7,
  kDenseWeights = 8
};
inline constexpr int kScratchSlots = 9;

// At least `bytes` bytes, 64-byte aligned, owned by the calling thread and kept between calls:
// no allocation (nor page faults) once a slot is large enough. The memory stays valid until the
// next scratch() call for the same slot on the same thread; its contents are undefined.
// Throws std::bad_alloc when memory runs out.
void* scratch(ScratchSlot slot, std::size_t bytes);

}  // namespace onebit
