// Output transforms of a binary layer: int32 dot products -> float, or -> packed bits for the
// next binary layer (no float round trip). Used fused by bconv2d and as standalone passes.
//
// Float output (kFloat), per channel c:
//     y = float(acc) * multiplier[c] + bias[c]        (two float32 roundings, no FMA)
// This is what a per-channel scale, a bias and an eval-mode BatchNorm fold into:
//     BN(s * acc + b) = gamma (s acc + b - mu) / sqrt(var + eps) + beta
//                     = acc * [gamma s / sqrt(var + eps)] + [gamma (b - mu) / sqrt(var + eps) + beta].
//
// Bit output (kBits), per channel c, with integer threshold thr[c] and flip flag flip[c]:
//     bit = flip[c] ? (acc > thr[c]) : (acc < thr[c])
// Bit 1 means -1 when the next layer takes +-1 activations, 1 when it takes {0,1} (bitpack.h).
//
// Derivation (how a converter maps the float layer onto (thr, flip)). The layer computes
// z = m acc + b (m: the folded multiplier, b: the folded bias) and then
//   (a) sign(z) with sign(0) = +1:   bit = (z < 0)       (+-1 activations, bitpack kSign)
//   (b) H(z) = [z > 0]:              bit = (z > 0)       ({0,1} activations, bitpack kHeaviside)
// Let t = -b / m (real). For an integer acc and a real t:
//     acc < t  <=>  acc < ceil(t)          (the integers below t are exactly those below ceil(t))
//     acc > t  <=>  acc > floor(t)
//   (a) m > 0: z < 0 <=> acc < t           -> flip = 0, thr = ceil(t)
//       m < 0: z < 0 <=> acc > t           -> flip = 1, thr = floor(t)   (dividing by m < 0 flips)
//   (b) m > 0: z > 0 <=> acc > t           -> flip = 1, thr = floor(t)
//       m < 0: z > 0 <=> acc < t           -> flip = 0, thr = ceil(t)
//   m = 0: the bit is the constant (b < 0) in (a), (b > 0) in (b): flip = 0 with thr = INT32_MAX
//       (always 1: |acc| <= K < INT32_MAX) or thr = INT32_MIN (never).
// With float32 arithmetic z is rounded, so the exact boundary can differ from ceil/floor of t by one
// near ties; a converter that must match float evaluation bit for bit evaluates the float z at
// thr - 1, thr, thr + 1 and moves thr to the first integer where the float bit changes (z is
// monotone in acc). Thresholds are clamped to [INT32_MIN, INT32_MAX], which preserves every
// comparison because |acc| <= K < 2^31.
//
// Packed layout of the bit output: rows x (groups * words_for(channels / groups)) words; channel
// c = g * (channels / groups) + j is bit j % 64 of word g * words_for(channels / groups) + j / 64
// (each group starts at a word boundary, as a grouped bconv2d input wants; groups = 1 is the plain
// convention of bitpack.h). Padding bits are 0.
#pragma once

#include <cstdint>

#include "onebit/bitpack.h"

namespace onebit {

// Output kinds; the values are part of the Python binding and of the model file.
enum class OutputKind : int { kInt32 = 0, kFloat = 1, kBits = 2 };

// Words of one packed row of `channels` bits in `groups` word-aligned groups.
inline constexpr std::int64_t grouped_words(std::int64_t channels, std::int64_t groups) {
  return groups * words_for(channels / groups);
}

// What a layer writes (bconv2d.h). `out` is rows x channels int32 (kInt32), rows x channels float
// (kFloat) or rows x grouped_words(channels, out_groups) words (kBits), rows contiguous.
struct OutputTransform {
  OutputKind kind = OutputKind::kInt32;
  void* out = nullptr;
  const float* multiplier = nullptr;    // kFloat: one per channel
  const float* bias = nullptr;          // kFloat: one per channel, or nullptr (0)
  const std::int32_t* threshold = nullptr;  // kBits: one per channel
  const std::uint8_t* flip = nullptr;   // kBits: one per channel (0 or 1), or nullptr (all 0)
  std::int64_t out_groups = 1;          // kBits: word-aligned groups of the packed output
  // kFloat, optional: called on every block of finished float rows while it is still in cache,
  // epilogue(epilogue_ctx, rows_out, first_pixel, rows) with rows_out = out + first_pixel * channels
  // (the engine's fused per-channel ops; it may rewrite the rows in place). nullptr: none.
  void (*epilogue)(const void* ctx, float* rows_out, std::int64_t first_pixel, std::int64_t rows) = nullptr;
  const void* epilogue_ctx = nullptr;
  // kFloat, optional, in place of the float transform and `epilogue`: the caller's own transform of
  // every block of finished int32 rows, epilogue_acc(epilogue_ctx, acc, ld_acc, rows_out, first_pixel,
  // rows), which writes rows_out (= out + first_pixel * channels) = float(acc) * multiplier + bias
  // followed by its own ops, in one pass (the engine's fused stages). nullptr: none.
  void (*epilogue_acc)(const void* ctx, const std::int32_t* acc, std::int64_t ld_acc, float* rows_out,
                       std::int64_t first_pixel, std::int64_t rows) = nullptr;
};

// acc2bits: rows x channels int32 (row r at acc + r * ld_acc) -> bits (as above), row r at
// out + r * grouped_words(channels, groups); every word of those rows is written.
struct Acc2BitsArgs {
  const std::int32_t* acc;
  std::int64_t rows;
  std::int64_t channels;
  std::int64_t ld_acc;
  const std::int32_t* threshold;
  const std::uint8_t* flip;  // nullptr: all 0
  std::int64_t groups;
  word_t* out;
};

// The flip flag as one comparison (what the optimized acc2bits variants do): ~x = -1 - x is a
// strictly decreasing bijection of int32, so acc > thr <=> ~acc < ~thr. With m = -flip (all ones
// or zero) and x ^ m = (flip ? ~x : x):
//     bit = (acc ^ m) < (thr ^ m)
// for both flags, and thr ^ m is computed once per channel. (No negation, so no overflow at
// INT32_MIN.) The terms m[c], thr[c] ^ m[c] come from acc2bits_terms.
struct Acc2BitsTerms {
  const std::int32_t* mask;       // m[c] = flip[c] ? -1 : 0
  const std::int32_t* threshold;  // thr[c] ^ m[c]
};
// Fills 2 * channels int32 of thread-local scratch (ScratchSlot::kBitTerms) and points into it.
Acc2BitsTerms acc2bits_terms(const Acc2BitsArgs& a);

// The float transform: rows x channels int32 (row stride ld_acc) -> rows x channels float
// (contiguous), out = float(acc) * multiplier[c] + bias[c] (bias may be nullptr: 0). A convert
// (round to nearest, as static_cast<float>), a multiply and an add, each rounded: never fused into an
// FMA, so every variant gives torch's `acc.float() * m + b` bit for bit.
struct Acc2FloatArgs {
  const std::int32_t* acc;
  std::int64_t rows;
  std::int64_t channels;
  std::int64_t ld_acc;
  const float* multiplier;
  const float* bias;  // nullptr: no bias
  float* out;
};
// The dispatched variant (acc2float_kernels in kernels.h).
void acc2float(const std::int32_t* acc, std::int64_t rows, std::int64_t channels, std::int64_t ld_acc,
               const float* multiplier, const float* bias, float* out);

}  // namespace onebit
