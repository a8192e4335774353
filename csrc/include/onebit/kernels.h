// Kernel declarations and per-op dispatch tables, generated from kernels/kernels.inc.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "onebit/bconv2d.h"
#include "onebit/bgemm.h"
#include "onebit/bitpack.h"
#include "onebit/igemm.h"
#include "onebit/bmaxpool.h"
#include "onebit/isa.h"
#include "onebit/output_transform.h"
#include "onebit/sbgemm.h"

namespace onebit {

#define ONEBIT_BITPACK(variant, isa, dispatchable) void bitpack__##variant(const BitpackArgs& args);
#define ONEBIT_BGEMM(variant, isa, dispatchable) void bgemm__##variant(const BgemmArgs& args);
#define ONEBIT_BCONV2D(variant, isa, dispatchable) void bconv2d__##variant(const Bconv2dArgs& args);
#define ONEBIT_SBGEMM(variant, isa, dispatchable) void sbgemm__##variant(const SbgemmArgs& args);
#define ONEBIT_IGEMM(variant, isa, dispatchable) void igemm__##variant(const IgemmArgs& args);
#define ONEBIT_ACC2BITS(variant, isa, dispatchable) void acc2bits__##variant(const Acc2BitsArgs& args);
#define ONEBIT_ACC2FLOAT(variant, isa, dispatchable) void acc2float__##variant(const Acc2FloatArgs& args);
#define ONEBIT_BMAXPOOL(variant, isa, dispatchable) void bmaxpool__##variant(const BmaxpoolArgs& args);
#include "../../kernels/kernels.inc"

template <class Args>
struct Kernel {
  const char* variant;
  Isa isa;
  bool dispatchable;  // false for the reference: it is the spec, not a fast path
  void (*fn)(const Args&);
};

using BgemmFn = void (*)(const BgemmArgs&);

// Packing of the bgemm variants that repack B on every call (BgemmPacking, bgemm.h); defined in
// their ISA units: call them only where that variant runs.
std::int64_t bgemm_ntab_packed_bytes(std::int64_t n, std::int64_t k);
void bgemm_ntab_pack(const word_t* b, std::int64_t n, std::int64_t k, std::int64_t ldb, void* out);
std::int64_t bgemm_avx512_nvec_packed_bytes(std::int64_t n, std::int64_t k);
void bgemm_avx512_nvec_pack(const word_t* b, std::int64_t n, std::int64_t k, std::int64_t ldb, void* out);
// The packing of B that the variant `fn` takes as BgemmArgs::packed_b; nullptr when it reads B as it is.
const BgemmPacking* bgemm_packing(BgemmFn fn);

// Every variant of an op, in kernels.inc order (worst to best ISA).
const std::vector<Kernel<BitpackArgs>>& bitpack_kernels();
const std::vector<Kernel<BgemmArgs>>& bgemm_kernels();
const std::vector<Kernel<Bconv2dArgs>>& bconv2d_kernels();
const std::vector<Kernel<SbgemmArgs>>& sbgemm_kernels();
const std::vector<Kernel<IgemmArgs>>& igemm_kernels();
const std::vector<Kernel<Acc2BitsArgs>>& acc2bits_kernels();
const std::vector<Kernel<Acc2FloatArgs>>& acc2float_kernels();
const std::vector<Kernel<BmaxpoolArgs>>& bmaxpool_kernels();

// The variant with the highest ISA that is dispatchable and not above active_isa().
template <class Args>
const Kernel<Args>& select_kernel(const std::vector<Kernel<Args>>& table) {
  const Kernel<Args>* best = nullptr;
  const Isa limit = active_isa();
  for (const auto& k : table) {
    if (k.dispatchable && k.isa <= limit && isa_supported(k.isa)) best = &k;
  }
  return *best;  // a portable variant always exists: see kernels.inc
}

// Look a variant up by name; nullptr when there is none.
template <class Args>
const Kernel<Args>* find_kernel(const std::vector<Kernel<Args>>& table, const std::string& name) {
  for (const auto& k : table) {
    if (name == k.variant) return &k;
  }
  return nullptr;
}

// An empty name selects by dispatch; otherwise the named variant, which must exist and be runnable
// on this CPU (std::invalid_argument / std::runtime_error otherwise). Used by the Python bindings.
template <class Args>
const Kernel<Args>& pick_kernel(const std::vector<Kernel<Args>>& table, const std::string& variant) {
  if (variant.empty()) return select_kernel(table);
  const Kernel<Args>* k = find_kernel(table, variant);
  if (!k) throw std::invalid_argument("unknown kernel variant '" + variant + "'");
  if (!isa_supported(k->isa)) {
    throw std::runtime_error("kernel variant '" + variant + "' needs ISA " + isa_name(k->isa) +
                             ", which this CPU does not support");
  }
  return *k;
}

}  // namespace onebit
