// Portable int32 -> bits output transform, and the per-channel terms every optimized variant uses:
// bit = (acc ^ m) < (thr ^ m) with m = -flip (output_transform.h derives it). Built without ISA
// flags; the 64 compares of a word are independent, which the compiler vectorizes.
#include <algorithm>

#include "onebit/kernels.h"
#include "onebit/scratch.h"

namespace onebit {

Acc2BitsTerms acc2bits_terms(const Acc2BitsArgs& a) {
  auto* buf = static_cast<std::int32_t*>(scratch(ScratchSlot::kBitTerms, sizeof(std::int32_t) * 2 * a.channels));
  std::int32_t* mask = buf;
  std::int32_t* thr = buf + a.channels;
  for (std::int64_t c = 0; c < a.channels; ++c) {
    mask[c] = (a.flip && a.flip[c]) ? -1 : 0;
    thr[c] = a.threshold[c] ^ mask[c];
  }
  return {mask, thr};
}

namespace {

// Up to 64 channels (n) into one word, channel j -> bit j.
word_t pack_word(const std::int32_t* acc, const std::int32_t* mask, const std::int32_t* thr, int n) {
  word_t w = 0;
  for (int j = 0; j < n; ++j) w |= static_cast<word_t>((acc[j] ^ mask[j]) < thr[j]) << j;
  return w;
}

}  // namespace

void acc2bits__portable(const Acc2BitsArgs& a) {
  const Acc2BitsTerms t = acc2bits_terms(a);
  const std::int64_t cg = a.channels / a.groups, wg = words_for(cg);
  for (std::int64_t r = 0; r < a.rows; ++r) {
    const std::int32_t* acc = a.acc + r * a.ld_acc;
    word_t* out = a.out + r * a.groups * wg;
    for (std::int64_t g = 0; g < a.groups; ++g) {
      for (std::int64_t w = 0; w < wg; ++w) {
        const std::int64_t c = g * cg + w * kWordBits;
        const int n = static_cast<int>(std::min<std::int64_t>(kWordBits, cg - w * kWordBits));
        out[g * wg + w] = pack_word(acc + c, t.mask + c, t.threshold + c, n);
      }
    }
  }
}

}  // namespace onebit
