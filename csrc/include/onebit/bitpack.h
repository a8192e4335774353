// The bit convention of onebit, written down once (DESIGN.md section 3).
//
//   * +-1 values:   bit 1 <=> -1, bit 0 <=> +1.  So sign(0) = +1 packs to bit 0.
//   * {0,1} values: bit 1 <=> 1,  bit 0 <=> 0.
//   * Words are little-endian uint64_t; element c of a row lives in word c / 64, bit c % 64
//     (bit 0 = least significant).  The channel dimension is packed innermost (NHWC).
//   * Padding bits in the last word of a row are 0 and must not change any result.
//
// Packing with a threshold t (one per channel, or 0 when none is given):
//   kSign:      bit = (x < t)   i.e. sign(x - t) = -1
//   kHeaviside: bit = (x > t)   i.e. H(x - t)   =  1
// Comparisons are ordered: a NaN input packs to bit 0 in both modes.
//
// The dot products these encodings give (derived in bgemm.h where the kernels use them):
//   +-1 x +-1:  with a_i = 1 - 2 A_i, w_i = 1 - 2 B_i,
//               a_i w_i = 1 - 2 (A_i XOR B_i)   =>   dot = K - 2 popcount(A XOR B)
#pragma once

#include <cstddef>
#include <cstdint>

namespace onebit {

using word_t = std::uint64_t;
inline constexpr int kWordBits = 64;

// Pack modes; the values are part of the Python binding and of the model file.
enum class PackMode : int { kSign = 0, kHeaviside = 1 };

// Number of 64-bit words that hold `channels` bits.
inline constexpr std::int64_t words_for(std::int64_t channels) {
  return (channels + kWordBits - 1) / kWordBits;
}

// One bit of the convention, the executable spec every packer is tested against.
inline bool pack_bit(float x, float t, PackMode mode) {
  return mode == PackMode::kSign ? (x < t) : (x > t);
}

// Arguments shared by every bitpack variant.
//   x:          rows x channels floats, row-major, contiguous.
//   thresholds: `channels` floats or nullptr (threshold 0 for every channel).
//   groups:     channels split into `groups` equal groups (groups divides channels), each starting
//               at a word boundary: channel g * cg + j (cg = channels / groups) is bit j % 64 of
//               word g * words_for(cg) + j / 64. groups = 1 is the plain layout. (A grouped
//               bconv2d takes its input in this layout: bconv2d.h.)
//   out:        rows x (groups * words_for(cg)) words, fully written (padding bits = 0).
struct BitpackArgs {
  const float* x;
  const float* thresholds;
  std::int64_t rows;
  std::int64_t channels;
  PackMode mode;
  word_t* out;
  std::int64_t groups = 1;
};

}  // namespace onebit
