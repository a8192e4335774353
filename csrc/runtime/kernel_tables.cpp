// Dispatch tables, generated from kernels.inc.
#include "onebit/kernels.h"

namespace onebit {

const std::vector<Kernel<BitpackArgs>>& bitpack_kernels() {
  static const std::vector<Kernel<BitpackArgs>> table = {
#define ONEBIT_BITPACK(variant, isa, dispatchable) {#variant, Isa::isa, dispatchable, &bitpack__##variant},
#include "../kernels/kernels.inc"
  };
  return table;
}

const std::vector<Kernel<BgemmArgs>>& bgemm_kernels() {
  static const std::vector<Kernel<BgemmArgs>> table = {
#define ONEBIT_BGEMM(variant, isa, dispatchable) {#variant, Isa::isa, dispatchable, &bgemm__##variant},
#include "../kernels/kernels.inc"
  };
  return table;
}

}  // namespace onebit
