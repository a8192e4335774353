// Thin nanobind bindings for onebit._C: argument checks and GIL release, no kernel logic.
// Arrays arrive as CPU ndarrays (numpy or torch through DLPack); torch is never included.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "onebit/kernels.h"
#include "onebit/sparse_rows.h"

namespace nb = nanobind;
using namespace onebit;

namespace {

using FloatRows = nb::ndarray<const float, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using FloatVec = nb::ndarray<const float, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using WordRows = nb::ndarray<std::uint64_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using ConstWordRows = nb::ndarray<const std::uint64_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using Int32Rows = nb::ndarray<std::int32_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;

Isa parse_isa(const std::string& name) {
  Isa isa;
  if (!isa_from_name(name, &isa)) {
    throw std::invalid_argument("unknown ISA '" + name + "'; valid: portable, avx2, avx512");
  }
  return isa;
}


template <class Args>
std::vector<std::tuple<std::string, std::string, bool>> describe(const std::vector<Kernel<Args>>& t) {
  std::vector<std::tuple<std::string, std::string, bool>> out;
  for (const auto& k : t) out.emplace_back(k.variant, isa_name(k.isa), k.dispatchable);
  return out;
}

// fn(table of op) for the kernel op named `op` (kernels.inc), the same return type for every table.
template <class Fn>
auto with_kernel_table(const std::string& op, Fn&& fn) {
  if (op == "bitpack") return fn(bitpack_kernels());
  if (op == "bgemm") return fn(bgemm_kernels());
  if (op == "bconv2d") return fn(bconv2d_kernels());
  if (op == "sbgemm") return fn(sbgemm_kernels());
  if (op == "igemm") return fn(igemm_kernels());
  if (op == "acc2bits") return fn(acc2bits_kernels());
  if (op == "acc2float") return fn(acc2float_kernels());
  if (op == "bmaxpool") return fn(bmaxpool_kernels());
  throw std::invalid_argument("unknown op '" + op +
                              "'; valid: acc2bits, acc2float, bconv2d, bgemm, bitpack, bmaxpool, igemm, sbgemm");
}

std::string bitpack(FloatRows x, WordRows out, nb::object thresholds, int mode, const std::string& variant,
                    std::int64_t groups) {
  if (mode != 0 && mode != 1) throw std::invalid_argument("mode must be 0 (sign) or 1 (heaviside)");
  const std::int64_t rows = static_cast<std::int64_t>(x.shape(0));
  const std::int64_t channels = static_cast<std::int64_t>(x.shape(1));
  if (groups < 1 || channels % groups) {
    throw std::invalid_argument("bitpack: groups must divide the channels, got groups=" + std::to_string(groups) +
                                " for " + std::to_string(channels) + " channels");
  }
  if (static_cast<std::int64_t>(out.shape(0)) != rows ||
      static_cast<std::int64_t>(out.shape(1)) != groups * words_for(channels / groups)) {
    throw std::invalid_argument("bitpack: out must have shape (rows, groups * ceil(channels / groups / 64))");
  }
  const float* t = nullptr;
  if (!thresholds.is_none()) {
    FloatVec tv = nb::cast<FloatVec>(thresholds);
    if (static_cast<std::int64_t>(tv.shape(0)) != channels) {
      throw std::invalid_argument("bitpack: thresholds must have one value per channel");
    }
    t = tv.data();
  }
  const auto& k = pick_kernel(bitpack_kernels(), variant);
  BitpackArgs args{x.data(), t, rows, channels, static_cast<PackMode>(mode), out.data(), groups};
  {
    nb::gil_scoped_release release;
    k.fn(args);
  }
  return k.variant;
}

// The contract of bgemm.h checked up front: every kernel may then assume it.
void check_padding_bits(const ConstWordRows& x, std::int64_t k, const char* name, const char* op = "bgemm") {
  const int used = static_cast<int>(k % kWordBits);  // bits used in the last word; 0 = all 64
  if (used == 0) return;
  const word_t padding = ~word_t{0} << used;
  const std::int64_t kw = words_for(k);
  for (std::size_t r = 0; r < x.shape(0); ++r) {
    if (x.data()[r * static_cast<std::size_t>(kw) + static_cast<std::size_t>(kw - 1)] & padding) {
      throw std::invalid_argument(std::string(op) + ": " + name + " row " + std::to_string(r) +
                                  " has nonzero padding bits past k=" + std::to_string(k) +
                                  " (pack rows with exactly k bits)");
    }
  }
}

using Bytes = nb::ndarray<std::uint8_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

// A packed B (BgemmPacking) must be exactly the variant's size and 64-byte aligned.
void check_packed(const Bytes& packed, const BgemmPacking* packing, std::int64_t n, std::int64_t k,
                  const char* variant) {
  if (!packing) throw std::invalid_argument(std::string("bgemm: variant '") + variant + "' takes no packed B");
  const auto need = packing->bytes(n, k);
  if (static_cast<std::int64_t>(packed.shape(0)) != need) {
    throw std::invalid_argument("bgemm: packed B must have " + std::to_string(need) + " bytes for n=" +
                                std::to_string(n) + ", k=" + std::to_string(k) + ", got " +
                                std::to_string(packed.shape(0)));
  }
  if (reinterpret_cast<std::uintptr_t>(packed.data()) % 64 != 0) {
    throw std::invalid_argument("bgemm: packed B must be 64-byte aligned (use onebit.kernels.bgemm_pack)");
  }
}

std::string bgemm(ConstWordRows a, ConstWordRows b, Int32Rows out, std::int64_t k, int mode,
                  const std::string& variant, std::optional<Bytes> packed_b) {
  if (mode != 0 && mode != 1) throw std::invalid_argument("bgemm: mode must be 0 (xor) or 1 (and)");
  const std::int64_t m = static_cast<std::int64_t>(a.shape(0));
  const std::int64_t n = static_cast<std::int64_t>(b.shape(0));
  const std::int64_t kw = static_cast<std::int64_t>(a.shape(1));
  if (static_cast<std::int64_t>(b.shape(1)) != kw) {
    throw std::invalid_argument("bgemm: a and b must have the same number of words per row, got " +
                                std::to_string(kw) + " and " + std::to_string(b.shape(1)));
  }
  if (k <= 0 || k > std::numeric_limits<std::int32_t>::max()) {
    throw std::invalid_argument("bgemm: k must be in [1, 2**31 - 1], got " + std::to_string(k));
  }
  if (words_for(k) != kw) {
    throw std::invalid_argument("bgemm: k=" + std::to_string(k) + " bits need " +
                                std::to_string(words_for(k)) + " words per row, but the rows have " +
                                std::to_string(kw) + " (k must satisfy 64*(words-1) < k <= 64*words)");
  }
  if (static_cast<std::int64_t>(out.shape(0)) != m || static_cast<std::int64_t>(out.shape(1)) != n) {
    throw std::invalid_argument("bgemm: out must have shape (a.shape[0], b.shape[0]) = (" +
                                std::to_string(m) + ", " + std::to_string(n) + ")");
  }
  check_padding_bits(a, k, "a");
  check_padding_bits(b, k, "b");
  const auto& kern = pick_kernel(bgemm_kernels(), variant);
  BgemmArgs args{a.data(), b.data(), m, n, k, kw, kw, static_cast<BgemmMode>(mode), out.data(), n};
  if (packed_b) {  // trusted to be bgemm_pack's output for this b (as an engine's packed weights are)
    check_packed(*packed_b, bgemm_packing(kern.fn), n, k, kern.variant);
    args.packed_b = packed_b->data();
  }
  {
    nb::gil_scoped_release release;
    kern.fn(args);
  }
  return kern.variant;
}

// B packed for `variant` (BgemmPacking): the packed size, 0 when the variant reads B as it is.
std::int64_t bgemm_packed_bytes(std::int64_t n, std::int64_t k, const std::string& variant) {
  const BgemmPacking* packing = bgemm_packing(pick_kernel(bgemm_kernels(), variant).fn);
  return packing ? packing->bytes(n, k) : 0;
}

void bgemm_pack(ConstWordRows b, std::int64_t k, const std::string& variant, Bytes out) {
  const std::int64_t n = static_cast<std::int64_t>(b.shape(0)), kw = static_cast<std::int64_t>(b.shape(1));
  if (k <= 0 || words_for(k) != kw) throw std::invalid_argument("bgemm_pack: k does not match b's words per row");
  check_padding_bits(b, k, "b", "bgemm_pack");
  const auto& kern = pick_kernel(bgemm_kernels(), variant);
  const BgemmPacking* packing = bgemm_packing(kern.fn);
  check_packed(out, packing, n, k, kern.variant);
  nb::gil_scoped_release release;
  packing->pack(b.data(), n, k, kw, out.data());
}

// sbgemm (sbgemm.h) on dense mask rows b: the block-sparse form is built here, as an engine does at
// load. out[m][n] = sum_i (1 - 2 a_i) b_i over k bits.
std::string sbgemm(ConstWordRows a, ConstWordRows b, Int32Rows out, std::int64_t k, const std::string& variant) {
  const std::int64_t m = static_cast<std::int64_t>(a.shape(0)), n = static_cast<std::int64_t>(b.shape(0));
  const std::int64_t kw = static_cast<std::int64_t>(a.shape(1));
  if (static_cast<std::int64_t>(b.shape(1)) != kw || kw < 1) {
    throw std::invalid_argument("sbgemm: a and b must have the same number (>= 1) of words per row");
  }
  if (k <= 0 || k > std::numeric_limits<std::int32_t>::max() || words_for(k) != kw) {
    throw std::invalid_argument("sbgemm: k=" + std::to_string(k) + " does not fit " + std::to_string(kw) +
                                " words per row (64*(words-1) < k <= 64*words, k < 2**31)");
  }
  if (static_cast<std::int64_t>(out.shape(0)) != m || static_cast<std::int64_t>(out.shape(1)) != n) {
    throw std::invalid_argument("sbgemm: out must have shape (a.shape[0], b.shape[0])");
  }
  check_padding_bits(a, k, "a", "sbgemm");
  check_padding_bits(b, k, "b", "sbgemm");
  const SparseRowsStorage sb = make_sparse_rows(b.data(), n, kw, kw);
  const auto& kern = pick_kernel(sbgemm_kernels(), variant);
  SbgemmArgs args{a.data(), m, kw, sb.view(), out.data(), n};
  {
    nb::gil_scoped_release release;
    kern.fn(args);
  }
  return kern.variant;
}


// ---- igemm (igemm.h): int16 activations x int8 weights, exact int32 sums ---------------------------

using AnyRows = nb::ndarray<nb::ro, nb::ndim<2>, nb::device::cpu>;
using OutInt32Rows = nb::ndarray<std::int32_t, nb::ndim<2>, nb::device::cpu>;  // rows may be strided
using PanelBytes = nb::ndarray<const std::int8_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

[[noreturn]] void igemm_fail(const std::string& what) { throw std::invalid_argument("igemm: " + what); }

std::string dtype_str(nb::dlpack::dtype t) {
  using nb::dlpack::dtype_code;
  const char* kind = t.code == static_cast<std::uint8_t>(dtype_code::Int)     ? "int"
                     : t.code == static_cast<std::uint8_t>(dtype_code::UInt)  ? "uint"
                     : t.code == static_cast<std::uint8_t>(dtype_code::Float) ? "float"
                                                                              : "other";
  return kind + std::to_string(t.bits);
}

// The row stride (elements) of a 2-D array whose columns are contiguous and whose rows do not
// overlap: C-contiguous rows, or rows of a wider array (a[:, :kp], out[:, :n]).
template <class Array>
std::int64_t row_stride(const Array& x, const char* name) {
  const std::int64_t rows = static_cast<std::int64_t>(x.shape(0)), cols = static_cast<std::int64_t>(x.shape(1));
  if (rows == 0 || cols == 0) return cols;  // no element: any strides
  if (cols > 1 && x.stride(1) != 1) igemm_fail(std::string(name) + " must have contiguous columns (stride 1)");
  if (rows <= 1) return cols;
  if (x.stride(0) < cols) igemm_fail(std::string(name) + " rows must not overlap (row stride >= columns)");
  return x.stride(0);
}

template <class T>
const T* typed(const AnyRows& x, const char* name, const char* want) {
  if (x.dtype() != nb::dtype<T>()) igemm_fail(std::string(name) + " must be " + want + ", got " + dtype_str(x.dtype()));
  return static_cast<const T*>(x.data());
}

// A min / max reduction first, the search for the culprit only when it fails.
template <class T>
void check_range(const T* x, std::int64_t rows, std::int64_t cols, std::int64_t ld, const char* name) {
  int lo = 0, hi = 0;
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t i = 0; i < cols; ++i) {
      lo = std::min<int>(lo, x[r * ld + i]);
      hi = std::max<int>(hi, x[r * ld + i]);
    }
  }
  if (lo >= -127 && hi <= 127) return;
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t i = 0; i < cols; ++i) {
      const int v = x[r * ld + i];
      if (v < -127 || v > 127) {
        igemm_fail(std::string(name) + "[" + std::to_string(r) + ", " + std::to_string(i) + "] = " + std::to_string(v) +
                   " is outside [-127, 127]");
      }
    }
  }
}

void check_k(std::int64_t k) {
  if (k < 1 || k > kIgemmMaxK) {
    igemm_fail("k must be in [1, " + std::to_string(kIgemmMaxK) + "], got " + std::to_string(k));
  }
}

// w: (n, k) C-contiguous int8 weights in [-127, 127].
const std::int8_t* weight_rows(const AnyRows& w) {
  const std::int8_t* wd = typed<std::int8_t>(w, "w", "int8");
  const std::int64_t n = static_cast<std::int64_t>(w.shape(0)), k = static_cast<std::int64_t>(w.shape(1));
  check_k(k);
  if (row_stride(w, "w") != k) igemm_fail("w must be C-contiguous");
  check_range(wd, n, k, k, "w");
  return wd;
}

// a: (m, kp) int16 activations, kp = igemm_kp(k), values in [-127, 127] and the pad column 0 (the
// values are scanned only when check_values); out: (m, n) int32. IgemmArgs with b unset.
IgemmArgs igemm_args(const AnyRows& a, std::int64_t n, std::int64_t k, OutInt32Rows& out, bool check_values) {
  const std::int16_t* ad = typed<std::int16_t>(a, "a", "int16");
  const std::int64_t m = static_cast<std::int64_t>(a.shape(0)), kp = static_cast<std::int64_t>(a.shape(1));
  check_k(k);
  if (kp != igemm_kp(k)) {
    igemm_fail("a must have kp = " + std::to_string(igemm_kp(k)) + " columns for k = " + std::to_string(k) +
               " (k rounded up to even), got " + std::to_string(kp));
  }
  if (static_cast<std::int64_t>(out.shape(0)) != m || static_cast<std::int64_t>(out.shape(1)) != n) {
    igemm_fail("out must have shape (m, n) = (" + std::to_string(m) + ", " + std::to_string(n) + ")");
  }
  const std::int64_t lda = row_stride(a, "a"), ldc = row_stride(out, "out");
  if (check_values) {
    check_range(ad, m, kp, lda, "a");
    for (std::int64_t r = 0; kp != k && r < m; ++r) {
      if (ad[r * lda + k] != 0) {
        igemm_fail("a row " + std::to_string(r) + " has a nonzero pad column (k = " + std::to_string(k) +
                   " is odd: column k must be 0)");
      }
    }
  }
  return IgemmArgs{ad, m, lda, nullptr, n, k, out.data(), ldc};
}

std::string run_igemm(const IgemmArgs& args, const std::string& variant) {
  const auto& kern = pick_kernel(igemm_kernels(), variant);
  {
    nb::gil_scoped_release release;
    kern.fn(args);
  }
  return kern.variant;
}

// w is packed here, as an engine packs at load.
std::string igemm(AnyRows a, AnyRows w, OutInt32Rows out, const std::string& variant) {
  const std::int8_t* wd = weight_rows(w);
  const std::int64_t n = static_cast<std::int64_t>(w.shape(0)), k = static_cast<std::int64_t>(w.shape(1));
  IgemmArgs args = igemm_args(a, n, k, out, true);
  std::vector<std::int8_t> panels(static_cast<std::size_t>(igemm_panel_bytes(n, k)));
  igemm_pack_b(wd, n, k, panels.data());
  args.b = panels.data();
  return run_igemm(args, variant);
}

void check_panel_bytes(const PanelBytes& panels, std::int64_t n, std::int64_t k) {
  if (static_cast<std::int64_t>(panels.shape(0)) != igemm_panel_bytes(n, k)) {
    igemm_fail("panels must have igemm_panel_bytes(n, k) = " + std::to_string(igemm_panel_bytes(n, k)) +
               " bytes, got " + std::to_string(panels.shape(0)));
  }
}

// For benchmarks: the packing alone, and the kernel alone on panels igemm_pack wrote.
void igemm_pack(AnyRows w, nb::ndarray<std::int8_t, nb::ndim<1>, nb::c_contig, nb::device::cpu> panels) {
  const std::int8_t* wd = weight_rows(w);
  const std::int64_t n = static_cast<std::int64_t>(w.shape(0)), k = static_cast<std::int64_t>(w.shape(1));
  check_panel_bytes(PanelBytes(panels), n, k);
  igemm_pack_b(wd, n, k, panels.data());
}

// check=false skips the scan of a's values (shapes are always checked): this file is compiled -Os
// (nanobind's default), where that scan costs about what the kernel does on a large a, and benchmarks
// time the kernel. Values out of range then give unspecified results.
std::string igemm_packed(AnyRows a, PanelBytes panels, std::int64_t n, std::int64_t k, OutInt32Rows out,
                         const std::string& variant, bool check) {
  if (n < 0) igemm_fail("n must be >= 0");
  IgemmArgs args = igemm_args(a, n, k, out, check);
  check_panel_bytes(panels, n, k);
  args.b = panels.data();
  return run_igemm(args, variant);
}

}  // namespace

void bind_layers(nb::module_& m);  // bind_layers.cpp: bconv2d, acc2bits, acc2float, bmaxpool
void bind_engine(nb::module_& m);  // engine_binding.cpp: onebit::Engine

NB_MODULE(_C, m) {
  m.doc() = "onebit C++ kernels (torch-free core)";

  m.def("available_isas", [] {
    std::vector<std::string> out;
    for (Isa isa : available_isas()) out.emplace_back(isa_name(isa));
    return out;
  });
#ifdef ONEBIT_EMULATE_AVX512
  m.attr("avx512_emulated") = true;  // test-only build (CMake ONEBIT_EMULATE_AVX512): not for speed
#else
  m.attr("avx512_emulated") = false;
#endif
  m.def("active_isa", [] { return std::string(isa_name(active_isa())); });
  m.def("force_isa", [](const std::string& name) {
    const Isa isa = parse_isa(name);
    if (!force_isa(isa)) {
      throw std::runtime_error(std::string("ISA '") + name + "' is not supported by this CPU");
    }
  });
  m.def("clear_forced_isa", &clear_forced_isa);
  m.def("dispatched_variant", [](const std::string& op) {
    return with_kernel_table(op, [](const auto& table) { return std::string(select_kernel(table).variant); });
  });
  m.def("kernel_variants", [](const std::string& op) {
    return with_kernel_table(op, [](const auto& table) { return describe(table); });
  });
  // Outputs are .noconvert(): nanobind would otherwise hand the kernel a converted temporary copy
  // of an array of the wrong dtype or layout, and the caller's array would silently stay unwritten.
  m.def("bitpack", &bitpack, nb::arg("x"), nb::arg("out").noconvert(), nb::arg("thresholds").none() = nb::none(),
        nb::arg("mode") = 0, nb::arg("variant") = "", nb::arg("groups") = 1,
        "Pack rows of floats into uint64 words (see bitpack.h); returns the variant that ran.");
  m.def("bgemm", &bgemm, nb::arg("a"), nb::arg("b"), nb::arg("out").noconvert(), nb::arg("k"),
        nb::arg("mode") = 0, nb::arg("variant") = "", nb::arg("packed_b").none() = nb::none(),
        "Binary GEMM out[m][n] = dot(a[m], b[n]) over k packed bits (see bgemm.h); mode 0: +-1 x +-1 "
        "(xor), 1: {0,1} x +-1 (and). packed_b: bgemm_pack's output for this b and variant (trusted). "
        "Returns the variant that ran.");
  m.def("bgemm_packed_bytes", &bgemm_packed_bytes, nb::arg("n"), nb::arg("k"), nb::arg("variant") = "",
        "Bytes of B packed for the variant (BgemmPacking, bgemm.h); 0 when it reads B as it is.");
  m.def("bgemm_pack", &bgemm_pack, nb::arg("b"), nb::arg("k"), nb::arg("variant"), nb::arg("out").noconvert(),
        "Pack B for the variant into out (bgemm_packed_bytes bytes, 64-byte aligned), for bgemm's packed_b.");
  m.def("sbgemm", &sbgemm, nb::arg("a"), nb::arg("b"), nb::arg("out").noconvert(), nb::arg("k"),
        nb::arg("variant") = "",
        "Block-sparse binary GEMM out[m][n] = sum_i (1 - 2 a_i) b_i: +-1 rows a x {0,1} mask rows b "
        "(see sbgemm.h); zero words of b are skipped. Returns the variant that ran.");
  m.def("igemm", &igemm, nb::arg("a"), nb::arg("w"), nb::arg("out").noconvert(), nb::arg("variant") = "",
        "Integer GEMM out[m][n] = sum_{i<k} a[m][i] w[n][i] (see igemm.h): a (m, kp) int16 with kp = k "
        "rounded up to even and a zero pad column, w (n, k) int8, values in [-127, 127], exact int32 out. "
        "Packs w, then runs the kernel; returns the variant that ran.");
  m.def("igemm_panel_bytes", &igemm_panel_bytes, nb::arg("n"), nb::arg("k"),
        "Bytes of the igemm panels of n rows of k int8 weights (igemm.h).");
  m.def("igemm_pack", &igemm_pack, nb::arg("w"), nb::arg("panels").noconvert(),
        "Pack (n, k) int8 weights into igemm_panel_bytes(n, k) int8 panels (igemm.h), for igemm_packed.");
  m.def("igemm_packed", &igemm_packed, nb::arg("a"), nb::arg("panels"), nb::arg("n"), nb::arg("k"),
        nb::arg("out").noconvert(), nb::arg("variant") = "", nb::arg("check") = true,
        "igemm on panels igemm_pack wrote (trusted). check=False also trusts a's values (benchmarks: the "
        "kernel alone); shapes are always checked.");
  bind_layers(m);
  bind_engine(m);
}
