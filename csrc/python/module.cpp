// Thin nanobind bindings for onebit._C: argument checks and GIL release, no kernel logic.
// Arrays arrive as CPU ndarrays (numpy or torch through DLPack); torch is never included.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <stdexcept>
#include <string>

#include "onebit/kernels.h"

namespace nb = nanobind;
using namespace onebit;

namespace {

using FloatRows = nb::ndarray<const float, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using FloatVec = nb::ndarray<const float, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using WordRows = nb::ndarray<std::uint64_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;

Isa parse_isa(const std::string& name) {
  Isa isa;
  if (!isa_from_name(name, &isa)) {
    throw std::invalid_argument("unknown ISA '" + name + "'; valid: portable, avx2, avx512");
  }
  return isa;
}

// An empty name selects by dispatch; otherwise the named variant, which must be runnable here.
template <class Args>
const Kernel<Args>& pick(const std::vector<Kernel<Args>>& table, const std::string& variant) {
  if (variant.empty()) return select_kernel(table);
  const Kernel<Args>* k = find_kernel(table, variant);
  if (!k) throw std::invalid_argument("unknown kernel variant '" + variant + "'");
  if (!isa_supported(k->isa)) {
    throw std::runtime_error("kernel variant '" + variant + "' needs ISA " + isa_name(k->isa) +
                             ", which this CPU does not support");
  }
  return *k;
}

template <class Args>
std::vector<std::tuple<std::string, std::string, bool>> describe(const std::vector<Kernel<Args>>& t) {
  std::vector<std::tuple<std::string, std::string, bool>> out;
  for (const auto& k : t) out.emplace_back(k.variant, isa_name(k.isa), k.dispatchable);
  return out;
}

std::string bitpack(FloatRows x, WordRows out, nb::object thresholds, int mode, const std::string& variant) {
  if (mode != 0 && mode != 1) throw std::invalid_argument("mode must be 0 (sign) or 1 (heaviside)");
  const std::int64_t rows = static_cast<std::int64_t>(x.shape(0));
  const std::int64_t channels = static_cast<std::int64_t>(x.shape(1));
  if (static_cast<std::int64_t>(out.shape(0)) != rows ||
      static_cast<std::int64_t>(out.shape(1)) != words_for(channels)) {
    throw std::invalid_argument("bitpack: out must have shape (rows, ceil(channels / 64))");
  }
  const float* t = nullptr;
  if (!thresholds.is_none()) {
    FloatVec tv = nb::cast<FloatVec>(thresholds);
    if (static_cast<std::int64_t>(tv.shape(0)) != channels) {
      throw std::invalid_argument("bitpack: thresholds must have one value per channel");
    }
    t = tv.data();
  }
  const auto& k = pick(bitpack_kernels(), variant);
  BitpackArgs args{x.data(), t, rows, channels, static_cast<PackMode>(mode), out.data()};
  {
    nb::gil_scoped_release release;
    k.fn(args);
  }
  return k.variant;
}

}  // namespace

NB_MODULE(_C, m) {
  m.doc() = "onebit C++ kernels (torch-free core)";

  m.def("available_isas", [] {
    std::vector<std::string> out;
    for (Isa isa : available_isas()) out.emplace_back(isa_name(isa));
    return out;
  });
  m.def("active_isa", [] { return std::string(isa_name(active_isa())); });
  m.def("force_isa", [](const std::string& name) {
    const Isa isa = parse_isa(name);
    if (!force_isa(isa)) {
      throw std::runtime_error(std::string("ISA '") + name + "' is not supported by this CPU");
    }
  });
  m.def("clear_forced_isa", &clear_forced_isa);
  m.def("kernel_variants", [](const std::string& op) {
    if (op == "bitpack") return describe(bitpack_kernels());
    throw std::invalid_argument("unknown op '" + op + "'; valid: bitpack");
  });
  m.def("bitpack", &bitpack, nb::arg("x"), nb::arg("out"), nb::arg("thresholds").none() = nb::none(),
        nb::arg("mode") = 0, nb::arg("variant") = "",
        "Pack rows of floats into uint64 words (see bitpack.h); returns the variant that ran.");
}
