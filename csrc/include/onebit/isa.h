// Instruction-set levels, CPU detection and the forced-ISA override (ONEBIT_ISA).
//
// Each optimized kernel lives in a translation unit compiled with the flags of its ISA only;
// nothing compiled with -mavx512* may run before `isa_supported` said yes.
#pragma once

#include <string>
#include <vector>

namespace onebit {

// Ordered: a higher level may use everything a lower one may.
enum class Isa : int { kPortable = 0, kAvx2 = 1, kAvx512 = 2 };

const char* isa_name(Isa isa);
bool isa_from_name(const std::string& name, Isa* out);

// What this CPU (and OS) can run. AVX-512 here means F + BW + VL + DQ + VPOPCNTDQ + VNNI (every CPU
// with VPOPCNTDQ that is not a Xeon Phi has VNNI too: Ice Lake and later, Zen 4 and later).
bool isa_supported(Isa isa);
std::vector<Isa> available_isas();

// Highest ISA dispatch may use: the best available one, or the forced one.
Isa active_isa();
// Force an ISA (must be available; returns false otherwise). Reset with clear_forced_isa().
bool force_isa(Isa isa);
void clear_forced_isa();

}  // namespace onebit
