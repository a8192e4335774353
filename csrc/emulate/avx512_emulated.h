// Test-only: lets the AVX-512 kernel units (csrc/kernels/avx512/) build and run on a CPU without
// AVX-512, so that their bit-exact tests run on every machine (scripts/test_avx512_emulated.sh).
// Force-included (-include) into those units, and only those, when CMake is configured with
// ONEBIT_EMULATE_AVX512=ON; never part of a normal build (CMake refuses to install it as such:
// onebit._C.avx512_emulated is true there, and `onebit.kernels` reports it).
//
// SIMDe (SIMD Everywhere, Debian's libsimde-dev) implements the AVX-512 intrinsics on narrower
// vectors; SIMDE_ENABLE_NATIVE_ALIASES maps the _mm512_* names and __m512* types onto its own.
// This emulates the *semantics* of each instruction, not its speed: figures from such a build say
// nothing about AVX-512 performance. SIMDe 0.7.4 lacks a few intrinsics the kernels use; they are
// defined below from their definitions in the Intel Intrinsics Guide (masked lanes of a masked load
// are not read, so a masked load past the end of a buffer stays legal, as on hardware).
#pragma once

#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>

#include <cstdint>
#include <cstring>

namespace onebit_avx512_emulated {

template <typename Lane, typename Vec, int kCount>
static inline Vec maskz_load(std::uint32_t k, const void* p) {
  Lane lanes[kCount] = {};
  for (int i = 0; i < kCount; ++i) {
    if ((k >> i) & 1u) std::memcpy(&lanes[i], static_cast<const char*>(p) + i * sizeof(Lane), sizeof(Lane));
  }
  Vec v;
  std::memcpy(&v, lanes, sizeof(v));
  return v;
}

static inline void mask_storeu_epi32(void* p, simde__mmask16 k, simde__m512i a) {
  std::int32_t lanes[16];
  std::memcpy(lanes, &a, sizeof(lanes));
  for (int i = 0; i < 16; ++i) {
    if ((k >> i) & 1u) std::memcpy(static_cast<char*>(p) + 4 * i, &lanes[i], 4);
  }
}

static inline simde__m512 cvtepi32_ps(simde__m512i a) {  // round to nearest, as vcvtdq2ps by default
  std::int32_t in[16];
  float out[16];
  std::memcpy(in, &a, sizeof(in));
  for (int i = 0; i < 16; ++i) out[i] = static_cast<float>(in[i]);
  simde__m512 v;
  std::memcpy(&v, out, sizeof(v));
  return v;
}

static inline void mask_storeu_ps(void* p, simde__mmask16 k, simde__m512 a) {
  float lanes[16];
  std::memcpy(lanes, &a, sizeof(lanes));
  for (int i = 0; i < 16; ++i) {
    if ((k >> i) & 1u) std::memcpy(static_cast<char*>(p) + 4 * i, &lanes[i], 4);
  }
}

static inline std::int64_t reduce_add_epi64(simde__m512i a) {
  std::int64_t lanes[8];
  std::memcpy(lanes, &a, sizeof(lanes));
  std::int64_t s = 0;
  for (std::int64_t x : lanes) s += x;
  return s;
}

}  // namespace onebit_avx512_emulated

#define _mm512_maskz_loadu_epi32(k, p) \
  (onebit_avx512_emulated::maskz_load<std::int32_t, simde__m512i, 16>((k), (p)))
#define _mm512_maskz_loadu_epi64(k, p) \
  (onebit_avx512_emulated::maskz_load<std::int64_t, simde__m512i, 8>((k), (p)))
#define _mm512_maskz_loadu_ps(k, p) (onebit_avx512_emulated::maskz_load<float, simde__m512, 16>((k), (p)))
#define _mm512_mask_storeu_epi32(p, k, a) onebit_avx512_emulated::mask_storeu_epi32((p), (k), (a))
#define _mm512_cvtepi32_ps(a) onebit_avx512_emulated::cvtepi32_ps(a)
#define _mm512_mask_storeu_ps(p, k, a) onebit_avx512_emulated::mask_storeu_ps((p), (k), (a))
#define _mm512_reduce_add_epi64(a) onebit_avx512_emulated::reduce_add_epi64(a)
#define _mm512_shuffle_i64x2(a, b, imm) simde_mm512_shuffle_i64x2((a), (b), (imm))
#define _mm512_mask_cmplt_epi32_mask(k, a, b) \
  static_cast<simde__mmask16>((k) & simde_mm512_cmpgt_epi32_mask((b), (a)))
#define _mm512_mask_cmp_ps_mask(k, a, b, imm) \
  static_cast<simde__mmask16>((k) & simde_mm512_cmp_ps_mask((a), (b), (imm)))
