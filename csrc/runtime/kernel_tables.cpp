// Dispatch tables, generated from kernels.inc.
#include "onebit/igemm.h"
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

const std::vector<Kernel<Bconv2dArgs>>& bconv2d_kernels() {
  static const std::vector<Kernel<Bconv2dArgs>> table = {
#define ONEBIT_BCONV2D(variant, isa, dispatchable) {#variant, Isa::isa, dispatchable, &bconv2d__##variant},
#include "../kernels/kernels.inc"
  };
  return table;
}

const std::vector<Kernel<SbgemmArgs>>& sbgemm_kernels() {
  static const std::vector<Kernel<SbgemmArgs>> table = {
#define ONEBIT_SBGEMM(variant, isa, dispatchable) {#variant, Isa::isa, dispatchable, &sbgemm__##variant},
#include "../kernels/kernels.inc"
  };
  return table;
}

const std::vector<Kernel<IgemmArgs>>& igemm_kernels() {
  static const std::vector<Kernel<IgemmArgs>> table = {
#define ONEBIT_IGEMM(variant, isa, dispatchable) {#variant, Isa::isa, dispatchable, &igemm__##variant},
#include "../kernels/kernels.inc"
  };
  return table;
}

const std::vector<Kernel<Acc2BitsArgs>>& acc2bits_kernels() {
  static const std::vector<Kernel<Acc2BitsArgs>> table = {
#define ONEBIT_ACC2BITS(variant, isa, dispatchable) {#variant, Isa::isa, dispatchable, &acc2bits__##variant},
#include "../kernels/kernels.inc"
  };
  return table;
}

const std::vector<Kernel<Acc2FloatArgs>>& acc2float_kernels() {
  static const std::vector<Kernel<Acc2FloatArgs>> table = {
#define ONEBIT_ACC2FLOAT(variant, isa, dispatchable) {#variant, Isa::isa, dispatchable, &acc2float__##variant},
#include "../kernels/kernels.inc"
  };
  return table;
}

const std::vector<Kernel<BmaxpoolArgs>>& bmaxpool_kernels() {
  static const std::vector<Kernel<BmaxpoolArgs>> table = {
#define ONEBIT_BMAXPOOL(variant, isa, dispatchable) {#variant, Isa::isa, dispatchable, &bmaxpool__##variant},
#include "../kernels/kernels.inc"
  };
  return table;
}

const BgemmPacking* bgemm_packing(BgemmFn fn) {
  static const BgemmPacking ntab{&bgemm_ntab_packed_bytes, &bgemm_ntab_pack};
  static const BgemmPacking avx512_nvec{&bgemm_avx512_nvec_packed_bytes, &bgemm_avx512_nvec_pack};
  if (fn == &bgemm__3x64__avx2_ntab) return &ntab;
  if (fn == &bgemm__5x32__avx512_nvec) return &avx512_nvec;
  return nullptr;
}

}  // namespace onebit
