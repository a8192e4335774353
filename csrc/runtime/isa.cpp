#include "onebit/isa.h"

#include <atomic>

namespace onebit {
namespace {

// -1: not forced. Otherwise the value of the forced Isa.
std::atomic<int> g_forced{-1};

bool detect(Isa isa) {
#if defined(__x86_64__) || defined(_M_X64)
  // libgcc's __builtin_cpu_supports also checks that the OS saves the AVX / AVX-512 state (XCR0).
  switch (isa) {
    case Isa::kPortable:
      return true;
    case Isa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt") &&
             __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2");
    case Isa::kAvx512:
#ifdef ONEBIT_EMULATE_AVX512
      return detect(Isa::kAvx2);  // test-only build: the AVX-512 units run on SIMDe (AVX2 underneath)
#else
      // AVX2 too: the AVX-512 variants may call AVX2 kernels (the VNNI igemm hands small M to the AVX2 one).
      return detect(Isa::kAvx2) && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vpopcntdq") && __builtin_cpu_supports("avx512vnni");
#endif
  }
  return false;
#else
  return isa == Isa::kPortable;
#endif
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kPortable: return "portable";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
  }
  return "unknown";
}

bool isa_from_name(const std::string& name, Isa* out) {
  for (Isa isa : {Isa::kPortable, Isa::kAvx2, Isa::kAvx512}) {
    if (name == isa_name(isa)) {
      *out = isa;
      return true;
    }
  }
  return false;
}

bool isa_supported(Isa isa) {
  static const bool supported[] = {detect(Isa::kPortable), detect(Isa::kAvx2), detect(Isa::kAvx512)};
  return supported[static_cast<int>(isa)];
}

std::vector<Isa> available_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kPortable, Isa::kAvx2, Isa::kAvx512}) {
    if (isa_supported(isa)) out.push_back(isa);
  }
  return out;
}

Isa active_isa() {
  const int forced = g_forced.load(std::memory_order_relaxed);
  if (forced >= 0) return static_cast<Isa>(forced);
  static const Isa best = available_isas().back();  // the CPU does not change: detect once, not per call
  return best;
}

bool force_isa(Isa isa) {
  if (!isa_supported(isa)) return false;
  g_forced.store(static_cast<int>(isa), std::memory_order_relaxed);
  return true;
}

void clear_forced_isa() { g_forced.store(-1, std::memory_order_relaxed); }

}  // namespace onebit
